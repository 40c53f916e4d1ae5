"""Hooks into the training loop.

Subclass :class:`Callback` and override what you need; pass instances to
``fit(config, callbacks=[...])``. Each hook receives the trainer, which exposes
``.model`` (the unwrapped ``nn.Module``), ``.step`` (optimiser steps done), ``.epoch``,
``.loss`` (last loss, a float; reading it syncs with the device, see
:mod:`skiplab.train.stepsums`), ``.run_dir`` (``Path`` or ``None``), ``.optimizer``,
``.is_main`` (rank 0) and ``.log(dict)``, which adds scalars to the current epoch's
``metrics.csv`` row and to TensorBoard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Trainer


class Callback:
    """No-op base class: every hook does nothing unless overridden."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """Once, after the model, data and optimiser exist (and after a resume)."""

    def on_after_backward(self, trainer: "Trainer") -> None:
        """Each step, with (unscaled) gradients present, before clipping and the optimiser step."""

    def on_step_end(self, trainer: "Trainer") -> None:
        """Each step, after the optimiser step (``trainer.step`` already counts it)."""

    def on_steps(self, trainer: "Trainer", steps: list) -> None:
        """At each sync with the device (every ``log_every`` steps, before checkpoints, at
        epoch ends): a :class:`~skiplab.train.stepsums.StepRecord` per step since the last
        one (step, epoch, batch, lr, the task's batch sums, loss, loss terms) -- per-step
        values without a host sync per step."""

    def on_epoch_end(self, trainer: "Trainer", metrics: dict) -> None:
        """Each epoch, after evaluation; ``metrics`` is the row about to be written."""

    def on_fit_end(self, trainer: "Trainer") -> None:
        """Once, after the last epoch (not after a failure)."""


class CallbackList(Callback):
    """Calls every hook of several callbacks in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be skiplab.train.Callback instances, got {type(cb).__name__}")

    def on_fit_start(self, trainer):
        for cb in self.callbacks:
            cb.on_fit_start(trainer)

    def on_after_backward(self, trainer):
        for cb in self.callbacks:
            cb.on_after_backward(trainer)

    def on_step_end(self, trainer):
        for cb in self.callbacks:
            cb.on_step_end(trainer)

    def on_steps(self, trainer, steps):
        for cb in self.callbacks:
            cb.on_steps(trainer, steps)

    def on_epoch_end(self, trainer, metrics):
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, metrics)

    def on_fit_end(self, trainer):
        for cb in self.callbacks:
            cb.on_fit_end(trainer)
