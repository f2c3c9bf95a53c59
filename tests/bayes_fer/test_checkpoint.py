"""bayes_fer.checkpoint: one clear error for every unreadable file; atomic, durable writes."""
from __future__ import annotations

import errno
import os
import pickle
import zipfile

import pytest
import torch

from bayes_fer import checkpoint as ckpt_io
from bayes_fer.checkpoint import CheckpointReadError, CheckpointWriteError


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.pt"
    torch.save({"format": ckpt_io.FORMAT, "model": {"w": torch.arange(2000.0)}}, path)
    return path


def _bad_files(tmp_path, good) -> dict:
    data = good.read_bytes()
    files = {
        "truncated": (data[: len(data) // 2], r"is truncated or damaged"),
        "empty": (b"", r"is empty \(0 bytes\)"),
        "text": (b"epoch,loss\n1,0.5\n", r"is a text file, not a PyTorch checkpoint \(it starts with 'epoch,loss"),
        "random": (bytes(range(7, 250)) * 3, r"is not a PyTorch checkpoint \(it starts with the bytes 07 08"),
        "malicious": (pickle.dumps(_Payload(), protocol=2), r"holds Python objects \(posix.system\) .*can run arbitrary code"),
    }
    for name, (content, _) in files.items():
        (tmp_path / f"{name}.pt").write_bytes(content)
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:
        z.writestr("notes.txt", "hello")
    files["zip"] = (None, r"is a zip archive but not a PyTorch checkpoint")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    files["list"] = (None, r"holds a list, not a dict of tensors")
    return {name: (tmp_path / f"{name}.pt", pattern) for name, (_, pattern) in files.items()}


def test_every_unreadable_file_is_one_error_naming_it_and_never_suggesting_weights_only_false(tmp_path, good):
    assert ckpt_io.read(good)["model"]["w"].shape == (2000,)
    for name, (path, pattern) in _bad_files(tmp_path, good).items():
        with pytest.raises(CheckpointReadError, match=rf"checkpoint {path}: {pattern}") as err:
            ckpt_io.read(path)
        assert "weights_only" not in str(err.value), name
        assert isinstance(err.value, ValueError)
    with pytest.raises(CheckpointReadError, match="does not exist"):
        ckpt_io.read(tmp_path / "nowhere.pt")
    with pytest.raises(CheckpointReadError, match="is a folder"):
        ckpt_io.read(tmp_path)


def test_load_refuses_foreign_checkpoints(tmp_path):
    torch.save({"state_dict": {"VIT.head.linear.weight": torch.zeros(7, 4)}}, tmp_path / "ref.pt")
    with pytest.raises(CheckpointReadError, match=r"is not a bayes-fer training checkpoint .*--init-from"):
        ckpt_io.load(tmp_path / "ref.pt")


def test_save_flushes_to_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    ckpt_io.save_atomic({"a": torch.ones(3)}, tmp_path / "last.pt")
    assert events[:2] == ["fsync", "replace"]
    assert torch.equal(ckpt_io.read(tmp_path / "last.pt")["a"], torch.ones(3))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoint_mode_is_what_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        ckpt_io.save_atomic({"a": torch.ones(1)}, tmp_path / "best.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "best.pt").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("failure, cause", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
    (RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4304"), "the write failed: .*unexpected pos"),
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied; choose another --out"),
])
def test_a_failed_write_names_the_folder_and_cause_and_keeps_the_old_file(tmp_path, monkeypatch, failure, cause):
    path = tmp_path / "last.pt"
    ckpt_io.save_atomic({"epoch": 1}, path)
    before = path.read_bytes()

    def fail(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise failure

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(CheckpointWriteError, match=rf"cannot write last.pt in folder {tmp_path}: {cause}"):
        ckpt_io.save_atomic({"epoch": 2}, path)
    assert path.read_bytes() == before
    assert ckpt_io.temporary_files(tmp_path) == []
