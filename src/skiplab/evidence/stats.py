"""Paired contrasts of per-seed measurements with their seed-level intervals, and the small
summaries every report prints (mean ± spread, interval text).

The unit of replication is the seed (each network trained once per seed, the compared
networks sharing the seeds: a paired design); within a seed, the evaluation images are a
sample from the test distribution, shared by every seed. :func:`contrast` takes the
contrast per seed and gives the t interval over seeds with the images' sampling error
added (:func:`~skiplab.evidence.intervals.seed_interval_with_sampling`); :func:`seed_function`
does the same for any statistic of the per-group means, the items' error from a jackknife
within each seed. Every result keeps its per-seed values.
"""

from __future__ import annotations

import base64
import math
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from .intervals import binomial_se, seed_interval_with_sampling
from .thresholds import CONFIDENCE

__all__ = [
    "pack_correct",
    "unpack_correct",
    "wrong_matrix",
    "contrast",
    "seed_function",
    "interaction",
    "difference",
    "sign",
    "mean_spread",
    "nan_mean",
    "pm",
    "interval_text",
    "binomial_se",
    "loglinear_slope",
]


def pack_correct(correct: Sequence[bool]) -> dict:
    """Per-image correctness (a bool tensor or array, e.g. ``evaluate(..., per_image=True)
    ["correct"]``) stored packed for JSON: ``{"images": n, "packbits": base64}``, one bit an
    image (:func:`numpy.packbits`, big-endian bit order)."""
    bits = np.asarray(correct, dtype=bool).ravel()
    return {"images": int(bits.size), "packbits": base64.b64encode(np.packbits(bits)).decode("ascii")}


def unpack_correct(stored: "dict | str") -> np.ndarray:
    """The bool array :func:`pack_correct` stored; a '1'/'0' string (how earlier versions kept
    it) is read as well."""
    if isinstance(stored, str):
        return np.frombuffer(stored.encode("ascii"), dtype=np.uint8) == ord("1")
    bits = np.frombuffer(base64.b64decode(stored["packbits"]), dtype=np.uint8)
    return np.unpackbits(bits, count=stored["images"]).astype(bool)


def wrong_matrix(correct: Sequence["dict | str"]) -> np.ndarray:
    """[seeds, images] 0/1 errors from per-seed correctness (:func:`pack_correct`'s form, or
    '1'/'0' strings)."""
    return np.array([~unpack_correct(c) for c in correct], dtype=np.float64)


def contrast(errors: Mapping[str, np.ndarray], weights: Mapping[str, float], confidence: float = CONFIDENCE) -> dict:
    """A linear contrast Σ_n w_n · e_n of per-item measurements and its interval.

    ``errors[n]``: [seeds, items] measurements (0/1 errors, slopes per batch...) of network n
    (the same seeds, in the same order, and the same items for every n); ``weights[n]``: its
    weight, e.g. +1/-1 for a paired difference, (+1, -1, -1, +1) for an interaction. Each
    seed's value is the contrast of its item means; its item-sampling error is the standard
    error of the per-item contrast (paired over the items). Returns estimate, per_seed,
    low, high, seeds, images (the items), confidence, se, df."""
    names = list(weights)
    stack = np.stack([np.asarray(errors[n], np.float64) for n in names])  # [nets, seeds, items]
    w = np.array([weights[n] for n in names], np.float64)
    per_item = np.tensordot(w, stack, axes=1)  # [seeds, items]
    n_seeds, n_items = per_item.shape
    within = per_item.std(axis=1, ddof=1) / math.sqrt(n_items) if n_items > 1 else np.zeros(n_seeds)
    out = seed_interval_with_sampling(per_item.mean(axis=1), within, confidence, items=n_items)
    return dict(out, images=int(n_items))


def seed_function(
    values: Mapping[str, np.ndarray], statistic: Callable[[Mapping[str, float]], float], confidence: float = CONFIDENCE
) -> dict:
    """Any statistic of the per-group means (e.g. a fitted decay rate) with its interval:
    the statistic per seed (of that seed's item means), the t interval over seeds, and the
    items' shared sampling error from a leave-one-item-out jackknife within each seed.

    ``values[g]``: [seeds, items] measurements of group g (the same seeds and items for every
    group); ``statistic`` maps {group: mean} to a number. ``pooled``: the statistic of the
    means over seeds and items; ``estimate``: the mean of the per-seed values (the quantity
    the interval is for)."""
    names = list(values)
    stack = np.stack([np.asarray(values[n], np.float64) for n in names])  # [groups, seeds, items]
    n_seeds, n_items = stack.shape[1:]

    def of(means: np.ndarray) -> float:
        return float(statistic(dict(zip(names, means.tolist()))))

    per_seed = np.array([of(stack[:, s].mean(axis=1)) for s in range(n_seeds)])
    within = np.zeros(n_seeds)
    if n_items > 1:
        sums = stack.sum(axis=2)  # [groups, seeds]
        for s in range(n_seeds):
            jack = np.array([of((sums[:, s] - stack[:, s, i]) / (n_items - 1)) for i in range(n_items)])
            within[s] = math.sqrt((n_items - 1) / n_items * float(np.sum((jack - jack.mean()) ** 2)))
    out = seed_interval_with_sampling(per_seed, within, confidence, items=n_items)
    return dict(out, pooled=of(stack.mean(axis=(1, 2))), images=int(n_items))


def interaction(
    e: Mapping[str, np.ndarray], plain_deep: str, plain_shallow: str, res_deep: str, res_shallow: str, **kw
) -> dict:
    """He 2015's contrast: [e(plain-deep) − e(plain-shallow)] − [e(res-deep) − e(res-shallow)]."""
    return contrast(e, {plain_deep: 1.0, plain_shallow: -1.0, res_deep: -1.0, res_shallow: 1.0}, **kw)


def difference(e: Mapping[str, np.ndarray], a: str, b: str, **kw) -> dict:
    """e(a) − e(b), paired over seeds and images."""
    return contrast(e, {a: 1.0, b: -1.0}, **kw)


def sign(interval: Mapping[str, float], margin: float = 0.0) -> str:
    """ "positive" / "negative" when the interval lies above ``margin`` / below ``-margin``,
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


def interval_text(
    ci: Mapping[str, float],
    scale: float = 100.0,
    unit: str = " points",
    digits: Optional[int] = 1,
    undefined: str = "a net at or below chance has no above-chance accuracy to keep",
) -> str:
    """'+3.1 points (95 % CI +1.2 to +5.0)'; ``digits=None``: three significant digits;
    ``undefined``: why, when the estimate is not a number."""
    f = f"+.{digits}f" if digits is not None else "+.3g"
    if not math.isfinite(ci["estimate"]):
        return f"undefined ({undefined})"
    if not (math.isfinite(ci["low"]) and math.isfinite(ci["high"])):
        return f"{scale * ci['estimate']:{f}}{unit} (no interval: one seed)"
    return (
        f"{scale * ci['estimate']:{f}}{unit} ({100 * ci['confidence']:.0f} % CI "
        f"{scale * ci['low']:{f}} to {scale * ci['high']:{f}})"
    )


def loglinear_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log10(y) against x (y > 0)."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = ys > 0
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(xs[keep], np.log10(ys[keep]), 1)[0])
