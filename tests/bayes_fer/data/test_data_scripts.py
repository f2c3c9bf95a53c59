"""The data benchmark and the grid script, run end to end as a user would."""
import importlib.util
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


def test_bench_data_documents_every_flag(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_data", REPO / "benchmarks" / "bench_data.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_data", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    parser = module.build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    assert "--ferplus-root" in parser.format_help() and "--learn-images" in parser.format_help()


def test_synthetic_grid_writes_a_png(tmp_path):
    out = tmp_path / "grid.png"
    faces = tmp_path / "faces"
    proc = _run("scripts/synthetic_grid.py", "--out", str(out), "--rows", "2", "--cols", "3", "--dpi", "50",
                "--save-faces", str(faces))
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.width > img.height > 100
    saved = sorted(faces.glob("*.png"))
    assert len(saved) == 6 and saved[0].name.startswith("00_neu")  # one clear face per emotion comes first
    with Image.open(saved[0]) as face:
        assert face.size == (112, 112) and face.mode == "RGB"
