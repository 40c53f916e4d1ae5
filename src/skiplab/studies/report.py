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

from ..evidence import thresholds as T
from ..evidence.document import Document
from ..evidence.intervals import count_intervals, multiplicity_note
from ..train.precision import resolve_precision
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
             f"--parts {','.join(c.parts)}", f"--steps {study.state.steps}", f"--lengths {','.join(f'{x:g}' for x in c.lengths)}",
             f"--seed {c.seed}", f"--seeds {c.seeds}",
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
        ("recipe (all nets)", c.recipe.describe() + ("; residual nets of 110+ layers: lr 0.01 until the training "
                                                     "error is below 80 % (He 2015's ResNet-110 warm-up)"
                                                     if c.deepest >= 110 else "")),
        *([("recipe without BatchNorm", f"the same with lr {c.recipe.no_bn_lr:g} and the gradient norm clipped at "
                                        f"{c.recipe.no_bn_grad_clip:g} (both nets without BN; at lr 0.1 a 56-layer "
                                        f"ResNet without BN starts with a loss of thousands)")]
          if c.without_bn == "trained" and "gradients" in c.parts else []),
        ("budget", f"{c.budget} -> {steps} steps per network" +
                   (f" ({steps / cal['steps_per_epoch']:.2f} epochs)" if steps and cal.get("steps_per_epoch") else "")),
        ("measurements on", f"{min(c.eval_images, len(study.train))} fixed training images and the whole test "
                            f"split ({len(study.test)} images), unaugmented, in evaluation mode"),
        ("precision", f"training and evaluation {resolve_precision(c.precision, torch.device('cpu'))} "
                      f"(--precision {c.precision}); gradients in fp32"),
        ("initialisation", "He et al. 2015 (Kaiming normal convolutions, BatchNorm scale 1: no zero-initialised "
                           "residual branches)"),
        ("seeds", f"{c.seeds} ({', '.join(map(str, c.seed_list))}): initialisation and batch order of every "
                  f"network; the data and the measurement images are the same for all"),
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                    f"{s.get('threads', '?')} torch thread(s), torch {torch.__version__}"),
        ("wall-clock", ", ".join(f"{k} {v:.0f} s" for k, v in s.get("timings", {}).items()) or "-"),
        ("machine load", f"1/5/15-minute load average {cal.get('load_average') or '?'} when the steps were fixed "
                         f"(the CPU is shared: wall-clock figures depend on it, the steps do not)"),
    ]
    if s.get("restated"):
        r = s["restated"]
        rows.append(("restated", f"{r['at']} (commit {r.get('commit') or '?'}): every summary, interval and "
                                 f"verdict recomputed under that commit's rules from the measurements this study "
                                 f"kept; shattered gradients (at initialisation) measured again; nothing trained"))
    if "step_seconds" in cal:
        rows.append(("step time (budget)", ", ".join(f"{k} {v:.3f} s" for k, v in cal["step_seconds"].items())))
    doc.table(["", ""], rows)
    if c.budget.kind == "minutes":
        doc.paragraph(f"Every network trains for the same number of steps: the minutes budget was turned into "
                      f"steps once, by timing each network through the training loop on this machine, and "
                      f"stored in `study.json`. To train exactly these steps elsewhere: `--steps {steps}`.")
    thresholds_section(doc)
    if steps and steps < HE_2015_STEPS:
        doc.paragraph(f"He et al. 2015 trained every CIFAR net for {HE_2015_STEPS:,} steps; this study trains "
                      f"{steps:,} ({100 * steps / HE_2015_STEPS:.2g}% of that), with the same schedule compressed "
                      f"into them. Compare the orderings and the shapes of the curves with the papers, not the "
                      f"final accuracies.")


