"""Losses for SAR reconstruction on normalised log-intensity tiles ``[B, 1, H, W]``.

* ``mse`` / ``l1`` -- on the normalised log-intensity (``skiplab.sar.Radiometry``).
* ``ssim`` / ``ms_ssim`` -- ``1 - SSIM`` (Wang et al. 2004, Eq. 13: 11x11 Gaussian window,
  sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, valid convolution) and ``1 - MS-SSIM``
  (Wang, Simoncelli & Bovik 2003, Eq. 7: 5 scales, 2x2 average-pool between scales, exponents
  0.0448, 0.2856, 0.3001, 0.2363, 0.1333; contrast-structure terms clamped at a small positive
  value so the fractional powers stay differentiable). Checked against torchmetrics in tests
  (torchmetrics averages the SSIM map over the reflect-padded image rather than the valid
  windows: identical after padding the input by 5 px, within ~2e-3 without).
* ``gamma_nll`` -- negative log-likelihood of L-look intensity y given the predicted mean mu
  (fully developed speckle: y ~ Gamma(L, mu/L))::

      -log p(y | mu) = L * (log mu + y / mu) + [log Gamma(L) - L log L - (L - 1) log y]

  the bracket does not depend on mu and is added only with ``full=True``. Minimising it over
  a homogeneous area gives the *arithmetic* mean of y: radiometrically unbiased.

**Log-domain bias of speckle.** For L-look intensity ``I = mu * n``, ``n ~ Gamma(L, 1/L)``::

      E[ln I] = ln mu + psi(L) - ln L          (psi = digamma)

so a network trained with MSE on log-intensity, wherever it smooths speckle, converges to
``ln mu + psi(L) - ln L``: intensity off by ``10 log10(e) (psi(L) - ln L)`` dB -- -2.51 dB
for L = 1, -1.17 dB for L = 2, -0.85 dB for L = 2.7, -0.45 dB for L = 5. With L1 it
converges to the median of ``ln I``, biased by ``ln(median of Gamma(L, 1/L))`` (-1.59 dB
for L = 1, -0.76 dB for L = 2). The correction (:func:`debias_log_prediction`) subtracts
that bias from the prediction (in normalised units: bias_dB / (high_db - low_db)); the
ratio-image mean (``skiplab.analysis.ratio_statistics``) measures what remains.
``gamma_nll`` needs no correction.

:func:`build_loss` makes a weighted sum from a config such as ``{"l1": 1.0, "ms_ssim": 0.2}``
(a term may also be ``{"weight": 0.2, "scales": 4}``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DB_PER_NEPER = 10.0 / math.log(10.0)


# ---- the log-domain bias of speckle ---------------------------------------------------------
def log_speckle_bias(looks: float, estimator: str = "mean") -> float:
    """Bias of the log of L-look speckled intensity, in nepers (natural log):
    ``E[ln n] = psi(L) - ln L`` (``estimator="mean"``, what MSE learns) or
    ``ln median(n)`` (``"median"``, what L1 learns) for ``n ~ Gamma(L, 1/L)``."""
    if not (math.isfinite(looks) and looks > 0):
        raise ValueError(f"looks must be a finite number > 0; found {looks}")
    shape = torch.tensor(float(looks), dtype=torch.float64)
    if estimator == "mean":
        return float(torch.special.digamma(shape) - torch.log(shape))
    if estimator == "median":  # bisection on the regularised incomplete gamma P(L, x) = 1/2
        low, high = torch.tensor(0.0, dtype=torch.float64), shape * 4 + 10
        for _ in range(80):
            mid = (low + high) / 2
            low, high = (mid, high) if torch.special.gammainc(shape, mid) < 0.5 else (low, mid)
        return float(torch.log((low + high) / 2 / shape))
    raise ValueError(f"estimator must be 'mean' (MSE) or 'median' (L1); found {estimator!r}")


def log_speckle_bias_db(looks: float, estimator: str = "mean") -> float:
    """:func:`log_speckle_bias` in dB of intensity."""
    return DB_PER_NEPER * log_speckle_bias(looks, estimator)


def debias_log_prediction(pred: torch.Tensor, looks: float, span_db: float, estimator: str = "mean") -> torch.Tensor:
    """Remove the speckle log bias from a normalised log-intensity prediction made by a model
    trained with MSE (``"mean"``) or L1 (``"median"``) on speckled targets. ``span_db`` is
    ``radiometry.high_db - radiometry.low_db``."""
    return pred - log_speckle_bias_db(looks, estimator) / span_db


# ---- SSIM / MS-SSIM ------------------------------------------------------------------------
def gaussian_window(
    size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (SSIM's window is its outer product)."""
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-((coords / sigma) ** 2) / 2)
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable valid Gaussian filtering of [B, C, H, W] (per channel)."""
    channels = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)
    return F.conv2d(x, window.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)


def _check_pair(pred: torch.Tensor, target: torch.Tensor, min_size: int, what: str) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"{what} needs two batches [B, C, H, W] of the same shape; found "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if min(pred.shape[-2:]) < min_size:
        raise ValueError(
            f"{what} needs images of at least {min_size}x{min_size} px; found {pred.shape[-2]}x{pred.shape[-1]}"
        )


def ssim_components(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window: Optional[torch.Tensor] = None,
    k1: float = 0.01,
    k2: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and mean contrast-structure term ``cs`` (Wang et al. 2004), [B]."""
    window = gaussian_window(dtype=pred.dtype, device=pred.device) if window is None else window
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    stacked = _blur(torch.cat([pred, target, pred * pred, target * target, pred * target]), window)
    mu_x, mu_y, xx, yy, xy = stacked.chunk(5)
    var_x, var_y = xx - mu_x**2, yy - mu_y**2
    cov = xy - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Per-image SSIM [B] (valid windows only)."""
    _check_pair(pred, target, window_size, "SSIM")
    window = gaussian_window(window_size, sigma, pred.dtype, pred.device)
    return ssim_components(pred, target, data_range, window)[0]


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
    floor: float = 1e-6,
) -> torch.Tensor:
    """Per-image MS-SSIM [B] over ``len(weights)`` scales; needs images of at least
    ``(window_size - 1) * 2 ** (scales - 1) + 1`` px (161 for the default 5 scales -- pass
    fewer weights, e.g. ``MS_SSIM_WEIGHTS[:4]``, for smaller crops)."""
    scales = len(weights)
    if scales < 1:
        raise ValueError("MS-SSIM needs at least one scale weight")
    _check_pair(pred, target, (window_size - 1) * 2 ** (scales - 1) + 1, f"MS-SSIM with {scales} scales")
    window = gaussian_window(window_size, sigma, pred.dtype, pred.device)
    exponents = torch.tensor(weights, dtype=pred.dtype, device=pred.device)
    terms = []
    for scale in range(scales):
        full, cs = ssim_components(pred, target, data_range, window)
        terms.append(full if scale == scales - 1 else cs)
        if scale < scales - 1:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
    values = torch.stack(terms, dim=1).clamp_min(floor)  # [B, scales]
    return torch.prod(values**exponents, dim=1)


# ---- Gamma likelihood ----------------------------------------------------------------------
def gamma_nll(
    log_mean: torch.Tensor, intensity: torch.Tensor, looks: float, full: bool = False, eps: float = 1e-10
) -> torch.Tensor:
    """Mean negative log-likelihood of L-look ``intensity`` given ``log_mean`` = ln(mu)
    (natural log of the predicted mean intensity); see the module docstring. ``full=True``
    adds the terms that do not depend on mu (intensity clamped at ``eps`` inside the log)."""
    if intensity.shape != log_mean.shape:
        raise ValueError(
            f"log_mean {tuple(log_mean.shape)} and intensity {tuple(intensity.shape)} must have the same shape"
        )
    if not (math.isfinite(looks) and looks > 0):
        raise ValueError(f"looks must be a finite number > 0; found {looks}")
    nll = looks * (log_mean + intensity * torch.exp(-log_mean))
    if full:
        const = math.lgamma(looks) - looks * math.log(looks)
        nll = nll + const - (looks - 1) * torch.log(intensity.clamp_min(eps))
    return nll.mean()


class GammaNLLLoss(nn.Module):
    """Gamma NLL of the target's L-look intensity given a normalised log-intensity
    prediction: ``ln mu = (low_db + pred * span_db) / (10 log10 e)``; the target is mapped
    back to intensity with the radiometry (so no-data zeros stay zeros)."""

    def __init__(self, looks: float, radiometry, full: bool = False) -> None:
        super().__init__()
        self.looks, self.radiometry, self.full = float(looks), radiometry, full

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r = self.radiometry
        log_mean = (r.low_db + pred.float() * r.span_db) / DB_PER_NEPER
        intensity = r.inverse_intensity(target.detach()).float()
        return gamma_nll(log_mean, intensity, self.looks, self.full, r.eps)


class _PerImageLoss(nn.Module):
    """``1 - similarity(pred, target)`` averaged over the batch."""

    def __init__(self, similarity, **kwargs) -> None:
        super().__init__()
        self.similarity, self.kwargs = similarity, kwargs

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.similarity(pred.float(), target.float(), **self.kwargs).mean()


class _PixelLoss(nn.Module):
    """A pixel-wise loss (``F.mse_loss`` / ``F.l1_loss``) computed in float32."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.fn(pred.float(), target.float())

    def extra_repr(self) -> str:
        return self.fn.__name__


