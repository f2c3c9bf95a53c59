"""Nothing lost, nothing silently wrong: run folders, splits, resume settings, init-from, numbers."""
from __future__ import annotations

import errno
import tempfile

import pytest
import torch

from bayes_fer.data.errors import LabelError
from bayes_fer.models import CheckpointError
from bayes_fer.training import ResumeMismatch, RunDirectoryError, TrainConfig, Trainer, TrainingDiverged
from bayes_fer.training import loop, rundir
from bayes_fer.training.builder import build_network
from bayes_fer.training.checks import check_config
from bayes_fer.training.data import load_splits
from bayes_fer.training.device import resolve_device
from bayes_fer.training.resume import resume_config
from guides import AmortizedGuide
from tests.bayes_fer.data.layouts import make_class_folders, make_ferplus, make_rafdb, write_corrupt
from tests.bayes_fer.training.test_config import _svi_train
from tests.conftest import require_shared

TINY = TrainConfig(train_size=16, valid_size=8, batch_size=8, epochs=1, warmup_steps=1, workers=0, kl_weight=0.01)
VOTES = [[0, 10, 0, 0, 0, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]]


def _ferplus(tmp_path):
    return make_ferplus(tmp_path / "ferplus", {"train": VOTES * 4, "valid": VOTES, "test": VOTES})


# -- a run folder belongs to one run -----------------------------------------------------------
def test_a_fresh_run_into_another_runs_folder_stops_before_touching_it(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"the first run's model")
    (tmp_path / "metrics.csv").write_text("epoch\n1\n")
    with pytest.raises(RunDirectoryError, match=r"already holds a run \(best.pt, metrics.csv\).*--resume.*--out.*--overwrite"):
        Trainer(TINY.replace(out=str(tmp_path)))
    assert (tmp_path / "best.pt").read_bytes() == b"the first run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "metrics.csv"]
    with pytest.raises(RunDirectoryError, match="--resume needs .*last.pt"):
        Trainer(TINY.replace(out=str(tmp_path / "empty")), resume=True)


