"""The path-length view of a residual network (Veit, Wilber & Belongie 2016, §5, Fig. 6).

Unrolled, a net of n residual blocks is a collection of 2^n paths: each block is
either passed through its residual branch or skipped along its shortcut. The number of
paths of length k (k branches taken) is the binomial coefficient C(n, k) (Veit Eq. 3),
so most paths have length near n/2.

Veit measure how much gradient each path length carries: after a normal forward pass,
for a random set of k blocks the backward pass goes *only* through their residual
branches, and through *only* the shortcut of every other block; the norm of the
gradient at the input then measures a single path of length k (Fig. 6a, averaged over
samples). Multiplying by the number of such paths gives the total gradient each length
contributes (Fig. 6b): for ResNet-110 almost all of it comes from paths of length 5-17,
far shorter than the network.

Implementation: every residual block gets two *gates* -- autograd functions that are the
identity forward and multiply the gradient by 0 or 1 backward -- one on its branch output
and one on the input its shortcut reads. The forward pass is therefore the model's own
and runs once per batch; each sampled subset only changes the gates and runs a backward
pass (``retain_graph``). The gradient is that of the summed cross-entropy with respect
to the input of the first residual block; its norm is taken per sample and averaged.
The model runs in evaluation mode (BatchNorm with running statistics), so samples do
not interact.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Unit, batches_of, branch_method, eval_mode, override, residual_blocks


def path_length_counts(n: int) -> list[int]:
    """C(n, k) for k = 0..n: the number of paths of length k through n residual blocks."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a number of blocks >= 0, got {n!r}")
    return [math.comb(n, k) for k in range(n + 1)]


def path_length_distribution(n: int) -> list[dict[str, Any]]:
    """Rows ``length, paths, fraction`` of the binomial distribution of path lengths (Veit Fig. 6a)."""
    counts = path_length_counts(n)
    return [dict(length=k, paths=c, fraction=c / 2**n) for k, c in enumerate(counts)]


class Gate:
    """An open (1) or closed (0) gate for the gradient; read during the backward pass."""

    def __init__(self) -> None:
        self.value = 1.0


