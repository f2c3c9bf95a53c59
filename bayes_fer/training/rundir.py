"""A run directory belongs to one run: checked before anything is written, written with clear errors."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from bayes_fer import checkpoint as ckpt_io

#: What a training run writes; a folder holding any of them holds a run.
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.jsonl", "config.json", "final.json")
RUN_FOLDERS = ("tensorboard",)


class RunDirectoryError(ValueError):
    """A fresh run was asked to write into another run's folder (or --resume has nothing to resume)."""


class OutputError(OSError):
    """An output folder or file cannot be written; the message names the folder and the cause."""

    def __str__(self) -> str:
        return self.strerror if self.strerror else super().__str__()


def describe_os_error(err: OSError) -> str:
    """The cause of a failed write in words."""
    if err.errno == errno.ENOSPC:
        return "no space left on the device"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{(err.strerror or 'permission denied').lower()}; choose another --out"
    return err.strerror or str(err)


def output_error(path: str | os.PathLike, err: OSError) -> OutputError:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return OutputError(err.errno, f"cannot write {path.name} in folder {folder}: {describe_os_error(err)}")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a small text output, turning a failure into an :class:`OutputError`."""
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise output_error(path, e) from None


def existing_run_files(out: str | os.PathLike) -> list[str]:
    out = Path(out)
    return [name for name in RUN_FILES + RUN_FOLDERS if (out / name).exists()]


def prepare(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Check that ``out`` may receive this run, before anything is written.

    A fresh run needs a folder without another run's outputs, unless ``overwrite``; a resumed
    run needs ``last.pt``. The folder must be writable. Temporary checkpoint files that a
    killed run left behind are removed.

    Raises:
        RunDirectoryError: the folder holds another run (or nothing to resume).
        OutputError: the folder cannot be created or written.
    """
    out = Path(out)
    if resume and overwrite:
        raise RunDirectoryError("--resume continues the run in --out and --overwrite discards it: choose one")
    if resume and not (out / "last.pt").is_file():
        raise RunDirectoryError(f"--resume needs {out / 'last.pt'}, which does not exist; start a fresh run instead")
    found = existing_run_files(out)
    if not resume and found and not overwrite:
        raise RunDirectoryError(
            f"{out} already holds a run ({', '.join(found)}); nothing was changed. Continue it with --resume, "
            f"write this run elsewhere with --out NEW_FOLDER, or replace it with --overwrite"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(errno.ENOTDIR, f"--out {out} is a file, not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check.", delete=True) as f:
            f.write(b"0")
            f.flush()
    except OSError as e:
        raise OutputError(e.errno, f"cannot write in folder {out}: {describe_os_error(e)}") from None
    for tmp in ckpt_io.temporary_files(out):
        tmp.unlink(missing_ok=True)


def clear(out: str | os.PathLike) -> list[str]:
    """Remove the outputs of an earlier run from ``out`` (for ``--overwrite``); other files stay."""
    out = Path(out)
    removed = existing_run_files(out)
    try:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
    except OSError as e:
        raise output_error(out / name, e) from None
    return removed
