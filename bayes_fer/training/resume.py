"""What ``--resume`` may change: run-control settings only; everything that shapes the run must match."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bayes_fer.training.config import TrainConfig

#: Settings that control how long and where a run goes, not what it computes.
RUN_CONTROL_FIELDS = frozenset({"epochs", "max_minutes", "max_steps", "workers", "device", "out", "compile"})


class ResumeMismatch(ValueError):
    """The configuration asked for differs from the checkpoint's in settings that shape the run."""


def saved_config(saved: Mapping) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint recorded; fields newer than it take their defaults."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in saved.items() if k in fields})


def differences(saved: TrainConfig, asked: TrainConfig, *, ignore: frozenset[str] = frozenset()) -> list[str]:
    """``"name: saved -> asked"`` for every field that differs, in field order."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in ignore:
            continue
        a, b = getattr(saved, f.name), getattr(asked, f.name)
        if a != b:
            out.append(f"{f.name}: {a!r} in the checkpoint, {b!r} asked")
    return out


def check_resumable(saved: TrainConfig, asked: TrainConfig, path: str) -> None:
    """Refuse a resume whose configuration differs from the checkpoint's beyond run control.

    Raises:
        ResumeMismatch: listing every differing field.
    """
    diffs = differences(saved, asked, ignore=RUN_CONTROL_FIELDS)
    if diffs:
        allowed = ", ".join(sorted(RUN_CONTROL_FIELDS))
        raise ResumeMismatch(
            f"--resume: the run in {path} was made with other settings; {len(diffs)} differ:\n  "
            + "\n  ".join(diffs)
            + f"\nOnly {allowed} may change when resuming. Drop the differing flags to continue that run, "
            "or start a new run with --out NEW_FOLDER."
        )


def resume_config(saved: Mapping, given: Mapping) -> TrainConfig:
    """The checkpoint's configuration with the flags given on the command line laid over it."""
    return saved_config(saved).replace(**dict(given))