LOSSES = ("mse", "l1", "ssim", "ms_ssim", "gamma_nll", "rate")


def make_loss(name: str, *, radiometry=None, looks: Optional[float] = None, **kwargs) -> nn.Module:
    """One loss term by name (see :data:`LOSSES`); ``gamma_nll`` needs ``looks`` and the
    ``radiometry`` of the tiles; extra keywords go to the term (``scales``, ``data_range``,
    ``full``...)."""
    if name in ("mse", "l1"):
        if kwargs:
            raise ValueError(f"the {name} loss takes no options; found {sorted(kwargs)}")
        return _PixelLoss(F.mse_loss if name == "mse" else F.l1_loss)
    if name == "ssim":
        return _PerImageLoss(ssim, **kwargs)
    if name == "ms_ssim":
        scales = kwargs.pop("scales", len(MS_SSIM_WEIGHTS))
        if not 1 <= scales <= len(MS_SSIM_WEIGHTS):
            raise ValueError(f"ms_ssim scales must be in 1..{len(MS_SSIM_WEIGHTS)}; found {scales}")
        return _PerImageLoss(ms_ssim, weights=MS_SSIM_WEIGHTS[:scales], **kwargs)
    if name == "rate":
        if kwargs:
            raise ValueError(f"the rate loss takes no options; found {sorted(kwargs)}")
        return RateLoss()
    if name == "gamma_nll":
        if looks is None or radiometry is None:
            raise ValueError(
                "the gamma_nll loss needs the number of looks and the tiles' "
                "radiometry (build_loss(config, looks=L, radiometry=dataset.radiometry))"
            )
        return GammaNLLLoss(looks, radiometry, **kwargs)
    raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")


