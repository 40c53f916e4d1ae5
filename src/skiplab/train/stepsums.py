"""The training step's running sums, kept on the device and brought to the host only at a sync.

Each step adds its batch sums (the task's :meth:`~skiplab.train.tasks.Task.batch_sums`, then
one ``term x n`` per named loss term when the task returns more than one, all-reduced over
processes) to a running vector on the device, and keeps a reference to them -- no copy, no
host transfer. :meth:`StepSums.sync` moves the running vector and the steps since the last
sync to the host in one transfer and returns a :class:`StepRecord` per step, so that a GPU
is never stalled between logs (nanoGPT and airbench sync only when they log too).

When the host syncs (:meth:`skiplab.train.Trainer.sync`): every ``log_every`` steps, before
any checkpoint is written, at the end of an epoch, every step while He 2015's error-gated
warm-up runs (the next lr needs this step's error), and whenever something reads
``trainer.loss`` or ``trainer.epoch_sums`` (a callback that reads ``trainer.loss`` every step
syncs every step). Callbacks get each step's record at the sync (``Callback.on_steps``).

A non-finite loss is caught at the sync after it (:class:`NonFiniteLossError`, naming the
step, epoch, batch and lr of the first non-finite loss). The window: up to ``log_every``
steps -- fewer when a checkpoint comes first -- run after it, on weights it may have ruined.
Every checkpoint is written right after a sync that found every loss finite, and none after
a non-finite one, so last.pt is the last finite state; the trainer's model (and EMA) get
last.pt's weights back before the error is raised (without a checkpoint they stay as they
were at the sync). Under DDP the flag of a stop signal is read at syncs too, so a signalled
run stops within ``log_every`` steps.

The running vector is float64 (float32 on MPS, which has no float64): the epoch sums are
then the very additions the host used to do on Python floats, so metrics are unchanged and
a resumed run adds the same numbers in the same order (bit-identical in deterministic mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; found at the next sync (see the module documentation),
    with no checkpoint written after it. ``step``: the step whose loss it was (0-based, as
    ``trainer.step`` before it); ``last_good``: the step of last.pt (None: no checkpoint)."""

    def __init__(self, message: str, step: int = -1, last_good: Optional[int] = None) -> None:
        super().__init__(message)
        self.step, self.last_good = step, last_good


@dataclass
class StepRecord:
    """One training step, as the host sees it at the sync after it."""

    step: int  # optimiser steps done with it (what trainer.step says after it)
    epoch: int  # 1-based
    batch: int  # 1-based position in the epoch
    lr: float  # the lr the step used (before group scales)
    sums: list  # the task's batch sums, over all processes
    terms: dict = field(default_factory=dict)  # mean loss terms of the batch (named)
    vote: float = 0.0  # DDP: processes that were asked to stop, at this step

    @property
    def loss(self) -> float:
        return self.sums[0] / self.sums[-1]

    @property
    def finite(self) -> bool:
        return math.isfinite(self.sums[0])


class StepSums:
    """Running sums of an epoch on ``device`` plus the steps not yet synced (see the module)."""

    def __init__(self, width: int, device: torch.device) -> None:
        self.width, self.device = width, torch.device(device)
        self.dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self.term_names: tuple[str, ...] = ()
        self._running: Optional[torch.Tensor] = None
        self._pending: list[tuple[torch.Tensor, int, int, int, float]] = []
        self.host: list[float] = [0.0] * width  # the task's sums at the last sync
        self.host_terms: dict[str, float] = {}  # term x n sums at the last sync

    # -- on the device, every step -------------------------------------------------------
    def add(
        self, sums: torch.Tensor, *, step: int, epoch: int, batch: int, lr: float, term_names: Sequence[str] = ()
    ) -> None:
        """``sums``: [task sums..., term sums..., (DDP: the stop vote)] of one step (float32)."""
        names = tuple(term_names)
        if self._running is None:
            if not self.host_terms:  # an epoch's first step (or a resume without terms)
                self.term_names = names
            self._running = torch.tensor(
                self.host + [self.host_terms.get(k, 0.0) for k in self.term_names], dtype=self.dtype, device=sums.device
            )
        if names != self.term_names:
            raise ValueError(
                f"the task's loss terms changed from {list(self.term_names)} to {list(names)} within an epoch"
            )
        n = self.width + len(names)
        self._running += sums[:n]
        self._pending.append((sums, step, epoch, batch, lr))

    @property
    def unsynced(self) -> int:
        return len(self._pending)

    # -- at a sync --------------------------------------------------------------------------
    def sync(self) -> list[StepRecord]:
        """The steps since the last sync, with the running sums now on the host (``host``,
        ``host_terms``); one device-to-host transfer. A non-finite step is returned like the
        others (the caller decides: :attr:`StepRecord.finite`)."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        flat = torch.cat([self._running, torch.stack([p[0] for p in pending]).to(self.dtype).flatten()]).tolist()
        n = self.width + len(self.term_names)
        self.host = flat[: self.width]
        self.host_terms = dict(zip(self.term_names, flat[self.width : n]))
        stride = len(pending[0][0])
        records = []
        for i, (_, step, epoch, batch, lr) in enumerate(pending):
            row = flat[n + i * stride : n + (i + 1) * stride]
            count = row[self.width - 1]
            terms = {k: v / count for k, v in zip(self.term_names, row[self.width : n])}
            records.append(StepRecord(step, epoch, batch, lr, row[: self.width], terms, row[n] if stride > n else 0.0))
        return records

    def load(self, sums: Sequence[float], terms: Optional[dict] = None) -> None:
        """Start from these host values (a resume, or zeros at an epoch's start)."""
        self._pending, self._running = [], None
        self.host = [float(v) for v in sums] + [0.0] * (self.width - len(sums))
        self.host_terms = {k: float(v) for k, v in (terms or {}).items()}
        self.term_names = tuple(self.host_terms)

    def reset(self) -> None:
        self.load([0.0] * self.width)

    def metrics(self, train_metrics: Callable[[list], dict]) -> dict:
        """``train_*`` columns of the synced sums: the task's, then ``train_<term>``."""
        count = self.host[-1]
        return {**train_metrics(self.host), **{f"train_{k}": v / count for k, v in self.host_terms.items()}}
