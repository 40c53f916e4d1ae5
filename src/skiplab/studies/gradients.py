"""Gradient flow of the deepest plain and residual nets, at initialisation, at snapshots
during training and after it, with and without BatchNorm -- the two accounts of the
degradation problem.

The vanishing-gradient account predicts that in a deep plain net the gradient reaching
the first layers has decayed; He et al. 2015 (§4.1) argue that with BatchNorm the
backward signals "exhibit healthy norms" and the difficulty is one of optimisation.
Each net is measured for every seed (at initialisation: a fresh net of that seed; during
training: that seed's degradation run at its kept snapshots ``checkpoints/step-N.pt``,
``GRADIENT_SNAPSHOTS`` of the steps; trained: its final weights) on ``GRADIENT_BATCHES``
fixed batches of training images (the same for every net and seed: a crossed design), in
training mode (as in a training step: BatchNorm uses the batch statistics), in fp32, on a
copy of the model. The quantity is the per-element RMS of dL/dx entering each block (a
Frobenius norm would grow with the tensor's size, which differs between stages), and per
(net, seed, batch) its fitted log10-slope per block towards the output (least squares
over all blocks): above +``GRADIENT_SLOPE_BAND`` the gradient shrinks towards the input
("vanishing"), below -band it grows ("exploding").

The claim is the paired difference slope(plain) - slope(residual) at each stage, with its
t interval over seeds with the batches' sampling error added (:func:`~skiplab.evidence.stats.contrast`):
the vanishing-gradient account predicts it above the band, BatchNorm's gradient explosion
(Yang et al. 2019) below it, He's "healthy norms" inside; the verdict reads the plain net's
own slope against the same two-sided band (:func:`~skiplab.studies.verdict.gradient_stage`).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..analysis import gradient_flow
from ..evidence import thresholds as T
from ..evidence.stats import contrast, loglinear_slope
from .figures import plot_gradient_flow
from .regime import above_chance_gate, enough_seeds, smoke_run
from .runs import RunSpec, snapshot_steps

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study


def classify(slope: float) -> str:
    """The trend of a fitted log10-slope per block towards the output (a positive slope: the
    gradient is smaller at the input side)."""
    if not math.isfinite(slope):
        return "undefined"
    if slope > T.GRADIENT_SLOPE_BAND:
        return "vanishing"
    if slope < -T.GRADIENT_SLOPE_BAND:
        return "exploding"
    return "healthy"


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Per-layer and per-block gradient RMS of one training-mode step on a copy of ``model``."""
    net = copy.deepcopy(model).float().train()
    flow = gradient_flow(net, x, y)
    main = [r for r in flow.layers if not r["shortcut"]]
    blocks = [(b["index"], b["grad_rms"]) for b in flow.blocks]
    block_ratio = blocks[0][1] / blocks[-1][1] if len(blocks) >= 2 and blocks[-1][1] > 0 else math.nan
    slope = loglinear_slope([i for i, _ in blocks], [v for _, v in blocks])
    return dict(
        loss=flow.loss,
        first_last_ratio=flow.first_last_ratio,
        block_ratio=block_ratio,
        slope=slope,
        trend=classify(slope),
        layers=[(r["depth"], r["grad_norm"] / math.sqrt(r["numel"])) for r in main],
        blocks=blocks,
    )


def stage_name(step: int) -> str:
    return f"step {step}"


def stages(study: "Study") -> list[tuple[str, int | None]]:
    """(stage, step) measured on each run: init, the kept snapshots, the end ("trained")."""
    return [("init", None)] + [(stage_name(s), s) for s in snapshot_steps(study.state.steps)] + [("trained", None)]


def slope_matrix(results: list[dict], key: str, stage: str) -> np.ndarray:
    """[seeds, batches] fitted slopes of network ``key`` at ``stage``."""
    rows = [r for r in results if r["key"] == key and r["stage"] == stage]
    seeds, batches = sorted({r["seed"] for r in rows}), sorted({r["batch"] for r in rows})
    out = np.full((len(seeds), len(batches)), math.nan)
    for r in rows:
        out[seeds.index(r["seed"]), batches.index(r["batch"])] = r["slope"]
    return out


