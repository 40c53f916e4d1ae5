"""Generalized divisive normalization (Ballé, Laparra & Simoncelli, ICLR 2016, eq. 6).

``GDN``:  y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)
``IGDN``: y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)   (its approximate inverse)

beta and gamma must stay non-negative (beta above a floor, so the division is defined):
they are kept as square roots and squared in the forward pass, with a small pedestal, as
Ballé et al. (2018, appendix 6.2) and CompressAI's ``NonNegativeParametrizer`` do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .lower_bound import lower_bound

_PEDESTAL = 2.0**-18


class GDN(nn.Module):
    """GDN over the channels of [B, C, H, W]; ``inverse=True`` gives IGDN."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_bound = (beta_min + _PEDESTAL) ** 0.5
        self.gamma_bound = _PEDESTAL**0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + _PEDESTAL))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + _PEDESTAL))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = lower_bound(self.beta, self.beta_bound) ** 2 - _PEDESTAL
        gamma = (lower_bound(self.gamma, self.gamma_bound) ** 2 - _PEDESTAL).view(c, c, 1, 1)
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm

    def extra_repr(self) -> str:
        return f"{self.beta.numel()}, inverse={self.inverse}"


__all__ = ["GDN"]
