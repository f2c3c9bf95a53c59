"""benchmarks/gpu_check.sh in its CPU dry run: every step runs and lands in one JSON, a log and a table."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.checkpoints import REPO


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_json_log_and_table(tmp_path):
    env = {**os.environ, "DRY_RUN": "1", "DATASET": "synthetic", "OUT": str(tmp_path), "PY": sys.executable,
           "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stage ended" not in proc.stdout, proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = [r["step"] for r in report["rows"]]
    assert steps == ["inference fp32", "inference bf16", "inference bf16 compiled", "training files",
                     "training cached", "training files compiled", "training cached compiled"]
    assert all(r["images_per_s"] > 0 for r in report["rows"])
    assert not any(r.get("bf16") for r in report["rows"]), "never bf16 on the CPU"
    assert report["dry_run"] and report["device"] == "cpu"
    assert report["full_run"]["test/size"] == 8 and 0.0 <= report["full_run"]["test/accuracy"] <= 1.0
    assert report["evaluation"]["num_examples"] == 8 and report["total_wall_s"] > 0
    table = proc.stdout[proc.stdout.index("step "):]
    assert "training cached compiled" in table and "full run (" in table and "evaluation (8 faces)" in table
    assert "full run (" in (tmp_path / "gpu_check.log").read_text()
    assert list((tmp_path / "data-cache").glob("synthetic-train-*.npy")), "the cached rows and the run share a cache"


def test_without_a_gpu_the_check_says_to_dry_run(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dataset", "synthetic",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--dry-run" in proc.stderr, proc.stderr
