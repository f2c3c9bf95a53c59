"""Reading label lists safely: UTF-8 text (with or without a BOM), relative image names only."""
from __future__ import annotations

import os
from pathlib import PurePosixPath, PureWindowsPath

from bayes_fer.data.errors import LabelError


def read_text(path: str | os.PathLike) -> str:
    """A label file's text, decoded as UTF-8; a leading byte-order mark is dropped.

    Raises:
        LabelError: the file is not UTF-8 text, naming the line of the first bad byte.
    """
    data = open(path, "rb").read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LabelError(path, line, f"is not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8") from None


def safe_relative(name: str, path: str | os.PathLike, line: int) -> str:
    """``name`` if it is a relative path inside the data set's folder.

    Raises:
        LabelError: ``name`` is empty, absolute, or climbs out of the folder with ``..``.
    """
    if not name.strip():
        raise LabelError(path, line, "the image name is empty")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise LabelError(path, line, f"image name {name!r} is an absolute path; label lists name files relative "
                                     "to the data set's folder")
    if ".." in posix.parts or ".." in windows.parts:
        raise LabelError(path, line, f"image name {name!r} leads out of the data set's folder ('..'); label lists "
                                     "name files inside it")
    return name
