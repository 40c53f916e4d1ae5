"""The Lee filter: the despeckling reference a SAR user tries first (Lee, "Digital image
enhancement and noise filtering by use of local statistics", IEEE TPAMI 1980; the adaptive
form of Lopes et al., IEEE TGRS 1990, eq. 3).

For L-look intensity ``I`` with local mean ``m`` and variance ``v`` over a ``size x size``
window, the speckle's coefficient of variation is ``Cu = 1 / sqrt(L)`` and the local one
``Ci = sqrt(v) / m``; the estimate is ``m + W (I - m)`` with ``W = clamp(1 - Cu^2 / Ci^2, 0, 1)``:
the mean in homogeneous areas (``Ci ~ Cu``), the pixel itself on edges and point targets.
The number of looks defaults to the ENL of the scene's most homogeneous windows.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def _box(x: torch.Tensor, size: int) -> torch.Tensor:
    pad = size // 2
    return F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), size, stride=1)


def lee_filter(intensity: np.ndarray, looks: Optional[float] = None, size: int = 7) -> np.ndarray:
    """Lee-filtered intensity [H, W] (float64); ``looks`` None: estimated by ENL."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"the Lee window must be odd and >= 3; found {size}")
    x = torch.from_numpy(np.asarray(intensity, dtype=np.float64))[None, None]
    if looks is None:
        from ..training.metrics import enl

        looks = float(enl(x[0, 0]).enl)
    if not looks > 0:
        raise ValueError(f"looks must be > 0; found {looks}")
    mean = _box(x, size)
    var = (_box(x * x, size) - mean * mean).clamp_min(0.0)
    ci2 = var / mean.clamp_min(1e-300) ** 2
    weight = (1.0 - (1.0 / looks) / ci2.clamp_min(1e-300)).clamp(0.0, 1.0)
    return (mean + weight * (x - mean))[0, 0].clamp_min(0.0).numpy()


__all__ = ["lee_filter"]
