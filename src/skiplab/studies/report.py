"""The study report: ``report.md`` (figures as PNG files beside it) and a self-contained
``report.html`` (figures embedded), one section per part, each with the set-up, the
numbers, the figures, the published result and whether this measurement agrees.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..train.precision import resolve_precision
from .document import Document
from .published import FINDINGS
from .verdict import Assessment, assess

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

HE_2015_STEPS = 64_000

SECTION_TITLES = {
    "degradation": "Degradation: plain and residual nets of growing depth (He et al. 2015, Fig. 6)",
    "gradients": "Gradient flow at initialisation and after training, with and without BatchNorm",
    "lesion": "Lesions: deleting blocks at test time (Veit et al. 2016)",
    "landscape": "Loss landscape (Li et al. 2018)",
    "shattered": "Shattered gradients (Balduzzi et al. 2017)",
}


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def command_line(study: "Study") -> str:
    c = study.config
    args = ["skiplab study"]
    if c.quick:
        args.append("--quick")
    args += [f"--data {c.data}", f"--depths {','.join(map(str, c.depths))}", f"--models {','.join(c.models)}",
             f"--parts {','.join(c.parts)}", f"--budget {c.budget.flag()}", f"--seed {c.seed}",
             f"--without-bn {c.without_bn}", f"--eval-images {c.eval_images}"]
    return " ".join(args)


def setup_section(doc: Document, study: "Study") -> None:
    c, s = study.config, study.state.data
    cal = s.get("calibration", {})
    steps = s.get("steps")
    doc.heading("Set-up")
    rows = [
        ("data", f"{c.data}: {len(study.train)} training and {len(study.test)} test images, "
                 f"{len(study.train.classes)} classes"),
        ("networks", ", ".join(f"{f.label} (`{f.model}`)" for f in c.families) + " at depths "
                     + ", ".join(map(str, c.depths))),
        ("recipe (all nets)", c.recipe.describe()),
        *([("recipe without BatchNorm", f"the same with lr {c.recipe.no_bn_lr:g} and the gradient norm clipped at "
                                        f"{c.recipe.no_bn_grad_clip:g} (both nets without BN; at lr 0.1 a 56-layer "
                                        f"ResNet without BN starts with a loss of thousands)")]
          if c.without_bn == "trained" and "gradients" in c.parts else []),
        ("budget", f"{c.budget} -> {steps} steps per network" +
                   (f" ({steps / cal['steps_per_epoch']:.2f} epochs)" if steps and cal.get("steps_per_epoch") else "")),
        ("measurements on", f"{c.eval_images} fixed training and {c.eval_images} fixed test images "
                            f"(unaugmented, evaluation mode)"),
        ("precision", f"training and evaluation {resolve_precision(c.precision, torch.device('cpu'))} "
                      f"(--precision {c.precision}); gradients in fp32"),
        ("initialisation", "He et al. 2015 (Kaiming normal convolutions, BatchNorm scale 1: no zero-initialised "
                           "residual branches)"),
        ("seed", str(c.seed)),
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                    f"{s.get('threads', '?')} torch thread(s), torch {torch.__version__}"),
        ("wall-clock", ", ".join(f"{k} {v:.0f} s" for k, v in s.get("timings", {}).items()) or "-"),
    ]
    if "step_seconds" in cal:
        rows.append(("step time (budget)", ", ".join(f"{k} {v:.3f} s" for k, v in cal["step_seconds"].items())))
    doc.table(["", ""], rows)
    if c.budget.kind == "minutes":
        doc.paragraph("Every network trains for the same number of steps: the minutes budget was turned into "
                      "steps by timing one training step of each network on this machine.")
    if steps and steps < HE_2015_STEPS:
        doc.paragraph(f"He et al. 2015 trained every CIFAR net for {HE_2015_STEPS:,} steps; this study trains "
                      f"{steps:,} ({100 * steps / HE_2015_STEPS:.2g}% of that), with the same schedule compressed "
                      f"into them. Compare the orderings and the shapes of the curves with the papers, not the "
                      f"final accuracies.")


def published_block(doc: Document, a: Assessment) -> None:
    f = FINDINGS[a.key]
    doc.paragraph(f"**Published** ({f.citation}, {f.where}): {f.detail}")
    verdict = {"agrees": "**Agrees** with the published result.",
               "disagrees": "**Disagrees** with the published result.",
               "partly": "**Partly agrees** with the published result.",
               "inconclusive": "**Inconclusive**: this measurement cannot confirm or contradict the published result.",
               "not measured": "**Not measured.**"}[a.status]
    doc.paragraph(f"**Measured here**: {a.measured}. {verdict}")
    if a.reasons:
        doc.items([f"likely reason: {r}" for r in a.reasons])


def degradation_section(doc: Document, res: dict, found: dict) -> None:
    rows = []
    for r in sorted(res["rows"], key=lambda r: (r["family"], r["depth"])):
        time = f"diverged at step {r['diverged']['step']}" if r.get("diverged") else f"{r['seconds']:.0f} s"
        rows.append([r["name"], f"{r['parameters']:,}", r["steps"], r["train_loss_end"], pct(r["train_error_end"]),
                     r["train_loss_eval"], pct(r["test_acc"]), time])
    doc.table(["network", "parameters", "steps", "training loss (end)", "training error (end)",
               "train loss (eval mode)", "test accuracy", "time"], rows)
    doc.paragraph("Training loss and error at the end are the mean over the last 10% of the steps (the training "
                  "curve's end, as He 2015 plot it, with augmentation and BatchNorm in training mode); the eval-mode "
                  "loss is on the fixed training images.")
    for fig in res["figures"]:
        doc.image(Path(fig), "training loss and error against steps, one column per family (He 2015 Fig. 6 layout)")
    for key in ("degradation_plain", "degradation_residual"):
        if key in found:
            published_block(doc, found[key])


def gradients_section(doc: Document, res: dict, found: dict) -> None:
    lo, hi = res["healthy_range"]
    rows = [[r["model"], "yes" if r["norm"] else "no", r["stage"] + (" (diverged)" if r.get("diverged") else ""),
             r["loss"], r["block_ratio"], r["trend"], r["first_last_ratio"]] for r in res["results"]]
    doc.table(["network", "BatchNorm", "weights", "loss", "‖∂L/∂x‖ first block / last block", "trend",
               "‖∂L/∂W‖ first layer / last layer"], rows)
    doc.paragraph(f"One fixed batch of {res['batch']} training images, training mode, fp32. Trend thresholds were "
                  f"fixed before measuring: a first/last block ratio below {lo:g} is 'vanishing', above {hi:g} "
                  f"'exploding', in between 'healthy'.")
    for fig in res["figures"]:
        doc.image(Path(fig), "gradient norms per layer and per block input; dashed: at init, solid: trained")
    for v in res["verdicts"]:
        setting = "with" if v["norm"] else "without"
        account = {"vanishing": "supports the vanishing-gradient account",
                   "not-vanishing": "does not support the vanishing-gradient account (the gradient does not decay)",
                   "mixed": "is mixed (vanishing at one stage, not at the other)"}[v["account"]]
        stuck = [r for r in res["results"] if r["model"] == v["model"] and r["stage"] == "trained"
                 and r["loss"] > 0.95 * math.log(res.get("classes", 10))]
        note = (f" Note: {v['model']} did not learn (its loss after training, {stuck[0]['loss']:.2f}, is at chance "
                f"level), so 'after training' is close to 'at initialisation' for it.") if stuck else ""
        doc.paragraph(f"**{setting} BatchNorm**: {v['model']}'s gradient is "
                      + ", ".join(f"{t} ({s})" for s, t in v["trends"].items()) + f" -- the measurement {account}."
                      + note)
    if "gradients" in found:
        published_block(doc, found["gradients"])


def lesion_section(doc: Document, res: dict, found: dict) -> None:
    rows = []
    for m in res["models"]:
        accuracies: dict[int, list[float]] = {}
        for r in m["random"]:
            accuracies.setdefault(r["k"], []).append(r["accuracy"])
        by_k = ", ".join(f"{k}: {pct(sum(a) / len(a))}" for k, a in sorted(accuracies.items()))
        rows.append([m["model"], pct(m["baseline"]["accuracy"]), m["deletable"], f"{100 * m['mean_drop']:.1f}",
                     f"{100 * m['max_drop']:.1f}", pct(m["mean_lesioned_accuracy"]), by_k or "-"])
    doc.table(["network", "accuracy", "deletable blocks", "mean drop, one block (points)", "worst drop",
               "mean accuracy, one block deleted", "accuracy with k random blocks deleted"], rows)
    doc.paragraph(f"On {res['images']} fixed test images; drops exclude the downsampling blocks (Veit 2016 report "
                  f"them apart). A residual block is deleted by keeping only its shortcut; a plain block (a pair of "
                  f"conv layers) by replacing it with the identity where it keeps its input's shape. "
                  f"k random deletions: {res['draws']} draws per k.")
    for fig in res["figures"]:
        doc.image(Path(fig), "accuracy after deleting one block (left) and k random blocks (right)")
    if "lesion" in found:
        published_block(doc, found["lesion"])


def landscape_section(doc: Document, res: dict, found: dict) -> None:
    rows = [[m["model"], m["origin_loss"], m["border_rise"], m["local_minima"], m["max_loss"]] for m in res["models"]]
    doc.table(["network", "loss at the trained weights", "border loss / centre loss", "local minima on the grid",
               "highest loss on the grid"], rows)
    doc.paragraph(f"Filter-normalised directions (Li 2018 Eq. 1), α, β in [-1, 1]; {res['points_1d']} points in 1-D, "
                  f"a {res['points_2d']}x{res['points_2d']} grid in 2-D, on {res['images']} fixed training images.")
    for fig in res["figures"]:
        doc.image(Path(fig), fig.replace("_", " ").removesuffix(".png"))
    if "landscape" in found:
        published_block(doc, found["landscape"])


def shattered_section(doc: Document, res: dict, found: dict) -> None:
    rows = [[r["model"], r["stage"], r["lag1"], r["correlation_length"]] for r in res["results"]]
    doc.table(["network", "weights", "autocorrelation at lag 1", "lags until below 0.5"], rows)
    doc.paragraph(f"Gradient of one output with respect to the input at {res['points']} points along a line through a "
                  f"test image (radius {res['radius']:g} normalised-pixel units, random direction).")
    for fig in res["figures"]:
        doc.image(Path(fig), "autocorrelation of input gradients against lag")
    if "shattered" in found:
        published_block(doc, found["shattered"])


SECTIONS = {"degradation": degradation_section, "gradients": gradients_section, "lesion": lesion_section,
            "landscape": landscape_section, "shattered": shattered_section}


def build_document(study: "Study", results: dict, verdict: list[str]) -> Document:
    doc = Document("skiplab study: what skip connections do, measured")
    doc.paragraph(f"Study directory `{study.dir}`, started {study.state.data['created']}. Reproduce with "
                  f"`{command_line(study)}`.")
    doc.heading("Verdict")
    doc.items(verdict, css="verdict")
    assessments = assess(study.config, results)
    found = {a.key: a for a in assessments}
    doc.heading("Published result and this measurement, side by side")
    doc.table(["claim", "published", "measured here", "agrees?"],
              [[f"{FINDINGS[a.key].short}, {FINDINGS[a.key].where}", FINDINGS[a.key].claim, a.measured,
                f"**{a.status}**"] for a in assessments])
    setup_section(doc, study)
    for i, part in enumerate(study.config.parts, 1):
        doc.heading(f"{i}. {SECTION_TITLES[part]}")
        SECTIONS[part](doc, results[part], found)
    doc.heading("Files")
    doc.paragraph("`study.json` (configuration, steps, per-run numbers, timings), `results/*.json` (every number of "
                  "every part), `runs/<network>/` (each training run: config.yaml, metrics.csv, steps.csv, "
                  "checkpoints), and the PNG figures above.")
    return doc


def write_report(study: "Study", results: dict, verdict: list[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into the study directory."""
    doc = build_document(study, results, verdict)
    # figures are named relative to the study directory
    doc.blocks = [(k, (study.dir / v[0], v[1]) if k == "image" else v) for k, v in doc.blocks]
    md, html_path = study.path("report.md"), study.path("report.html")
    md.write_text(doc.markdown())
    html_path.write_text(doc.html())
    return md, html_path