def contrasts(results: list[dict], plain: str, res: str, stage: str) -> dict | None:
    """The plain and residual slopes and their paired difference, with intervals over seeds
    and batches (None when a measurement is missing or not finite)."""
    a, b = slope_matrix(results, plain, stage), slope_matrix(results, res, stage)
    if a.size == 0 or a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    return dict(
        stage=stage,
        plain=contrast({plain: a}, {plain: 1.0}),
        residual=contrast({res: b}, {res: 1.0}),
        difference=contrast({plain: a, res: b}, {plain: 1.0, res: -1.0}),
    )


def run(study: "Study") -> dict:
    config = study.config
    batches = 2 if config.quick else T.GRADIENT_BATCHES
    data = [study.gradient_batch(b) for b in range(batches)]
    results, missing = [], []
    for seed in config.seed_list:
        for family in config.families:
            for norm in bn_settings(study):
                spec = RunSpec(family, config.deepest, norm, seed)
                trained = norm or config.without_bn == "trained"
                for stage, step in stages(study) if trained else [("init", None)]:
                    if stage == "init":
                        model = study.fresh(spec)
                    elif step is not None:
                        if not (study.run_dir(spec) / "checkpoints" / f"step-{step}.pt").is_file():
                            missing.append(
                                f"{spec.name} has no snapshot at step {step} (it diverged before, "
                                f"or a reused run kept none)"
                            )
                            continue
                        model = study.snapshot(spec, step)
                    else:
                        model = study.trained(spec)
                    for b, (x, y) in enumerate(data):
                        results.append(
                            dict(
                                model=spec.name,
                                key=spec.network,
                                seed=seed,
                                batch=b,
                                family=family.label,
                                shortcut=family.shortcut,
                                depth=spec.depth,
                                norm=norm,
                                stage=stage,
                                step=step,
                                **measure(model, x, y),
                            )
                        )
    return summarise(study, results, missing, batch=len(data[0][1]), batches=batches)


def bn_settings(study: "Study") -> list[bool]:
    """With BatchNorm always; without it unless ``--without-bn off``."""
    return [True] + ([False] if study.config.without_bn != "off" else [])


def summarise(study: "Study", results: list[dict], missing: list[str], batch: int, batches: int) -> dict:
    """The part's result from its per-(net, seed, batch, stage) measurements: the figure, the
    plain − residual contrasts at every stage and the regime. Re-run on kept measurements
    (:mod:`~skiplab.studies.restate`) it restates them under the current rules."""
    config = study.config
    figure = plot_gradient_flow(results, study.path("gradient_flow.png"))
    plain = next((f for f in config.families if f.is_plain), None)
    res = next((f for f in config.families if f.is_residual), None)
    verdicts = []
    for norm in bn_settings(study):
        if plain is None or res is None:
            break
        suffix = "" if norm else "-nobn"
        p, r = f"{plain.label}-{config.deepest}{suffix}", f"{res.label}-{config.deepest}{suffix}"
        for stage in dict.fromkeys(x["stage"] for x in results if x["norm"] == norm):
            c = contrasts(results, p, r, stage)
            if c is not None:
                verdicts.append(dict(c, norm=norm, plain_model=p, residual_model=r))
    trained = {x["model"] for x in results if x["stage"] == "trained" and x["norm"]}
    errors: dict[str, list[float]] = {}
    for name in sorted(trained):
        summary = study.state.run_summary(name)
        errors.setdefault(summary["network"], []).append(float(summary["train_error"]))
    regime = (
        smoke_run(config.quick)
        + enough_seeds(config.seeds)
        + above_chance_gate({k: float(np.mean(v)) for k, v in errors.items()}, study.chance)
        + [m for m in missing if "-nobn" not in m]
    )
    return dict(
        results=results,
        verdicts=verdicts,
        regime=regime,
        batch=batch,
        batches=batches,
        figures=[figure.name],
        classes=len(study.train.classes),
        slope_band=T.GRADIENT_SLOPE_BAND,
        missing=missing,
    )
