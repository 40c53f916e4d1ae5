"""Shattered gradients (Balduzzi et al. 2017): how correlated the gradient of a net's output
with respect to its input stays along a line of nearby inputs, for plain and residual nets
of every depth at initialisation (Balduzzi Fig. 1-2), with a deep MLP as positive control.

Measured as Balduzzi measured it: the *centred* correlation (``centered=True``: the mean
gradient along the line removed) between neighbouring points, R(1), averaged over
``SHATTERED_IMAGES`` test images × ``SHATTERED_DIRECTIONS`` random directions of unit RMS
per pixel (t in [-r, r]) × ``SHATTERED_SEEDS`` initialisation seeds per depth; BatchNorm
uses the statistics of the line's points (Balduzzi's set-up). The decay with depth is
fitted per family, both as R(1) ∝ 2^(−a·L) (Balduzzi's plain nets: a = 1) and as
R(1) ∝ L^(−b) (his ResNets: b = 1/2), printed beside Balduzzi's rates, and the two fits
compared where >= 3 depths lie above the white-noise floor. That floor is the centred R(1)
of white noise on N line points, about −1/(N−1), not 0: a depth whose R(1) interval reaches
it is reported "at the floor" and left out of the fits (its log-rate is undefined); no
constant stands in for it. The depths are ``SHATTERED_DEPTHS`` (8, 20, 56, 110, with the
study's own), measured at initialisation. Control: 1-D
inputs to 24-layer MLPs of width 200 (Balduzzi Fig. 1's nets), plain against residual; it
is the regime gate (it must shatter the plain MLP and not the residual one).

The verdict is the paired difference of the per-layer rates a, plain minus residual, with
its t interval over init seeds with the (image, direction) pairs' sampling error added
(:func:`~skiplab.evidence.stats.seed_function`): above 0 agrees with Balduzzi.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..analysis import shattered_gradients
from ..evidence import thresholds as T
from ..evidence.intervals import seed_interval_with_sampling
from ..evidence.stats import mean_spread, seed_function
from ..models import create_model
from .figures import plot_autocorrelation
from .progress import bar
from .regime import enough_seeds, smoke_run
from .runs import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

RADIUS = 2.0


def white_noise_floor(n_points: int) -> float:
    """The centred R(1) that white noise gives on ``n_points`` line points, about -1/(N-1):
    centring on the sample mean makes neighbouring deviations slightly anti-correlated, so a
    fully shattered gradient reads this, not 0."""
    return -1.0 / (n_points - 1)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, residual sum of squares) of the least-squares line of y on x."""
    slope, icpt = np.polyfit(x, y, 1)
    return float(slope), float(np.sum((y - (slope * x + icpt)) ** 2))


def fit_rates(depths: list[int], lag1: list[float], floor: float = 0.0) -> dict:
    """R(1) − floor ∝ 2^(−a·L) (exponential, Balduzzi's plain nets) and ∝ L^(−b) (power law,
    his ResNets), each a least-squares line on log(R(1) − floor), over ``depths``: the
    correlation beyond what white noise gives. The caller leaves out the depths at the floor
    (:func:`at_floor`); a value at or below it here makes the fit undefined (NaN), never a
    number set by a constant. With >= ``SHATTERED_MIN_FIT_DEPTHS`` depths the two fits are
    compared by their residual sums of squares on the same log scale (both have two
    parameters): ``better`` is the one with the smaller."""
    d = np.asarray(depths, np.float64)
    r = np.asarray(lag1, np.float64) - floor
    out = dict(
        per_layer_log2=math.nan,
        power=math.nan,
        rss_exponential=math.nan,
        rss_power=math.nan,
        better="undetermined",
        depths=[int(x) for x in depths],
    )
    if len(d) < 2 or not (np.isfinite(r).all() and (r > 0).all()):
        return out
    a, rss_exp = _line(d, np.log(r))
    b, rss_pow = _line(np.log(d), np.log(r))
    out.update(per_layer_log2=-a / math.log(2), power=-b, rss_exponential=rss_exp, rss_power=rss_pow)
    if len(d) >= T.SHATTERED_MIN_FIT_DEPTHS:
        out["better"] = "exponential" if rss_exp < rss_pow else "power law"
    return out


