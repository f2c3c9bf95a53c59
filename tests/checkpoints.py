"""Checkpoints made by the real training script on tiny synthetic runs, shared by the tests."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = ["--train-size", "96", "--valid-size", "48", "--epochs", "1", "--batch-size", "16", "--seed", "0",
            "--workers", "0"]


def run_train(out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``scripts/svi_train.py`` as a user would, on a tiny synthetic configuration."""
    cmd = [sys.executable, str(REPO / "scripts" / "svi_train.py"), "--out", str(out), *TINY_RUN, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
