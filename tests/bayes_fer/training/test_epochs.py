"""Epochs and steps that mean what they say: stop mid-epoch, resume the rest of that epoch."""
from __future__ import annotations

import json

import pytest

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.training import TrainConfig, Trainer, train
from bayes_fer.training import loop

# 2 steps per epoch, 2 epochs, cosine annealing to 0 by the 4th step.
TINY = TrainConfig(train_size=16, valid_size=8, batch_size=8, epochs=2, warmup_steps=1, lr=1e-3,
                   lr_schedule="cosine", workers=0, kl_weight=0.01)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    return train(TINY.replace(out=str(out))), out


def _final(out) -> dict:
    return json.loads((out / "final.json").read_text())


def _rows(out) -> list[dict]:
    """The logged epochs; a run stopped before its first epoch ended has logged none."""
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("stop_at", [3, 1])  # in epoch 2 (after a best.pt exists), and in epoch 1
def test_run_stopped_mid_epoch_resumes_that_epoch_and_ends_like_an_uninterrupted_run(tmp_path, stop_at, capsys, straight):
    straight, straight_out = straight
    out = tmp_path / "stopped"
    stopped = train(TINY.replace(out=str(out), max_steps=stop_at))
    epoch, step = divmod(stop_at, 2)
    message = f"stopped by --max-steps at epoch {epoch + 1}, step {step} of 2"
    assert message in capsys.readouterr().out
    assert stopped["stopped"] == message and _final(out)["stopped"] == message
    state = ckpt_io.load(out / "last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (epoch, step, stop_at)
    assert len(_rows(out)) == epoch, "a partial epoch is not logged as an epoch"
    if epoch == 0:
        assert stopped["tested"] == "last.pt" and not (out / "best.pt").exists()

    resumed = train(TINY.replace(out=str(out)), resume=True)
    assert f"step {step} of 2 in epoch {epoch + 1}" in capsys.readouterr().out
    assert "stopped" not in resumed
    assert resumed == pytest.approx(straight, abs=1e-6)
    rows, rows_straight = _rows(out), _rows(straight_out)
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("step", "lr", "train/loss", "valid/accuracy", "valid/nll"):
        assert [r[key] for r in rows] == pytest.approx([r[key] for r in rows_straight], abs=1e-6), key
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-12), "the cosine schedule ends where it was planned"


def test_max_minutes_warns_when_too_short_for_an_epoch_and_says_where_it_stopped(tmp_path, monkeypatch, capsys):
    config = TINY.replace(out=str(tmp_path), train_size=32, epochs=1, max_minutes=1.5)  # 4 steps per epoch
    trainer = Trainer(config)
    monkeypatch.setattr(loop, "clock", lambda: trainer.step * 30.0)  # every step takes 30 s
    final = trainer.fit()
    out = capsys.readouterr().out
    assert "warning: --max-minutes 1.5 is too short for epoch 1: at 30.00 s per step its 4 steps take about 2.0 minutes" in out
    assert "stopped by --max-minutes at epoch 1, step 3 of 4" in out
    assert final["stopped"] == "stopped by --max-minutes at epoch 1, step 3 of 4"
    assert ckpt_io.load(tmp_path / "last.pt")["epoch_step"] == 3
