"""Stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth").

During training each residual branch is dropped for a whole sample with probability
p_l and otherwise scaled by 1/(1 - p_l), so that at test time the block is used as is
(Eq. 2 and §3, with the scaling moved to training time). The drop rate decays linearly
with depth: p_l = (l / L) p_L for block l = 1..L (Eq. 4).
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``p``; scale the rest by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: ``y = x + DropPath(F(x))``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(rate: float, num_blocks: int) -> list[float]:
    """Linear decay of Huang 2016 Eq. 4: block l of L (1-based) gets ``rate * l / L``,
    so the last block has ``rate`` and the first almost 0."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {rate}")
    return [rate * (i + 1) / num_blocks for i in range(num_blocks)]


def maybe_drop_path(p: float) -> nn.Module:
    """``DropPath(p)`` or ``nn.Identity()`` when ``p == 0`` (no module in the state dict either way)."""
    return DropPath(p) if p > 0 else nn.Identity()
