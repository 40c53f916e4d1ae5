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
inputs to 24-layer MLPs of width 200 (Balduzzi Fig. 1's nets), plain against residual.
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
from .runs import RunSpec
from .stats import mean_spread

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

RADIUS = 2.0


def fit_rates(depths: list[int], lag1: list[float]) -> dict:
    """(a, b): R(1) ∝ 2^(−a·L) and R(1) ∝ L^(−b), least squares on the positive values."""
    d = np.asarray(depths, np.float64)
    r = np.asarray(lag1, np.float64)
    keep = r > 0
    if keep.sum() < 2:
        return dict(per_layer_log2=math.nan, power=math.nan)
    a = -np.polyfit(d[keep], np.log2(r[keep]), 1)[0]
    b = -np.polyfit(np.log(d[keep]), np.log(r[keep]), 1)[0]
    return dict(per_layer_log2=float(a), power=float(b))


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
        n["curves"].append(np.mean(curves, axis=0))
        progress.update()
    progress.close()
    results = []
    for n in per_net.values():
        m, s = mean_spread(n["lag1_seeds"])
        results.append(dict(model=n["model"], family=n["family"], shortcut=n["shortcut"], depth=n["depth"],
                            stage="init", lag1=m, lag1_sd=s, lag1_seeds=n["lag1_seeds"],
                            autocorrelation=np.mean(n["curves"], axis=0).tolist()))
    fits = {}
    for family in config.families:
        rows = sorted((r for r in results if r["family"] == family.label), key=lambda r: r["depth"])
        fits[family.label] = fit_rates([r["depth"] for r in rows], [r["lag1"] for r in rows])
    control = mlp_control(seeds, n_points)
    figure = plot_autocorrelation(results, study.path("shattered.png"))
    line = ", ".join(f"{r['model']} R(1) {r['lag1']:.2f} ± {r['lag1_sd']:.2f}" for r in results)
    return dict(results=results, fits=fits, control=control, points=n_points, radius=RADIUS, images=images,
                directions=directions, seeds=seeds, figures=[figure.name], line=f"centred, at init: {line}")
