"""The data benchmark and the grid script, run end to end as a user would."""
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[3]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_bench_data_writes_a_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run("benchmarks/bench_data.py", "--datasets", "synthetic", "--workers", "0", "--batch-size", "4",
                "--batches", "2", "--warmup", "1", "--generate", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "images/s" in proc.stdout
    results = json.loads(out.read_text())["results"]
    assert [r["dataset"] for r in results] == ["synthetic (generation only, 1 core)", "synthetic (train: load + augment)"]
    assert results[1]["images"] == 8 and all(r["images_per_s"] > 0 for r in results)


def test_bench_data_help_documents_every_flag():
    proc = _run("benchmarks/bench_data.py", "--help")
    assert proc.returncode == 0
    for flag in ("--datasets", "--ferplus-root", "--workers", "--batch-size", "--batches", "--out", "--seed"):
        assert flag in proc.stdout


def test_synthetic_grid_writes_a_png(tmp_path):
    out = tmp_path / "grid.png"
    proc = _run("scripts/synthetic_grid.py", "--out", str(out), "--rows", "2", "--cols", "3", "--dpi", "50")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.width > img.height > 100
