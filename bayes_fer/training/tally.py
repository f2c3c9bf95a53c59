"""An epoch's training loss, read back from the device every few steps and summed over processes."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bayes_fer.training.distributed import DistContext

#: Steps whose losses are read back at once. Each read makes the host wait for the device;
#: between reads it queues steps ahead, so on a GPU the training step never waits for the host.
READ_EVERY = 16


@dataclass(frozen=True)
class NonFinite:
    """The first loss that was not finite: its value and step (``None``: on another process)."""

    value: float
    step: int | None
    steps: tuple[int, int]  # the first and last step of the read that found it


class LossTally:
    """The loss sum and face count of an epoch so far, over every process.

    Args:
        total: the loss sum (per-datum loss x faces) already counted, e.g. from a checkpoint.
        seen: the faces already counted.
        ctx: this process's place in a torchrun group: every read is one collective, at the
            same step on every process.
        device: where the collective's tensor lives.
        every: steps between reads (default :data:`READ_EVERY`).
    """

    def __init__(self, total: float, seen: int, ctx: DistContext = DistContext(),
                 device: torch.device = torch.device("cpu"), every: int | None = None) -> None:
        self.total, self.seen = total, seen
        self.ctx, self.device, self.every = ctx, device, every or READ_EVERY
        self._unread: list[tuple[torch.Tensor, int, int]] = []  # (loss, step, faces), not read yet

    def add(self, loss: torch.Tensor, step: int, faces: int) -> bool:
        """Keep a step's loss (unread, on the device); whether a read is due."""
        self._unread.append((loss, step, faces))
        return len(self._unread) >= self.every

    def read(self, out_of_time: bool = False) -> tuple[bool, NonFinite | None]:
        """Read every kept loss and add it, summed over the processes, to the tally.

        Args:
            out_of_time: this process's time limit is spent.

        Returns:
            Whether any process's time limit is spent, and the first loss that was not
            finite on any process (the tally is then left as it was).
        """
        unread, self._unread = self._unread, []
        values = torch.stack([loss for loss, _, _ in unread]).tolist() if unread else []
        bad = next((NonFinite(v, step, (unread[0][1], unread[-1][1]))
                    for v, (_, step, _) in zip(values, unread) if not math.isfinite(v)), None)
        total = sum(v * faces for v, (_, _, faces) in zip(values, unread)) if bad is None else 0.0
        seen = sum(faces for _, _, faces in unread)
        total, seen, late, bad_anywhere = self.ctx.sum([total, seen, float(out_of_time), float(bad is not None)],
                                                       self.device)
        if bad is None and bad_anywhere:
            steps = (unread[0][1], unread[-1][1]) if unread else (-1, -1)
            bad = NonFinite(math.nan, None, steps)
        if bad is None:
            self.total, self.seen = self.total + total, self.seen + int(seen)
        return late > 0, bad


__all__ = ["READ_EVERY", "LossTally", "NonFinite"]
