"""The SAR hyperprior codec: a scale (or mean-scale) hyperprior model (Ballé et al., ICLR
2018, "Variational image compression with a scale hyperprior", sec. 3 and fig. 4; Minnen et
al., NeurIPS 2018, for the means), the design of CompressAI's ``ScaleHyperprior`` and
``MeanScaleHyperprior``::

    y = g_a(x)            x: [B, 1, H, W] normalised log-intensity  ->  y: [B, M, H/16, W/16]
    z = h_a(|y|)          z: [B, N, H/64, W/64]
    z^ = Q(z)             coded with the learned factorised density (factorized_density)
    sigma (mu) = h_s(z^)  the scales (and means) of y
    y^ = Q(y - mu) + mu   coded with the Gaussian conditional (gaussian_conditional)
    x^ = g_s(y^)

``Q`` adds uniform noise U(-1/2, 1/2) in training (Ballé 2017, eq. 5) and rounds at test. The
rate is ``R = -log2 P(y^|z^) - log2 P(z^)`` in bits per pixel and the training loss
``R + lambda * 255^2 * MSE(x, x^)`` (:mod:`skiplab.sar.training.compress_task`, CompressAI's
``RateDistortionLoss``). ``lmbda`` is a keyword of the model so that a checkpoint says which
trade-off it was trained for.

**Variable rate** (``lmbdas=[...]``, one model for several trade-offs): the gain units of Cui
et al. (CVPR 2021, "Asymmetric gained deep image compression with continuous rate
adaptation", sec. 3.2) -- a learned gain vector per level scales y channel-wise before
quantisation (y_l = g_a(x) * gain[l], so a larger gain is a finer step) and an inverse gain
scales y^ back before g_s. Training draws a level per image and weighs its distortion with
that level's lambda; coding uses the level in :attr:`HyperpriorCodec.level`. The hyper-path
sees the gained y, so one h_a/h_s serves every level.

Registered models (:func:`skiplab.models.register_model`): ``sar_hyperprior`` (any
``transform``), ``sar_hyperprior_gdn``, ``sar_hyperprior_residual`` and
``sar_hyperprior_plain`` (the transform families of :mod:`.transforms`).

:meth:`HyperpriorCodec.compress` gives the integer symbols of y and z and the scale indexes
of y; :meth:`HyperpriorCodec.decompress` gives x^ back from the symbols; the entropy coding
is :mod:`.ans`, the file :mod:`.sarl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from ...models.registry import register_model
from .factorized_density import Z_RANGE, FactorizedDensity
from .gaussian_conditional import Y_RANGE, GaussianConditional
from .transforms import analysis, hyper_analysis, hyper_synthesis, synthesis

#: the spatial reduction of z (16 for y, times 4): inputs are padded to a multiple of it
REDUCTION = 64


class CodecOutput(dict):
    """The forward dict (``x_hat``, ``likelihoods``); ``.float()`` returns it unchanged so that
    the one evaluation loop, which casts outputs to float32, hands it to the task's meter."""

    def float(self) -> "CodecOutput":
        return self


@dataclass
class Symbols:
    """The integer code of an image: ``y`` [B, M, h, w] and ``z`` [B, N, h/4, w/4] (int32, y
    minus its means for a mean-scale model), the scale ``index`` of each y value."""

    y: torch.Tensor
    z: torch.Tensor
    index: torch.Tensor


