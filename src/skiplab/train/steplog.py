"""Step curves: every training step's loss, error on its batch and lr, in ``steps.csv`` of
the run directory (``step_log: true`` in a training config). He 2015 Fig. 6 plots training
error per iteration; the per-epoch ``metrics.csv`` is too coarse for a few hundred steps.
The studies read these curves (:mod:`skiplab.studies.curves`)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Optional

from ..atomic import atomic_open
from .callbacks import Callback

STEPS_FILE = "steps.csv"
COLUMNS = ("step", "epoch", "loss", "error", "lr")


class StepLog(Callback):
    """Records each step's loss, its batch's training error (classification; NaN for tasks
    without one) and the lr it used into ``steps.csv``; keeps the rows of an interrupted run
    that a resume continues. The rows arrive at the trainer's syncs (:meth:`on_steps`), so
    recording every step costs no host sync per step."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.path: Optional[Path] = None

    def on_fit_start(self, trainer) -> None:
        if trainer.run_dir is not None:
            self.path = Path(trainer.run_dir) / STEPS_FILE
            self.rows = [r for r in read_steps(self.path) if r["step"] <= trainer.step]

    def on_steps(self, trainer, steps) -> None:
        for r in steps:
            error = trainer.task.train_error(r.sums) if r.sums[-1] > 0 else None
            self.rows.append(
                dict(
                    step=r.step, epoch=r.epoch, loss=r.loss, error=math.nan if error is None else float(error), lr=r.lr
                )
            )

    def save(self) -> None:
        if self.path is not None and self.rows:
            with atomic_open(self.path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self.save()

    def on_fit_end(self, trainer) -> None:
        self.save()


def read_steps(path: Path) -> list[dict[str, float]]:
    """The rows of a ``steps.csv`` (empty when the file does not exist)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [
            dict(
                step=int(r["step"]),
                epoch=int(r["epoch"]),
                loss=float(r["loss"]),
                error=float(r["error"]),
                lr=float(r["lr"]),
            )
            for r in csv.DictReader(f)
        ]
