"""The skip-connection claims measured on the four He 2015 CIFAR-10 nets: the report.

The measurements are the study's own parts, run on the existing runs without training
(``configs/study_he2015_trained.yaml``, whose ``runs:`` names them):

    skiplab study --config configs/study_he2015_trained.yaml --threads 2 --out docs/studies/he2015-trained/study
    skiplab study --resume --threads 2 --out docs/studies/he2015-trained/study     # continue it

The study writes its own report when every part is finished. This script reads what it has
measured so far -- the runs' summaries, results/<part>.json of the finished parts and the lesion
evaluations kept one by one (results/lesion-<run>.evaluations.jsonl) -- and writes
``report.md``, ``results.json`` (every raw number) and the figures beside the study:

    python benchmarks/he2015_claims.py --study docs/studies/he2015-trained/study --out docs/studies/he2015-trained

One seed per net: by ``MIN_SEEDS_FOR_VERDICT`` no verdict is given; the report gives the numbers
and their within-run intervals (Wilson over the test images; t over the fixed gradient batches;
t over the random lesion draws) and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skiplab.evidence import thresholds as T  # noqa: E402
from skiplab.evidence.intervals import mean_interval, wilson_interval  # noqa: E402
from skiplab.studies.config import StudyConfig, existing_checkpoint  # noqa: E402
from skiplab.studies.regime import enough_seeds  # noqa: E402
from skiplab.studies.verdict import gradient_stage  # noqa: E402
from skiplab.train.precision import resolve_precision  # noqa: E402

NETS = {"resnet-56-s0": "ResNet-56", "plain-56-s0": "plain-56"}


def pct(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def ci_pct(ci) -> str:
    return f"[{pct(ci[0])}, {pct(ci[1])}]"


def wilson(acc: float, n: int) -> tuple[float, float]:
    return wilson_interval(int(round(acc * n)), n)


# -- lesions ----------------------------------------------------------------------------------
def lesion_replay(config: StudyConfig, name: str, path: Path, images: int) -> dict | None:
    """The lesion part's evaluations of one net, replayed in the part's own order (the same
    units and random draws) from the kept evaluations; missing ones are reported missing."""
    if not path.is_file():
        return None
    import torch
    from skiplab.analysis.lesion import is_deletable, lesion_random, lesion_units
    from skiplab.studies.lesions import Evaluations
    from skiplab.studies.runs import RunSpec
    from skiplab.studies.experiment import Run
    spec = RunSpec.from_run(Run(name.rsplit("-s", 1)[0], int(name.rsplit("-s", 1)[1])))
    import skiplab
    model = skiplab.load_trained(existing_checkpoint(config.runs[name])).model.eval()
    example = [(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long))]
    units = lesion_units(model, example)
    kept = Evaluations(path, model, example)
    missing = dict(accuracy=math.nan, loss=math.nan)

    def lookup(chosen):
        key = " ".join(u.name for u in chosen) or "(none)"
        return kept.done.get(key, missing)
    chance = 0.1
    base = lookup([])
    acc0 = base["accuracy"]
    retained = lambda a: (a - chance) / (acc0 - chance)  # noqa: E731
    deletable = [u for u in units if is_deletable(u)]
    single = []
    for u in deletable:
        r = lookup([u])
        if math.isfinite(r["accuracy"]):
            lo, hi = wilson(r["accuracy"], images)
            single.append(dict(u.row(), accuracy=r["accuracy"], loss=r["loss"], wilson=[lo, hi],
                               retained=retained(r["accuracy"]), retained_wilson=[retained(lo), retained(hi)]))
    candidates = [u for u in deletable if not u.downsampling]
    per_k = []
    for k in range(1, min(T.LESION_MAX_K, len(candidates)) + 1):
        rows = lesion_random(model, example, [k], draws=T.LESION_DRAWS, seed=spec.seed * 1000 + k, units=units,
                             measure=lookup)
        done = [r for r in rows if math.isfinite(r["accuracy"])]
        for r in done:
            lo, hi = wilson(r["accuracy"], images)
            r.update(wilson=[lo, hi], retained=retained(r["accuracy"]), retained_wilson=[retained(lo), retained(hi)])
        values = [r["retained"] for r in done]
        summary = dict(k=k, draws_done=len(done), draws=T.LESION_DRAWS, rows=done)
        if len(values) >= 2:
            summary.update(mean=float(np.mean(values)), sd=float(np.std(values, ddof=1)), min=min(values),
                           max=max(values), t_interval_over_draws=list(mean_interval(values)))
        elif values:
            summary.update(mean=values[0], min=values[0], max=values[0])
        per_k.append(summary)
    return dict(model=name, family=spec.family.label, depth=spec.depth, images=images, chance=chance,
                baseline=dict(accuracy=acc0, loss=base["loss"],
                              wilson=list(wilson(acc0, images)) if math.isfinite(acc0) else None),
                deletable=len(deletable), candidates=len(candidates), single=single, random=per_k,
                evaluations_kept=len(kept.done))


def lesion_figure(lesions: dict, out: Path) -> str | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = {k: v for k, v in lesions.items() if v and (v["single"] or any(r["draws_done"] for r in v["random"]))}
    if not shown:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, les) in enumerate(shown.items()):
        label, colour = NETS.get(name, name), f"C{i}"
        xs = [r["index"] for r in les["single"]]
        axes[0].errorbar(xs, [r["retained"] for r in les["single"]],
                         yerr=np.array([[r["retained"] - r["retained_wilson"][0] for r in les["single"]],
                                        [r["retained_wilson"][1] - r["retained"] for r in les["single"]]]),
                         fmt="o", ms=4, capsize=2, label=label, color=colour)
        for r in les["random"]:
            axes[1].scatter([r["k"]] * len(r["rows"]), [x["retained"] for x in r["rows"]], s=10, alpha=0.5,
                            color=colour)
        ks = [r["k"] for r in les["random"] if r.get("mean") is not None]
        axes[1].plot(ks, [r["mean"] for r in les["random"] if r.get("mean") is not None], "-o", ms=3, label=label,
                     color=colour)
    for ax in axes:
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.axhline(0.0, color="grey", lw=0.5, ls="--")
        ax.set_ylabel("retained above-chance fraction")
        ax.legend()
    axes[0].set_xlabel("deleted block (index in forward order)")
    axes[0].set_title("single deletions (Veit Fig. 3); Wilson 95 %")
    axes[1].set_xlabel("k random blocks deleted")
    axes[1].set_xlim(0.5, T.LESION_MAX_K + 0.5)
    axes[1].set_title("k random deletions (Veit Fig. 5a): draws and their mean")
    fig.tight_layout()
    fig.savefig(out / "lesion.png", dpi=110)
    plt.close(fig)
    return "lesion.png"


# -- loss landscape ---------------------------------------------------------------------------
def landscape_kept(results_dir: Path, names: list[str], out: Path) -> dict:
    """What the landscape part has kept so far per net -- its Hessian eigenvalues
    (results/hessian-<run>.json) and its 1-D and 2-D points -- and, for each complete 2-D grid,
    the contour figure (one colour scale for all nets, as the part draws them)."""
    from skiplab.analysis.landscape import Landscape, plot_contour
    from skiplab.studies.landscape import CONTOUR_MAX_LOSS, KeptPoints, border_rise, local_minima
    found, planes = {}, {}
    for name in names:
        h = results_dir / f"hessian-{name}.json"
        points = KeptPoints(results_dir / f"landscape-{name}.points.jsonl")
        found[name] = dict(hessian=json.loads(h.read_text()) if h.is_file() else None, points_2d=len(points),
                           points_1d=len(KeptPoints(results_dir / f"landscape-{name}.line.jsonl")))
        axis = sorted({a for a, _ in points})
        if len(axis) >= 2 and len(points) == len(axis) ** 2:
            loss = np.array([[points[a, b]["loss"] for a in axis] for b in axis])
            acc = np.array([[points[a, b]["accuracy"] for a in axis] for b in axis])
            planes[name] = Landscape(np.array(axis), loss, acc, np.array(axis))
            found[name].update(grid=len(axis), origin_loss=planes[name].value_at_origin(),
                               border_rise=border_rise(loss), local_minima=local_minima(loss), max_loss=float(loss.max()))
    if planes:
        low = min(float(p.loss.min()) for p in planes.values())
        high = max(min(CONTOUR_MAX_LOSS, max(float(p.loss.max()) for p in planes.values())), 1.001 * low + 1e-9)
        for name, plane in planes.items():
            found[name]["figure"] = plot_contour(plane, out / f"landscape_{name}.png", vmin=low, vmax=high,
                                                 title=f"{NETS.get(name, name)}: loss around the trained weights").name
    return found


# -- gradient flow --------------------------------------------------------------------------
def gradient_summary(grads: dict) -> dict:
    """Per net and stage: the fitted log10-slope per block towards the output of each fixed
    batch, their mean and t interval over the batches (within the one run), and where the
    two-sided band rule would put that interval."""
    band = grads["slope_band"]
    out = {}
    for r in grads["results"]:
        key = (r["key"], r["stage"])
        out.setdefault(key, []).append(r)
    rows = []
    for (key, stage), rs in out.items():
        slopes = [r["slope"] for r in rs]
        ci = mean_interval(slopes) if len(slopes) > 1 else (math.nan, math.nan)
        reading = ("vanishing" if ci[0] > band else "exploding" if ci[1] < -band
                   else "healthy" if -band < ci[0] and ci[1] < band else "unresolved")
        rows.append(dict(net=key, stage=stage, norm=rs[0]["norm"], batches=len(rs), slopes=slopes,
                         mean=float(np.mean(slopes)), interval_over_batches=list(ci), band_reading=reading,
                         first_last_ratio=float(np.mean([r["first_last_ratio"] for r in rs])),
                         block_ratio=float(np.mean([r["block_ratio"] for r in rs]))))
    diffs = []
    for stage in dict.fromkeys(r["stage"] for r in grads["results"] if r["norm"]):
        a = sorted((r for r in grads["results"] if r["key"] == "plain-56" and r["stage"] == stage), key=lambda r: r["batch"])
        b = sorted((r for r in grads["results"] if r["key"] == "resnet-56" and r["stage"] == stage), key=lambda r: r["batch"])
        if a and len(a) == len(b):
            d = [x["slope"] - y["slope"] for x, y in zip(a, b)]
            ci = mean_interval(d)
            own = next(r for r in rows if r["net"] == "plain-56" and r["stage"] == stage)["interval_over_batches"]
            # the study's two-sided rule (plain's own slope and plain - residual against the band), on
            # the within-run intervals
            reading = gradient_stage(dict(plain=dict(low=own[0], high=own[1]), difference=dict(low=ci[0], high=ci[1])),
                                     band)
            diffs.append(dict(stage=stage, differences=d, mean=float(np.mean(d)), interval_over_batches=list(ci),
                              stage_reading=reading))
    return dict(band=band, rows=rows, plain_minus_residual=diffs)


# -- the report ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="docs/studies/he2015-trained/study")
    p.add_argument("--out", default="docs/studies/he2015-trained")
    p.add_argument("--cpu-note", default="", help="a line on the CPU time and load of the measurement")
    args = p.parse_args(argv)
    study, out = Path(args.study), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = json.loads((study / "study.json").read_text())
    config = StudyConfig.from_dict(state["config"])
    results_dir = study / "results"
    parts = {part: json.loads((results_dir / f"{part}.json").read_text())
             for part in config.parts if state["parts"].get(part) == "done" and (results_dir / f"{part}.json").is_file()}
    images = 5000
    runs = {}
    for name, r in state["runs"].items():
        s = r["summary"]
        n_test, n_train = len(s["test_correct"]), len(s["train_correct"])
        images = n_test
        runs[name] = dict(checkpoint=s.get("reused"), steps=s["steps"], parameters=s["parameters"],
                          test_accuracy=1 - s["test_error"],
                          test_wilson=list(wilson_interval(s["test_correct"].count("1"), n_test)), test_images=n_test,
                          train_error_eval_mode=s["train_error"],
                          train_error_wilson=[1 - x for x in reversed(wilson_interval(s["train_correct"].count("1"), n_train))],
                          train_images=n_train, loss_plateau_drop=s.get("loss_plateau_drop"),
                          train_loss_end=s.get("train_loss_end"))
    lesions = {name: lesion_replay(config, name, results_dir / f"lesion-{name}.evaluations.jsonl", images)
               for name in NETS if name in config.runs}
    grads = gradient_summary(parts["gradients"]) if "gradients" in parts else None
    landscape = parts.get("landscape")
    kept_landscape = landscape_kept(results_dir, [n for n in NETS if n in config.runs], out)
    gate = enough_seeds(config.seeds)
    precision = resolve_precision(config.precision, torch.device("cpu"))
    figures = []
    lf = lesion_figure(lesions, out)
    if lf:
        figures.append(lf)
    for f in (parts.get("gradients", {}).get("figures", []) + (landscape or {}).get("figures", [])):
        if (study / f).is_file():
            (out / f).write_bytes((study / f).read_bytes())
            figures.append(f)
    raw = dict(config=state["config"], timings=state["timings"], runs=runs, lesions=lesions,
               gradients=dict(summary=grads, raw=parts.get("gradients")), landscape=landscape,
               landscape_kept=kept_landscape, precision=precision,
               regime=gate, figures=figures, thresholds=dict(T.table()))
    (out / "results.json").write_text(json.dumps(raw, indent=1, default=float))

    L = ["# The skip-connection claims on the He 2015 CIFAR-10 nets", ""]
    L += ["Four nets trained by He et al. 2015's own protocol (64k steps, batch 128, SGD lr 0.1 / 10 at 32k and "
          "48k, momentum 0.9, weight decay 1e-4, 4-px crops and flips, all 50k training images of the JPEG "
          "q75 copy; one seed each), measured by the skip-connection study's parts without training them "
          "again: `configs/study_he2015_trained.yaml` names the runs (`runs:`), the study folds them in as "
          "finished runs.", "",
          "**No verdict.** " + " ".join(gate) + f" (`MIN_SEEDS_FOR_VERDICT` = {T.MIN_SEEDS_FOR_VERDICT}). Every "
          "interval below is within one run: it carries the sampling of the test images, the fixed gradient "
          "batches or the random lesion draws, not the spread over training seeds.", ""]
    L += ["## Reproduce", "", "```",
          "skiplab study --config configs/study_he2015_trained.yaml --threads 2 --out docs/studies/he2015-trained/study",
          "skiplab study --resume --threads 2 --out docs/studies/he2015-trained/study   # continue an interrupted one",
          "python benchmarks/he2015_claims.py --study docs/studies/he2015-trained/study --out docs/studies/he2015-trained",
          "```", ""]
    if args.cpu_note:
        L += [args.cpu_note, ""]
    L += ["## The nets", "", "| run | checkpoint | test accuracy (5,000 images) | Wilson 95 % | eval-mode training error "
          "(2,000 fixed images) | loss drop over the last 10 % of epochs |", "|---|---|---:|---|---:|---:|"]
    for name, r in sorted(runs.items()):
        L.append(f"| {name} | `{r['checkpoint']}` | {pct(r['test_accuracy'], 2)} % | {ci_pct(r['test_wilson'])} | "
                 f"{pct(r['train_error_eval_mode'], 2)} % {ci_pct(r['train_error_wilson'])} | "
                 f"{pct(r['loss_plateau_drop'])} % |")
    L += ["", "## 1. Lesions (Veit et al. 2016)", "",
          f"Whole test split ({images:,} images), the study's precision `{config.precision}` (resolved on the CPU "
          f"that wrote this report: {precision}), BatchNorm in evaluation mode. Deleting a residual block keeps its shortcut only (the branch outputs zero); a "
          "downsampling block keeps its option-A zero-padding shortcut. Deleting a block of the plain net (its pair "
          "of conv layers, the twin of a residual block) replaces it by the identity, which only fits where the "
          "block keeps the shape of its input: the plain net's downsampling blocks cannot be deleted and are left "
          "out (`skiplab.analysis.lesion`). Random deletions draw k of the non-downsampling blocks, "
          f"{T.LESION_DRAWS} draws per k = 1..{T.LESION_MAX_K} (the part's own seeded draws). The number is the "
          "retained above-chance fraction (acc_k − 0.1) / (acc_0 − 0.1); its Wilson interval maps acc_k's Wilson "
          "interval with acc_0 held fixed (acc_0's own interval is given beside it). Over the draws: their mean, "
          "min–max, standard deviation and the t interval of the mean over the draws (which k-subsets were drawn; "
          "one net, so not the spread over seeds).", ""]
    measured = {name: les for name, les in lesions.items() if les is not None}
    if measured:
        L += ["### Retained above-chance fraction against k, both nets", "",
              "k = 1 is the mean over the single deletions of the non-downsampling blocks (every one, not a draw); "
              "k ≥ 2 is the mean over the random draws measured so far, with the t interval over those draws "
              "(`skiplab.evidence.intervals.mean_interval`: which k blocks were drawn) and the widest Wilson 95 % "
              "half-width of one draw (the sampling of the 5,000 test images, shared by every draw). One seed per "
              "net: these are readings of one trained net each, not a verdict over seeds.", "",
              "| k | " + " | ".join(f"{NETS[n]}: mean | t interval over draws | draws | Wilson half-width" for n in measured)
              + " |", "|---:|" + "---:|---|---:|---:|" * len(measured)]
        for k in range(1, T.LESION_MAX_K + 1):
            cells = []
            for les in measured.values():
                if k == 1:
                    rows = [r for r in les["single"] if not r["downsampling"]]
                    values = [r["retained"] for r in rows]
                    count = f"{len(rows)} blocks"
                else:
                    rows = next((r["rows"] for r in les["random"] if r["k"] == k), [])
                    values = [r["retained"] for r in rows]
                    count = f"{len(rows)} of {T.LESION_DRAWS}"
                if not values:
                    cells.append("not measured | | 0 | ")
                    continue
                ti = mean_interval(values) if len(values) > 1 else None
                half = max((r["retained_wilson"][1] - r["retained_wilson"][0]) / 2 for r in rows)
                cells.append(f"{np.mean(values):.3f} | " + (f"[{ti[0]:.3f}, {ti[1]:.3f}]" if ti else "n/a (one draw)")
                             + f" | {count} | ±{half:.3f}")
            L.append(f"| {k} | " + " | ".join(cells) + " |")
        L.append("")
    for name, les in lesions.items():
        label = NETS[name]
        if les is None:
            L += [f"**{label}**: not measured yet.", ""]
            continue
        b = les["baseline"]
        L += [f"### {label}", "", f"Baseline accuracy {pct(b['accuracy'], 2)} % (Wilson {ci_pct(b['wilson']) if b['wilson'] else 'n/a'}); "
              f"{les['deletable']} deletable blocks ({les['candidates']} without downsampling); "
              f"{les['evaluations_kept']} evaluations measured.", ""]
        if les["single"]:
            inner = [r for r in les["single"] if not r["downsampling"]]
            down = [r for r in les["single"] if r["downsampling"]]
            if inner:
                v = [r["retained"] for r in inner]
                L += [f"Single deletions, {len(inner)} of {les['candidates']} non-downsampling blocks measured: retained "
                      f"fraction mean {np.mean(v):.3f}, min {min(v):.3f} ({inner[int(np.argmin(v))]['block']}), "
                      f"max {max(v):.3f}; Wilson intervals wholly above `LESION_RETAINED_SMALL` = "
                      f"{T.LESION_RETAINED_SMALL} ('costs little'): "
                      f"{sum(r['retained_wilson'][0] > T.LESION_RETAINED_SMALL for r in inner)}, wholly below "
                      f"`LESION_RETAINED_COLLAPSE` = {T.LESION_RETAINED_COLLAPSE} ('collapses'): "
                      f"{sum(r['retained_wilson'][1] < T.LESION_RETAINED_COLLAPSE for r in inner)} of {len(inner)}."
                      + (" Downsampling blocks: " + ", ".join(f"{r['block']} {r['retained']:.3f}" for r in down) + "."
                         if down else ""), ""]
            L += ["| block | downsampling | accuracy | Wilson 95 % | retained | retained (Wilson) |", "|---|---|---:|---|---:|---|"]
            for r in les["single"]:
                L.append(f"| {r['block']} | {'yes' if r['downsampling'] else ''} | {pct(r['accuracy'], 2)} % | "
                         f"{ci_pct(r['wilson'])} | {r['retained']:.3f} | [{r['retained_wilson'][0]:.3f}, "
                         f"{r['retained_wilson'][1]:.3f}] |")
            L.append("")
        L += ["| k | draws measured | retained: mean | min – max | sd | t interval over draws |", "|---:|---:|---:|---|---:|---|"]
        left = [r["k"] for r in les["random"] if not r["draws_done"]]
        for r in les["random"]:
            if not r["draws_done"]:
                continue
            ti = r.get("t_interval_over_draws")
            L.append(f"| {r['k']} | {r['draws_done']} of {r['draws']} | {r['mean']:.3f} | {r['min']:.3f} – {r['max']:.3f} | "
                     f"{r.get('sd', math.nan):.3f} | " + (f"[{ti[0]:.3f}, {ti[1]:.3f}]" if ti else "n/a") + " |")
        if left:
            L.append(f"| {left[0]}–{left[-1]} | 0 of {T.LESION_DRAWS} each | not measured yet | | | |")
        if any(0 < r["draws_done"] < r["draws"] for r in les["random"]):
            L += ["", "A row with fewer draws than planned holds the draws measured before the run stopped: the first "
                  "draws in the part's seeded order, except that a draw repeating an evaluation already kept (k = 1 "
                  "draws are single deletions) is read from it, so a partial k = 1 row favours the blocks measured "
                  "first."]
        L.append("")
    if lf:
        L += [f"![lesions]({lf})", ""]
    L += ["## 2. Gradient flow (He 2015 §4.1)", ""]
    if grads is None:
        L += ["Not measured yet.", ""]
    else:
        L += [f"Per-element RMS of dL/dx entering each block, one training-mode step (BatchNorm with batch "
              f"statistics), fp32, on {parts['gradients']['batches']} fixed batches of "
              f"{parts['gradients']['batch']} training images; per batch the least-squares log10-slope per block "
              f"towards the output (positive: smaller at the input). At initialisation (a fresh net of seed 0) and "
              f"at the trained weights; the runs kept no mid-training snapshot. The two-sided band rule "
              f"(`GRADIENT_SLOPE_BAND` = ±{grads['band']:g} log10 per block) is applied to the t interval over the "
              f"batches: a reading of this one run, not a verdict (one seed).", "",
              "| net | stage | slope per batch | mean | t interval over batches | band reading | first/last layer ratio |",
              "|---|---|---|---:|---|---|---:|"]
        for r in grads["rows"]:
            L.append(f"| {r['net']} | {r['stage']} | {', '.join(f'{s:+.4f}' for s in r['slopes'])} | {r['mean']:+.4f} | "
                     f"[{r['interval_over_batches'][0]:+.4f}, {r['interval_over_batches'][1]:+.4f}] | {r['band_reading']} | "
                     f"{r['first_last_ratio']:.3g} |")
        L += ["", "The study's two-sided rule (`studies.verdict.gradient_stage`: the plain net's own slope interval and "
              "the plain − residual interval both inside the band = healthy; either wholly beyond one side = vanishing "
              "or exploding), applied to these within-run intervals -- what the rule would read, not a verdict:", "",
              "| stage | slope(plain-56) − slope(resnet-56), per batch | mean | t interval over batches | rule reads |",
              "|---|---|---:|---|---|"]
        for d in grads["plain_minus_residual"]:
            L.append(f"| {d['stage']} | {', '.join(f'{x:+.4f}' for x in d['differences'])} | {d['mean']:+.4f} | "
                     f"[{d['interval_over_batches'][0]:+.4f}, {d['interval_over_batches'][1]:+.4f}] | {d['stage_reading']} |")
        L.append("")
        if "gradient_flow.png" in figures:
            L += ["![gradient flow](gradient_flow.png)", ""]
    L += ["## 3. Loss landscape (Li et al. 2018)", "",
          "Hessian of the training loss at the trained weights on the study's fixed "
          f"{T.LANDSCAPE_IMAGES:,} training images (`LANDSCAPE_IMAGES`), BatchNorm in evaluation mode, fp32 (|λmin| "
          "can be orders of magnitude below λmax, Li 2018 Fig. 7; bf16's ~4e-3 relative error per product, "
          "relative to λmax, would be of that size). Both ends of the spectrum from one Lanczos run with full reorthogonalisation on "
          "forward-over-reverse Hessian-vector products (`skiplab.analysis.hessian`), all "
          f"{2 * T.HESSIAN_ITERATIONS} products per net; each Ritz value's residual bound says how far an "
          "eigenvalue of H can be from it -- not that none lies beyond it: the extreme Ritz values approach the "
          "ends from inside, so λmin is an upper bound on the true one, and the run never stops early on a "
          "small residual. The contour: 25×25 points in [−1, 1]² along two filter-normalised "
          f"random directions (Li 2018 Eq. 1, zero on biases and BatchNorm), each the mean loss on "
          f"{config.contour_images or T.LANDSCAPE_IMAGES:,} fixed training images without autograd; qualitative.", "",
          "| net | images | products | λmax (residual) | λmin (residual) | abs(λmin/λmax) | converged | contour points |",
          "|---|---:|---:|---|---|---:|---|---:|"]
    for name, k in kept_landscape.items():
        h = k["hessian"]
        if h is None:
            L.append(f"| {NETS[name]} | not measured yet | | | | | | {k['points_2d']} of 625 |")
            continue
        L.append(f"| {NETS[name]} | {h['images']:,} | {h['products']} | {h['lambda_max']:.4g} (±{h['lambda_max_residual']:.2g}) | "
                 f"{h['lambda_min']:.4g} (±{h['lambda_min_residual']:.2g}) | {h['ratio']:.4f} | {h['converged']} "
                 f"(tol {h['tol']:g}) | {k['points_2d']} of 625 |")
    L.append("")
    for name, k in kept_landscape.items():
        if "figure" in k:
            figures.append(k["figure"])
            L += [f"{NETS[name]}: loss at the centre {k['origin_loss']:.3f}, mean on the border / centre "
                  f"{k['border_rise']:.1f}, local minima on the grid {k['local_minima']}.", "",
                  f"![{k['figure']}]({k['figure']})", ""]
    L += ["## Not measured here", "",
          "- Shattered gradients (Balduzzi 2017) are measured at initialisation, so need no trained net; left out.",
          "- Degradation (He 2015 Fig. 6 / Table 6) of these nets is reported by `studies.he2015` "
          "(`benchmarks/he2015_table6.py`).", ""]
    L += ["## Thresholds", "", "Fixed in `skiplab.evidence.thresholds` before this run: "
          + ", ".join(f"`{k}` = {v}" for k, v in T.table() if k.startswith(("LESION", "GRADIENT", "LANDSCAPE", "HESSIAN", "MIN_SEEDS"))) + ".", ""]
    (out / "report.md").write_text("\n".join(L))
    print(f"wrote {out / 'report.md'}, {out / 'results.json'} and {len(figures)} figure(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
