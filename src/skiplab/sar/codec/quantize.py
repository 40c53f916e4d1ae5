"""Uniform scalar quantisation of an autoencoder's latent to ``b`` bits per value.

Per channel ``c`` with range ``[lo_c, hi_c]`` and ``L = 2**b`` levels::

    step_c = (hi_c - lo_c) / (L - 1)
    q      = clamp(round((z - lo_c) / step_c), 0, L - 1)     # the integer symbol
    z_hat  = lo_c + q * step_c                                # its reconstruction

so the error is at most ``step_c / 2`` inside the range (the range is the min and max of the
values being coded, so nothing is clipped at encode time). This is the quantiser of
learnt image codecs (Balle et al., "End-to-end optimized image compression", ICLR 2017,
sec. 2) with a uniform grid instead of the integer grid.

While training, rounding has no gradient. :class:`LatentQuantizer` offers the two usual
relaxations in ``train()`` mode -- additive uniform noise ``z + U(-step/2, step/2)`` (Balle
et al. 2017, eq. 5: the noisy latent has the density of the quantised one convolved with a
box) and the straight-through estimator (Bengio et al. 2013; Theis et al. 2017: the forward
pass rounds, the backward pass is the identity) -- and hard quantisation in ``eval()``. Its
range is fixed by :meth:`LatentQuantizer.calibrate` (min/max of calibration latents, or
percentiles) or learnt (``learn_range=True``: ``lo`` and ``hi`` are parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

MAX_BITS = 16


def check_bits(bits: int) -> int:
    if not (isinstance(bits, (int, np.integer)) and 1 <= bits <= MAX_BITS):
        raise ValueError(f"bits per latent value must be an integer in [1, {MAX_BITS}]; found {bits!r}")
    return int(bits)


def symbol_dtype(bits: int) -> np.dtype:
    return np.dtype(np.uint8) if check_bits(bits) <= 8 else np.dtype(np.uint16)


@dataclass(frozen=True)
class UniformQuantizer:
    """``bits`` per value, one ``[lo, hi]`` range per channel (float32 arrays [C])."""

    bits: int
    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        check_bits(self.bits)
        lo, hi = np.asarray(self.lo, np.float32), np.asarray(self.hi, np.float32)
        if lo.shape != hi.shape or lo.ndim != 1 or not np.all(np.isfinite(lo) & np.isfinite(hi)):
            raise ValueError(f"need finite per-channel ranges lo, hi of shape [C]; found {lo.shape} and {hi.shape}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", np.maximum(hi, lo))

    @classmethod
    def fit(cls, latent: np.ndarray | torch.Tensor, bits: int) -> "UniformQuantizer":
        """Per-channel min and max of ``latent`` [N, C, h, w] (or [C, h, w])."""
        z = np.asarray(latent.detach().cpu() if isinstance(latent, torch.Tensor) else latent, dtype=np.float32)
        z = z[None] if z.ndim == 3 else z
        axes = (0, 2, 3)
        return cls(check_bits(bits), _half(z.min(axis=axes), -np.inf), _half(z.max(axis=axes), np.inf))

    @property
    def levels(self) -> int:
        return 1 << self.bits

    @property
    def step(self) -> np.ndarray:
        """Per-channel step (float64); 1 for a constant channel (any step is exact there)."""
        span = self.hi.astype(np.float64) - self.lo.astype(np.float64)
        return np.where(span > 0, span / (self.levels - 1), 1.0)

    def _shape(self, values: np.ndarray, ndim: int) -> np.ndarray:
        return values.reshape((1, -1) + (1,) * (ndim - 2))

    def quantize(self, latent: np.ndarray) -> np.ndarray:
        """Float latent [N, C, h, w] -> integer symbols (uint8 up to 8 bits, else uint16)."""
        z = np.asarray(latent, dtype=np.float64)
        q = np.rint((z - self._shape(self.lo, z.ndim)) / self._shape(self.step, z.ndim))
        return np.clip(q, 0, self.levels - 1).astype(symbol_dtype(self.bits))

    def dequantize(self, symbols: np.ndarray) -> np.ndarray:
        """Symbols -> float32 latent ``lo + q * step``."""
        q = np.asarray(symbols, dtype=np.float64)
        return (self._shape(self.lo, q.ndim) + q * self._shape(self.step, q.ndim)).astype(np.float32)

    def to_bytes(self) -> bytes:
        """``lo`` and ``hi`` as little-endian float16 (:meth:`fit` rounds them outwards to
        float16, so the stored range is exact and still covers every value)."""
        return self.lo.astype("<f2").tobytes() + self.hi.astype("<f2").tobytes()

    @classmethod
    def from_bytes(cls, bits: int, channels: int, data: bytes) -> "UniformQuantizer":
        values = np.frombuffer(data, dtype="<f2", count=2 * channels).astype(np.float32)
        return cls(bits, values[:channels].copy(), values[channels:].copy())

    @staticmethod
    def nbytes(channels: int) -> int:
        return 4 * channels


def _half(values: np.ndarray, direction: float) -> np.ndarray:
    """``values`` rounded to float16 towards ``direction`` (-inf: down, inf: up), as float32."""
    h = np.asarray(values, dtype=np.float32).astype(np.float16)
    wrong = (h > values) if direction < 0 else (h < values)
    h = np.where(wrong, np.nextafter(h, np.float16(direction)), h)
    return h.astype(np.float32)


def empirical_entropy(symbols: np.ndarray, per_channel: bool = True) -> float:
    """Empirical entropy in bits per symbol: of each channel's histogram (averaged over the
    channels, a factorised model as in Balle et al. 2017) or of the pooled histogram. This is
    the rate a static model fitted to these very symbols would reach, header excluded."""
    s = np.asarray(symbols)
    groups = [s[:, c].ravel() for c in range(s.shape[1])] if per_channel and s.ndim == 4 else [s.ravel()]
    total = 0.0
    for g in groups:
        counts = np.bincount(g.astype(np.int64))
        p = counts[counts > 0] / g.size
        total += float(-(p * np.log2(p)).sum()) * g.size
    return total / s.size


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: D401 - autograd signature
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class LatentQuantizer(nn.Module):
    """Quantise a latent [B, C, h, w] to ``bits`` per value, differentiably while training.

    ``mode`` ("noise" or "ste") picks the relaxation used in ``train()`` mode; ``eval()``
    always rounds. The range ``lo``/``hi`` [C] is a buffer set by :meth:`calibrate`, or a
    parameter when ``learn_range=True``. :meth:`to_uniform` hands the eval-mode quantiser to
    the file writer.
    """

    def __init__(
        self,
        channels: int,
        bits: int = 8,
        mode: str = "noise",
        learn_range: bool = False,
        init_range: tuple[float, float] = (-4.0, 4.0),
    ) -> None:
        super().__init__()
        if mode not in ("noise", "ste"):
            raise ValueError(f"mode must be 'noise' or 'ste'; found {mode!r}")
        self.bits, self.mode = check_bits(bits), mode
        lo = torch.full((channels,), float(init_range[0]))
        hi = torch.full((channels,), float(init_range[1]))
        if learn_range:
            self.lo, self.hi = nn.Parameter(lo), nn.Parameter(hi)
        else:
            self.register_buffer("lo", lo)
            self.register_buffer("hi", hi)

    @torch.no_grad()
    def calibrate(self, latent: torch.Tensor, percentiles: tuple[float, float] = (0.0, 100.0)) -> None:
        """Set the range from calibration latents [N, C, h, w] (min/max by default)."""
        z = latent.detach().transpose(0, 1).reshape(latent.shape[1], -1).float()
        q = torch.tensor([percentiles[0] / 100, percentiles[1] / 100])
        lo, hi = torch.quantile(z, q, dim=1)
        self.lo.copy_(lo)
        self.hi.copy_(torch.maximum(hi, lo + 1e-6))

    def step(self, bits: Optional[int] = None) -> torch.Tensor:
        """The per-channel step [1, C, 1, 1] at ``bits`` (default: the quantiser's own)."""
        levels = 1 << (self.bits if bits is None else check_bits(bits))
        return ((self.hi - self.lo).clamp_min(1e-6) / (levels - 1)).view(1, -1, 1, 1)

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """Integer symbols (float tensor holding integers) of ``z``, hard-rounded."""
        lo = self.lo.view(1, -1, 1, 1)
        return torch.round((z - lo) / self.step()).clamp(0, (1 << self.bits) - 1)

    def forward(self, z: torch.Tensor, bits: Optional[int] = None) -> torch.Tensor:
        """``z`` relaxed (train) or quantised (eval) on the grid of ``bits`` bits (default:
        the quantiser's own; a variable-rate codec draws it per batch while training)."""
        bits = self.bits if bits is None else check_bits(bits)
        lo, step = self.lo.view(1, -1, 1, 1), self.step(bits)
        u = (z - lo) / step
        if self.training and self.mode == "noise":
            u = u + torch.empty_like(u).uniform_(-0.5, 0.5)
        elif self.training:
            u = _RoundSTE.apply(u)
        else:
            u = torch.round(u)
        return lo + u.clamp(0, (1 << bits) - 1) * step

    def to_uniform(self) -> UniformQuantizer:
        return UniformQuantizer(self.bits, self.lo.detach().cpu().numpy(), self.hi.detach().cpu().numpy())

    def extra_repr(self) -> str:
        return f"channels={self.lo.numel()}, bits={self.bits}, mode={self.mode!r}"


def nominal_bpp(channels: int, reduction: int, bits: int) -> float:
    """Bits per pixel of ``bits``-bit symbols before entropy coding: ``C * b / r**2``."""
    return channels * bits / float(reduction) ** 2


__all__ = ["LatentQuantizer", "UniformQuantizer", "check_bits", "empirical_entropy", "nominal_bpp", "symbol_dtype"]
