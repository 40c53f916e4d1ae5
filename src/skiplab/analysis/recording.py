"""What the diagnostic callbacks share: the trainer's ``Callback`` base, and a table of rows
that is written as CSV into the run directory.

Every diagnostic returns plain rows (``dict`` of scalars); a :class:`TableCallback`
accumulates them during training, logs a few summary scalars through ``trainer.log``
(so they land in ``metrics.csv`` and TensorBoard) and saves the full table as
``<run_dir>/<filename>`` at each epoch end and at the end of the fit.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from ..train.callbacks import Callback


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` (dicts) as CSV; columns are the union of keys in first-seen order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def finite_mean(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    vals = [float(v) for v in values if math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")


class TableCallback(Callback):
    """A callback that collects rows and saves them as ``filename`` in the run directory."""

    filename = "diagnostics.csv"

    def __init__(self, filename: Optional[str] = None) -> None:
        self.rows: list[dict[str, Any]] = []
        if filename is not None:
            self.filename = filename

    def save(self, run_dir: Optional[str | Path]) -> Optional[Path]:
        """Write the rows to ``run_dir/filename`` (nothing without a run directory or rows)."""
        if run_dir is None or not self.rows:
            return None
        return write_csv(self.rows, Path(run_dir) / self.filename)

    @staticmethod
    def is_main(trainer) -> bool:
        return bool(getattr(trainer, "is_main", True))

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if self.is_main(trainer):
            self.save(getattr(trainer, "run_dir", None))

    def on_fit_end(self, trainer) -> None:
        if self.is_main(trainer):
            self.save(getattr(trainer, "run_dir", None))
