"""The rules of the study, each able to answer both ways, over per-seed statistics with the
intervals of :mod:`skiplab.evidence` and the thresholds of :mod:`skiplab.evidence.thresholds`
(``XIONG_*``, fixed before the first run).

At initialisation (Theorem 1 and Fig. 3; Xavier init only -- the theorem's assumption; the
t interval of :func:`~skiplab.evidence.seed_interval` over the seeds):

* post-LN, last layer independent of L: the slope of ``log ||g_L||`` against ``log L``
  (least squares over the depths, one per seed) holds if its interval lies inside
  ``0 +- XIONG_SLOPE_MARGIN``, is contradicted if it lies wholly outside, else undecided;
* pre-LN, last layer like ``1/sqrt(L)``: the same slope against ``-0.5 +- XIONG_SLOPE_MARGIN``;
* Fig. 3, post-LN grows with the layer index: ``log(||g_L|| / ||g_1||)`` at the deepest net
  holds if its interval lies above ``log XIONG_LAYER_RATIO``, contradicted if below it;
* Fig. 3, pre-LN level across layers: the same log ratio, inside ``+- log XIONG_LAYER_RATIO``.

Training (§3.3 / Fig. 2), per depth, over the paired per-seed differences of the final loss
without minus with the warm-up (:func:`~skiplab.evidence.paired_seed_interval`):

* post-LN needs the warm-up: holds if the interval lies above ``XIONG_LOSS_MARGIN``,
  contradicted if it lies below it;
* pre-LN trains without it: holds if the interval lies below ``XIONG_LOSS_MARGIN``,
  contradicted if above it.

Regime gate (the paper speaks of nets that train): the judged variant's warm-up runs reach
``XIONG_TRAINED_MIN_ACC`` top-1 (twice chance on 10 classes; twice chance where that is
more), mean over seeds. Every verdict needs ``MIN_SEEDS_FOR_VERDICT`` seeds; a smoke run
(``quick``) gives none. The no-skip nets have no claim in the paper: reported, not judged.
"""

from __future__ import annotations

import math

import numpy as np

from ...evidence import paired_seed_interval, seed_interval
from ...evidence import thresholds as T

NO_SEEDS = "no verdict (too few seeds)"
SMOKE = "no verdict (smoke run)"


def judge(interval: tuple[float, float], low: float, high: float) -> str:
    """holds: the interval inside [low, high]; contradicted: wholly outside; else undecided."""
    lo, hi = interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NO_SEEDS
    if low <= lo and hi <= high:
        return "holds"
    if hi < low or lo > high:
        return "contradicted"
    return "undecided"


def slope(depths: list[int], values: list[float]) -> float:
    """Least-squares slope of ``log values`` against ``log depths``."""
    return float(np.polyfit(np.log(depths), np.log(values), 1)[0])


def gradient_verdicts(last: dict, first_last_deep: dict, depths: list[int], quick: bool = False) -> list[dict]:
    """The four rules at initialisation.

    ``last[variant]``: per seed, the last layer's norm at each of ``depths``;
    ``first_last_deep[variant]``: per seed, (first layer's norm, last layer's norm) at the
    deepest net."""
    margin, ratio = T.XIONG_SLOPE_MARGIN, math.log(T.XIONG_LAYER_RATIO)
    out = []
    for variant, claim, centre in (
        ("post", "last-layer gradient independent of L", 0.0),
        ("pre", "last-layer gradient like 1/sqrt(L)", -0.5),
    ):
        if variant not in last:
            continue
        values = [slope(depths, per_depth) for per_depth in last[variant]]
        ci = seed_interval(values)
        out.append(
            dict(
                claim=f"{variant}-LN: {claim} (Theorem 1)",
                statistic="slope of log ||g_L|| vs log L",
                expected=centre,
                band=[centre - margin, centre + margin],
                per_seed=values,
                mean=float(np.mean(values)),
                interval=ci,
                verdict=judge(ci, centre - margin, centre + margin),
            )
        )
    for variant, claim, band in (
        ("post", "gradient grows with the layer index", (ratio, math.inf)),
        ("pre", "gradient level across layers", (-ratio, ratio)),
    ):
        if variant not in first_last_deep:
            continue
        values = [math.log(lastg / firstg) for firstg, lastg in first_last_deep[variant]]
        ci = seed_interval(values)
        out.append(
            dict(
                claim=f"{variant}-LN: {claim} (Fig. 3), depth {max(depths)}",
                statistic="log(||g_L|| / ||g_1||)",
                band=list(band),
                per_seed=values,
                mean=float(np.mean(values)),
                interval=ci,
                verdict=judge(ci, *band),
            )
        )
    seeds = min((len(v["per_seed"]) for v in out), default=0)
    for v in out:
        if quick:
            v["verdict"] = SMOKE
        elif seeds < T.MIN_SEEDS_FOR_VERDICT:
            v["verdict"] = NO_SEEDS
    return out


