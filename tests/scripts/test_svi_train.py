"""scripts/svi_train.py end to end, as a user runs it."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.training import TrainConfig, Trainer, TrainingDiverged
from tests.checkpoints import REPO, TINY_RUN, run_train


def test_tiny_run_writes_checkpoints_logs_and_test_metrics(tmp_path):
    proc = run_train(tmp_path)
    assert "test (48 faces" in proc.stdout and "accuracy" in proc.stdout
    # stderr is a pipe here, as when a run is logged to a file: the bar is drawn when the epoch
    # opens and closes, not once per step (this run has 6).
    assert proc.stderr.count("epoch 1/1:") <= 2, proc.stderr
    final = json.loads((tmp_path / "final.json").read_text())
    assert 0.0 <= final["test/accuracy"] <= 1.0 and final["test/nll"] > 0 and 0 <= final["test/ece"] <= 1
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 2  # header + one epoch
    last = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert last["epoch"] == 1
    assert last["lr"] == pytest.approx(0.0, abs=1e-12), "the synthetic preset anneals the learning rate to 0"
    assert json.loads((tmp_path / "config.json").read_text())["model"] == "poster_var_tiny"
    state = ckpt_io.load(tmp_path / "best.pt")  # weights_only=True
    for key in ("model", "guide", "optimizer", "warmup", "decay", "rng", "config", "class_names", "epoch", "best_metric"):
        assert key in state, key
    assert state["class_names"][0] == "neutral" and state["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp")), "temporary checkpoint files must be renamed into place"


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
def test_cosine_schedule_warms_up_then_anneals_to_zero_and_rejects_unknown_names(tmp_path):
    cfg = TrainConfig(out=str(tmp_path), train_size=64, valid_size=16, batch_size=16, epochs=2, warmup_steps=2,
                      lr=1e-2, lr_schedule="cosine", workers=0)
    trainer = Trainer(cfg)  # 4 steps per epoch, 8 in all
    lrs = []
    for _ in range(8):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.warmup.step()
    assert lrs[0] == pytest.approx(1e-4)  # warm-up starts at lr / 100
    assert max(lrs) == lrs[2] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 2 / 8)))  # warm-up done
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))  # then strictly annealing
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="exponential or cosine"):
        Trainer(cfg.replace(lr_schedule="linear"))


def test_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    args = ["--epochs", "3"]
    run_train(tmp_path / "straight", *args)
    cmd = [sys.executable, str(REPO / "scripts" / "svi_train.py"), "--out", str(tmp_path / "killed"), *TINY_RUN, *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (log.exists() and log.read_text().count("\n") >= 1) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # mid-way through epoch 2
    proc.wait()
    assert ckpt_io.load(tmp_path / "killed" / "last.pt")["epoch"] == 1, "the kill must land after epoch 1"
    run_train(tmp_path / "killed", *args, "--resume")
    straight = json.loads((tmp_path / "straight" / "final.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "final.json").read_text())
    assert resumed == pytest.approx(straight, abs=1e-6)


def test_bad_requests_fail_before_training(tmp_path):
    proc = run_train(tmp_path, "--dataset", "ferplus", "--data-root", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 2 and "FER2013Train" in proc.stderr
    proc = run_train(tmp_path / "fresh", "--resume", check=False)
    assert proc.returncode == 2 and "last.pt" in proc.stderr
    proc = run_train(tmp_path, "--dataset", "mnist", check=False)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    torch.save({"model": {"head.fc_loc.weight": torch.zeros(5, 128), "head.fc_loc.bias": torch.zeros(5)}}, tmp_path / "k5.pt")
    proc = run_train(tmp_path / "init", "--init-from", str(tmp_path / "k5.pt"), check=False)
    assert proc.returncode == 2 and "predicts 5 classes" in proc.stderr
    assert not (tmp_path / "init" / "last.pt").exists()


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = TrainConfig(out=str(tmp_path), train_size=32, valid_size=16, epochs=2, batch_size=16, workers=0)
    trainer = Trainer(config)
    trainer.fit()
    before = (tmp_path / "last.pt").read_bytes()
    trainer.config = config.replace(epochs=3)
    monkeypatch.setattr(trainer, "_loss", lambda batch: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingDiverged, match=r"epoch 3, step 4"):
        trainer.fit()
    assert (tmp_path / "last.pt").read_bytes() == before


def test_rerunning_the_same_command_leaves_the_first_run_byte_identical(tmp_path):
    small = ["--train-size", "16", "--valid-size", "8", "--batch-size", "8"]
    run_train(tmp_path, *small)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    proc = run_train(tmp_path, *small, check=False)
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr and all(f in proc.stderr for f in ("--resume", "--out", "--overwrite"))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert "Traceback" not in proc.stderr
