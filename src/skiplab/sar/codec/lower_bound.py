"""``max(x, bound)`` with the gradient of Ballé et al. (2018; CompressAI's ``LowerBound``):
below the bound the gradient passes only when it would raise ``x`` back towards the bound,
so a parameter or a scale that fell under it is pulled back up instead of drifting further
down where it no longer affects the output (a dead GDN divisor or a scale stuck at the floor).
"""

from __future__ import annotations

import torch


class _LowerBound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)  # descent raises x when grad < 0
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)`` whose gradient below the bound only pushes ``x`` up."""
    return _LowerBound.apply(x, bound)


__all__ = ["lower_bound"]