class _GradGate(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by the gate's current value."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gate: Gate) -> torch.Tensor:
        ctx.gate = gate
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.gate.value, None


class GatedBlocks:
    """Context manager that gates the branch and the shortcut of each residual block.

    ``set_path(chosen)`` opens the branch gates of the blocks whose positions are in
    ``chosen`` and the shortcut gates of all the others. ``first_input`` is the tensor
    entering the first block in the latest forward pass.
    """

    def __init__(self, blocks: list[Unit]) -> None:
        self.blocks = blocks
        self.branch_gates = [Gate() for _ in blocks]
        self.skip_gates = [Gate() for _ in blocks]
        self.first_input: Optional[torch.Tensor] = None
        self._stack = contextlib.ExitStack()

    def _forward_for(self, position: int, block: nn.Module):
        original_forward = block.forward
        original_residual = block.residual
        method = branch_method(block)

        def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
            if position == 0:
                self.first_input = x
            branch = _GradGate.apply(original_residual(x), self.branch_gates[position])
            skip_input = _GradGate.apply(x, self.skip_gates[position])
            with override(block, method, lambda *_a, **_k: branch):
                return original_forward(skip_input, *args, **kwargs)

        return forward

    def __enter__(self) -> "GatedBlocks":
        for position, unit in enumerate(self.blocks):
            unit.check_branch_in_forward("gating the gradient of a residual block")
            self._stack.enter_context(override(unit.module, "forward", self._forward_for(position, unit.module)))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def set_path(self, chosen: set[int]) -> None:
        for i, (b, s) in enumerate(zip(self.branch_gates, self.skip_gates)):
            b.value = 1.0 if i in chosen else 0.0
            s.value = 0.0 if i in chosen else 1.0

    def open_all(self) -> None:
        for g in self.branch_gates + self.skip_gates:
            g.value = 1.0


@dataclass
class PathGradients:
    """Result of :func:`path_gradients`; ``rows`` has one entry per path length."""

    num_blocks: int
    rows: list[dict[str, Any]]
    full_grad_norm: float

    def summary(self, mass: float = 0.9) -> dict[str, float]:
        """Length carrying the most total gradient, and the shortest range of lengths
        around it holding ``mass`` of the total (Veit's "effective paths")."""
        totals = [r["total_gradient"] for r in self.rows]
        grand = sum(totals)
        peak = max(range(len(totals)), key=totals.__getitem__) if totals else 0
        lo = hi = peak
        held = totals[peak] if totals else 0.0
        while grand > 0 and held < mass * grand:
            left = totals[lo - 1] if lo > 0 else -1.0
            right = totals[hi + 1] if hi + 1 < len(totals) else -1.0
            if right >= left:
                hi += 1
                held += right
            else:
                lo -= 1
                held += left
        return dict(
            num_blocks=self.num_blocks,
            peak_length=self.rows[peak]["length"] if self.rows else 0,
            effective_min=self.rows[lo]["length"] if self.rows else 0,
            effective_max=self.rows[hi]["length"] if self.rows else 0,
            mean_path_length=self.num_blocks / 2,
            full_grad_norm=self.full_grad_norm,
        )


def _per_sample_mean_norm(g: torch.Tensor) -> float:
    return float(g.detach().float().flatten(1).norm(dim=1).mean())


def path_gradients(
    model: nn.Module, data: Any, samples: int = 20, lengths: Optional[list[int]] = None, seed: int = 0
) -> PathGradients:
    """Gradient magnitude carried by paths of each length (Veit 2016 §5, Fig. 6).

    For each length k in ``lengths`` (default 0..n) draw ``samples`` random subsets of k
    residual blocks per batch of ``data`` (``(x, y)`` pairs), backpropagate through that
    single path, and record the mean per-sample gradient norm at the first block's input.
    Rows: ``length, paths`` (C(n, k)), ``mean_grad_norm``, ``std_grad_norm``,
    ``total_gradient`` (= paths x mean) and ``fraction`` of the summed total.
    ``full_grad_norm`` is the same norm with every gate open (the true gradient).
    """
    batches = batches_of(data)
    blocks = residual_blocks(model, batches[0][0][:2])
    n = len(blocks)
    if n == 0:
        raise ValueError(f"{type(model).__name__} has no residual blocks: path lengths need shortcuts")
    lengths = list(range(n + 1)) if lengths is None else list(lengths)
    if any(not 0 <= k <= n for k in lengths):
        raise ValueError(f"path lengths must be in 0..{n}, got {lengths}")
    rng = random.Random(seed)
    norms: dict[int, list[float]] = {k: [] for k in lengths}
    full: list[float] = []
    with eval_mode(model), GatedBlocks(blocks) as gates:
        for x, y in batches:
            gates.open_all()
            loss = F.cross_entropy(model(x).float(), y, reduction="sum")
            x0 = gates.first_input
            if x0 is None or not x0.requires_grad:
                raise ValueError(
                    "the input of the first residual block does not require a gradient; "
                    "path gradients need a layer with parameters before the first block"
                )
            full.append(_per_sample_mean_norm(torch.autograd.grad(loss, x0, retain_graph=True)[0]))
            for k in lengths:
                for _ in range(samples):
                    gates.set_path(set(rng.sample(range(n), k)))
                    g = torch.autograd.grad(loss, x0, retain_graph=True)[0]
                    norms[k].append(_per_sample_mean_norm(g))
            del loss
    counts = path_length_counts(n)
    rows = []
    for k in lengths:
        vals = torch.tensor(norms[k], dtype=torch.float64)
        mean = float(vals.mean())
        std = float(vals.std()) if len(vals) > 1 else 0.0
        rows.append(
            dict(length=k, paths=counts[k], mean_grad_norm=mean, std_grad_norm=std, total_gradient=counts[k] * mean)
        )
    grand = sum(r["total_gradient"] for r in rows)
    for r in rows:
        r["fraction"] = r["total_gradient"] / grand if grand > 0 else math.nan
    return PathGradients(n, rows, sum(full) / len(full))
