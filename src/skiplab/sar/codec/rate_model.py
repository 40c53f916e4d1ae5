"""The rate term of a learnt codec: a factorised Laplace prior over the quantised latent.

Ballé et al. (ICLR 2017, eq. 5 and sec. 2) train ``loss = D + lambda * R`` where the rate
``R = -log2 p(z~)`` is the code length of the latent under a *factorised* entropy model
(one density per channel, values i.i.d. across positions), and the quantised latent is
relaxed by additive uniform noise of one quantisation step, so that the likelihood of a
value is the probability mass of its bin::

    P(z~) = F((z~ - mu_c + step/2) / s_c) - F((z~ - mu_c - step/2) / s_c)

with ``F`` the prior's CDF. CompressAI's ``EntropyBottleneck`` (and TensorFlow
Compression's) learns a non-parametric per-channel CDF (a small monotone network, Ballé
et al. 2018, appendix 6.1) and bounds the likelihood below (1e-9) so that outliers keep a
gradient; we keep the bound and the bin-mass likelihood.

Why a hand-written Laplace prior instead of CompressAI: (1) the coder that writes the
latent file (:mod:`skiplab.sar.codec.entropy`, ``laplace``) codes each channel with a
discretised Laplace whose location and scale it sends, so training against the same
two-parameter family makes the training-time rate the one the file pays (a flexible
learnt CDF would estimate a rate that the file's coder cannot reach without shipping the
CDF tables); (2) CompressAI pins its own torch range and compiled extensions, and does not
install beside our torch 2.13 CPU build; (3) it is 40 lines. The prior's ``mu`` and
``s`` are learnt with the network (the file's coder refits them per scene).
"""

from __future__ import annotations

import torch
from torch import nn

#: the smallest bin probability (CompressAI's ``likelihood_bound``): -log2(1e-9) ~ 30 bits
LIKELIHOOD_BOUND = 1e-9
#: the smallest scale, in units of the latent (the coder floors the symbol scale at 0.1 step)
MIN_SCALE = 1e-4


def laplace_cdf(x: torch.Tensor) -> torch.Tensor:
    """CDF of the standard Laplace distribution, written to keep precision in both tails."""
    return torch.where(x < 0, 0.5 * torch.exp(x.clamp(max=0)), 1 - 0.5 * torch.exp(-x.clamp(min=0)))


class LaplacePrior(nn.Module):
    """Per-channel Laplace(``loc``, ``scale``) over a latent [B, C, h, w] (see the module
    documentation); :meth:`bits` gives each image's code length in bits."""

    def __init__(self, channels: int, init_scale: float = 0.25) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.full((channels,), float(init_scale)).log())

    def likelihood(self, z: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """The mass of the bin of width ``step`` ([1, C, 1, 1] or a number) around each value
        of ``z`` [B, C, h, w], bounded below by :data:`LIKELIHOOD_BOUND`."""
        loc = self.loc.view(1, -1, 1, 1)
        scale = self.log_scale.exp().clamp_min(MIN_SCALE).view(1, -1, 1, 1)
        centred = (z - loc).abs()  # symmetric: use the upper tail for accuracy
        upper = laplace_cdf((-centred + step / 2) / scale)
        lower = laplace_cdf((-centred - step / 2) / scale)
        return (upper - lower).clamp_min(LIKELIHOOD_BOUND)

    def bits(self, z: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Code length in bits of each image's latent [B] under the prior."""
        return -torch.log2(self.likelihood(z.float(), step)).sum(dim=(1, 2, 3))

    def extra_repr(self) -> str:
        return f"channels={self.loc.numel()}"


__all__ = ["LIKELIHOOD_BOUND", "LaplacePrior", "laplace_cdf"]
