"""The report of ``skiplab ablate autoencoder``: the verdict in numbers, the table, the
training curves and the reconstruction grid, as ``report.md`` (PNGs beside it) and a
self-contained ``report.html`` (the :class:`~skiplab.evidence.document.Document` of every report).

**When is a difference real?** Every variant is trained with the same seeds and evaluated on
the same tiles, so two variants are compared by their paired PSNR difference with a
t interval over seeds with the tiles' sampling error added (:func:`skiplab.evidence.stats.difference`): a
real difference when the interval excludes 0, otherwise "no significant difference". No
verdict at all in a ``--quick`` smoke run, with fewer than ``MIN_SEEDS_FOR_VERDICT`` seeds,
or when the best variant is within ``ABLATION_LEARNT_DB`` of a constant image (thresholds in
:mod:`skiplab.evidence.thresholds`, fixed before any run).
"""

from __future__ import annotations

import csv
import os
import platform
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ...evidence import thresholds as T
from ...evidence.document import Document
from ...evidence.intervals import count_intervals, multiplicity_note
from ...evidence.stats import difference, pm, sign
from ...studies.regime import enough_seeds, smoke_run
from .figures import plot_curves, plot_grid

WHERE = {
    "sar_codec_plain": "none",
    "sar_codec_bottleneck": "coarsest level (stride-1 blocks)",
    "sar_codec_all": "every block (projections on down/up)",
    "sar_codec_bottleneck_cbam": "coarsest level, CBAM on the branches",
    "sar_ae_plain": "none",
    "sar_ae_bottleneck": "coarsest level (stride-1 blocks)",
    "sar_ae_all": "every block (projections on down/up)",
    "sar_ae_bottleneck_cbam": "coarsest level, CBAM on the branches",
}


# ---- the verdict --------------------------------------------------------------------------------
def seed_range(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, min, max) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.min()), float(v.max())


