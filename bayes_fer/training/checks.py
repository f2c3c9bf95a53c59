"""The valid range of every numeric training setting, checked once for the CLI and the library."""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


@dataclass(frozen=True)
class Range:
    """A closed or half-open interval of allowed values; ``None`` ends are unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    integer: bool = False
    optional: bool = False  # None is allowed (e.g. "use the whole data set")

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        return kind

    def problem(self, value) -> str | None:
        """Why ``value`` is out of range, or None when it is fine."""
        if value is None:
            return None if self.optional else f"must be {self.describe()}, got None"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be {self.describe()}, got {value!r}"
        if self.integer and not float(value).is_integer():
            return f"must be {self.describe()}, got {value!r}"
        if not math.isfinite(value):
            return f"must be {self.describe()}, got {value}"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and value > self.high
        return f"must be {self.describe()}, got {value:g}" if too_low or too_high else None


#: Allowed values of every numeric field of :class:`bayes_fer.training.TrainConfig`.
RANGES: dict[str, Range] = {
    "rank": Range(1, integer=True),
    "kl_weight": Range(0.0),
    "prior_scale": Range(0.0, low_open=True),
    "epochs": Range(1, integer=True),
    "batch_size": Range(1, integer=True),
    "lr": Range(0.0, low_open=True),
    "weight_decay": Range(0.0),
    "lr_gamma": Range(0.0, 1.0, low_open=True),
    "warmup_steps": Range(0, integer=True),
    "sam_rho": Range(0.0),
    "grad_clip": Range(0.0),
    "seed": Range(0, 2**32 - 1, integer=True),
    "max_minutes": Range(0.0),
    "max_steps": Range(0, integer=True),
    "workers": Range(0, integer=True),
    "balanced_per_class": Range(0, integer=True),
    "train_size": Range(1, integer=True, optional=True),
    "valid_size": Range(1, integer=True, optional=True),
    "image_size": Range(32, integer=True),
}


def config_problems(config) -> list[str]:
    """Every field of ``config`` outside its range, as ``"name must be ..., got ..."``."""
    problems = []
    for name, allowed in RANGES.items():
        why = allowed.problem(getattr(config, name))
        if why:
            problems.append(f"{name} {why}")
    if not DEVICE_PATTERN.fullmatch(str(config.device)):
        problems.append(f"device must be auto, cpu, cuda, cuda:N or mps, got {config.device!r}")
    why = cache_dir_problem(config.data_cache)
    if why:
        problems.append(f"data_cache {why}")
    size = config.image_size
    if isinstance(size, int) and size >= 32 and size % 112 and size % 16:
        problems.append(f"image_size must be a multiple of 112 (the native 112, or 224 subsampled to it) "
                        f"or of 16 (a network built at that side, e.g. 64 for 48x48 faces), got {size}")
    return problems


def cache_dir_problem(value) -> str | None:
    """Why ``value`` cannot be a data-cache folder (``None``: no cache), or None when it can."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        return f"must be a folder path, got {value!r}"
    if Path(value).exists() and not Path(value).is_dir():
        return f"must be a folder, but {value} is a file; choose another folder"
    return None


def check_config(config) -> None:
    """Raise one ValueError listing every out-of-range field of a training configuration."""
    problems = config_problems(config)
    if problems:
        raise ValueError("invalid training configuration: " + "; ".join(problems))


def arg_type(field: str) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses a flag's text and checks it against ``RANGES[field]``."""
    allowed = RANGES[field]

    def parse(text: str) -> int | float:
        try:
            value = int(text) if allowed.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed.describe()}, got {text!r}") from None
        why = allowed.problem(value)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    parse.__name__ = field  # argparse names the type in its messages
    return parse


def cache_dir_type(text: str) -> str:
    """An argparse ``type=`` for ``--data-cache``."""
    why = cache_dir_problem(text)
    if why:
        raise argparse.ArgumentTypeError(why)
    return text


def device_type(text: str) -> str:
    """An argparse ``type=`` for ``--device``."""
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text
