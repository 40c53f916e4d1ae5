"""Activation statistics per block: mean and std of each block's output, and the
fraction of dead ReLUs.

A ReLU unit is a channel (dimension 1) of the output of one call of an ``nn.ReLU``
inside the block -- a block that uses its ReLU module twice (as
:class:`~skiplab.blocks.BasicBlock` does) has two sets of units. A unit is *dead* on
the data when it is never positive, for any sample and any spatial position, over all
the batches given: it passes no signal and, through the ReLU, no gradient.
ReLUs applied functionally (``F.relu``) cannot be seen by hooks; a block without ReLU
modules has ``dead_fraction`` NaN. Models without blocks are described layer by layer
(see :func:`~skiplab.analysis.blocks.find_units`); the ReLU modules that follow a
layer then count for it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable

import torch
from torch import nn

from .blocks import Unit, batches_of, eval_mode, find_units


class _Accumulator:
    """Running sums of one unit's output and the 'ever positive' flags of its ReLU calls."""

    def __init__(self) -> None:
        self.total = 0.0
        self.total_sq = 0.0
        self.count = 0
        self.alive: dict[int, torch.Tensor] = {}  # call position within a forward -> [C] bool
        self.calls = 0

    def add_output(self, out: torch.Tensor) -> None:
        t = out.detach().double()
        self.total += float(t.sum())
        self.total_sq += float((t * t).sum())
        self.count += t.numel()

    def add_relu(self, out: torch.Tensor) -> None:
        t = out.detach()
        positive = (t > 0).transpose(0, 1).reshape(t.shape[1], -1).any(dim=1) if t.dim() > 1 else (t > 0).any()[None]
        key = self.calls
        self.calls += 1
        self.alive[key] = positive if key not in self.alive else (self.alive[key] | positive)

    def row(self) -> dict[str, Any]:
        mean = self.total / self.count if self.count else math.nan
        var = self.total_sq / self.count - mean * mean if self.count else math.nan
        units = sum(int(a.numel()) for a in self.alive.values())
        dead = sum(int((~a).sum()) for a in self.alive.values())
        return dict(
            mean=mean,
            std=math.sqrt(max(var, 0.0)) if self.count else math.nan,
            relu_units=units,
            dead_units=dead,
            dead_fraction=dead / units if units else math.nan,
        )


def _relus_of(model: nn.Module, units: list[Unit]) -> dict[int, list[nn.Module]]:
    """ReLU modules belonging to each unit: inside it, or (layer units) the next ones after it."""
    owned: dict[int, list[nn.Module]] = {}
    if units and units[0].kind != "layer":
        for u in units:
            owned[u.index] = [m for m in u.module.modules() if isinstance(m, nn.ReLU)]
        return owned
    current = None
    layer_ids = {id(u.module): u.index for u in units}
    for m in model.modules():
        if id(m) in layer_ids:
            current = layer_ids[id(m)]
        elif isinstance(m, nn.ReLU) and current is not None:
            owned.setdefault(current, []).append(m)
    return owned


def activation_stats(model: nn.Module, data: Any, units: Iterable[Unit] | None = None) -> list[dict[str, Any]]:
    """Mean, std and dead-ReLU fraction of every block of ``model`` over ``data``.

    ``data``: an input tensor, an ``(x, y)`` pair, or a list / loader of pairs. Runs in
    evaluation mode without gradients. Rows (forward order): ``block, index, kind,
    downsampling, mean, std, relu_units, dead_units, dead_fraction``.
    """
    batches = [data] if torch.is_tensor(data) else [x for x, _ in batches_of(data)]
    units = list(units) if units is not None else find_units(model, batches[0])
    if not units:
        raise ValueError(f"{type(model).__name__} has no blocks or weight layers to describe")
    relus = _relus_of(model, units)
    acc = {u.index: _Accumulator() for u in units}
    with contextlib.ExitStack() as stack:
        for u in units:
            a = acc[u.index]
            h = u.module.register_forward_hook(lambda _m, _i, out, a=a: a.add_output(out))
            stack.callback(h.remove)
            for relu in relus.get(u.index, []):
                h = relu.register_forward_hook(lambda _m, _i, out, a=a: a.add_relu(out))
                stack.callback(h.remove)
        stack.enter_context(eval_mode(model))
        stack.enter_context(torch.no_grad())
        for x in batches:
            for a in acc.values():
                a.calls = 0
            model(x)
    return [dict(u.row(), **acc[u.index].row()) for u in units]