def thresholds_section(doc: Document) -> None:
    from ..evidence import thresholds
    doc.paragraph("Thresholds, gates and interval settings were fixed in `skiplab.evidence.thresholds` before this "
                  "run (each with its reason there) and are not tuned to any result: "
                  + ", ".join(f"`{k}` = {v}" for k, v in thresholds.table()) + ".")


def published_block(doc: Document, a: Assessment) -> None:
    f = FINDINGS[a.key]
    doc.paragraph(f"**Published** ({f.citation}, {f.where}): {f.detail}")
    verdict = {"agrees": "**Agrees** with the published result (the interval excludes the opposite).",
               "disagrees": "**Disagrees** with the published result (the interval excludes it).",
               "partly": "**Partly agrees** with the published result.",
               "unresolved": "**Unresolved**: the interval cannot tell.",
               "not in the paper's regime": "**No verdict: not in the paper's regime.**",
               "not measured": "**Not measured.**"}[a.status]
    doc.paragraph(f"**Measured here**: {a.measured}. {verdict}")
    if a.reasons:
        lead = "why" if a.status == "not in the paper's regime" else "likely reason"
        doc.items([f"{lead}: {r}" for r in a.reasons])


def lesion_gaps(per_seed: list[dict]) -> str:
    """'; plain-20 has no point at blocks 4, 7 (...)' for nets with blocks that cannot be deleted."""
    gaps = {}
    for m in per_seed:
        done = {r["index"] for r in m.get("single", [])}
        gaps.setdefault(m["key"], [i + 1 for i in range(int(m.get("units") or 0)) if i not in done])
    text = "; ".join(f"{k} has no point at block{'s' if len(v) > 1 else ''} {', '.join(map(str, v))}"
                     for k, v in gaps.items() if v)
    return (f"; {text}: a plain block that changes the shape has no identity to fall back on, so it cannot be "
            f"deleted") if text else ""


def degradation_section(doc: Document, res: dict, found: dict) -> None:
    from ..evidence.stats import interval_text, pm
    rows = []
    for key, n in sorted(res["networks"].items(), key=lambda kv: (kv[1].get("length", 1.0), kv[1]["family"],
                                                                   kv[1]["depth"])):
        steps = max(1, round(n.get("length", 1.0) * res["steps"]))
        rows.append([key, f"{n['parameters']:,}", steps, len(n["seeds"]), pm(n["train_error"], 100), pm(n["test_error"], 100),
                     pm(n["train_error_end"], 100), ", ".join(map(str, n["diverged"])) or "-"])
    doc.table(["network", "parameters", "steps", "seeds", "training error % (eval mode)", "test error %",
               "training error % (last 10% of steps, batches)", "diverged (seeds)"], rows)
    doc.paragraph(f"Mean ± standard deviation over seeds. Training error: evaluation mode on the fixed subset of "
                  f"{res['train_images']} training images; test error: the whole test split ({res['test_images']} "
                  f"images). A `-L50` network trained half the steps with its own schedule (a shorter training "
                  f"length). The last column is the training curve's end, on the augmented batches with BatchNorm "
                  f"in training mode.")
    p, r = res.get("plain"), res.get("residual")
    for steps, entry in sorted(res.get("lengths", {}).items(), key=lambda kv: int(kv[0])):
        items = []
        for split in ("train", "test"):
            c = entry[f"{split}_contrasts"]
            items += [f"{split} error, {p}-{res['deep']} minus {p}-{res['shallow']}: {interval_text(c[p])}",
                      f"{split} error, {r}-{res['deep']} minus {r}-{res['shallow']}: {interval_text(c[r])}",
                      f"**{split} error, interaction** (plain difference minus residual difference): "
                      f"{interval_text(c['interaction'])}"]
        if entry["regime"]:
            items.append("not in the paper's regime at this length: " + "; ".join(entry["regime"]))
        elif entry.get("residual_regime"):
            items.append("the residual row (converged nets) is not in the paper's regime at this length: "
                         + "; ".join(entry["residual_regime"]))
        doc.paragraph(f"After {int(steps):,} steps{' (the full length: the verdict)' if entry['length'] == 1.0 else ''}:")
        doc.items(items)
    doc.paragraph("Intervals: the t interval over seeds (n - 1 df) of the per-seed contrasts, with the shared "
                  "evaluation images' sampling error (the per-image paired contrast's standard error) added; "
                  "the per-seed values are in results.json.")
    for fig in res["figures"]:
        doc.image(Path(fig), "training loss (log scale) and batch training error against steps, one column per "
                             "family (He 2015 Fig. 6 layout); lines: mean over seeds, bands: their range")
    for key in ("degradation", "degradation_plain", "degradation_residual"):
        if key in found:
            published_block(doc, found[key])


