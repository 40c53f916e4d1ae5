"""SAR radiometry: amplitude <-> intensity, the log (dB) transform and the normalisation to
[0, 1] that a network sees -- with the exact inverse back to physical units.

The forward mapping of a raster holding ``quantity`` ("intensity" = power, or "amplitude")::

    I = x            (intensity)   or   I = x ** 2   (amplitude)
    d = 10 * log10(I + eps)                     # dB; eps makes exact zeros finite
    n = (d - low_db) / (high_db - low_db)       # [0, 1] inside the bounds
    n = clamp(n, 0, 1)                          # only if clip=True

and its inverse ``I = 10 ** (d / 10) - eps`` (clamped at 0), ``x = sqrt(I)`` for amplitude.
The arithmetic runs in float64, so ``inverse(forward(x)) == x`` to float32 rounding for every
pixel inside the bounds, exact zeros included (0 -> eps -> 10*log10(eps) -> 0). With
``clip=True`` pixels outside the bounds come back as the bound; use ``clip=False`` (values
slightly outside [0, 1]) when every pixel must survive the round trip.

**Epsilon.** ``eps`` (default ``1e-10``, i.e. -100 dB, in intensity units) is *added*, not used
as a floor: the log of a zero is ``10*log10(eps)``, and ``I + eps`` shifts a pixel of intensity
``I`` by ``10*log10(1 + eps/I)`` dB -- below 0.005 dB for ``I > 1e-7`` (the darkest real
pixels in ``../shared/data/sar-real``), so ``eps`` should sit well below the noise floor of
the data. Integer rasters (digital numbers) are treated the same way; their zeros usually
fall below ``low_db`` and clip.

**Bounds** are fixed (``Radiometry.fixed(low_db, high_db)``) or percentiles of the *training*
set (``Radiometry.fit(train_images, percentiles=(0.5, 99.5))``). The mapping is a small
object (:meth:`Radiometry.to_dict` / :meth:`Radiometry.from_dict`) saved in checkpoints so
inference uses exactly the training mapping; :meth:`Radiometry.check_compatible` refuses a
raster whose data type or quantity differs from the training data's.

NaN, infinite or negative intensities (or amplitudes) are refused with a ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]
QUANTITIES = ("intensity", "amplitude")
DEFAULT_EPS = 1e-10
MAX_PERCENTILE_SAMPLES = 1 << 24  # values drawn (deterministically) for percentiles


def _as_float64(x: Array) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if np.iscomplexobj(x):
            raise ValueError(
                "expected real-valued SAR data; found a complex array (convert a "
                "complex SLC to amplitude with numpy.abs or skiplab.sar.read_raster)"
            )
        return torch.from_numpy(np.asarray(x, dtype=np.float64))
    if x.is_complex():
        raise ValueError("expected real-valued SAR data; found a complex tensor")
    return x.detach().to(torch.float64) if x.dtype != torch.float64 else x


def _like(result: torch.Tensor, original: Array) -> Array:
    """Return ``result`` as float32 in the container type of ``original``."""
    if isinstance(original, np.ndarray):
        return result.to(torch.float32).numpy()
    dtype = original.dtype if original.is_floating_point() else torch.float32
    return result.to(device=original.device, dtype=dtype)


def check_nonnegative(x: Array, what: str = "intensity") -> None:
    """Raise ``ValueError`` if ``x`` holds NaN, infinite or negative values (counting them)."""
    t = torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x
    if t.is_complex():
        raise ValueError(f"expected real-valued {what}; found complex data")
    if not t.is_floating_point():
        if bool((t >= 0).all()):
            return
    elif bool(((t >= 0) & (t < math.inf)).all()):  # one pass; NaN fails ``>= 0``
        return
    t = t.double()
    nan = int(torch.isnan(t).sum())
    inf = int(torch.isinf(t).sum())
    neg = int((t < 0).sum())
    if nan or inf or neg:
        raise ValueError(
            f"{what} must be finite and >= 0; found {nan} NaN, {inf} infinite and "
            f"{neg} negative value(s) among {t.numel()} pixels (mask or fill no-data "
            f"pixels before the radiometric transform)"
        )


def amplitude_to_intensity(amplitude: Array) -> Array:
    """Intensity (power) ``I = A ** 2`` of an amplitude image (A >= 0)."""
    check_nonnegative(amplitude, "amplitude")
    return _like(_as_float64(amplitude).square(), amplitude)


def intensity_to_amplitude(intensity: Array) -> Array:
    """Amplitude ``A = sqrt(I)`` of an intensity image (I >= 0)."""
    check_nonnegative(intensity, "intensity")
    return _like(_as_float64(intensity).sqrt(), intensity)


def to_db(intensity: Array, eps: float = DEFAULT_EPS) -> Array:
    """``10 * log10(I + eps)``: intensity in decibels, exact zeros mapped to ``10*log10(eps)``."""
    check_nonnegative(intensity)
    return _like(torch.log10(_as_float64(intensity) + eps) * 10.0, intensity)


def from_db(db: Array, eps: float = DEFAULT_EPS) -> Array:
    """Inverse of :func:`to_db`: ``10 ** (d / 10) - eps``, clamped at 0."""
    return _like((torch.pow(10.0, _as_float64(db) / 10.0) - eps).clamp_min(0.0), db)


@dataclass(frozen=True)
class Radiometry:
    """The mapping between a physical SAR raster and the network's [0, 1] log-intensity.

    ``quantity``: what the rasters hold ("intensity" or "amplitude"); ``low_db``/``high_db``:
    the intensity bounds in dB mapped to 0 and 1; ``eps``: added to intensity before the log;
    ``clip``: clamp normalised values to [0, 1]; ``source_dtype``: numpy dtype name of the
    training rasters (None = unchecked); ``method``/``percentiles``: how the bounds were
    chosen (for the record).
    """

    low_db: float
    high_db: float
    quantity: str = "intensity"
    eps: float = DEFAULT_EPS
    clip: bool = True
    source_dtype: Optional[str] = None
    method: str = "fixed"
    percentiles: Optional[tuple[float, float]] = None

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"quantity must be one of {QUANTITIES}; found {self.quantity!r}")
        if not (math.isfinite(self.low_db) and math.isfinite(self.high_db) and self.high_db > self.low_db):
            raise ValueError(
                f"need finite bounds with high_db > low_db; found low_db={self.low_db}, high_db={self.high_db}"
            )
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0 (it makes log(0) finite); found {self.eps}")

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def fixed(cls, low_db: float, high_db: float, **kwargs) -> "Radiometry":
        """Bounds given in dB of intensity."""
        return cls(float(low_db), float(high_db), method="fixed", **kwargs)

    @classmethod
    def fit(
        cls,
        images: Iterable[Array] | Array,
        percentiles: tuple[float, float] = (0.5, 99.5),
        *,
        quantity: str = "intensity",
        eps: float = DEFAULT_EPS,
        clip: bool = True,
        source_dtype: Optional[str] = None,
        masks: Optional[Iterable[Array]] = None,
        seed: int = 0,
    ) -> "Radiometry":
        """Bounds at the given percentiles of the dB values of the TRAINING ``images`` (one
        array or an iterable of arrays, in ``quantity`` units). ``masks`` (same shapes, True =
        valid) leave no-data pixels out. ``(0, 100)`` takes the min and max, so every pixel
        round-trips exactly. Above 2**24 values the percentiles are taken on a deterministic
        random sample of 2**24 of them (seeded by ``seed``)."""
        lo, hi = (float(p) for p in percentiles)
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; found {percentiles}")
        if isinstance(images, (np.ndarray, torch.Tensor)):
            images = [images]
            masks = None if masks is None else [masks]
        images = list(images)
        masks = [None] * len(images) if masks is None else list(masks)
        if not images or len(masks) != len(images):
            raise ValueError(
                f"need at least one training image (and one mask per image); found "
                f"{len(images)} image(s), {len(masks)} mask(s)"
            )
        probe = cls(0.0, 1.0, quantity=quantity, eps=eps)
        values = []
        for image, mask in zip(images, masks):
            db = probe.to_db(image)
            if mask is not None:
                db = db[_as_float64(mask).to(torch.bool).expand_as(db)]
            values.append(db.reshape(-1))
        flat = torch.cat(values)
        if flat.numel() == 0:
            raise ValueError("no valid pixels to compute the normalisation percentiles from")
        if flat.numel() > MAX_PERCENTILE_SAMPLES:
            pick = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))
            flat = flat[pick[:MAX_PERCENTILE_SAMPLES]]
        q = torch.quantile(flat, torch.tensor([lo / 100, hi / 100], dtype=flat.dtype)).tolist()
        low, high = q
        if not high > low:  # a constant training set: open a 1 dB window around it
            low, high = low - 0.5, high + 0.5
        return cls(
            low,
            high,
            quantity=quantity,
            eps=eps,
            clip=clip,
            source_dtype=source_dtype,
            method="percentile",
            percentiles=(lo, hi),
        )

    # ---- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON/YAML-able dict (for checkpoints)."""
        d = asdict(self)
        d["percentiles"] = list(self.percentiles) if self.percentiles is not None else None
        return {"format": "skiplab.sar_radiometry/1", **d}

    @classmethod
    def from_dict(cls, d: dict) -> "Radiometry":
        d = dict(d)
        fmt = d.pop("format", "skiplab.sar_radiometry/1")
        if fmt != "skiplab.sar_radiometry/1":
            raise ValueError(f"unknown radiometry format {fmt!r}; expected 'skiplab.sar_radiometry/1'")
        if d.get("percentiles") is not None:
            d["percentiles"] = tuple(float(p) for p in d["percentiles"])
        try:
            return cls(**d)
        except TypeError as err:
            raise ValueError(f"bad radiometry dict {d!r}: {err}") from None

    # ---- the mapping -------------------------------------------------------------------
    @property
    def span_db(self) -> float:
        return self.high_db - self.low_db

    def intensity(self, x: Array) -> torch.Tensor:
        """Physical raster (``quantity`` units) -> float64 intensity, validated."""
        check_nonnegative(x, self.quantity)
        t = _as_float64(x)
        return t.square() if self.quantity == "amplitude" else t

    def to_db(self, x: Array) -> torch.Tensor:
        """Physical raster -> float64 dB of intensity (``10*log10(I + eps)``)."""
        return torch.log10(self.intensity(x) + self.eps) * 10.0

    def forward(self, x: Array) -> Array:
        """Physical raster -> normalised log-intensity (float32, same container as ``x``)."""
        n = (self.to_db(x) - self.low_db) / self.span_db
        if self.clip:
            n = n.clamp(0.0, 1.0)
        return _like(n, x)

    __call__ = forward

    def _intensity_from(self, n: Array) -> torch.Tensor:
        db = _as_float64(n) * self.span_db + self.low_db
        return (torch.pow(10.0, db / 10.0) - self.eps).clamp_min(0.0)

    def inverse_intensity(self, n: Array) -> Array:
        """Normalised log-intensity -> intensity (float32, same container as ``n``)."""
        return _like(self._intensity_from(n), n)

    def inverse(self, n: Array) -> Array:
        """Normalised log-intensity -> the physical ``quantity`` (intensity or amplitude)."""
        intensity = self._intensity_from(n)
        return _like(intensity.sqrt() if self.quantity == "amplitude" else intensity, n)

    def check_compatible(self, dtype: Union[str, np.dtype, None] = None, quantity: Optional[str] = None) -> None:
        """Raise ``ValueError`` if a raster of numpy ``dtype`` / ``quantity`` cannot be fed
        through this mapping: integer vs float data, a different integer type (uint8 DN vs
        uint16 DN are different scales), or amplitude vs intensity. Complex input is accepted
        where float was trained (SLC is read as amplitude)."""
        if quantity is not None and quantity != self.quantity:
            raise ValueError(f"the normalisation was fitted on {self.quantity} data; the input holds {quantity}")
        if dtype is None or self.source_dtype is None:
            return
        found, trained = np.dtype(dtype), np.dtype(self.source_dtype)
        kinds_ok = (found.kind in "fc" and trained.kind in "fc") or found == trained
        if not kinds_ok:
            raise ValueError(
                f"the normalisation was fitted on {trained.name} {self.quantity} "
                f"rasters; this raster is {found.name} -- its values are on a "
                f"different scale (convert it, or train on such data)"
            )

    def __repr__(self) -> str:
        how = f"percentiles={self.percentiles}" if self.method == "percentile" else "fixed"
        return (
            f"Radiometry({self.quantity}, [{self.low_db:.2f}, {self.high_db:.2f}] dB, {how}, "
            f"eps={self.eps:g}, clip={self.clip}, source_dtype={self.source_dtype})"
        )