class HyperpriorCodec(nn.Module):
    """Scale (``mean_scale=False``) or mean-scale hyperprior codec (see the module). Not an
    image-to-image model: ``forward`` returns x^ *and* the likelihoods (CompressAI's
    convention), so the image-model contract of the registry does not apply to it."""

    image_model_contract = False

    def __init__(
        self,
        n: int = 64,
        m: int = 96,
        transform: str = "gdn",
        mean_scale: bool = False,
        in_chans: int = 1,
        lmbda: Optional[float] = None,
        lmbdas: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        self.n, self.m, self.transform, self.mean_scale = n, m, transform, mean_scale
        self.in_chans, self.lmbda = in_chans, lmbda
        self.lmbdas = [float(v) for v in lmbdas] if lmbdas else None
        if lmbda is not None and self.lmbdas:
            raise ValueError("a codec has one lmbda or a list of lmbdas (variable rate), not both")
        if self.lmbdas:
            if sorted(self.lmbdas) != self.lmbdas or min(self.lmbdas) <= 0:
                raise ValueError(f"lmbdas must be positive and ascending (low to high rate); found {self.lmbdas}")
            # start each level at the step that MSE ~ step^2 suggests for its lambda
            start = torch.tensor(self.lmbdas).div(self.lmbdas[len(self.lmbdas) // 2]).sqrt()
            self.gain = nn.Parameter(start[:, None].repeat(1, m))
            self.inverse_gain = nn.Parameter(1 / start[:, None].repeat(1, m))
        #: the level :meth:`compress` and :meth:`decompress` code at (variable-rate models)
        self.level = len(self.lmbdas) - 1 if self.lmbdas else 0
        self.g_a = analysis(transform, n, m, in_chans)
        self.g_s = synthesis(transform, n, m, in_chans)
        self.h_a = hyper_analysis(n, m)
        self.h_s = hyper_synthesis(n, m, 2 if mean_scale else 1)
        self.z_density = FactorizedDensity(n)
        self.y_conditional = GaussianConditional()

    reduction = REDUCTION

    def latent_shape(self, size: int) -> tuple[int, int, int]:
        if size % REDUCTION:
            raise ValueError(f"tile size must be a multiple of {REDUCTION}, got {size}")
        return (self.m, size // 16, size // 16)

    def _quantize(self, x: torch.Tensor, means: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.training:
            return x + torch.empty_like(x).uniform_(-0.5, 0.5)
        if means is None:
            return torch.round(x)
        return torch.round(x - means) + means

    def _scales_means(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        params = self.h_s(z_hat)
        if not self.mean_scale:
            return params, None
        means, scales = params.chunk(2, dim=1)
        return scales, means

    @property
    def levels(self) -> int:
        """How many rates the model codes at (1 unless it is variable-rate)."""
        return len(self.lmbdas) if self.lmbdas else 1

    def level_lmbdas(self) -> list[float]:
        """The lambda of each level (one for a fixed-rate model; NaN when none was given)."""
        return self.lmbdas if self.lmbdas else [float("nan") if self.lmbda is None else float(self.lmbda)]

    def _gain(self, level: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        gains = self.inverse_gain if inverse else self.gain
        return gains[level][:, :, None, None]

    def _levels_for(self, x: torch.Tensor) -> torch.Tensor:
        """A level per image: drawn in training, every level in turn in evaluation."""
        count = len(x)
        if self.training:
            return torch.randint(self.levels, (count,), device=x.device)
        return torch.arange(count, device=x.device) % self.levels

    def forward(self, x: torch.Tensor) -> dict:
        """``{"x_hat", "likelihoods": {"y", "z"}, "level", "lmbda"}`` (noisy in train mode,
        rounded in eval); ``level`` and ``lmbda``: each image's level (zeros for a fixed-rate
        model) and the lambda it is trained for."""
        level = self._levels_for(x) if self.lmbdas else torch.zeros(len(x), dtype=torch.long, device=x.device)
        y = self.g_a(x)
        if self.lmbdas:
            y = y * self._gain(level)
        z = self.h_a(torch.abs(y))
        with torch.autocast(device_type=x.device.type, enabled=False):
            z_tilde = self._quantize(z.float())
            z_likelihood = self.z_density.likelihood(z_tilde)
            scales, means = self._scales_means(z_tilde)
            y_tilde = self._quantize(y.float(), means)
            y_likelihood = self.y_conditional.likelihood(y_tilde, scales, means)
        y_tilde = y_tilde.to(y.dtype)
        if self.lmbdas:
            y_tilde = y_tilde * self._gain(level, inverse=True)
        x_hat = self.g_s(y_tilde)
        lmbda = torch.tensor(self.level_lmbdas(), device=x.device)[level]
        return CodecOutput(x_hat=x_hat, likelihoods={"y": y_likelihood, "z": z_likelihood}, level=level, lmbda=lmbda)

    def _coding_gain(self, inverse: bool = False) -> Optional[torch.Tensor]:
        if not self.lmbdas:
            return None
        return self._gain(torch.tensor([self.level]), inverse)

    @torch.no_grad()
    def compress(self, x: torch.Tensor, step: float = 1.0) -> Symbols:
        """The symbols of ``x`` [B, 1, H, W] (H, W multiples of 64), in eval arithmetic.
        ``step`` != 1 quantises y with that step instead of the unit one the model was
        trained for (its scales divided by it): a coarser or finer rate from the same model
        (quantisation-step scaling, as in Choi et al., ICCV 2019), off the trained trade-off."""
        y = self.g_a(x.float())
        gain = self._coding_gain()
        if gain is not None:
            y = y * gain
        z = self.h_a(torch.abs(y))
        z_sym = torch.round(z).clamp_(-Z_RANGE, Z_RANGE)
        scales, means = self._scales_means(z_sym)
        centred = y if means is None else y - means
        y_sym = torch.round(centred / step).clamp_(-Y_RANGE, Y_RANGE)
        return Symbols(y_sym.to(torch.int32), z_sym.to(torch.int32), self.y_conditional.scale_index(scales / step))

    @torch.no_grad()
    def scale_index(self, z_sym: torch.Tensor, step: float = 1.0) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The scale indexes (and means) of y given the z symbols -- what the decoder needs
        before it can decode y."""
        scales, means = self._scales_means(z_sym.float())
        return self.y_conditional.scale_index(scales / step), means

    @torch.no_grad()
    def decompress(self, y_sym: torch.Tensor, means: Optional[torch.Tensor] = None, step: float = 1.0) -> torch.Tensor:
        """x^ [B, 1, H, W] from the y symbols (plus the means of a mean-scale model)."""
        y_hat = y_sym.float() * step
        y_hat = y_hat if means is None else y_hat + means
        gain = self._coding_gain(inverse=True)
        return self.g_s(y_hat if gain is None else y_hat * gain)

    def update(self) -> None:
        """Compute the z coding table (call after training, before saving for coding)."""
        self.z_density.update_pmf()


def _build(transform: str, n: int, m: int, mean_scale: bool, in_chans: int, lmbda, lmbdas) -> HyperpriorCodec:
    return HyperpriorCodec(
        n=n, m=m, transform=transform, mean_scale=mean_scale, in_chans=in_chans, lmbda=lmbda, lmbdas=lmbdas
    )


@register_model
def sar_hyperprior(
    transform: str = "gdn",
    n: int = 64,
    m: int = 96,
    mean_scale: bool = False,
    in_chans: int = 1,
    lmbda: Optional[float] = None,
    lmbdas: Optional[Sequence[float]] = None,
) -> HyperpriorCodec:
    """Hyperprior codec with ``transform`` in ``gdn``, ``residual``, ``plain``."""
    return _build(transform, n, m, mean_scale, in_chans, lmbda, lmbdas)


@register_model
def sar_hyperprior_gdn(
    n: int = 64,
    m: int = 96,
    mean_scale: bool = False,
    in_chans: int = 1,
    lmbda: Optional[float] = None,
    lmbdas: Optional[Sequence[float]] = None,
) -> HyperpriorCodec:
    """Hyperprior codec with Ballé's GDN transforms."""
    return _build("gdn", n, m, mean_scale, in_chans, lmbda, lmbdas)


@register_model
def sar_hyperprior_residual(
    n: int = 64,
    m: int = 96,
    mean_scale: bool = False,
    in_chans: int = 1,
    lmbda: Optional[float] = None,
    lmbdas: Optional[Sequence[float]] = None,
) -> HyperpriorCodec:
    """Hyperprior codec with residual down/up-sampling transforms."""
    return _build("residual", n, m, mean_scale, in_chans, lmbda, lmbdas)


@register_model
def sar_hyperprior_plain(
    n: int = 64,
    m: int = 96,
    mean_scale: bool = False,
    in_chans: int = 1,
    lmbda: Optional[float] = None,
    lmbdas: Optional[Sequence[float]] = None,
) -> HyperpriorCodec:
    """Hyperprior codec with the residual transforms' layers and no shortcuts."""
    return _build("plain", n, m, mean_scale, in_chans, lmbda, lmbdas)


__all__ = [
    "CodecOutput",
    "HyperpriorCodec",
    "REDUCTION",
    "Symbols",
    "sar_hyperprior",
    "sar_hyperprior_gdn",
    "sar_hyperprior_plain",
    "sar_hyperprior_residual",
]
