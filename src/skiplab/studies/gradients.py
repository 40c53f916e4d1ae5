"""Gradient flow of the deepest plain and residual nets, at initialisation and after
training, with and without BatchNorm -- the two accounts of the degradation problem.

The vanishing-gradient account predicts that in a deep plain net the gradient reaching
the first layers has decayed; He et al. 2015 (§4.1) argue that with BatchNorm the
backward signals "exhibit healthy norms" and the difficulty is one of optimisation.
Each net is measured for every seed (at initialisation: a fresh net of that seed; trained:
that seed's run) on a fixed batch of training images (a different one per seed), in
training mode (as in a training step: BatchNorm uses the batch statistics), in fp32, on a
copy of the model so nothing of the trained net changes. The quantity is the per-element
RMS of dL/dx entering each block (a Frobenius norm would grow with the tensor's size,
which differs between stages); the headline is its fitted log10-slope per block (least
squares over all blocks) and the first/last block ratio, mean ± sd over seeds. A slope
below -``GRADIENT_SLOPE_BAND`` is "vanishing", above +band "exploding" (thresholds in
:mod:`skiplab.studies.thresholds`).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from ..analysis import gradient_flow
from . import thresholds as T
from .figures import plot_gradient_flow
from .runs import RunSpec
from .stats import loglinear_slope, mean_spread

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

def classify(slope: float) -> str:
    """The trend of a fitted log10-slope per block (towards the output: the gradient at the
    input side is larger when the slope is negative)."""
    if not math.isfinite(slope):
        return "undefined"
    if slope > T.GRADIENT_SLOPE_BAND:       # grows towards the output = decays towards the input
        return "vanishing"
    if slope < -T.GRADIENT_SLOPE_BAND:
        return "exploding"
    return "healthy"


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Per-layer and per-block gradient norms of one training-mode step on a copy of ``model``."""
    net = copy.deepcopy(model).float().train()
    flow = gradient_flow(net, x, y)
    main = [r for r in flow.layers if not r["shortcut"]]
    blocks = [(b["index"], b["grad_rms"]) for b in flow.blocks]
    block_ratio = blocks[0][1] / blocks[-1][1] if len(blocks) >= 2 and blocks[-1][1] > 0 else math.nan
    slope = loglinear_slope([i for i, _ in blocks], [v for _, v in blocks])
    return dict(loss=flow.loss, first_last_ratio=flow.first_last_ratio, block_ratio=block_ratio,
                slope=slope, trend=classify(slope),
                layers=[(r["depth"], r["grad_norm"] / math.sqrt(r["numel"])) for r in main], blocks=blocks)


def verdict_for(results: list[dict], norm: bool) -> Optional[dict]:
    """Which account the plain net's measurement supports, for one BatchNorm setting."""
    plain = [r for r in results if r["norm"] == norm and r["shortcut"] == "none"]
    if not plain:
        return None
    stages = list(dict.fromkeys(r["stage"] for r in plain))
    slopes = {s: mean_spread([r["slope"] for r in plain if r["stage"] == s]) for s in stages}
    ratios = {s: float(np.exp(np.mean([np.log(r["block_ratio"]) for r in plain if r["stage"] == s])))
              for s in stages}
    trends = {s: classify(slopes[s][0]) for s in stages}
    values = set(trends.values())
    if values == {"vanishing"}:
        account = "vanishing"
    elif "vanishing" in values:
        account = "mixed"
    else:
        account = "not-vanishing"
    return dict(norm=norm, model=plain[0]["key"], trends=trends, account=account, ratios=ratios,
                slopes=slopes, seeds=len({r["seed"] for r in plain}))


def conditions(study: "Study") -> list[tuple[RunSpec, str]]:
    """(network, "init" | "trained") pairs to measure, deepest depth of every family."""
    config = study.config
    out = []
    for seed in config.seed_list:
        for family in config.families:
            settings = [True] + ([False] if config.without_bn != "off" else [])
            for norm in settings:
                spec = RunSpec(family, config.deepest, norm, seed)
                out.append((spec, "init"))
                if norm or config.without_bn == "trained":
                    out.append((spec, "trained"))
    return out


def run(study: "Study") -> dict:
    results = []
    for spec, stage in conditions(study):
        x, y = study.gradient_batch(spec.seed - study.config.seed)
        model = study.fresh(spec) if stage == "init" else study.trained(spec)
        row = dict(model=spec.name, key=spec.key, seed=spec.seed, family=spec.family.label,
                   shortcut=spec.family.shortcut, depth=spec.depth, norm=spec.norm, stage=stage,
                   **measure(model, x, y))
        if stage == "trained":
            row["diverged"] = study.state.run_summary(spec.name).get("diverged")
        results.append(row)
    figure = plot_gradient_flow(results, study.path("gradient_flow.png"))
    verdicts = [v for v in (verdict_for(results, True), verdict_for(results, False)) if v]
    return dict(results=results, verdicts=verdicts, batch=len(y), figures=[figure.name],
                classes=len(study.train.classes), slope_band=T.GRADIENT_SLOPE_BAND)