def trained_gate(num_classes: int) -> float:
    """The top-1 the judged variant's warm-up runs must reach: ``XIONG_TRAINED_MIN_ACC``
    (twice chance on 10 classes), or twice chance where that is more."""
    return max(T.XIONG_TRAINED_MIN_ACC, 2.0 / max(1, num_classes))


def training_verdicts(
    runs: list[dict],
    depths: list[int],
    seeds: list[int],
    num_classes: int = 10,
    quick: bool = False,
    variants: tuple = ("pre", "post"),
) -> list[dict]:
    """The two rules per depth over ``runs`` (dicts with variant, depth, warmup, seed,
    final_loss, val_acc) for the judged ``variants`` the study trains; a comparison short of
    seeds is "incomplete"."""

    def get(variant, depth, warmup, key):
        return [
            r[key]
            for s in seeds
            for r in runs
            if (r["variant"], r["depth"], bool(r["warmup"]), r["seed"]) == (variant, depth, warmup, s)
        ]

    margin, gate = T.XIONG_LOSS_MARGIN, trained_gate(num_classes)
    out = []
    for depth in depths:
        for variant, claim, band in (
            ("post", "needs the warm-up", (margin, math.inf)),
            ("pre", "trains without the warm-up", (-math.inf, margin)),
        ):
            if variant not in variants:
                continue
            name = f"{variant}-LN {claim}, depth {depth}"
            without, with_ = get(variant, depth, False, "final_loss"), get(variant, depth, True, "final_loss")
            if len(without) != len(seeds) or len(with_) != len(seeds):
                out.append(
                    dict(
                        claim=name,
                        in_regime=False,
                        verdict=f"incomplete ({min(len(without), len(with_))} of {len(seeds)} seeds)",
                    )
                )
                continue
            if not all(math.isfinite(v) for v in without + with_):
                out.append(
                    dict(
                        claim=name,
                        in_regime=False,
                        per_seed_without=without,
                        per_seed_with=with_,
                        verdict="no verdict (a run diverged: its final loss is not finite)",
                    )
                )
                continue
            ci = paired_seed_interval(without, with_)
            trained = float(np.mean(get(variant, depth, True, "val_acc")))
            in_regime = trained >= gate and len(seeds) >= T.MIN_SEEDS_FOR_VERDICT and not quick
            why = (
                "smoke run"
                if quick
                else "too few seeds"
                if len(seeds) < T.MIN_SEEDS_FOR_VERDICT
                else f"warm-up top-1 {100 * trained:.1f} % < {100 * gate:.0f} %: not trained"
            )
            out.append(
                dict(
                    claim=name,
                    statistic="final loss without - with warm-up (nats)",
                    per_seed=[a - b for a, b in zip(without, with_)],
                    mean=float(np.mean(without) - np.mean(with_)),
                    interval=ci,
                    band=[float(b) for b in band],
                    warmup_top1=trained,
                    in_regime=in_regime,
                    verdict=judge(ci, *band) if in_regime else f"no verdict (outside the regime: {why})",
                )
            )
    return out
