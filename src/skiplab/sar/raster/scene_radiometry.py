"""Radiometry that follows the scene: a per-scene log-domain offset and scale.

A checkpoint stores the :class:`~skiplab.sar.raster.radiometry.Radiometry` of its training data
(bounds in dB mapped to 0 and 1). A scene in another calibration -- digital numbers around
1e3-1e5 against linear power around 1e-2 -- lies 50 dB away from those bounds, and the fixed
mapping clips nearly every pixel to 0 or 1: the network then sees a constant image.

:func:`scene_radiometry` instead takes the bounds from the scene itself: the same percentiles
the checkpoint was fitted with (default 0.5 / 99.5 %) of ``10 log10(I)`` over the scene's
valid, positive pixels, and an ``eps`` tied to the lower bound (``eps = 10 ** ((low - 60) /
10)``: 60 dB below it, so it moves a pixel at the bound by 4e-6 dB and exact zeros land 60 dB
under the bound, clipped to 0). The mapping is then *covariant with the unit*:
multiplying the scene by ``k`` shifts both bounds and ``eps`` by ``10 log10 k`` dB, so the
normalised image -- and the reconstruction, up to the factor ``k`` -- is the same (tested
for k = 1e-4 and 1e4). The offset and scale are written into the latent file.

:func:`check_in_range` is the guard for the checkpoint's fixed radiometry (``--radiometry
model``): the fraction of valid pixels outside the model's bounds, refused with one line
above :data:`MAX_OUTSIDE_FRACTION`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .io import valid_mask
from .radiometry import Radiometry

DEFAULT_PERCENTILES = (0.5, 99.5)
#: Percentile bounds put 1 % of the training pixels outside [0, 1] by construction; a scene
#: with 10x that outside the model's fixed bounds is in another calibration or regime.
MAX_OUTSIDE_FRACTION = 0.10
MAX_SAMPLES = 1 << 22  # pixels used for the percentiles (strided rows of a large scene)
MODES = ("scene", "model")
EPS_BELOW_LOW_DB = 60.0  # the per-scene eps sits this far below the lower bound


def _sample_rows(data, max_samples: int = MAX_SAMPLES) -> np.ndarray:
    """Every k-th row of a (memory-mapped) raster, so at most ~``max_samples`` pixels."""
    height, width = data.shape[-2:]
    step = max(1, math.ceil(height * width / max_samples))
    return np.asarray(data[::step])


def scene_db_values(
    data, quantity: str, nodata: Optional[float] = None, model_quantity: str = "intensity"
) -> np.ndarray:
    """``10 log10(I)`` (float64) of the valid, strictly positive pixels of a raster sample."""
    block = _sample_rows(data)
    if np.iscomplexobj(block):
        block = np.abs(block)
    keep = valid_mask(block, nodata)
    values = np.asarray(block[keep], dtype=np.float64)
    if quantity == "amplitude" and model_quantity == "intensity":
        values = values**2
    values = values[values > 0]
    return 10.0 * np.log10(values)


def scene_radiometry(
    model: Radiometry,
    data,
    *,
    quantity: str = "intensity",
    nodata: Optional[float] = None,
    percentiles: Optional[tuple[float, float]] = None,
) -> Radiometry:
    """The model's mapping with bounds (and ``eps``) taken from the scene ``data``.

    ``percentiles`` default to the model's own (or 0.5 / 99.5 % for fixed bounds). The data
    type check of the model is dropped: a per-scene mapping serves any unit."""
    pct = percentiles or model.percentiles or DEFAULT_PERCENTILES
    db = scene_db_values(data, quantity, nodata, model.quantity)
    if db.size == 0:
        raise ValueError("every pixel is no-data or zero (no positive intensity): nothing to reconstruct")
    low, high = (float(v) for v in np.percentile(db, pct))
    if not high > low:
        low, high = low - 0.5, high + 0.5
    eps = 10.0 ** ((low - EPS_BELOW_LOW_DB) / 10.0)
    return dataclasses.replace(
        model,
        low_db=low,
        high_db=high,
        eps=eps,
        source_dtype=None,
        method="scene-percentile",
        percentiles=tuple(float(p) for p in pct),
    )


def outside_fraction(
    model: Radiometry, data, *, quantity: str = "intensity", nodata: Optional[float] = None
) -> tuple[float, float, float]:
    """(fraction of valid pixels outside the model's bounds, the scene's 0.5 and 99.5 % dB)."""
    block = _sample_rows(data)
    if np.iscomplexobj(block):
        block = np.abs(block)
    keep = valid_mask(block, nodata)
    values = np.asarray(block[keep], dtype=np.float64)
    if values.size == 0:
        return 0.0, math.nan, math.nan
    if quantity == "amplitude" and model.quantity == "intensity":
        values = values**2
    db = 10.0 * np.log10(values + model.eps)
    outside = float(np.mean((db < model.low_db) | (db > model.high_db)))
    lo, hi = np.percentile(db, DEFAULT_PERCENTILES)
    return outside, float(lo), float(hi)


def check_in_range(
    model: Radiometry,
    data,
    *,
    quantity: str = "intensity",
    nodata: Optional[float] = None,
    name: str = "the scene",
    limit: float = MAX_OUTSIDE_FRACTION,
) -> float:
    """``ValueError`` (one line) when more than ``limit`` of the valid pixels fall outside the
    model's fixed radiometry -- they would be clipped to 0 or 1. Returns the fraction."""
    frac, lo, hi = outside_fraction(model, data, quantity=quantity, nodata=nodata)
    if frac > limit:
        raise ValueError(
            f"{frac:.1%} of {name} lies outside the model's radiometry [{model.low_db:.1f}, "
            f"{model.high_db:.1f}] dB (the scene spans {lo:.1f} to {hi:.1f} dB at 0.5-99.5 %) "
            f"and would be clipped to a near-constant image; use --radiometry scene (per-scene "
            f"normalisation, the default) or rescale the scene to the training calibration"
        )
    return frac


def resolve_radiometry(
    model: Radiometry,
    data,
    mode: str = "scene",
    *,
    quantity: str = "intensity",
    nodata: Optional[float] = None,
    name: str = "the scene",
) -> Radiometry:
    """The mapping a scene goes through: ``"scene"`` (per-scene bounds) or ``"model"`` (the
    checkpoint's fixed bounds, refused by :func:`check_in_range` when they do not fit)."""
    if mode not in MODES:
        raise ValueError(f"radiometry mode must be one of {MODES}; found {mode!r}")
    if mode == "scene":
        return scene_radiometry(model, data, quantity=quantity, nodata=nodata)
    check_in_range(model, data, quantity=quantity, nodata=nodata, name=name)
    return model


__all__ = ["MAX_OUTSIDE_FRACTION", "check_in_range", "outside_fraction", "resolve_radiometry", "scene_radiometry"]
