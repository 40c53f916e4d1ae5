"""Residual-branch ratio: how much each residual block changes its input.

For a block y = σ(F(x) + W_s x) (He et al. 2015, Eq. 2) the ratio ‖F(x)‖ / ‖x‖ says
whether the block is close to its shortcut (ratio ≪ 1: "the residual functions have
generally small responses", He 2015 §4.2 and Fig. 7, which plots the std of each
branch's output) or rewrites its input. Norms are per sample (over all non-batch
dimensions); the rows give the mean over samples.

For a block whose shortcut is a module (projection, or option-A zero padding) the
input has a different shape from F(x), so the rows also give ‖F(x)‖ / ‖W_s x‖, the
ratio to the term F(x) is added to; for an identity shortcut both ratios coincide.

The branch F(x) is recomputed from each block's captured input with ``block.residual``
(in evaluation mode, where that is exactly what the forward pass added), so any block
following the ``residual(x)`` convention can be measured. :class:`skiplab.studies.ResidualRatioCallback`
measures a fixed probe batch at the start of training and after every epoch.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from .blocks import Unit, eval_mode, find_blocks


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float().flatten(1).norm(dim=1)


class BranchCapture:
    """Context manager capturing, for each block, its input x, its branch F(x) and the
    output of its shortcut module (when there is one) during a forward pass.

    F(x) is recomputed by calling ``block.residual(x)`` on the captured input (a forward
    hook), which works whatever the block's forward looks like; run it in evaluation
    mode, where the recomputation is exactly the branch of the forward pass."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self.inputs: dict[str, torch.Tensor] = {}
        self.branches: dict[str, torch.Tensor] = {}
        self.shortcuts: dict[str, torch.Tensor] = {}
        self._stack = contextlib.ExitStack()

    def _capture(self, name: str):
        def hook(block, inputs, _output):
            self.inputs[name] = inputs[0]
            self.branches[name] = block.residual(inputs[0])

        return hook

    def __enter__(self) -> "BranchCapture":
        for u in self.units:
            handle = u.module.register_forward_hook(self._capture(u.name))
            self._stack.callback(handle.remove)
            downsample = getattr(u.module, "downsample", None)
            if isinstance(downsample, nn.Module):
                handle = downsample.register_forward_hook(
                    lambda _m, _i, out, name=u.name: self.shortcuts.__setitem__(name, out)
                )
                self._stack.callback(handle.remove)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for u in self.units:
            if u.name not in self.branches:
                continue
            f = _per_sample_norm(self.branches[u.name])
            x = _per_sample_norm(self.inputs[u.name])
            s = _per_sample_norm(self.shortcuts[u.name]) if u.name in self.shortcuts else x
            rows.append(
                dict(
                    u.row(),
                    ratio=float((f / x.clamp_min(1e-12)).mean()),
                    ratio_to_shortcut=float((f / s.clamp_min(1e-12)).mean()),
                    branch_norm=float(f.mean()),
                    input_norm=float(x.mean()),
                    branch_std=float(self.branches[u.name].detach().float().std()),
                )
            )
        return rows


def residual_ratio(model: nn.Module, x: torch.Tensor, include_plain: bool = False) -> list[dict[str, Any]]:
    """‖F(x)‖ / ‖x‖ of every residual block (and plain block with ``include_plain``) on batch ``x``.

    Rows (forward order): ``block, index, kind, downsampling, ratio, ratio_to_shortcut,
    branch_norm, input_norm, branch_std`` (std of F(x) over the batch, as He 2015 Fig. 7).
    Runs in evaluation mode without gradients (BatchNorm uses its running statistics).
    """
    units = [u for u in find_blocks(model) if u.is_residual or include_plain]
    if not units:
        raise ValueError(
            f"{type(model).__name__} has no residual blocks (modules with residual(x) "
            f"and has_shortcut); found none to measure"
        )
    with eval_mode(model), torch.no_grad(), BranchCapture(units) as capture:
        model(x)
    return capture.rows()
