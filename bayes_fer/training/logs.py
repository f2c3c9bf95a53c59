"""Per-epoch metrics as CSV and JSON lines, and TensorBoard when it is installed."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bayes_fer.training.rundir import output_error


class MetricsLogger:
    """Appends one row per validated epoch to ``metrics.csv`` and ``metrics.jsonl``."""

    def __init__(self, out: Path, *, keep_epochs: int | None = None) -> None:
        """Args:
            keep_epochs: on resume, the epochs the checkpoint has validated; rows of later epochs
                (logged by a run killed before its checkpoint) are dropped so none appears twice.
        """
        self.csv_path, self.jsonl = out / "metrics.csv", out / "metrics.jsonl"
        if keep_epochs is not None:
            self._truncate(keep_epochs)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # noqa: BLE001 - TensorBoard is optional
            self.tb = None

    def _truncate(self, epochs: int) -> None:
        if not self.jsonl.exists():
            return
        rows = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("epoch", 0) <= epochs]
        try:
            self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
            self.csv_path.unlink(missing_ok=True)
            for r in rows:
                self._append_csv(r)
        except OSError as e:
            raise output_error(self.jsonl, e) from None

    def _append_csv(self, metrics: dict) -> None:
        new = not self.csv_path.exists()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(metrics))
        if new:
            writer.writeheader()
        writer.writerow(metrics)
        with self.csv_path.open("a", newline="") as f:
            f.write(buf.getvalue())

    def log(self, metrics: dict) -> None:
        try:
            with self.jsonl.open("a") as f:
                f.write(json.dumps(metrics) + "\n")
            self._append_csv(metrics)
        except OSError as e:
            raise output_error(self.jsonl, e) from None
        if self.tb is not None:
            for k, v in metrics.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, metrics["epoch"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
