"""The degradation experiment (He et al. 2015 §4.2, Fig. 6): plain and residual nets of
growing depth, trained with the same recipe for the same number of steps.

The study trains the runs (:mod:`skiplab.studies.runs`); this part gathers what they
measured -- the end-of-training loss and error, losses in evaluation mode on fixed
training and test images -- draws the training curves, and compares each family's
deepest net with the next shallower one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .figures import plot_degradation
from .runs import STEPS_FILE, read_steps

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

# a deeper net "ends higher/lower" when its loss differs by more than this factor
SAME_LOSS_TOLERANCE = 0.05


def compare(deep: dict, shallow: dict) -> dict:
    """How the deeper run ended against the shallower one, on the end-of-training loss."""
    ratio = deep["train_loss_end"] / shallow["train_loss_end"] if shallow["train_loss_end"] > 0 else math.nan
    if not math.isfinite(ratio) or deep.get("diverged"):
        outcome = "diverged" if deep.get("diverged") else "undefined"
    elif ratio > 1 + SAME_LOSS_TOLERANCE:
        outcome = "higher"
    elif ratio < 1 - SAME_LOSS_TOLERANCE:
        outcome = "lower"
    else:
        outcome = "same"
    return dict(deep=deep["name"], shallow=shallow["name"], deep_loss=deep["train_loss_end"],
                shallow_loss=shallow["train_loss_end"], ratio=ratio, outcome=outcome,
                deep_error=deep["train_error_end"], shallow_error=shallow["train_error_end"])


def run(study: "Study") -> dict:
    config = study.config
    rows, curves = [], {}
    for spec in study.runs():
        if not spec.norm:
            continue
        summary = study.state.run_summary(spec.name)
        rows.append(summary)
        steps = read_steps(study.run_dir(spec) / STEPS_FILE)
        curves[spec.name] = dict(family=spec.family.label, depth=spec.depth, step=[r["step"] for r in steps],
                                 loss=[r["loss"] for r in steps], acc=[r["acc"] for r in steps])
    figure = plot_degradation(curves, [f.label for f in config.families], study.path("degradation.png"))
    comparisons = {}
    for family in config.families:
        runs = sorted((r for r in rows if r["family"] == family.key), key=lambda r: r["depth"])
        if len(runs) >= 2:
            comparisons[family.key] = dict(compare(runs[-1], runs[-2]),
                                           losses={r["depth"]: r["train_loss_end"] for r in runs},
                                           monotonic=_monotonic([r["train_loss_end"] for r in runs]))
    return dict(rows=rows, comparisons=comparisons, figures=[figure.name], steps=study.state.steps,
                classes=len(study.train.classes))


def _monotonic(values: list[float]) -> str:
    """"rising", "falling" or "mixed": the end-of-training loss against depth."""
    pairs = list(zip(values, values[1:]))
    if all(b > a for a, b in pairs):
        return "rising"
    if all(b < a for a, b in pairs):
        return "falling"
    return "mixed"
