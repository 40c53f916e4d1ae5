"""The Gaussian conditional of the latent y given the hyper-prior (Ballé et al., ICLR 2018,
eq. 10-11; CompressAI's ``GaussianConditional``).

Each value of y is modelled as a zero-mean (or, mean-scale, Minnen et al. 2018, mean
``mu``) Gaussian of scale ``sigma`` from the hyper-synthesis, convolved with a unit uniform:
its likelihood is the mass of its bin,

    P(y~) = Phi((1/2 - |y~ - mu|) / sigma) - Phi((-1/2 - |y~ - mu|) / sigma),

with ``sigma`` bounded below by 0.11 and the mass by 1e-9. For coding, the scales are
*quantised to a table* (64 values log-spaced from 0.11 to 256, CompressAI's
``get_scale_table``): each value's index is the smallest table entry not below its scale.
Encoder and decoder compute the scales once from the same z^ and then share only integer
indexes, so a floating-point difference in the last bits of a scale cannot change the code
unless it crosses a table boundary. The eval-mode likelihood uses the table's scales too,
so the rate the model reports is the one the coder pays (up to constriction's precision).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .lower_bound import lower_bound

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
LIKELIHOOD_BOUND = 1e-9
#: y symbols are coded in [-Y_RANGE, Y_RANGE]
Y_RANGE = 1024


def scale_table() -> torch.Tensor:
    """The 64 coding scales (float64), log-spaced from 0.11 to 256."""
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


class GaussianConditional(nn.Module):
    """Bin masses of y under N(mu, sigma) (see the module documentation)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", scale_table().float(), persistent=False)

    def scale_index(self, scales: torch.Tensor) -> torch.Tensor:
        """The index (int64) of the smallest table scale not below each scale."""
        index = torch.bucketize(scales.float().contiguous(), self.table[:-1].contiguous())
        return index.clamp_(0, SCALE_LEVELS - 1)

    def likelihood(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        """Bin mass of each value of ``y`` (noisy or rounded) given ``scales`` (and ``means``);
        in eval mode the scales are replaced by their table values (the coded ones)."""
        y, scales = y.float(), scales.float()
        if not self.training:
            scales = self.table[self.scale_index(scales)]
        scales = lower_bound(scales, SCALE_MIN)
        values = (y - means.float() if means is not None else y).abs()
        upper = _std_normal_cdf((0.5 - values) / scales)
        lower = _std_normal_cdf((-0.5 - values) / scales)
        return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


__all__ = ["GaussianConditional", "LIKELIHOOD_BOUND", "SCALE_LEVELS", "Y_RANGE", "scale_table"]