def test_overwrite_removes_only_the_earlier_runs_outputs(tmp_path):
    for name in ("best.pt", "metrics.csv", "metrics.jsonl", "notes.txt"):
        (tmp_path / name).write_text("old")
    (tmp_path / "tensorboard").mkdir()
    rundir.prepare(tmp_path, resume=False, overwrite=True)
    assert (tmp_path / "best.pt").read_text() == "old", "prepare only checks"
    assert rundir.clear(tmp_path) == ["best.pt", "metrics.csv", "metrics.jsonl", "tensorboard"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_leftover_temporary_checkpoints_are_removed_on_the_next_start(tmp_path):
    (tmp_path / ".last.pt.k2j4h1.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".best.pt.x8.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "last.pt").write_bytes(b"x")
    rundir.prepare(tmp_path, resume=True, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_an_unwritable_output_folder_is_one_clear_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(rundir.OutputError, match=rf"cannot write in folder {tmp_path / 'out'}: permission denied"):
        rundir.prepare(tmp_path / "out", resume=False, overwrite=False)
    (tmp_path / "file").write_text("")
    monkeypatch.undo()
    with pytest.raises(rundir.OutputError, match="is a file, not a folder"):
        rundir.prepare(tmp_path / "file", resume=False, overwrite=False)


def test_full_disk_while_writing_logs_is_one_clear_error(tmp_path, monkeypatch):
    from pathlib import Path

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(rundir.OutputError, match=rf"cannot write config.json in folder {tmp_path}: no space left"):
        rundir.write_text(tmp_path / "config.json", "{}")


# -- splits are properties of the data set -----------------------------------------------------
def test_a_missing_validation_label_file_is_an_error_naming_it_not_a_switch_to_test(tmp_path):
    root = _ferplus(tmp_path)
    (root / "FER2013Valid" / "label.csv").unlink()  # fer2013new.csv is still there
    config = TINY.replace(dataset="ferplus", data_root=str(root), out=str(tmp_path / "run"), train_size=None,
                          valid_size=None)
    with pytest.raises(FileNotFoundError, match=r"FER2013Valid/label.csv does not exist"):
        Trainer(config)
    assert not (tmp_path / "run" / "config.json").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_broken_splits_are_found_before_training_and_name_the_file(tmp_path):
    root = _ferplus(tmp_path)
    config = TINY.replace(dataset="ferplus", data_root=str(root), train_size=None, valid_size=None)
    (root / "FER2013Valid" / "label.csv").write_bytes(b"fer0000008.png,(0, 0, 48, 48),\xff\xfe,0\n")
    with pytest.raises(LabelError, match=r"FER2013Valid/label.csv, line 1: is not UTF-8 text"):
        load_splits(config, None)
    (root / "FER2013Valid" / "label.csv").write_text("broken\n")
    with pytest.raises(LabelError, match=r"FER2013Valid/label.csv, line 1: expected 12 fields"):
        load_splits(config, None)
    root = _ferplus(tmp_path / "b")
    for f in (root / "FER2013Test").iterdir():
        f.unlink()
    (root / "FER2013Test").rmdir()
    with pytest.raises(FileNotFoundError, match=r"FER2013Test does not exist"):
        load_splits(config.replace(data_root=str(root)), None)


def test_only_data_sets_without_a_validation_split_validate_on_test(tmp_path):
    rafdb = make_rafdb(tmp_path / "rafdb", [(f"train_{i:05d}.jpg", 1 + i % 7) for i in range(7)]
                       + [(f"test_{i:05d}.jpg", 1 + i % 7) for i in range(7)])
    splits = load_splits(TINY.replace(dataset="rafdb", data_root=str(rafdb), train_size=None, valid_size=None), None)
    assert splits.valid_split == "test" and splits.valid is splits.test
    folders = make_class_folders(tmp_path / "f", {"train": {"happy": 2, "sad": 2}, "test": {"happy": 1, "sad": 1}})
    config = TINY.replace(dataset="folder", data_root=str(folders), train_size=None, valid_size=None)
    assert load_splits(config, None).valid_split == "test"
    make_class_folders(folders, {"valid": {"happy": 1, "weird": 1}})  # a broken validation split: an error, not test
    with pytest.raises(ValueError, match=r"cannot tell which class the folder\(s\) \['weird'\] hold"):
        load_splits(config, None)


def test_real_ferplus_without_its_validation_labels_stops_before_training(tmp_path, capsys):
    shared = require_shared("data", "ferplus")
    root = tmp_path / "ferplus"
    root.mkdir()
    for name in ("FER2013Train", "FER2013Test", "fer2013new.csv"):
        (root / name).symlink_to(shared / name)
    (root / "FER2013Valid").mkdir()  # its label.csv deleted
    rc = _svi_train().main(["--dataset", "ferplus", "--data-root", str(root), "--out", str(tmp_path / "run")])
    assert rc == 2
    assert f"{root / 'FER2013Valid' / 'label.csv'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


# -- resume compares the whole configuration -------------------------------------------------
@pytest.fixture
def saved_run(tmp_path):
    """A run folder holding a last.pt of TINY (untrained: only its settings matter here)."""
    config = TINY.replace(out=str(tmp_path / "run"))
    Trainer(config)._save("last.pt")
    return config


def test_resume_lists_every_setting_that_differs(saved_run):
    asked = saved_run.replace(lr=1e6, guide="delta", train_size=32, lr_schedule="cosine", dataset="synthetic")
    with pytest.raises(ResumeMismatch, match=r"(?s)4 differ:.*guide: 'normal' in the checkpoint, 'delta' asked"
                                             r".*lr: 0.002 in the checkpoint, 1000000.0 asked.*lr_schedule.*train_size"):
        Trainer(asked, resume=True)
    with pytest.raises(ResumeMismatch, match=r"model: 'poster_var_tiny' in the checkpoint, 'poster_pp_tiny' asked"):
        Trainer(saved_run.replace(model="poster_pp_tiny", guide="delta"), resume=True)
    trainer = Trainer(saved_run.replace(epochs=4, max_minutes=3.0, workers=0), resume=True)  # run control may change
    assert trainer.config.epochs == 4


def test_resume_from_the_command_line_keeps_the_runs_settings_and_refuses_others(saved_run, capsys):
    given = {"epochs": 5, "out": saved_run.out}
    import dataclasses

    effective = resume_config(dataclasses.asdict(saved_run), given)
    assert effective == saved_run.replace(epochs=5)
    rc = _svi_train().main(["--out", saved_run.out, "--resume", "--lr", "1e6", "--kl-weight", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "kl_weight: 0.01 in the checkpoint, 1.0 asked" in err and "lr: 0.002" in err


def test_a_checkpoint_that_does_not_fit_is_an_error_not_a_traceback(saved_run):
    from bayes_fer import checkpoint as ckpt_io

    path = f"{saved_run.out}/last.pt"
    state = ckpt_io.load(path)
    state["model"].pop("head.fc_loc.bias")
    ckpt_io.save_atomic(state, path)
    with pytest.raises(CheckpointError, match=r"last.pt does not fit the network.*head.fc_loc.bias"):
        Trainer(saved_run, resume=True)


@pytest.mark.parametrize("content, problem", [(b"", "is empty"), (b"PK\x03\x04abc", "is truncated or damaged"),
                                              (b"hello", "is a text file")])
def test_unreadable_checkpoints_for_resume_and_init_from_are_errors(tmp_path, capsys, content, problem):
    (tmp_path / "last.pt").write_bytes(content)
    main = _svi_train().main
    assert main(["--out", str(tmp_path), "--resume"]) == 2
    assert f"checkpoint {tmp_path / 'last.pt'}: {problem}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=rf"checkpoint {tmp_path / 'last.pt'}: {problem}"):
        build_network(TINY.replace(init_from=str(tmp_path / "last.pt")), 7)


# -- init-from maps the head by class name -----------------------------------------------------
def test_init_from_puts_the_head_rows_in_this_datas_class_order(tmp_path):
    from bayes_fer import checkpoint as ckpt_io
    from bayes_fer.data import LABEL_SPACES

    names = list(LABEL_SPACES["synthetic"])
    source = build_network(TINY, 7)
    other_order = names[::-1]
    ckpt_io.save_atomic({"format": ckpt_io.FORMAT, "model": source.state_dict(), "class_names": other_order},
                        tmp_path / "ckpt.pt")
    net = build_network(TINY.replace(init_from=str(tmp_path / "ckpt.pt")), 7, class_names=names)
    for key in ("fc_loc.weight", "fc_loc.bias", "fc_log_var.weight"):
        got, was = net.head.state_dict()[key], source.head.state_dict()[key]
        for k, name in enumerate(names):
            assert torch.equal(got[k], was[other_order.index(name)]), (key, name)
    assert torch.equal(net.state_dict()["se.linear1.weight"], source.state_dict()["se.linear1.weight"])
    refused = other_order[:-1] + ["contempt"]
    ckpt_io.save_atomic({"format": ckpt_io.FORMAT, "model": source.state_dict(), "class_names": refused},
                        tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"trained for the classes \['anger'.*'contempt'\], this data has "
                                              r"\['neutral'.*--reset-head"):
        build_network(TINY.replace(init_from=str(tmp_path / "other.pt")), 7, class_names=names)


# -- numbers and names are checked where they are given ------------------------------------------
@pytest.mark.parametrize("flag, value, message", [
    ("--lr-gamma", "-1", r"must be a finite number in \(0, 1\], got -1"),
    ("--lr-gamma", "1.5", r"in \(0, 1\], got 1.5"),
    ("--kl-weight", "nan", "must be a finite number >= 0, got nan"),
    ("--max-minutes", "-1", "must be a finite number >= 0, got -1"),
    ("--epochs", "0", "must be an integer >= 1, got 0"),
    ("--batch-size", "0", "must be an integer >= 1, got 0"),
    ("--valid-size", "0", "must be an integer >= 1, got 0"),
    ("--lr", "0", "must be a finite number > 0, got 0"),
    ("--lr", "inf", "got inf"),
    ("--prior-scale", "-2", "> 0"),
    ("--workers", "-1", ">= 0"),
    ("--seed", "-1", r"an integer in \[0, "),
    ("--grad-clip", "nan", "got nan"),
    ("--epochs", "two", "expected an integer >= 1, got 'two'"),
    ("--device", "tpu", "expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
])
def test_every_numeric_flag_is_checked_by_argparse(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _svi_train().build_parser().parse_args([flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err
    import re

    assert re.search(message, err), err


def test_the_library_checks_the_same_ranges_and_the_device():
    with pytest.raises(ValueError, match=r"kl_weight must be a finite number >= 0, got nan; lr_gamma .* got -1"):
        check_config(TrainConfig(kl_weight=float("nan"), lr_gamma=-1.0))
    with pytest.raises(ValueError, match="unknown device 'tpu'; expected auto, cpu"):
        resolve_device("tpu")


# -- late failures become early or harmless ---------------------------------------------------------
def test_divergence_on_the_cpu_is_training_diverged_not_a_constraint_dump(tmp_path, monkeypatch, capsys):
    real = AmortizedGuide.encode

    def nan_head(guide, x):
        out = real(guide, x)
        return type(out)(out.loc * float("nan"), out.log_var, out.features)

    monkeypatch.setattr(AmortizedGuide, "encode", nan_head)
    with pytest.raises(TrainingDiverged, match=r"not finite at epoch 1, step 0.*lower --lr"):
        Trainer(TINY.replace(out=str(tmp_path / "a"))).fit()
    rc = _svi_train().main(["--out", str(tmp_path / "b"), "--train-size", "16", "--valid-size", "8", "--batch-size",
                            "8", "--workers", "0"])
    assert rc == 3 and "training diverged" in capsys.readouterr().err


def test_a_failing_validation_keeps_the_epochs_checkpoint_and_resume_validates_it(tmp_path, monkeypatch, capsys):
    config = TINY.replace(out=str(tmp_path), epochs=1)
    real = loop.evaluate

    def unreadable(*args, **kwargs):
        raise RuntimeError("64 consecutive samples are unreadable")

    monkeypatch.setattr(loop, "evaluate", unreadable)
    with pytest.raises(RuntimeError, match="unreadable"):
        Trainer(config).fit()
    from bayes_fer import checkpoint as ckpt_io

    state = ckpt_io.load(tmp_path / "last.pt")
    assert (state["epoch"], state["epoch_validated"]) == (1, False)
    monkeypatch.setattr(loop, "evaluate", real)
    final = Trainer(config, resume=True).fit()
    assert "epoch 1/1" in capsys.readouterr().out and final["best_epoch"] == 1
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 2


def test_skipped_images_are_reported_at_the_end_of_each_epoch(tmp_path, capsys):
    root = make_class_folders(tmp_path / "f", {"train": {"happy": 4, "sad": 4}, "test": {"happy": 1, "sad": 1}})
    write_corrupt(root / "train" / "sad" / "img001.png")
    config = TINY.replace(dataset="folder", data_root=str(root), out=str(tmp_path / "run"), train_size=None,
                          valid_size=None)
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        Trainer(config).fit()
    assert "train: 1 of 8 images skipped as unreadable" in capsys.readouterr().out
