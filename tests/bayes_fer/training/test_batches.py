"""The batches a run trains on: from the decoded-once cache (--data-cache) as from the image files."""
from __future__ import annotations

import json

import pytest
import torch

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.data import train_transform
from bayes_fer.training import TrainConfig, Trainer, tally, train
from bayes_fer.training.batches import DEFAULT_CACHE_DIR, Batches
from bayes_fer.training.checks import check_config
from bayes_fer.training.data import epoch_order, load_splits
from bayes_fer.training.tally import LossTally
from tests.bayes_fer.training.test_config import _svi_train

# 3 steps per epoch; the network is built at 64 (FER+'s 48 x 48 faces would be stored as they are).
SMALL = TrainConfig(train_size=12, valid_size=6, batch_size=4, image_size=64, workers=0)


def _batches(config: TrainConfig) -> Batches:
    splits = load_splits(config, train_transform(config.image_size))
    return Batches(config, {"train": splits.train, "valid": splits.valid, "test": splits.test}, torch.device("cpu"))


def test_cached_batches_come_at_the_image_size_in_the_order_of_the_image_file_path(tmp_path):
    cached = _batches(SMALL.replace(data_cache=str(tmp_path / "cache")))
    files = _batches(SMALL)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3, "train, valid and test decoded once"
    order = epoch_order(SMALL, cached.splits["train"].labels, 1)
    got = list(cached.train(epoch=1, step=1))  # resumed after the first of 3 steps
    assert [b["index"].tolist() for b in got] == [order[4:8].tolist(), order[8:12].tolist()]
    assert [b["index"].tolist() for b in files.train(epoch=1, step=1)] == [b["index"].tolist() for b in got]
    for b in got:
        assert b["image"].shape == (4, 3, 64, 64) and b["image"].dtype == torch.float32
        assert torch.equal(b["label"], torch.as_tensor(cached.splits["train"].labels)[b["index"]])
    (valid,) = list(cached.eval("valid"))
    (valid_files,) = list(files.eval("valid"))
    assert valid["image"].shape == valid_files["image"].shape == (6, 3, 64, 64)
    # The same resize and normalisation, batched (PIL and torch round differently).
    assert (valid["image"] - valid_files["image"]).abs().mean() < 0.02
    assert torch.equal(valid["label"], valid_files["label"])


def test_a_cached_run_stopped_mid_epoch_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    # 2 steps per epoch, 2 epochs: the device augmentation's draws travel in the checkpoint's RNG state.
    config = TrainConfig(train_size=16, valid_size=8, batch_size=8, epochs=2, warmup_steps=1, lr=1e-3,
                         lr_schedule="cosine", workers=0, kl_weight=0.01, augment="standard",
                         data_cache=str(tmp_path / "cache"))
    straight = train(config.replace(out=str(tmp_path / "straight")))
    stopped = train(config.replace(out=str(tmp_path / "stopped"), max_steps=3))
    assert stopped["stopped"] == "stopped by --max-steps at epoch 2, step 1 of 2"
    assert ckpt_io.load(tmp_path / "stopped" / "last.pt")["epoch_step"] == 1
    resumed = train(config.replace(out=str(tmp_path / "stopped")), resume=True)
    assert resumed == pytest.approx(straight, abs=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_the_loss_is_read_from_the_device_once_every_few_steps_not_every_step(tmp_path, monkeypatch):
    reads = []
    real = LossTally.read

    def counted(self, *args, **kwargs):
        reads.append(len(self._unread))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LossTally, "read", counted)
    monkeypatch.setattr(tally, "READ_EVERY", 3)
    config = TrainConfig(train_size=16, valid_size=4, batch_size=2, epochs=1, workers=0, kl_weight=0.01,
                         data_cache=str(tmp_path / "cache"), out=str(tmp_path / "run"))
    Trainer(config).fit()  # 8 steps
    assert reads == [3, 3, 2], "the losses of every 3 steps read at once, then the epoch's last 2"
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert row["train/loss"] > 0


def test_a_loss_that_is_not_finite_is_found_with_its_step_and_not_counted():
    losses = LossTally(10.0, 4, every=3)
    assert not losses.add(torch.tensor(2.0), 7, 4) and not losses.add(torch.tensor(1.0), 8, 2)
    assert losses.add(torch.tensor(3.0), 9, 4)
    assert losses.read() == (False, None)
    assert (losses.total, losses.seen) == (10.0 + 8.0 + 2.0 + 12.0, 14)
    losses.add(torch.tensor(1.0), 10, 4)
    losses.add(torch.tensor(float("nan")), 11, 4)
    late, bad = losses.read(out_of_time=True)
    assert late and bad.step == 11 and bad.steps == (10, 11)
    assert (losses.total, losses.seen) == (32.0, 14), "a read with a non-finite loss adds nothing"


def test_data_cache_is_a_folder_checked_where_it_is_given(tmp_path, capsys):
    parser = _svi_train().build_parser()
    assert parser.parse_args(["--data-cache"]).data_cache == DEFAULT_CACHE_DIR
    assert parser.parse_args(["--data-cache", str(tmp_path)]).data_cache == str(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        parser.parse_args(["--data-cache", str(tmp_path / "file")])
    assert f"argument --data-cache: must be a folder, but {tmp_path / 'file'} is a file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="data_cache must be a folder path, got ''"):
        check_config(TrainConfig(data_cache=""))
