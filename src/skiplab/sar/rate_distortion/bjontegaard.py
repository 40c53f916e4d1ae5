"""Bjøntegaard delta rate and delta PSNR (G. Bjøntegaard, "Calculation of average PSNR
differences between RD-curves", ITU-T VCEG-M33, 2001).

Each curve (at least 4 points) is fitted by a cubic polynomial -- PSNR as a function of
log rate for BD-PSNR, log rate as a function of PSNR for BD-rate -- and the difference of the
two fits is averaged over the interval where both curves have data:

    BD-PSNR = (1 / (b - a)) * integral_a^b (P_test(r) - P_ref(r)) dr,    r = ln(rate)
    BD-rate = exp((1 / (d - c)) * integral_c^d (r_test(D) - r_ref(D)) dD) - 1

BD-rate < 0: the test codec needs fewer bits for the same quality (-0.2 = 20 % fewer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MIN_POINTS = 4


def _check(rate: Sequence[float], psnr: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    r, p = np.asarray(rate, dtype=np.float64), np.asarray(psnr, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1 or len(r) < MIN_POINTS:
        raise ValueError(
            f"{what}: need >= {MIN_POINTS} (rate, PSNR) points of equal count; "
            f"found {r.shape} rates and {p.shape} PSNRs"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(p)) and np.all(r > 0)):
        raise ValueError(f"{what}: rates must be positive and every value finite")
    order = np.argsort(r)
    return np.log(r[order]), p[order]


def _mean_difference(x_ref, y_ref, x_test, y_test) -> float:
    """Mean of (cubic fit of test - cubic fit of ref) over the overlap of the x ranges."""
    lo, hi = max(x_ref.min(), x_test.min()), min(x_ref.max(), x_test.max())
    if not hi > lo:
        raise ValueError("the two curves do not overlap: no Bjøntegaard delta")
    fit_ref = np.polyint(np.polyfit(x_ref, y_ref, 3))
    fit_test = np.polyint(np.polyfit(x_test, y_test, 3))
    area = np.polyval(fit_test, hi) - np.polyval(fit_test, lo) - np.polyval(fit_ref, hi) + np.polyval(fit_ref, lo)
    return float(area / (hi - lo))


def bd_psnr(
    rate_ref: Sequence[float], psnr_ref: Sequence[float], rate_test: Sequence[float], psnr_test: Sequence[float]
) -> float:
    """Average PSNR gain (dB) of the test curve over the reference at equal rate."""
    lr, pr = _check(rate_ref, psnr_ref, "reference curve")
    lt, pt = _check(rate_test, psnr_test, "test curve")
    return _mean_difference(lr, pr, lt, pt)


def bd_rate(
    rate_ref: Sequence[float], psnr_ref: Sequence[float], rate_test: Sequence[float], psnr_test: Sequence[float]
) -> float:
    """Average relative rate change of the test curve at equal PSNR (-0.2 = 20 % fewer bits)."""
    lr, pr = _check(rate_ref, psnr_ref, "reference curve")
    lt, pt = _check(rate_test, psnr_test, "test curve")
    return float(np.expm1(_mean_difference(pr, lr, pt, lt)))


__all__ = ["MIN_POINTS", "bd_psnr", "bd_rate"]