def compare(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict:
    """``a`` against ``b``: per-seed, per-tile scores ([seeds][tiles], higher is better, the
    same seeds and tiles). The paired difference of the means with its seed-level t interval;
    ``significant`` when the interval excludes 0."""
    ci = difference({"a": np.asarray(a, np.float64), "b": np.asarray(b, np.float64)}, "a", "b")
    return dict(ci, gap=ci["estimate"], significant=sign(ci) != "unresolved")


def _difference(name_a: str, name_b: str, c: dict, unit: str = " dB") -> str:
    ci = f"{100 * c['confidence']:.0f} % CI {c['low']:+.2f} to {c['high']:+.2f}{unit}"
    if c["significant"]:
        return f"`{name_a}` vs `{name_b}`: {c['gap']:+.2f}{unit} PSNR ({ci}) -- a real difference"
    return f"`{name_a}` vs `{name_b}`: {c['gap']:+.2f}{unit} PSNR -- **no significant difference** ({ci} contains 0)"


def did_not_train(seed_psnr: dict[str, Sequence[float]], baseline: Optional[float]) -> list[str]:
    """The variants whose mean PSNR is within ``DID_NOT_TRAIN_DB`` of the constant image's
    ``baseline`` (none without a baseline): reported as "did not train", never ranked."""
    if baseline is None:
        return []
    return [v for v, p in seed_psnr.items() if float(np.mean(p)) - baseline < T.DID_NOT_TRAIN_DB]


def gate(seeds: int, quick: bool, lift: Optional[float]) -> list[str]:
    """Why the comparison cannot give a verdict (empty: it can)."""
    reasons = smoke_run(quick) + enough_seeds(seeds)
    if lift is not None and lift < T.ABLATION_LEARNT_DB:
        reasons.append(
            f"the best variant is only {lift:+.2f} dB above a constant image at the training mean "
            f"level (the gate: {T.ABLATION_LEARNT_DB:g} dB): the models have learnt little beyond "
            f"the mean level -- raise --budget"
        )
    return reasons


def compute_verdict(
    rows: dict[str, dict],
    seeds: int,
    where: str = "the held-out tiles",
    baseline: Optional[float] = None,
    quick: bool = False,
) -> list[str]:
    """The verdict lines from each variant's per-seed, per-tile PSNR and its costs (see the
    module documentation), against ``baseline`` (the PSNR of a constant image at the training
    mean) when given; every number computed, nothing assumed."""
    psnr = {v: r["psnr_per_image_seeds"] for v, r in rows.items()}
    seed_psnr = {v: r["psnr_seeds"] for v, r in rows.items()}
    untrained = did_not_train(seed_psnr, baseline)
    lines = [
        f"`{v}` **did not train**: {np.mean(seed_psnr[v]) - baseline:+.2f} dB above a constant image at "
        f"the training mean level (gate {T.DID_NOT_TRAIN_DB:g} dB); not ranked."
        for v in untrained
    ]
    pool = [v for v in psnr if v not in untrained]
    if len(pool) < 2:
        return lines + [f"{len(pool)} variant(s) trained: nothing to rank or compare -- raise --budget."]
    ranked = sorted(pool, key=lambda v: -np.mean(seed_psnr[v]))
    best, runner = ranked[0], ranked[1]
    m, lo, hi = seed_range(seed_psnr[best])
    lines.append(
        f"Best on {where}: **`{best}`**, PSNR {m:.2f} dB (seeds {lo:.2f}-{hi:.2f}), "
        f"SSIM {np.mean(rows[best]['ssim_seeds']):.3f}"
        + (f", {np.mean(rows[best]['bpp_seeds']):.3f} bpp measured" if rows[best].get("bpp_seeds") else "")
        + f", over {seeds} seeds."
    )
    lift = None
    if baseline is not None:
        lift = m - baseline
        lines.append(
            f"Against a constant image at the training tiles' mean level (PSNR {baseline:.2f} dB): "
            f"`{best}` is {lift:+.2f} dB."
        )
    reasons = gate(seeds, quick, lift)
    if reasons:
        lines.append("No verdict on the variants: " + "; ".join(reasons) + ".")
        differences = [("Runner-up", best, runner)]
    else:
        differences = [("It wins" if compare(psnr[best], psnr[runner])["significant"] else "Runner-up", best, runner)]
    plain = next((v for v in pool if v.endswith("_plain")), None)
    residual = [v for v in ranked if v != plain]
    if plain and residual:
        differences.append(("Residual connections", residual[0], plain))
    for family in ("sar_ae", "sar_codec"):
        if f"{family}_bottleneck_cbam" in pool and f"{family}_bottleneck" in pool:
            differences.append(("Attention", f"{family}_bottleneck_cbam", f"{family}_bottleneck"))
    for label, a, b in differences:
        c = compare(psnr[a], psnr[b])
        text = _difference(a, b, c)
        if reasons:  # numbers only, no call
            text = f"`{a}` vs `{b}`: {c['gap']:+.2f} dB PSNR ({100 * c['confidence']:.0f} % CI {c['low']:+.2f} to {c['high']:+.2f})"
        elif label == "Residual connections":
            text += "; " + (
                ("residual connections help" if c["gap"] > 0 else "residual connections hurt")
                if c["significant"]
                else "residual connections make no measurable difference at this budget"
            )
        lines.append(f"{label}: {text}.")
    if plain and best != plain:
        p = rows[plain]
        b = rows[best]
        lines.append(
            f"Cost of `{best}`: {b['params']:,} parameters ({100 * (b['params'] / p['params'] - 1):+.1f}% "
            f"vs plain), {b['macs'] / 1e6:.1f} M MACs per tile ({100 * (b['macs'] / p['macs'] - 1):+.1f}%), "
            f"training {np.mean(b['seconds_seeds']) / np.mean(p['seconds_seeds']):.2f}x plain's time."
        )
    r = rows[best]
    lines.append(
        f"Radiometry of `{best}`: ratio-image median {np.mean(r.get('ratio_median_seeds', [np.nan])):.3f}, "
        f"mean {np.mean(r['ratio_mean_seeds']):.3f} (an ideal despeckler: mean 1), ENL {np.mean(r['enl_output_seeds']):.1f} on the input's homogeneous "
        f"windows (input {r['enl_input']:.2f})."
    )
    return lines


# ---- metrics.csv ----------------------------------------------------------------------------------
def read_metrics(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- the document ---------------------------------------------------------------------------------
def _pm(values: Sequence[float], fmt: str) -> str:
    return pm(values, 1.0, fmt)


def results_table(doc: Document, rows: dict, c, references: Optional[dict] = None) -> None:
    """The table of one test set (the variants, then the reference rows) and the paragraph
    that says how to read it."""
    table = []
    for v, r in rows.items():
        table.append(
            [
                f"`{v}`",
                WHERE.get(v, ""),
                f"{r['params']:,}",
                f"{r['macs'] / 1e6:.1f} M",
                f"{np.mean(r['seconds_seeds']):.0f} s",
                _pm(r["psnr_seeds"], ".2f"),
                _pm(r["ssim_seeds"], ".3f"),
                _pm(r["enl_output_seeds"], ".1f"),
                _pm(r.get("ratio_median_seeds", r["ratio_mean_seeds"]), ".3f"),
                _pm(r["bpp_seeds"], ".3f") if r.get("bpp_seeds") else "-",
                f"{r['compression']:g}x ({r['bits_per_pixel']:g} bpp)",
            ]
        )
    for name, r in (references or {}).items():
        table.append(
            [
                f"*reference: {name}*",
                "",
                "",
                "",
                "",
                f"{r['psnr']:.2f}",
                f"{r['ssim']:.3f}",
                "",
                "",
                r.get("bpp", ""),
                "",
            ]
        )
    doc.table(
        [
            "variant",
            "residual connections",
            "parameters",
            f"MACs ({c.tile}² tile)",
            "train time / run",
            "PSNR (dB)",
            "SSIM",
            "ENL (output)",
            "ratio median",
            "bpp (measured)",
            "float latent",
        ],
        table,
    )
    some = next(iter(rows.values()))
    doc.paragraph(
        f"Mean ± standard deviation over {c.seeds} seeds ({', '.join(map(str, range(c.seeds)))}); "
        f"each seed's model is its `best.pt` (lowest validation loss), evaluated in fp32 on "
        f"{some['test_tiles']} test tiles. PSNR and SSIM are in the normalised log-intensity domain "
        f"(data range 1) against the speckled input -- the autoencoder's target. ENL: equivalent number "
        f"of looks of the output on the input's most homogeneous windows (input: {some['enl_input']:.2f}; "
        f"higher = smoother). Ratio median: median of input / output intensity (the ratio image of an ideal "
        f"despeckler is pure speckle, mean 1 -- Oliver & Quegan 1998 -- and median 0.84 for 2 looks; the "
        f"mean of the ratio is left out here because a few near-zero output pixels dominate it). "
        f"Reference rows: simple non-learnt reconstructions of the same tiles. "
        f"bpp (measured): a codec's (sar_codec_*) latents of all test tiles at {c.eval_bits} bits per value, "
        f"entropy-coded, bytes x 8 / pixels, and PSNR/SSIM are of the decoded code; an unquantised "
        f"sar_ae_* has no coded rate (its float32 latent's bpp is given). Float latent: float32 input "
        f"bits over float32 latent bits."
    )


def build_document(ctx: dict) -> Document:
    """``ctx``: config, rows (per variant), verdict, description, steps, timings, figures,
    directory, command."""
    c, rows = ctx["config"], ctx["rows"]
    doc = Document("skiplab ablate autoencoder: residual connections in a SAR autoencoder")
    doc.paragraph(f"Directory `{ctx['directory']}`. Reproduce with `{ctx['command']}`.")
    if c.quick:
        doc.paragraph(
            "**SMOKE RUN (--quick)**: tiny models for a few steps, to check that everything runs. "
            "The numbers say nothing about residual connections and no variant is judged."
        )
    doc.heading("Verdict")
    doc.items(ctx["verdict"], css="verdict")
    doc.paragraph(
        multiplicity_note(
            ["the paired PSNR difference, best variant minus each other variant, on the held-out tiles"],
            count_intervals({k: v for k, v in ctx.items() if k != "config"}),
        )
    )
    doc.heading("Results on the held-out tiles")
    results_table(doc, rows, c, ctx.get("references"))
    if ctx.get("extra"):
        e = ctx["extra"]
        doc.heading("On other scenes")
        doc.paragraph(f"The same checkpoints on {e['description']}.")
        doc.items(e["verdict"], css="verdict")
        results_table(doc, e["rows"], c, e.get("references"))
        doc.image(
            ctx["figures"]["grid_extra"],
            "other scenes: input, then each variant's reconstruction (seed 0) "
            "and |error| (normalised log-intensity, one colour scale)",
        )
    doc.heading("Training curves")
    doc.image(
        ctx["figures"]["curves"],
        "training loss per step and validation PSNR; lines: mean over seeds, bands: their range",
    )
    doc.heading("Reconstructions")
    doc.image(
        ctx["figures"]["grid"],
        "test tiles: input, then each variant's reconstruction (seed 0) and "
        "|error| (normalised log-intensity, one colour scale)",
    )
    doc.heading("Set-up")
    t = ctx["timings"]
    doc.table(
        ["", ""],
        [
            ("data", ctx["description"]),
            (
                "models",
                f"{', '.join(rows)}; latent {c.latent} channels, widths {', '.join(map(str, c.widths))}, "
                f"1 block per level, BatchNorm, clamp output",
            ),
            (
                "recipe (all runs)",
                f"AdamW lr {c.lr:g}, weight decay {c.weight_decay:g}, batch {c.batch_size}, cosine "
                f"schedule with {max(1, ctx['steps'] // 10)} warm-up steps, the 8 dihedral transforms, "
                f"loss {c.loss or 'l1 + 0.2 ms_ssim (the reconstruct default)'}, precision {c.precision}",
            ),
            (
                "budget",
                f"{c.budget} -> {ctx['steps']} steps per run (same for every variant and seed)"
                + (
                    f"; step times {', '.join(f'{k} {v:.3f} s' for k, v in ctx['calibration'].items())}"
                    if ctx["calibration"]
                    else ""
                ),
            ),
            ("seeds", f"{c.seeds}: model initialisation and batch order; the tiles are the same for all"),
            (
                "machine",
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"{ctx.get('threads') or 'default'} torch thread(s), torch {torch.__version__}",
            ),
            ("wall-clock", ", ".join(f"{k} {v:.0f} s" for k, v in t.items())),
        ],
    )
    doc.heading("Files")
    doc.paragraph(
        "`ablation.json` (configuration, steps, every run's numbers), and `runs/<variant>-s<seed>/` "
        "(config.yaml, metrics.csv, steps.csv, checkpoints/last.pt and best.pt). A run's best.pt is "
        "ready for `skiplab reconstruct CHECKPOINT SCENE --out OUT`."
    )
    return doc


def write_report(ctx: dict) -> tuple[Path, Path]:
    """Figures, ``report.md`` and ``report.html`` into ``ctx['directory']``."""
    directory = Path(ctx["directory"])
    ctx["figures"] = {
        "curves": plot_curves(ctx["curves"], directory / "curves.png"),
        "grid": plot_grid(ctx["grid_inputs"], ctx["grid_recons"], directory / "grid.png"),
    }
    if ctx.get("extra"):
        e = ctx["extra"]
        ctx["figures"]["grid_extra"] = plot_grid(e["grid_inputs"], e["grid_recons"], directory / "grid_extra.png")
    doc = build_document(ctx)
    md, html = directory / "report.md", directory / "report.html"
    md.write_text(doc.markdown())
    html.write_text(doc.html())
    return md, html