def gradients_section(doc: Document, res: dict, found: dict) -> None:
    from ..evidence.stats import interval_text, mean_spread, pm
    band = res["slope_band"]
    groups: dict[tuple, list[dict]] = {}
    for r in res["results"]:
        groups.setdefault((r["key"], r["norm"], r["stage"]), []).append(r)
    rows = [[key, "yes" if norm else "no", stage, pm([r["loss"] for r in g], 1.0, ".3f"),
             f"{math.exp(sum(math.log(r['block_ratio']) for r in g) / len(g)):.3g}",
             "{:+.3f} ± {:.3f}".format(*mean_spread([r["slope"] for r in g])), len({r["seed"] for r in g})]
            for (key, norm, stage), g in groups.items()]
    doc.table(["network", "BatchNorm", "weights", "loss", "RMS ∂L/∂x first block / last block (geometric mean)",
               "fitted log10-slope per block (mean ± sd over seeds and batches)", "seeds"], rows)
    ci = lambda c: interval_text(c, 1.0, "", 3)  # noqa: E731
    doc.table(["BatchNorm", "weights", "plain slope", "residual slope", "plain minus residual"],
              [["yes" if v["norm"] else "no", v["stage"], ci(v["plain"]), ci(v["residual"]), ci(v["difference"])]
               for v in res["verdicts"]])
    doc.paragraph(f"{res.get('batches', 1)} fixed batches of {res['batch']} training images (the same for every net "
                  f"and seed), training mode, fp32; per-element RMS of the gradient entering each block, and per net, "
                  f"seed and batch its least-squares log10-slope against the block index (towards the output). "
                  f"'step N' is the run's snapshot at that step, 'trained' its end. Intervals: t over seeds with "
                  f"the batches' sampling error added. Fixed before measuring: a slope above +{band:g} is 'vanishing' (the gradient "
                  f"shrinks towards the input), below -{band:g} 'exploding'; He's 'healthy norms' agree when the "
                  f"intervals of the plain net's slope and of plain minus residual both lie inside ±{band:g} at "
                  f"every stage with BatchNorm, and disagree when either lies wholly outside, on either side.")
    for fig in res["figures"]:
        doc.image(Path(fig), "per-element gradient RMS per layer and per block input (log scale), from the output "
                             "(left) to the input (right): a line rising to the right grows towards the input "
                             "(exploding), a falling one vanishes; dashed: at init, dotted: snapshots during "
                             "training, solid: trained; lines: geometric mean over seeds and batches, bands: their "
                             "range, points: each seed")
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
    doc.paragraph(f"On the whole test split ({res['images']} images), every seed; drops exclude the downsampling "
                  f"blocks (Veit 2016 report them apart). A residual block is deleted by keeping only its shortcut; "
                  f"a plain block (a pair of conv layers) by replacing it with the identity where it keeps its "
                  f"input's shape. k random deletions, k = 1..{res['max_k']}: {res['draws']} draws per k over the seeds.")
    from ..evidence.stats import interval_text
    doc.items([f"{m['model']}: retained above-chance fraction after one deletion "
               f"{interval_text(m['retained_single'], 1.0, '', 2)} (seed spread and binomial error of each accuracy)"
               for m in res["models"] if m.get("retained_single")])
    for fig in res["figures"]:
        doc.image(Path(fig), "test accuracy after deleting one block (left) and k random blocks (right); lines: mean "
                             "over seeds (right: and draws), points: each seed (right: each draw), at 0: each "
                             "seed's accuracy with nothing deleted" + lesion_gaps(res.get("per_seed", [])))
    if "lesion" in found:
        published_block(doc, found["lesion"])


