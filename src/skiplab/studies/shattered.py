"""Shattered gradients (Balduzzi et al. 2017): how correlated the gradient of a net's output
with respect to its input stays along a line of nearby inputs, for plain and residual nets
of every depth at initialisation (Balduzzi Fig. 1-2), with a deep MLP as positive control.

Measured as Balduzzi measured it: the *centred* correlation (``centered=True``: the mean
gradient along the line removed) between neighbouring points, R(1), averaged over
``SHATTERED_IMAGES`` test images × ``SHATTERED_DIRECTIONS`` random directions of unit RMS
per pixel (t in [-r, r]) × ``SHATTERED_SEEDS`` initialisation seeds per depth; BatchNorm
uses the statistics of the line's points (Balduzzi's set-up). The decay with depth is
fitted per family -- plain nets as R(1) ∝ 2^(−a·L) (Balduzzi: a = 1), residual nets as
R(1) ∝ L^(−b) (Balduzzi: b = 1/2) -- and printed beside Balduzzi's rates. Control: 1-D
inputs to 24-layer MLPs of width 200 (Balduzzi Fig. 1's nets), plain against residual; it
is the regime gate (it must shatter the plain MLP and not the residual one).

The verdict is the paired difference of the per-layer rates a, plain minus residual, with
its bootstrap interval over init seeds and (image, direction) pairs
(:func:`~skiplab.studies.stats.bootstrap_function`): above 0 agrees with Balduzzi.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..analysis import shattered_gradients
from ..models import create_model
from . import thresholds as T
from .figures import plot_autocorrelation
from .progress import bar
from .regime import enough_seeds, smoke_run
from .runs import RunSpec
from .stats import bootstrap_function, mean_spread

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

RADIUS = 2.0


R_FLOOR = 1e-9   # R(1) at or below 0 (fully shattered) counts as this, so a log-rate stays defined


def fit_rates(depths: list[int], lag1: list[float]) -> dict:
    """(a, b): R(1) ∝ 2^(−a·L) and R(1) ∝ L^(−b), least squares on log R(1) (values floored
    at ``R_FLOOR``: a floored fit is a lower bound on the rate)."""
    d = np.asarray(depths, np.float64)
    r = np.maximum(np.asarray(lag1, np.float64), R_FLOOR)
    if len(d) < 2 or not np.isfinite(r).all():
        return dict(per_layer_log2=math.nan, power=math.nan)
    a = -np.polyfit(d, np.log2(r), 1)[0]
    b = -np.polyfit(np.log(d), np.log(r), 1)[0]
    return dict(per_layer_log2=float(a), power=float(b))


def rate_intervals(values: dict[tuple[str, int], np.ndarray], plain: str, res: str, depths: list[int]) -> dict:
    """Each family's fitted rates and the paired difference of the per-layer rates a (plain
    minus residual), with bootstrap intervals over init seeds and (image, direction) pairs."""
    groups = {f"{f}-{d}": values[(f, d)] for f in (plain, res) for d in depths}

    def rate(family: str, kind: str):
        return lambda m: fit_rates(depths, [m[f"{family}-{d}"] for d in depths])[kind]
    out = {f"{f}_{k}": bootstrap_function(groups, rate(f, k)) for f in (plain, res)
           for k in ("per_layer_log2", "power")}
    out["difference"] = bootstrap_function(groups, lambda m: rate(plain, "per_layer_log2")(m)
                                           - rate(res, "per_layer_log2")(m))
    return out


def control_gate(control: list[dict], quick: bool, seeds: int) -> list[str]:
    """Balduzzi's regime, checked on the positive control (the MLPs of his Fig. 1)."""
    reasons = smoke_run(quick) + enough_seeds(seeds)
    got = {c["model"].split("-")[0]: c["lag1"][0] for c in control}
    if not got.get("mlp_plain", 1.0) < T.SHATTERED_CONTROL_PLAIN_MAX:
        reasons.append(f"the positive control failed: the 24-layer plain MLP's R(1) is {got.get('mlp_plain'):.2f}, "
                       f"not below {T.SHATTERED_CONTROL_PLAIN_MAX:g} (Balduzzi Fig. 1: white noise)")
    if not got.get("mlp_residual", 0.0) > T.SHATTERED_CONTROL_RESIDUAL_MIN:
        reasons.append(f"the positive control failed: the 24-layer residual MLP's R(1) is "
                       f"{got.get('mlp_residual'):.2f}, not above {T.SHATTERED_CONTROL_RESIDUAL_MIN:g} "
                       f"(Balduzzi Fig. 1: brown noise)")
    return reasons