def at_floor(items: np.ndarray, floor: float, confidence: float = T.SHATTERED_FLOOR_CONFIDENCE) -> dict:
    """R(1) of one net over [seeds, items] with its seed interval (the items' shared sampling
    error added); ``at_floor`` when the interval reaches down to the white-noise floor."""
    v = np.asarray(items, np.float64)
    within = v.std(axis=1, ddof=1) / math.sqrt(v.shape[1]) if v.shape[1] > 1 else np.zeros(len(v))
    ci = seed_interval_with_sampling(v.mean(axis=1), within, confidence, items=v.shape[1])
    return dict(ci, floor=floor, at_floor=not ci["low"] > floor)


def fitted_depths(
    values: dict[tuple[str, int], np.ndarray],
    family: str,
    depths: list[int],
    floor: float,
    confidence: float = T.SHATTERED_FLOOR_CONFIDENCE,
) -> list[int]:
    """The depths of ``family`` whose R(1) lies above the white-noise floor."""
    return [d for d in depths if not at_floor(values[(family, d)], floor, confidence)["at_floor"]]


def rate_intervals(
    values: dict[tuple[str, int], np.ndarray],
    plain: str,
    res: str,
    depths: list[int],
    floor: float = 0.0,
    confidence: float = T.SHATTERED_FLOOR_CONFIDENCE,
) -> dict:
    """Each family's fitted rates over its depths above the floor and the paired difference
    of the per-layer rates a (plain minus residual), with t intervals over init seeds and the
    (image, direction) pairs' error added (:func:`~skiplab.evidence.stats.seed_function`).
    ``confidence``: the level of the at-the-floor decision only."""
    kept = {f: fitted_depths(values, f, depths, floor, confidence) for f in (plain, res)}
    groups = {f"{f}-{d}": values[(f, d)] for f in (plain, res) for d in kept[f]}

    def rate(family: str, kind: str):
        return lambda m: fit_rates(kept[family], [m[f"{family}-{d}"] for d in kept[family]], floor)[kind]

    out = {f"{f}_{k}": seed_function(groups, rate(f, k)) for f in (plain, res) for k in ("per_layer_log2", "power")}
    out["difference"] = seed_function(
        groups, lambda m: rate(plain, "per_layer_log2")(m) - rate(res, "per_layer_log2")(m)
    )
    out["fitted_depths"] = kept
    out["floor"] = floor
    return out


def control_gate(control: list[dict], quick: bool, seeds: int) -> list[str]:
    """Balduzzi's regime, checked on the positive control (the MLPs of his Fig. 1)."""
    reasons = smoke_run(quick) + enough_seeds(seeds)
    got = {c["model"].split("-")[0]: c["lag1"][0] for c in control}
    if not got.get("mlp_plain", 1.0) < T.SHATTERED_CONTROL_PLAIN_MAX:
        reasons.append(
            f"the positive control failed: the 24-layer plain MLP's R(1) is {got.get('mlp_plain'):.2f}, "
            f"not below {T.SHATTERED_CONTROL_PLAIN_MAX:g} (Balduzzi Fig. 1: white noise)"
        )
    if not got.get("mlp_residual", 0.0) > T.SHATTERED_CONTROL_RESIDUAL_MIN:
        reasons.append(
            f"the positive control failed: the 24-layer residual MLP's R(1) is "
            f"{got.get('mlp_residual'):.2f}, not above {T.SHATTERED_CONTROL_RESIDUAL_MIN:g} "
            f"(Balduzzi Fig. 1: brown noise)"
        )
    return reasons


def mlp_control(seeds: int, n_points: int) -> list[dict]:
    """Balduzzi Fig. 1: 1-D inputs in [-2, 2] to 24-layer MLPs of 200 rectifiers with BatchNorm."""
    rows = []
    for kind in ("plain", "residual"):
        values = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            net = create_model(
                f"mlp_{kind}", depth=24, width=200, in_features=1, num_classes=1, zero_init_residual=False
            )
            res = shattered_gradients(
                net, torch.zeros(1), n_points=n_points, radius=RADIUS, centered=True, direction=torch.ones(1), max_lag=2
            )
            values.append(res.summary()["lag1"])
        rows.append(dict(model=f"mlp_{kind}-24", lag1=mean_spread(values), seeds=seeds))
    return rows