class RateLoss(nn.Module):
    """The rate term ``R`` of ``D + lambda * R`` (Ballé et al. 2017): the mean bits per pixel
    of the latent under the codec model's prior, which the codec returns with its
    reconstruction (``model(x, with_rate=True)``,
    :class:`skiplab.sar.codec.model.QuantizedAutoencoder`) and the task passes here as
    ``rate`` [B]. The reconstruct task refuses this term for a model without a prior."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, rate: Optional[torch.Tensor] = None) -> torch.Tensor:
        if rate is None:
            raise ValueError(
                "the rate term needs the codec's rate of this batch: "
                "loss(pred, target, rate=...) with the rate of model(x, with_rate=True)"
            )
        if rate.shape[0] != pred.shape[0]:
            raise ValueError(
                f"the rate is of {rate.shape[0]} images, the batch has "
                f"{pred.shape[0]}: the rate must be of the forward that made pred"
            )
        return rate.float().mean()


class WeightedLoss(nn.Module):
    """``sum_k w_k * loss_k(pred, target)``; ``rate`` (a codec's bits per pixel [B]) goes to
    the ``rate`` term. :meth:`unweighted` gives the terms before weighting (0-d tensors, no host sync)."""

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = {name: w for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: module for name, (_, module) in terms.items()})

    @property
    def needs_rate(self) -> bool:
        """Whether a term is the codec's rate (the forward must return it: ``with_rate=True``)."""
        return "rate" in self.terms

    def unweighted(
        self, pred: torch.Tensor, target: torch.Tensor, rate: Optional[torch.Tensor] = None
    ) -> dict[str, torch.Tensor]:
        """Each term's value before its weight, in the order of the config."""
        return {
            name: module(pred, target, rate) if name == "rate" else module(pred, target)
            for name, module in self.terms.items()
        }

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum_k w_k * terms[k]`` of :meth:`unweighted`'s terms."""
        total = None
        for name, value in terms.items():
            term = self.weights[name] * value
            total = term if total is None else total + term
        return total

    def forward(self, pred: torch.Tensor, target: torch.Tensor, rate: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.total(self.unweighted(pred, target, rate))

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g} * {name}" for name, w in self.weights.items())


def build_loss(config: dict, *, radiometry=None, looks: Optional[float] = None) -> WeightedLoss:
    """A weighted sum from ``{"name": weight}`` or ``{"name": {"weight": w, **options}}``,
    e.g. ``{"l1": 1.0, "ms_ssim": 0.2}``. Weights must be >= 0 and at least one > 0."""
    if not isinstance(config, dict) or not config:
        raise ValueError(
            f"loss config must be a non-empty dict such as {{'l1': 1.0, 'ms_ssim': 0.2}}; found {config!r}"
        )
    terms = {}
    for name, spec in config.items():
        options = dict(spec) if isinstance(spec, dict) else {"weight": spec}
        weight = options.pop("weight", 1.0)
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (math.isfinite(weight) and weight >= 0)
        ):
            raise ValueError(f"loss weight of {name!r} must be a finite number >= 0; found {weight!r}")
        if weight > 0:
            terms[name] = (float(weight), make_loss(name, radiometry=radiometry, looks=looks, **options))
        elif name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; expected one of {LOSSES}")
    if not terms:
        raise ValueError(f"every loss weight in {config!r} is zero")
    return WeightedLoss(terms)