def mlp_control(seeds: int, n_points: int) -> list[dict]:
    """Balduzzi Fig. 1: 1-D inputs in [-2, 2] to 24-layer MLPs of 200 rectifiers with BatchNorm."""
    rows = []
    for kind in ("plain", "residual"):
        values = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            net = create_model(f"mlp_{kind}", depth=24, width=200, in_features=1, num_classes=1,
                               zero_init_residual=False)
            res = shattered_gradients(net, torch.zeros(1), n_points=n_points, radius=RADIUS, centered=True,
                                      direction=torch.ones(1), max_lag=2)
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
    x_all = torch.cat([b[0] for b in study.test_probe()])[:images]
    todo = [RunSpec(f, d, seed=config.seed + s) for f in config.families for d in config.depths for s in range(seeds)]
    per_net: dict[str, dict] = {}
    progress = bar(len(todo), "shattered gradients")
    for spec in todo:
        model = study.fresh(spec)
        values, curves = [], []
        for i, x0 in enumerate(x_all):
            for j in range(directions):
                res = shattered_gradients(model, x0, n_points=n_points, radius=RADIUS, max_lag=n_points // 4,
                                          centered=True, seed=1000 * i + j, norm_stats="line")
                values.append(res.summary()["lag1"])
                curves.append(res.autocorrelation)
        n = per_net.setdefault(spec.key, dict(model=spec.key, family=spec.family.label, shortcut=spec.family.shortcut,
                                              depth=spec.depth, stage="init", lag1_seeds=[], curves=[]))
        n["lag1_seeds"].append(float(np.mean(values)))
        n.setdefault("lag1_items", []).append(values)
        n["curves"].append(np.mean(curves, axis=0))
        progress.update()
    progress.close()
    results = []
    for n in per_net.values():
        m, s = mean_spread(n["lag1_seeds"])
        results.append(dict(model=n["model"], family=n["family"], shortcut=n["shortcut"], depth=n["depth"],
                            stage="init", lag1=m, lag1_sd=s, lag1_seeds=n["lag1_seeds"], lag1_items=n["lag1_items"],
                            autocorrelation=np.mean(n["curves"], axis=0).tolist(),
                            autocorrelation_seeds=[c.tolist() for c in n["curves"]]))
    fits = {}
    for family in config.families:
        rows = sorted((r for r in results if r["family"] == family.label), key=lambda r: r["depth"])
        fits[family.label] = fit_rates([r["depth"] for r in rows], [r["lag1"] for r in rows])
    control = mlp_control(seeds, n_points)
    plain = next((f.label for f in config.families if f.is_plain), None)
    res = next((f.label for f in config.families if f.is_residual), None)
    intervals = None
    if plain and res:
        values = {(r["family"], r["depth"]): np.asarray(r["lag1_items"]) for r in results}
        intervals = rate_intervals(values, plain, res, list(config.depths))
    figure = plot_autocorrelation(results, study.path("shattered.png"))
    line = ", ".join(f"{r['model']} R(1) {r['lag1']:.2f} ± {r['lag1_sd']:.2f}" for r in results)
    return dict(results=results, fits=fits, intervals=intervals, plain=plain, residual=res,
                regime=control_gate(control, quick, seeds), control=control, points=n_points, radius=RADIUS,
                images=images, directions=directions, seeds=seeds, figures=[figure.name],
                line=f"centred, at init: {line}")
