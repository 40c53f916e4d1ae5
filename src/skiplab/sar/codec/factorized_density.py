"""The learned factorised density of the hyper-latent z (Ballé et al., ICLR 2018, appendix 6.1).

Each channel c has its own univariate density, defined through its cumulative: a small
monotone network ``f_c = f_K o ... o f_1`` with

    f_k(x) = g_k(softplus(H_k) x + b_k),   g_k(x) = x + tanh(a_k) * tanh(x)   (k < K),
    f_K(x) = sigmoid(softplus(H_K) x + b_K)

(filters 3-3-3, as the paper and CompressAI's ``EntropyBottleneck``). The likelihood of a
value relaxed by unit-width uniform noise (training) or rounded (test) is the mass of its
bin, ``c(z + 1/2) - c(z - 1/2)``, computed on the logits with the sign trick for accuracy
in the upper tail, bounded below by 1e-9 (CompressAI's ``likelihood_bound``).

For the entropy coder, :meth:`FactorizedDensity.pmf_table` evaluates every channel's bin
masses at the integers ``-R .. R`` once (float64), kept as a buffer with the weights so that
the encoder and the decoder -- on any machine -- hand constriction the very same table.
Symbols outside ``[-R, R]`` are clipped (the encoder codes, and the decoder sees, the clipped
value).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_BOUND = 1e-9
#: z symbols are coded in [-Z_RANGE, Z_RANGE]
Z_RANGE = 48


class FactorizedDensity(nn.Module):
    """Per-channel learned density of ``channels`` hyper-latent channels (see module)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices, self.biases, self.factors = (nn.ParameterList(), nn.ParameterList(), nn.ParameterList())
        for k in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[k + 1], 1) - 0.5))
            if k < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))
        self.register_buffer("pmf", torch.zeros(channels, 2 * Z_RANGE + 1, dtype=torch.float64))

    @property
    def channels(self) -> int:
        return self.matrices[0].shape[0]

    def logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        """The cumulative's logits at ``x`` [C, 1, L] -> [C, 1, L]."""
        for k, matrix in enumerate(self.matrices):
            x = torch.matmul(F.softplus(matrix.to(x.dtype)), x) + self.biases[k].to(x.dtype)
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k].to(x.dtype)) * torch.tanh(x)
        return x

    def _bin_mass(self, values: torch.Tensor) -> torch.Tensor:
        lower = self.logits_cumulative(values - 0.5)
        upper = self.logits_cumulative(values + 0.5)
        sign = -torch.sign(lower + upper).detach()
        return (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Bin mass of each value of ``z`` [B, C, h, w] (noisy or rounded), same shape."""
        b, c, h, w = z.shape
        values = z.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
        mass = self._bin_mass(values).reshape(c, b, h, w).permute(1, 0, 2, 3)
        return mass.clamp_min(LIKELIHOOD_BOUND)

    @torch.no_grad()
    def update_pmf(self) -> torch.Tensor:
        """Compute and keep the coding table: [C, 2R+1] bin masses at -R..R (float64)."""
        support = torch.arange(-Z_RANGE, Z_RANGE + 1, dtype=torch.float64)
        values = support.view(1, 1, -1).expand(self.channels, 1, -1)
        self.pmf.copy_(self._bin_mass(values).reshape(self.channels, -1).clamp_min(0.0))
        return self.pmf

    def pmf_table(self) -> torch.Tensor:
        """The coding table (:meth:`update_pmf` if not computed yet: all zeros)."""
        if not bool(self.pmf.any()):
            return self.update_pmf()
        return self.pmf


__all__ = ["FactorizedDensity", "LIKELIHOOD_BOUND", "Z_RANGE"]
