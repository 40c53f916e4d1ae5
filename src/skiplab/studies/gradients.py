"""Gradient flow of the deepest plain and residual nets, at initialisation and after
training, with and without BatchNorm -- the two accounts of the degradation problem.

The vanishing-gradient account predicts that in a deep plain net the gradient reaching
the first layers has decayed; He et al. 2015 (§4.1) argue that with BatchNorm the
backward signals "exhibit healthy norms" and the difficulty is one of optimisation.
Each net is measured on the same fixed batch of training images, in training mode (as
in a training step: BatchNorm uses the batch statistics), in fp32, on a copy of the
model so nothing of the trained net changes. The headline number of a net is the
*block ratio*: the norm of the gradient entering its first block over that entering
its last block. It is classified with thresholds fixed before any measurement:
below 1/10 "vanishing", above 10 "exploding", in between "healthy".
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Optional

import torch

from ..analysis import gradient_flow
from .figures import plot_gradient_flow
from .runs import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

HEALTHY_RANGE = (0.1, 10.0)


def classify(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "undefined"
    if ratio < HEALTHY_RANGE[0]:
        return "vanishing"
    if ratio > HEALTHY_RANGE[1]:
        return "exploding"
    return "healthy"


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Per-layer and per-block gradient norms of one training-mode step on a copy of ``model``."""
    net = copy.deepcopy(model).float().train()
    flow = gradient_flow(net, x, y)
    main = [r for r in flow.layers if not r["shortcut"]]
    blocks = [(b["index"], b["grad_norm"]) for b in flow.blocks]
    block_ratio = blocks[0][1] / blocks[-1][1] if len(blocks) >= 2 and blocks[-1][1] > 0 else math.nan
    return dict(loss=flow.loss, first_last_ratio=flow.first_last_ratio, block_ratio=block_ratio,
                trend=classify(block_ratio), layers=[(r["depth"], r["grad_norm"]) for r in main],
                blocks=blocks)


def verdict_for(results: list[dict], norm: bool) -> Optional[dict]:
    """Which account the plain net's measurement supports, for one BatchNorm setting."""
    plain = [r for r in results if r["norm"] == norm and r["shortcut"] == "none"]
    if not plain:
        return None
    trends = {r["stage"]: r["trend"] for r in plain}
    values = set(trends.values())
    if values == {"vanishing"}:
        account = "vanishing"
    elif "vanishing" in values:
        account = "mixed"
    else:
        account = "not-vanishing"
    return dict(norm=norm, model=plain[0]["model"], trends=trends, account=account,
                ratios={r["stage"]: r["block_ratio"] for r in plain})


def conditions(study: "Study") -> list[tuple[RunSpec, str]]:
    """(network, "init" | "trained") pairs to measure, deepest depth of every family."""
    config = study.config
    out = []
    for family in config.families:
        settings = [True] + ([False] if config.without_bn != "off" else [])
        for norm in settings:
            spec = RunSpec(family, config.deepest, norm)
            out.append((spec, "init"))
            if norm or config.without_bn == "trained":
                out.append((spec, "trained"))
    return out


def run(study: "Study") -> dict:
    x, y = study.gradient_batch()
    results = []
    for spec, stage in conditions(study):
        model = study.fresh(spec) if stage == "init" else study.trained(spec)
        row = dict(model=spec.name, family=spec.family.label, shortcut=spec.family.shortcut,
                   depth=spec.depth, norm=spec.norm, stage=stage, **measure(model, x, y))
        if stage == "trained":
            row["diverged"] = study.state.run_summary(spec.name).get("diverged")
        results.append(row)
    figure = plot_gradient_flow(results, study.path("gradient_flow.png"))
    verdicts = [v for v in (verdict_for(results, True), verdict_for(results, False)) if v]
    return dict(results=results, verdicts=verdicts, batch=len(y), figures=[figure.name],
                classes=len(study.train.classes),
                healthy_range=list(HEALTHY_RANGE))