def landscape_section(doc: Document, res: dict, found: dict) -> None:
    rows = [[m["model"], m["origin_loss"], m["border_rise"], m["local_minima"], m["max_loss"]] for m in res["models"]]
    doc.table(["network", "loss at the trained weights", "border loss / centre loss", "local minima on the grid",
               "highest loss on the grid"], rows)
    doc.paragraph(f"Filter-normalised directions (Li 2018 Eq. 1), α, β in [-1, 1]; {res['points_1d']} points in 1-D, "
                  f"a {res['points_2d']}x{res['points_2d']} grid in 2-D, on {res['images']} fixed training images. "
                  f"The contours are a qualitative comparison only; the quantitative one is Li's |λmin/λmax|:")
    doc.table(["network", "|λmin / λmax| (mean ± sd over seeds)", "λmax per seed", "λmin per seed"],
              [[c["model"], f"{c['ratio'][0]:.3g} ± {c['ratio'][1]:.2g}",
                ", ".join(f"{r['lambda_max']:.3g}" for r in c["seeds"]),
                ", ".join(f"{r['lambda_min']:.3g}" for r in c["seeds"])] for c in res.get("curvature", [])])
    if res.get("contrast"):
        from ..evidence.stats import interval_text
        doc.paragraph(f"Plain minus residual |λmin/λmax|, paired over seeds: {interval_text(res['contrast'], 1.0, '', None)} "
                      f"(t interval over seeds; Li's claim agrees when it lies above +{res['margin']:g}).")
    for fig in res["figures"]:
        doc.image(Path(fig), fig.replace("_", " ").removesuffix(".png"))
    if "landscape" in found:
        published_block(doc, found["landscape"])


