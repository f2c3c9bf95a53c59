"""Where ``python -m bayes_fer.predict`` writes: checked before inference, written face by face.

Each face's CSV row and JSON record is written and flushed as soon as it is predicted, so an
interrupted run keeps every result computed so far. Annotated pictures keep the path of
their image relative to the folder it was found in, so equal file names in different folders
(or with different suffixes) never overwrite each other.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO


class OutputPathError(ValueError):
    """An output path cannot be written; the message names it, the flag and the reason."""


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Fail now, naming ``flag``, if a file cannot be written at ``path`` (missing folders are fine)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder; pass a file name, e.g. {path / ('out' + flag.replace('--', '.'))}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{flag} {path} exists and is not writable")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise OutputPathError(f"{flag} {path} cannot be created: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path} cannot be created: {base} is not writable")
    return path


def check_output_folder(path: str | os.PathLike, flag: str) -> Path:
    """Fail now, naming ``flag``, if a folder cannot be created or written at ``path``."""
    path = Path(path)
    base = _nearest_existing(path)
    if not base.is_dir():
        raise OutputPathError(f"{flag} {path} cannot be used as a folder: {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{flag} {path} cannot be written: {base} is not writable")
    return path


def open_for_writing(path: Path, flag: str) -> IO[str]:
    """Open ``path`` for writing (creating its folders), turning ``OSError`` into :class:`OutputPathError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as error:
        raise OutputPathError(f"{flag} {path} cannot be written: {error.strerror or error}") from None


#: Record fields holding lists of class names; the CSV joins them with ``|``, the JSON keeps lists.
LIST_FIELDS = ("set",)


class CsvStream:
    """One CSV row per face (or per input without a result), flushed as it is written."""

    def __init__(self, handle: IO[str], fields: Sequence[str]) -> None:
        self.handle = handle
        # Extra source details (detection score, landmarks) stay in the JSON; the CSV keeps its columns.
        self.writer = csv.DictWriter(handle, fieldnames=list(fields), restval="", extrasaction="ignore")
        self.writer.writeheader()
        handle.flush()

    def write(self, record: dict) -> None:
        joined = {name: "|".join(record[name]) for name in LIST_FIELDS if name in record}
        self.writer.writerow({**record, **joined})
        self.handle.flush()

    def close(self, complete: bool = True) -> None:
        self.handle.close()


class JsonStream:
    """``{"class_names": [...], "faces": [...], "complete": bool}``, written record by record.

    Records are flushed as they come; :meth:`close` ends the document, so an interrupted run
    (``complete: false``) still leaves valid JSON holding every face done so far. ``header``
    entries (e.g. ``"conformal"``: how the sets were made) come before the faces.
    """

    def __init__(self, handle: IO[str], class_names: Sequence[str], header: dict | None = None) -> None:
        self.handle = handle
        self.count = 0
        head = "".join(f"{json.dumps(key)}: {json.dumps(value)},\n" for key, value in (header or {}).items())
        handle.write('{\n"class_names": ' + json.dumps(list(class_names)) + ',\n' + head + '"faces": [')
        handle.flush()

    def write(self, record: dict) -> None:
        self.handle.write(("," if self.count else "") + "\n" + json.dumps(record))
        self.count += 1
        self.handle.flush()

    def close(self, complete: bool = True) -> None:
        self.handle.write(f'\n],\n"complete": {json.dumps(complete)}\n}}\n')
        self.handle.close()


class AnnotationNames:
    """Unique output names for annotated pictures, keeping each image's relative path.

    ``faces/a/face.png`` found under the argument ``faces/`` becomes ``a/face.png.annotated.png``;
    a file given directly keeps its name. Should two images still meet on one name (two
    arguments ``x/face.png`` and ``y/face.png``), the later gets ``-2``, ``-3``, ....
    """

    SUFFIX = ".annotated.png"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.given: dict[str, Path] = {}
        self.taken: set[Path] = set()

    def name_for(self, image: str | os.PathLike, relative: str | os.PathLike) -> Path:
        """The output path for ``image``, whose path relative to its input argument is ``relative``."""
        key = os.fspath(image)
        if key in self.given:
            return self.given[key]
        rel = Path(relative)
        candidate = self.folder / rel.parent / (rel.name + self.SUFFIX)
        n = 1
        while candidate in self.taken:
            n += 1
            candidate = self.folder / rel.parent / f"{rel.name}-{n}{self.SUFFIX}"
        self.taken.add(candidate)
        self.given[key] = candidate
        return candidate
