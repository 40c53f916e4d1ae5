"""The study report's set-up section: data, networks, recipe, budget, seeds, machine, and the
thresholds fixed in :mod:`skiplab.evidence.thresholds` before the run."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

import torch

from ...evidence.document import Document
from ...train.precision import resolve_precision

if TYPE_CHECKING:  # pragma: no cover
    from ..study import Study

HE_2015_STEPS = 64_000


def setup_section(doc: Document, study: "Study") -> None:
    c, s = study.config, study.state.data
    cal = s.get("calibration", {})
    steps = s.get("steps")
    doc.heading("Set-up")
    rows = [
        (
            "data",
            f"{c.data}: {len(study.train)} training and {len(study.test)} test images, "
            f"{len(study.train.classes)} classes",
        ),
        (
            "networks",
            ", ".join(f"{f.label} (`{f.model}`)" for f in c.families) + " at depths " + ", ".join(map(str, c.depths)),
        ),
        (
            "recipe (all nets)",
            c.recipe.describe()
            + (
                "; residual nets of 110+ layers: lr 0.01 until the training "
                "error is below 80 % (He 2015's ResNet-110 warm-up)"
                if c.deepest >= 110
                else ""
            ),
        ),
        *(
            [
                (
                    "recipe without BatchNorm",
                    f"the same with lr {c.recipe.no_bn_lr:g} and the gradient norm clipped at "
                    f"{c.recipe.no_bn_grad_clip:g} (both nets without BN; at lr 0.1 a 56-layer "
                    f"ResNet without BN starts with a loss of thousands)",
                )
            ]
            if c.without_bn == "trained" and "gradients" in c.parts
            else []
        ),
        (
            "budget",
            f"{c.budget} -> {steps} steps per network"
            + (f" ({steps / cal['steps_per_epoch']:.2f} epochs)" if steps and cal.get("steps_per_epoch") else ""),
        ),
        (
            "measurements on",
            f"{min(c.eval_images, len(study.train))} fixed training images and the whole test "
            f"split ({len(study.test)} images), unaugmented, in evaluation mode",
        ),
        (
            "precision",
            f"training and evaluation {resolve_precision(c.precision, torch.device('cpu'))} "
            f"(--precision {c.precision}); gradients in fp32",
        ),
        (
            "initialisation",
            "He et al. 2015 (Kaiming normal convolutions, BatchNorm scale 1: no zero-initialised residual branches)",
        ),
        (
            "seeds",
            f"{c.seeds} ({', '.join(map(str, c.seed_list))}): initialisation and batch order of every "
            f"network; the data and the measurement images are the same for all",
        ),
        (
            "machine",
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{s.get('threads', '?')} torch thread(s), torch {torch.__version__}",
        ),
        ("wall-clock", ", ".join(f"{k} {v:.0f} s" for k, v in s.get("timings", {}).items()) or "-"),
        (
            "machine load",
            f"1/5/15-minute load average {cal.get('load_average') or '?'} when the steps were fixed "
            f"(the CPU is shared: wall-clock figures depend on it, the steps do not)",
        ),
    ]
    if s.get("restated"):
        r = s["restated"]
        rows.append(
            (
                "restated",
                f"{r['at']} (commit {r.get('commit') or '?'}): every summary, interval and "
                f"verdict recomputed under that commit's rules from the measurements this study "
                f"kept; shattered gradients (at initialisation) measured again; nothing trained",
            )
        )
    if "step_seconds" in cal:
        rows.append(("step time (budget)", ", ".join(f"{k} {v:.3f} s" for k, v in cal["step_seconds"].items())))
    doc.table(["", ""], rows)
    if c.budget.kind == "minutes":
        doc.paragraph(
            f"Every network trains for the same number of steps: the minutes budget was turned into "
            f"steps once, by timing each network through the training loop on this machine, and "
            f"stored in `study.json`. To train exactly these steps elsewhere: `--steps {steps}`."
        )
    thresholds_section(doc)
    if steps and steps < HE_2015_STEPS:
        doc.paragraph(
            f"He et al. 2015 trained every CIFAR net for {HE_2015_STEPS:,} steps; this study trains "
            f"{steps:,} ({100 * steps / HE_2015_STEPS:.2g}% of that), with the same schedule compressed "
            f"into them. Compare the orderings and the shapes of the curves with the papers, not the "
            f"final accuracies."
        )


def thresholds_section(doc: Document) -> None:
    from ...evidence import thresholds

    doc.paragraph(
        "Thresholds, gates and interval settings were fixed in `skiplab.evidence.thresholds` before this "
        "run (each with its reason there) and are not tuned to any result: "
        + ", ".join(f"`{k}` = {v}" for k, v in thresholds.table())
        + "."
    )