def shattered_section(doc: Document, res: dict, found: dict) -> None:
    floor = res.get("floor", 0.0)
    rows = [[r["model"], f"{r['lag1']:.3f} ± {r['lag1_sd']:.3f}", len(r["lag1_seeds"]),
             "at the floor" if r.get("at_floor") else "above"] for r in res["results"]]
    rows += [[f"control: {c['model']} (1-D input)", f"{c['lag1'][0]:.3f} ± {c['lag1'][1]:.3f}", c["seeds"], "-"]
             for c in res.get("control", [])]
    doc.table(["network (at init)", "centred correlation R(1), mean ± sd over seeds", "init seeds",
               f"against the white-noise floor {floor:+.4f}"], rows)
    fits = res.get("fits") or {}
    if fits:
        g = lambda v: f"{v:.3g}"  # noqa: E731
        doc.table(["family", "depths fitted", "depths at the floor", "a (2^-aL)", "b (L^-b)",
                   "RSS exponential", "RSS power law", "better fit"],
                  [[f, ", ".join(map(str, x.get("depths", []))) or "-",
                    ", ".join(map(str, x.get("at_floor", []))) or "-",
                    g(x["per_layer_log2"]), g(x["power"]), g(x.get("rss_exponential", float("nan"))),
                    g(x.get("rss_power", float("nan"))), x.get("better", "undetermined")] for f, x in fits.items()])
    iv = res.get("intervals")
    if iv:
        from ..evidence.stats import interval_text
        ci = lambda c: interval_text(c, 1.0, "", 3, "fewer than two depths above the floor")  # noqa: E731
        doc.table(["family", "rate a in R(1) ∝ 2^(-aL)", "Balduzzi", "power b in R(1) ∝ L^(-b)", "Balduzzi"],
                  [[f, ci(iv[f"{f}_per_layer_log2"]), "1 (plain)" if f == res["plain"] else "-",
                    ci(iv[f"{f}_power"]), "0.5 (ResNet)" if f == res["residual"] else "-"]
                   for f in (res["plain"], res["residual"])])
        doc.paragraph(f"Plain minus residual rate a: {ci(iv['difference'])}. Intervals: t over init seeds (n - 1 "
                      f"df) with the (image, direction) pairs' sampling error added (a jackknife within each seed). "
                      f"The fits are of R(1) minus the white-noise floor -1/(N-1) = {floor:+.4f} on the depths "
                      f"above it; a depth whose R(1) interval reaches the floor is fully shattered at this "
                      f"resolution and is left out, so a family's rate rests only on the depths listed.")
    doc.paragraph(f"Centred correlation (Balduzzi's) of the input gradient of one output between neighbouring points "
                  f"of {res['points']} along a line through a test image (radius {res['radius']:g} normalised-pixel "
                  f"units, random direction of unit RMS per pixel), averaged over {res['images']} images x "
                  f"{res['directions']} directions per init seed. The MLP control is Balduzzi Fig. 1's set-up "
                  f"(24 layers of 200 rectifiers with BatchNorm, 1-D input) and the gate: the plain one must shatter "
                  f"(R(1) below {T.SHATTERED_CONTROL_PLAIN_MAX:g}) and the residual one must not (above "
                  f"{T.SHATTERED_CONTROL_RESIDUAL_MIN:g}), or no verdict is given.")
    for fig in res["figures"]:
        doc.image(Path(fig), "centred autocorrelation of input gradients against lag (mean over images, directions "
                             "and seeds; band: the seeds' range, points: each seed); grey: white noise, "
                             f"{res.get('floor', -1 / (res['points'] - 1)):.4f} = −1/(N−1) on N = {res['points']} "
                             "line points, not 0")
    if "shattered" in found:
        published_block(doc, found["shattered"])


#: the contrast each part's verdict reads, named here before any run
HEADLINES = {"degradation": "degradation: the interaction of eval-mode training errors (plain deep - shallow minus "
                            "residual deep - shallow) at the full length",
             "gradients": "gradient flow: the plain net's log10-slope per block and plain minus residual, at each "
                          "stage with BatchNorm",
             "lesion": "lesions: each family's retained above-chance fraction after one deletion",
             "landscape": "loss landscape: plain minus residual |lmin/lmax| of the Hessian",
             "shattered": "shattered gradients: the fitted per-layer rate a, plain minus residual"}

SECTIONS = {"degradation": degradation_section, "gradients": gradients_section, "lesion": lesion_section,
            "landscape": landscape_section, "shattered": shattered_section}


def build_document(study: "Study", results: dict, verdict: list[str]) -> Document:
    doc = Document("skiplab study: what skip connections do, measured")
    doc.paragraph(f"Study directory `{study.dir}`, started {study.state.data['created']}. Reproduce with "
                  f"`{command_line(study)}`.")
    if study.config.quick:
        doc.paragraph("**SMOKE RUN (--quick)**: a few steps on a tiny task to check that everything runs. "
                      "The numbers below say nothing about skip connections and no claim is judged.")
    doc.heading("Verdict")
    doc.items(verdict, css="verdict")
    assessments = assess(study.config, results)
    found = {a.key: a for a in assessments}
    doc.heading("Published result and this measurement, side by side")
    doc.table(["claim", "published", "measured here", "agrees?"],
              [[f"{FINDINGS[a.key].short}, {FINDINGS[a.key].where}", FINDINGS[a.key].claim, a.measured,
                f"**{a.status}**"] for a in assessments])
    doc.paragraph(multiplicity_note([HEADLINES[p] for p in study.config.parts], count_intervals(results)))
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
