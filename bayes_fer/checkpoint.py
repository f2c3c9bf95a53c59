"""Checkpoint files: read with ``weights_only=True`` into one clear error, written atomically.

:func:`read` is the one way bayes-fer opens a checkpoint file: whatever is wrong with the
file (missing, empty, truncated, text, random bytes, a zip of something else, Python objects
that are not tensors) ends in a :class:`CheckpointReadError` naming the file and what it is.
:func:`save_atomic` writes a temporary file beside the target, flushes it to disk and renames
it into place, so a run killed or a disk filled while writing leaves the previous file intact;
a failed write is a :class:`CheckpointWriteError` naming the folder and the cause.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "bayes-fer/1"

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_OR_LATER = b"\x80"


class CheckpointReadError(ValueError):
    """A checkpoint file cannot be read; the message names the file and what it holds instead."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names the folder and the cause."""

    def __init__(self, path: str | os.PathLike, cause: str) -> None:
        self.path = os.fspath(path)
        self.cause = cause
        super().__init__(f"cannot write {Path(self.path).name} in folder {Path(self.path).parent}: {cause}")

    def __str__(self) -> str:
        return self.args[0]


def _describe_bytes(head: bytes) -> str:
    """What the first bytes of a file that is not a PyTorch checkpoint look like."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"not a PyTorch checkpoint (it starts with the bytes {head[:8].hex(' ')})"
    if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"a text file, not a PyTorch checkpoint (it starts with {text[:40]!r})"
    return f"not a PyTorch checkpoint (it starts with the bytes {head[:8].hex(' ')})"


def _complete_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            z.infolist()
        return True
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _explain(path: Path, head: bytes, err: BaseException) -> str:
    """Turn what ``torch.load`` raised into a sentence about the file."""
    message = str(err)
    if not head.startswith((_ZIP_MAGIC, _PICKLE_PROTOCOL_2_OR_LATER)):
        return "is " + _describe_bytes(head)
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", message)
    if found or (head.startswith(_PICKLE_PROTOCOL_2_OR_LATER) and "WeightsUnpickler" in message):
        what = f" ({found.group(1)})" if found else ""
        return (f"holds Python objects{what} besides tensors, numbers, strings, lists and dicts; bayes-fer reads "
                "only plain tensor checkpoints, since unpickling arbitrary objects can run arbitrary code")
    if head.startswith(_ZIP_MAGIC):
        if "central directory" in message or isinstance(err, EOFError) or not _complete_zip(path):
            return "is truncated or damaged (an incomplete zip archive); was it still being written or copied?"
        if "data.pkl" in message or "archive" in message:
            return "is a zip archive but not a PyTorch checkpoint"
        return f"is a damaged PyTorch checkpoint ({type(err).__name__}: {message.splitlines()[0] if message else ''})"
    return "is truncated or damaged (a legacy PyTorch/pickle file that ends early or is corrupt)"


def read(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint file (ours or a published one) as a dict, with ``weights_only=True``.

    Args:
        path: the checkpoint file.
        map_location: where tensors go, as for ``torch.load``.

    Returns:
        The checkpoint's top-level dict.

    Raises:
        CheckpointReadError: the file is missing, a folder, empty, unreadable, truncated, not a
            PyTorch file, holds objects other than plain tensors and containers, or holds
            something other than a dict.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointReadError(path, "does not exist")
    if path.is_dir():
        raise CheckpointReadError(path, "is a folder, not a checkpoint file")
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as e:
        raise CheckpointReadError(path, f"cannot be opened ({e.strerror or e})") from None
    if not head:
        raise CheckpointReadError(path, "is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files; each becomes one sentence
        raise CheckpointReadError(path, _explain(path, head, e)) from None
    if not isinstance(obj, dict):
        raise CheckpointReadError(path, f"holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a bayes-fer training checkpoint (as ``scripts/svi_train.py`` writes them).

    Raises:
        CheckpointReadError: as :func:`read`, or the file is another kind of checkpoint.
    """
    ckpt = read(path, map_location)
    if ckpt.get("format") != FORMAT:
        raise CheckpointReadError(
            path, f"is not a bayes-fer training checkpoint (expected format {FORMAT!r}); reference "
            "POSTER++/POSTER-Var checkpoints load with bayes_fer.create_model(name, checkpoint=...) or --init-from"
        )
    return ckpt


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cause(err: BaseException, folder: Path) -> str:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "no space left on the device"
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{err.strerror.lower() if err.strerror else 'permission denied'}; choose another --out"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    # torch's zip writer reports a full disk as "unexpected pos" RuntimeErrors.
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    suffix = f" ({free:,} bytes free on its disk)" if free is not None else ""
    return f"the write failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}{suffix}"


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """Write ``obj`` to a temporary file beside ``path``, flush it to disk, then rename it into place.

    The file gets the mode the user's umask gives, as other outputs do.

    Raises:
        CheckpointWriteError: the folder is not writable or the disk is full; ``path`` is untouched.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        raise CheckpointWriteError(path, _cause(e, path.parent)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary checkpoint files that a killed :func:`save_atomic` left in ``folder``."""
    return sorted(Path(folder).glob(".*.pt.*.tmp"))


__all__ = ["FORMAT", "CheckpointReadError", "CheckpointWriteError", "load", "read", "save_atomic", "temporary_files"]
