"""benchmarks/bench_model.py as a user runs it, on the tiny model and short timings."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.bayes_fer.data.layouts import make_ferplus
from tests.checkpoints import REPO


def test_bench_model_prints_a_table_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "benchmarks/bench_model.py", "--model", "poster_var_tiny", "--threads", "1",
           "--batches", "1", "2", "--train-batch", "4", "--seconds", "0.2", "--head-overhead", "--predictive", "1", "50",
           "--train-data", "synthetic", "--workers", "0", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for row in ("eval batch 2", "VICH head vs linear", "predictive S=50", "train step batch 4",
                "data pipeline (synthetic, 0 workers)", "training on synthetic, batch 4", "peak RSS"):
        assert row in proc.stdout, row
    results = json.loads(out.read_text())
    assert set(results["eval_images_per_s"]) == {"1", "2"} and min(results["eval_images_per_s"].values()) > 0
    assert set(results["predictive_s_per_batch"]) == {"1", "50"} and results["train_step_s"] > 0
    pipeline = results["data_pipeline"]
    assert pipeline["images_per_s"] > pipeline["train_images_per_s"] > 0  # training adds the network's time
    assert results["head_ms_per_image"]["vich"] > 0 and results["peak_rss_mb_train"] > 0


def test_bench_model_trains_on_a_data_set_with_eight_classes(tmp_path):
    # Every face is contempt, class 7 of FER+'s 8: a 7-class network cannot take these labels.
    contempt = [0, 0, 0, 0, 0, 0, 0, 10, 0, 0]
    root = make_ferplus(tmp_path / "ferplus", {"train": [contempt] * 8, "valid": [contempt], "test": [contempt]})
    cmd = [sys.executable, "benchmarks/bench_model.py", "--model", "poster_var_tiny", "--threads", "1",
           "--batches", "1", "--train-batch", "4", "--seconds", "0.2", "--train-data", "ferplus",
           "--data-root", str(root), "--workers", "0"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "training on ferplus, batch 4" in proc.stdout