def run(study: "Study") -> dict:
    config = study.config
    quick = config.quick
    n_points = 32 if quick else 128
    images = 2 if quick else T.SHATTERED_IMAGES
    directions = 1 if quick else T.SHATTERED_DIRECTIONS
    seeds = 2 if quick else T.SHATTERED_SEEDS
    depths = list(config.shattered_depths)
    floor = white_noise_floor(n_points)
    x_all = torch.cat([b[0] for b in study.test_probe()])[:images]
    todo = [RunSpec(f, d, seed=config.seed + s) for f in config.families for d in depths for s in range(seeds)]
    per_net: dict[str, dict] = {}
    progress = bar(len(todo), "shattered gradients")
    for spec in todo:
        model = study.fresh(spec)
        values, curves = [], []
        for i, x0 in enumerate(x_all):
            for j in range(directions):
                res = shattered_gradients(
                    model,
                    x0,
                    n_points=n_points,
                    radius=RADIUS,
                    max_lag=n_points // 4,
                    centered=True,
                    seed=1000 * i + j,
                    norm_stats="line",
                )
                values.append(res.summary()["lag1"])
                curves.append(res.autocorrelation)
        n = per_net.setdefault(
            spec.key,
            dict(
                model=spec.key,
                family=spec.family.label,
                shortcut=spec.family.shortcut,
                depth=spec.depth,
                stage="init",
                lag1_seeds=[],
                curves=[],
            ),
        )
        n["lag1_seeds"].append(float(np.mean(values)))
        n.setdefault("lag1_items", []).append(values)
        n["curves"].append(np.mean(curves, axis=0))
        progress.update()
    progress.close()
    results = []
    for n in per_net.values():
        m, s = mean_spread(n["lag1_seeds"])
        level = at_floor(np.asarray(n["lag1_items"]), floor)
        results.append(
            dict(
                model=n["model"],
                family=n["family"],
                shortcut=n["shortcut"],
                depth=n["depth"],
                stage="init",
                lag1=m,
                lag1_sd=s,
                lag1_seeds=n["lag1_seeds"],
                lag1_items=n["lag1_items"],
                lag1_low=level["low"],
                lag1_high=level["high"],
                at_floor=level["at_floor"],
                autocorrelation=np.mean(n["curves"], axis=0).tolist(),
                autocorrelation_seeds=[c.tolist() for c in n["curves"]],
            )
        )
    fits = {}
    for family in config.families:
        rows = sorted(
            (r for r in results if r["family"] == family.label and not r["at_floor"]), key=lambda r: r["depth"]
        )
        fits[family.label] = dict(
            fit_rates([r["depth"] for r in rows], [r["lag1"] for r in rows], floor),
            at_floor=sorted(r["depth"] for r in results if r["family"] == family.label and r["at_floor"]),
        )
    control = mlp_control(seeds, n_points)
    plain = next((f.label for f in config.families if f.is_plain), None)
    res = next((f.label for f in config.families if f.is_residual), None)
    intervals = None
    if plain and res:
        values = {(r["family"], r["depth"]): np.asarray(r["lag1_items"]) for r in results}
        intervals = rate_intervals(values, plain, res, depths, floor)
    figure = plot_autocorrelation(results, study.path("shattered.png"), floor=floor)
    line = ", ".join(f"{r['model']} R(1) {r['lag1']:.2f} ± {r['lag1_sd']:.2f}" for r in results)
    return dict(
        results=results,
        fits=fits,
        intervals=intervals,
        plain=plain,
        residual=res,
        regime=control_gate(control, quick, seeds),
        control=control,
        points=n_points,
        radius=RADIUS,
        images=images,
        directions=directions,
        seeds=seeds,
        figures=[figure.name],
        depths=depths,
        floor=floor,
        line=f"centred, at init: {line}",
    )
