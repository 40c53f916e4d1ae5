"""Gradient flow: how large the gradients are at each depth of a network.

The vanishing-gradient account of the degradation problem predicts that in a deep
plain net the gradient reaching the first layers decays with depth; He et al. 2015
(§4.1) argue that with BatchNorm the plain nets' gradients "exhibit healthy norms" and
the difficulty is one of optimisation instead. This module measures:

* the norm of the gradient of every layer's weights (convolutions and linear layers;
  norm layers on request), in forward order, with the layer's depth on the main path
  (1 = first layer; a projection shortcut gets the depth of the layer before it);
* the norm of the gradient with respect to the activation entering each block
  (tensor hooks), i.e. what backpropagation delivers to that depth;
* the ratio first-layer / last-layer weight-gradient norm (< 1: gradients shrink
  towards the input).

:func:`gradient_flow` does this for one batch; :class:`skiplab.studies.GradientFlowCallback` records it
every ``every`` steps of a training run. Norms are Frobenius norms of the whole tensor
(for activations: over the whole batch, with the loss averaged over the batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import WEIGHT_LAYERS, Unit, find_units

NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


@dataclass
class WeightLayer:
    """A layer with a weight; ``depth`` counts main-path layers from 1 in forward order."""

    name: str
    module: nn.Module = field(repr=False)
    kind: str
    shortcut: bool
    depth: int = 0


def weight_layers(
    model: nn.Module, include_norm: bool = False, order: Optional[list[nn.Module]] = None
) -> list[WeightLayer]:
    """Conv / linear layers (and norm layers with ``include_norm``) with a weight.

    ``order`` (modules in the order the forward pass first ran them) overrides the
    registration order. Layers inside a block's ``downsample`` are marked ``shortcut``.
    """
    in_shortcut = {
        id(m)
        for unit in find_units(model, fallback_layers=False)
        if isinstance(getattr(unit.module, "downsample", None), nn.Module)
        for m in unit.module.downsample.modules()
    }
    kinds = WEIGHT_LAYERS + (NORM_LAYERS if include_norm else ())
    layers = []
    for name, m in model.named_modules():
        if isinstance(m, kinds) and isinstance(getattr(m, "weight", None), nn.Parameter):
            kind = "norm" if isinstance(m, NORM_LAYERS) else ("linear" if isinstance(m, nn.Linear) else "conv")
            layers.append(WeightLayer(name, m, kind, id(m) in in_shortcut))
    if order is not None:
        rank = {id(m): i for i, m in enumerate(order)}
        layers.sort(key=lambda l: rank.get(id(l.module), len(rank)))
    depth = 0
    for layer in layers:
        if not layer.shortcut and layer.kind != "norm":
            depth += 1
        layer.depth = max(depth, 1)
    return layers


class ForwardOrder:
    """Records the order in which modules first run (forward pre-hooks), then unhooks."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.order: list[nn.Module] = []
        self._seen: set[int] = set()
        self._handles = [m.register_forward_pre_hook(self._hook) for m in modules]

    def _hook(self, module, _inputs) -> None:
        if id(module) not in self._seen:
            self._seen.add(id(module))
            self.order.append(module)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class BlockInputGrads:
    """Norm of dL/d(input) of each unit, via tensor hooks attached while ``armed``.

    A forward pre-hook on every unit registers a hook on its input tensor; the backward
    pass then stores the gradient norm under the unit's name in ``norms``.
    """

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self.armed = True
        self.norms: dict[str, float] = {}
        self.sizes: dict[str, int] = {}
        self._handles = [u.module.register_forward_pre_hook(self._hook_for(u.name)) for u in units]

    def _hook_for(self, name: str):
        def pre_hook(_module, inputs):
            x = inputs[0] if inputs else None
            if self.armed and torch.is_tensor(x) and x.requires_grad and torch.is_grad_enabled():
                x.register_hook(lambda g: self._store(name, g))

        return pre_hook

    def _store(self, name: str, g: torch.Tensor) -> None:
        self.norms[name] = float(g.detach().float().norm())
        self.sizes[name] = g.numel()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def rows(self) -> list[dict[str, Any]]:
        """One row per block: the Frobenius norm of dL/d(input) and its per-element RMS
        (norm / sqrt(numel): comparable between stages of different tensor sizes)."""
        return [
            dict(
                block=u.name,
                index=u.index,
                kind=u.kind,
                grad_norm=self.norms[u.name],
                grad_rms=self.norms[u.name] / math.sqrt(self.sizes[u.name]),
            )
            for u in self.units
            if u.name in self.norms
        ]


def layer_rows(layers: list[WeightLayer], grads: Optional[list[Optional[torch.Tensor]]] = None) -> list[dict[str, Any]]:
    """One row per layer with a gradient: name, depth, kind, shortcut, numel, grad_norm,
    weight_norm. ``grads`` defaults to each weight's ``.grad``."""
    rows = []
    for i, layer in enumerate(layers):
        w = layer.module.weight
        g = w.grad if grads is None else grads[i]
        if g is None:
            continue
        rows.append(
            dict(
                layer=layer.name,
                depth=layer.depth,
                kind=layer.kind,
                shortcut=layer.shortcut,
                numel=w.numel(),
                grad_norm=float(g.detach().float().norm()),
                weight_norm=float(w.detach().float().norm()),
            )
        )
    return rows


def first_last_ratio(rows: list[dict[str, Any]]) -> float:
    """Gradient norm of the first main-path layer over that of the last one."""
    main = [r for r in rows if not r["shortcut"] and r["kind"] != "norm"]
    if len(main) < 2 or main[-1]["grad_norm"] == 0:
        return float("nan")
    return main[0]["grad_norm"] / main[-1]["grad_norm"]


@dataclass
class GradientFlow:
    """Result of :func:`gradient_flow`: per-layer and per-block rows, the ratio and the loss."""

    layers: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    first_last_ratio: float
    loss: float

    def summary(self) -> dict[str, float]:
        """Loss, the first/last ratio and the two norms it divides (main-path layers)."""
        main = [r for r in self.layers if not r["shortcut"] and r["kind"] != "norm"]
        return dict(
            loss=self.loss,
            first_last_ratio=self.first_last_ratio,
            first_grad_norm=main[0]["grad_norm"] if main else math.nan,
            last_grad_norm=main[-1]["grad_norm"] if main else math.nan,
        )


def gradient_flow(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    include_norm: bool = False,
) -> GradientFlow:
    """Gradient norms of one forward/backward pass of ``loss_fn(model(x), y)``.

    The model keeps its mode (train or eval: with BatchNorm in train mode the batch
    statistics are used and the running ones updated, as in a training step). The
    parameters' ``.grad`` are not touched: gradients come from ``torch.autograd.grad``.
    """
    units = find_units(model)
    layers = weight_layers(model, include_norm)
    order = ForwardOrder([l.module for l in layers])
    recorder = BlockInputGrads(units)
    try:
        loss = loss_fn(model(x), y)
        order.remove()
        layers = weight_layers(model, include_norm, order.order)
        weights = [l.module.weight for l in layers]
        used = [i for i, w in enumerate(weights) if w.requires_grad]
        grads = torch.autograd.grad(loss, [weights[i] for i in used], allow_unused=True)
    finally:
        order.remove()
        recorder.remove()
    full: list[Optional[torch.Tensor]] = [None] * len(layers)
    for i, g in zip(used, grads):
        full[i] = g
    rows = layer_rows(layers, full)
    return GradientFlow(rows, recorder.rows(), first_last_ratio(rows), float(loss.detach()))
