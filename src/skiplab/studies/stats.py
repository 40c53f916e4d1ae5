"""The statistics of the verdicts: paired differences with bootstrap intervals over seeds
and evaluation images, mean ± spread over seeds, and binomial standard errors.

The unit of replication is the seed (each network trained once per seed, the compared
networks sharing the seeds: a paired design); within a seed, the evaluation images are a
sample from the test distribution. :func:`bootstrap_contrast` resamples both at once
(seeds with replacement, then images with replacement, the same draws for every network),
the two-stage bootstrap of Davison & Hinkley 1997 §3.8, and gives the percentile interval.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from .thresholds import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE


def wrong_matrix(correct: Sequence[str]) -> np.ndarray:
    """[seeds, images] 0/1 errors from per-seed '1'/'0' correctness strings."""
    return np.array([[c == "0" for c in s] for s in correct], dtype=np.float64)


def bootstrap_contrast(errors: Mapping[str, np.ndarray], weights: Mapping[str, float],
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       confidence: float = CONFIDENCE) -> dict:
    """A linear contrast Σ_n w_n · e_n of error rates and its interval.

    ``errors[n]``: [seeds, images] 0/1 errors of network n (the same seeds, in the same
    order, and the same images for every n); ``weights[n]``: its weight, e.g. +1/-1 for a
    paired difference, (+1, -1, -1, +1) for an interaction. Returns the estimate (means over
    seeds and images), the per-seed values, and the bootstrap percentile interval."""
    names = list(weights)
    stack = np.stack([errors[n] for n in names])             # [nets, seeds, images]
    w = np.array([weights[n] for n in names])
    per_seed = np.tensordot(w, stack.mean(axis=2), axes=1)   # [seeds]
    n_seeds, n_images = stack.shape[1:]
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for b in range(resamples):
        s = rng.integers(0, n_seeds, n_seeds)
        i = rng.integers(0, n_images, n_images)
        draws[b] = float(w @ stack[:, s][:, :, i].mean(axis=(1, 2)))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return dict(estimate=float(per_seed.mean()), per_seed=per_seed.tolist(), low=float(lo), high=float(hi),
                seeds=int(n_seeds), images=int(n_images), confidence=confidence)


def bootstrap_function(values: Mapping[str, np.ndarray], statistic: Callable[[Mapping[str, float]], float],
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       confidence: float = CONFIDENCE) -> dict:
    """Any statistic of the per-group means and its interval, by the same two-stage paired
    bootstrap as :func:`bootstrap_contrast` (seeds, then items, the same draws for every group).

    ``values[g]``: [seeds, items] measurements of group g (e.g. R(1) of one net at one depth
    per init seed and image-direction pair); ``statistic`` maps {group: mean} to a number
    (e.g. a fitted decay rate). ``per_seed``: the statistic of each seed's item means."""
    names = list(values)
    stack = np.stack([np.asarray(values[n], np.float64) for n in names])   # [groups, seeds, items]
    n_seeds, n_items = stack.shape[1:]

    def of(means: np.ndarray) -> float:
        return float(statistic(dict(zip(names, means.tolist()))))
    estimate = of(stack.mean(axis=(1, 2)))
    per_seed = [of(stack[:, s].mean(axis=1)) for s in range(n_seeds)]
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for b in range(resamples):
        s = rng.integers(0, n_seeds, n_seeds)
        i = rng.integers(0, n_items, n_items)
        draws[b] = of(stack[:, s][:, :, i].mean(axis=(1, 2)))
    draws = draws[np.isfinite(draws)]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha]) if len(draws) else (math.nan, math.nan)
    return dict(estimate=estimate, per_seed=per_seed, low=float(lo), high=float(hi), seeds=int(n_seeds),
                images=int(n_items), confidence=confidence)


def interaction(e: Mapping[str, np.ndarray], plain_deep: str, plain_shallow: str, res_deep: str,
                res_shallow: str, **kw) -> dict:
    """He 2015's contrast: [e(plain-deep) − e(plain-shallow)] − [e(res-deep) − e(res-shallow)]."""
    return bootstrap_contrast(e, {plain_deep: 1.0, plain_shallow: -1.0, res_deep: -1.0, res_shallow: 1.0}, **kw)


def difference(e: Mapping[str, np.ndarray], a: str, b: str, **kw) -> dict:
    """e(a) − e(b), paired over seeds and images."""
    return bootstrap_contrast(e, {a: 1.0, b: -1.0}, **kw)


def sign(interval: Mapping[str, float], margin: float = 0.0) -> str:
    """"positive" / "negative" when the interval lies above ``margin`` / below ``-margin``,
    else "unresolved"."""
    if interval["low"] > margin:
        return "positive"
    if interval["high"] < -margin:
        return "negative"
    return "unresolved"


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation over seeds; 0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when there are none: e.g. no step curve)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def pm(values: Sequence[float], scale: float = 1.0, fmt: str = ".1f") -> str:
    """'12.3 ± 0.4' (mean ± standard deviation over seeds, times ``scale``)."""
    m, s = mean_spread(values)
    return f"{scale * m:{fmt}} ± {scale * s:{fmt}}"


def interval_text(ci: Mapping[str, float], scale: float = 100.0, unit: str = " points",
                  digits: Optional[int] = 1) -> str:
    """'+3.1 points (95 % CI +1.2 to +5.0)'; ``digits=None``: three significant digits."""
    if not all(math.isfinite(ci[k]) for k in ("estimate", "low", "high")):
        return "undefined (a net at or below chance has no above-chance accuracy to keep)"
    f = f"+.{digits}f" if digits is not None else "+.3g"
    return (f"{scale * ci['estimate']:{f}}{unit} ({100 * ci['confidence']:.0f} % CI "
            f"{scale * ci['low']:{f}} to {scale * ci['high']:{f}})")


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else math.nan


def loglinear_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log10(y) against x (y > 0)."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = ys > 0
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(xs[keep], np.log10(ys[keep]), 1)[0])
