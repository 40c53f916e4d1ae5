"""The diagnostics of :mod:`skiplab.analysis` as training callbacks: a table of rows written
as CSV into the run directory (:class:`TableCallback`), gradient flow per layer and block
(:class:`GradientFlowCallback`) and the residual-branch ratio (:class:`ResidualRatioCallback`).
They live here, above both train/ and analysis/, so that analysis/ does not import train/.

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

import torch
from torch import nn

from ..analysis.blocks import find_units
from ..analysis.gradient_flow import (
    BlockInputGrads,
    ForwardOrder,
    WeightLayer,
    first_last_ratio,
    layer_rows,
    weight_layers,
)
from ..analysis.residual_ratio import residual_ratio
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


class GradientFlowCallback(TableCallback):
    """Record weight-gradient norms per layer and input-gradient norms per block every
    ``every`` optimiser steps (the first step included) into ``gradient_flow.csv``.

    Rows: ``step, epoch, quantity ("weight" | "block_input"), name, depth, grad_norm``
    (and ``weight_norm`` for weights). ``grad_first_last_ratio`` of the latest recorded
    step is logged to the epoch's metrics. Activation gradients need module hooks: a
    model compiled with ``torch.compile`` may not run them; weight gradients are always
    recorded.
    """

    filename = "gradient_flow.csv"

    def __init__(
        self, every: int = 50, include_norm: bool = False, block_inputs: bool = True, filename: Optional[str] = None
    ) -> None:
        super().__init__(filename)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        self.every = every
        self.include_norm = include_norm
        self.block_inputs = block_inputs
        self._calls = 0
        self._layers: list[WeightLayer] = []
        self._order: Optional[ForwardOrder] = None
        self._recorder: Optional[BlockInputGrads] = None

    def on_fit_start(self, trainer) -> None:
        model = trainer.model
        self._layers = weight_layers(model, self.include_norm)
        self._order = ForwardOrder([l.module for l in self._layers])
        if self.block_inputs:
            self._recorder = BlockInputGrads(find_units(model))
            self._recorder.armed = True

    def on_after_backward(self, trainer) -> None:
        record = self._calls % self.every == 0
        self._calls += 1
        if self._order is not None:  # the first forward has run: fix the layer order
            self._order.remove()
            self._layers = weight_layers(trainer.model, self.include_norm, self._order.order)
            self._order = None
        if record:
            base = dict(step=int(getattr(trainer, "step", self._calls - 1)), epoch=int(getattr(trainer, "epoch", 0)))
            rows = layer_rows(self._layers)
            for r in rows:
                self.rows.append(
                    dict(
                        base,
                        quantity="weight",
                        name=r["layer"],
                        depth=r["depth"],
                        grad_norm=r["grad_norm"],
                        weight_norm=r["weight_norm"],
                    )
                )
            if self._recorder is not None:
                for r in self._recorder.rows():
                    self.rows.append(
                        dict(
                            base,
                            quantity="block_input",
                            name=r["block"],
                            depth=r["index"] + 1,
                            grad_norm=r["grad_norm"],
                        )
                    )
            ratio = first_last_ratio(rows)
            if math.isfinite(ratio) and hasattr(trainer, "log"):
                trainer.log({"grad_first_last_ratio": ratio})
        if self._recorder is not None:
            self._recorder.norms.clear()
            self._recorder.armed = self._calls % self.every == 0  # arm for the next step if due

    def on_fit_end(self, trainer) -> None:
        for hooks in (self._order, self._recorder):
            if hooks is not None:
                hooks.remove()
        self._order = self._recorder = None
        super().on_fit_end(trainer)


class ResidualRatioCallback(TableCallback):
    """Track :func:`residual_ratio` on a fixed ``probe`` batch (inputs only) at the start of
    training and every ``every`` epochs, into ``residual_ratio.csv`` (rows carry ``epoch``;
    the start is epoch 0, the end of the first epoch epoch 1). The mean ratio over blocks
    is logged as ``residual_ratio_mean``."""

    filename = "residual_ratio.csv"

    def __init__(self, probe: torch.Tensor, every: int = 1, filename: Optional[str] = None) -> None:
        super().__init__(filename)
        if not torch.is_tensor(probe):
            raise ValueError(f"probe must be a batch of inputs (a tensor), got {type(probe).__name__}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive number of epochs, got {every!r}")
        self.probe = probe
        self.every = every

    def measure(self, model: nn.Module, epoch: int) -> list[dict[str, Any]]:
        device = next(model.parameters()).device
        rows = [dict(epoch=epoch, **r) for r in residual_ratio(model, self.probe.to(device))]
        self.rows.extend(rows)
        return rows

    def on_fit_start(self, trainer) -> None:
        if self.is_main(trainer) and not any(r["epoch"] == 0 for r in self.rows):
            if int(getattr(trainer, "epoch", 0)) == 0:
                self.measure(trainer.model, 0)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        epoch = int(getattr(trainer, "epoch", 0)) + 1
        if self.is_main(trainer) and epoch % self.every == 0:
            rows = self.measure(trainer.model, epoch)
            if hasattr(trainer, "log"):
                trainer.log({"residual_ratio_mean": finite_mean(r["ratio"] for r in rows)})
        super().on_epoch_end(trainer, metrics)
