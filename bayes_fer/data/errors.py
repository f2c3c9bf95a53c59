"""Errors of the data package: each names what was expected, what was found and the fix."""
from __future__ import annotations

import os


class LayoutError(FileNotFoundError):
    """A dataset root, folder or label file is missing; the message draws the expected layout."""

    def __init__(self, dataset: str, missing: str | os.PathLike, layout: str, hint: str = "") -> None:
        self.dataset = dataset
        self.missing = os.fspath(missing)
        message = f"{dataset}: {self.missing} does not exist. Expected this layout under the root:\n{layout.rstrip()}"
        if hint:
            message += f"\n{hint}"
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]


class LabelError(ValueError):
    """A label file holds a label outside the dataset's table, or a malformed row."""

    def __init__(self, path: str | os.PathLike, line: int, problem: str) -> None:
        self.path = os.fspath(path)
        self.line = line
        super().__init__(f"{self.path}, line {line}: {problem}")
