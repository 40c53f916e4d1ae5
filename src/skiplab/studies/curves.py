"""Step curves of the runs (``steps.csv``, written by :class:`skiplab.train.steplog.StepLog`)
and the end of a training curve -- the curves of every report."""

from __future__ import annotations

import math

from ..evidence import thresholds as T
from ..train.steplog import STEPS_FILE, StepLog, read_steps

__all__ = ["STEPS_FILE", "StepLog", "read_steps", "read_epochs", "end_of_training", "plateau_drop"]


def read_epochs(path) -> list[dict[str, float]]:
    """The per-epoch rows of a ``metrics.csv`` (written by ``skiplab train``) as step-curve rows
    (``loss`` = the epoch's mean training loss, ``error`` = 1 - its training accuracy): the curve
    of a run trained without a step log. Empty when the file does not exist."""
    import csv
    from pathlib import Path

    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [
            dict(
                step=int(r["step"]),
                epoch=int(r["epoch"]),
                loss=float(r["train_loss"]),
                error=1 - float(r["train_acc"]),
                lr=float(r["lr"]),
            )
            for r in csv.DictReader(f)
            if r.get("train_loss") not in (None, "")
        ]


def end_of_training(rows: list[dict[str, float]], fraction: float = 0.1) -> dict[str, float]:
    """Mean training loss and batch error over the last ``fraction`` of the steps (at least
    5): the end of a training curve (augmented batches, BatchNorm in training mode)."""
    if not rows:
        return dict(train_loss_end=math.nan, train_error_end=math.nan)
    tail = rows[-max(5, int(len(rows) * fraction)) :]
    return dict(
        train_loss_end=sum(r["loss"] for r in tail) / len(tail),
        train_error_end=sum(r["error"] for r in tail) / len(tail),
        **plateau_drop(rows),
    )


def plateau_drop(rows: list[dict[str, float]], window: float = T.PLATEAU_WINDOW) -> dict[str, float]:
    """How fast the training loss still falls at the end: 1 - (mean batch loss over the last
    ``window`` of the steps) / (mean over the ``window`` before it); near 0 on a plateau."""
    n = max(5, int(len(rows) * window))
    if len(rows) < 2 * n:
        return dict(loss_plateau_drop=math.nan)
    last = sum(r["loss"] for r in rows[-n:]) / n
    before = sum(r["loss"] for r in rows[-2 * n : -n]) / n
    return dict(loss_plateau_drop=1 - last / before if before > 0 else math.nan)
