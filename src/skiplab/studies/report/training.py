"""The study report's sections of the parts that train: degradation of deep plain nets (He et
al. 2015, Fig. 6) and gradient flow at initialisation and after training."""

from __future__ import annotations

import math
from pathlib import Path

from ...evidence.document import Document
from .published import published_block


def degradation_section(doc: Document, res: dict, found: dict) -> None:
    from ...evidence.stats import interval_text, pm

    rows = []
    for key, n in sorted(
        res["networks"].items(), key=lambda kv: (kv[1].get("length", 1.0), kv[1]["family"], kv[1]["depth"])
    ):
        steps = max(1, round(n.get("length", 1.0) * res["steps"]))
        rows.append(
            [
                key,
                f"{n['parameters']:,}",
                steps,
                len(n["seeds"]),
                pm(n["train_error"], 100),
                pm(n["test_error"], 100),
                pm(n["train_error_end"], 100),
                ", ".join(map(str, n["diverged"])) or "-",
            ]
        )
    doc.table(
        [
            "network",
            "parameters",
            "steps",
            "seeds",
            "training error % (eval mode)",
            "test error %",
            "training error % (last 10% of steps, batches)",
            "diverged (seeds)",
        ],
        rows,
    )
    doc.paragraph(
        f"Mean ± standard deviation over seeds. Training error: evaluation mode on the fixed subset of "
        f"{res['train_images']} training images; test error: the whole test split ({res['test_images']} "
        f"images). A `-L50` network trained half the steps with its own schedule (a shorter training "
        f"length). The last column is the training curve's end, on the augmented batches with BatchNorm "
        f"in training mode."
    )
    p, r = res.get("plain"), res.get("residual")
    for steps, entry in sorted(res.get("lengths", {}).items(), key=lambda kv: int(kv[0])):
        items = []
        for split in ("train", "test"):
            c = entry[f"{split}_contrasts"]
            items += [
                f"{split} error, {p}-{res['deep']} minus {p}-{res['shallow']}: {interval_text(c[p])}",
                f"{split} error, {r}-{res['deep']} minus {r}-{res['shallow']}: {interval_text(c[r])}",
                f"**{split} error, interaction** (plain difference minus residual difference): "
                f"{interval_text(c['interaction'])}",
            ]
        if entry["regime"]:
            items.append("not in the paper's regime at this length: " + "; ".join(entry["regime"]))
        elif entry.get("residual_regime"):
            items.append(
                "the residual row (converged nets) is not in the paper's regime at this length: "
                + "; ".join(entry["residual_regime"])
            )
        doc.paragraph(
            f"After {int(steps):,} steps{' (the full length: the verdict)' if entry['length'] == 1.0 else ''}:"
        )
        doc.items(items)
    doc.paragraph(
        "Intervals: the t interval over seeds (n - 1 df) of the per-seed contrasts, with the shared "
        "evaluation images' sampling error (the per-image paired contrast's standard error) added; "
        "the per-seed values are in results.json."
    )
    for fig in res["figures"]:
        doc.image(
            Path(fig),
            "training loss (log scale) and batch training error against steps, one column per "
            "family (He 2015 Fig. 6 layout); lines: mean over seeds, bands: their range",
        )
    for key in ("degradation", "degradation_plain", "degradation_residual"):
        if key in found:
            published_block(doc, found[key])


def gradients_section(doc: Document, res: dict, found: dict) -> None:
    from ...evidence.stats import interval_text, mean_spread, pm

    band = res["slope_band"]
    groups: dict[tuple, list[dict]] = {}
    for r in res["results"]:
        groups.setdefault((r["key"], r["norm"], r["stage"]), []).append(r)
    rows = [
        [
            key,
            "yes" if norm else "no",
            stage,
            pm([r["loss"] for r in g], 1.0, ".3f"),
            f"{math.exp(sum(math.log(r['block_ratio']) for r in g) / len(g)):.3g}",
            "{:+.3f} ± {:.3f}".format(*mean_spread([r["slope"] for r in g])),
            len({r["seed"] for r in g}),
        ]
        for (key, norm, stage), g in groups.items()
    ]
    doc.table(
        [
            "network",
            "BatchNorm",
            "weights",
            "loss",
            "RMS ∂L/∂x first block / last block (geometric mean)",
            "fitted log10-slope per block (mean ± sd over seeds and batches)",
            "seeds",
        ],
        rows,
    )
    ci = lambda c: interval_text(c, 1.0, "", 3)  # noqa: E731
    doc.table(
        ["BatchNorm", "weights", "plain slope", "residual slope", "plain minus residual"],
        [
            ["yes" if v["norm"] else "no", v["stage"], ci(v["plain"]), ci(v["residual"]), ci(v["difference"])]
            for v in res["verdicts"]
        ],
    )
    doc.paragraph(
        f"{res.get('batches', 1)} fixed batches of {res['batch']} training images (the same for every net "
        f"and seed), training mode, fp32; per-element RMS of the gradient entering each block, and per net, "
        f"seed and batch its least-squares log10-slope against the block index (towards the output). "
        f"'step N' is the run's snapshot at that step, 'trained' its end. Intervals: t over seeds with "
        f"the batches' sampling error added. Fixed before measuring: a slope above +{band:g} is 'vanishing' (the gradient "
        f"shrinks towards the input), below -{band:g} 'exploding'; He's 'healthy norms' agree when the "
        f"intervals of the plain net's slope and of plain minus residual both lie inside ±{band:g} at "
        f"every stage with BatchNorm, and disagree when either lies wholly outside, on either side."
    )
    for fig in res["figures"]:
        doc.image(
            Path(fig),
            "per-element gradient RMS per layer and per block input (log scale), from the output "
            "(left) to the input (right): a line rising to the right grows towards the input "
            "(exploding), a falling one vanishes; dashed: at init, dotted: snapshots during "
            "training, solid: trained; lines: geometric mean over seeds and batches, bands: their "
            "range, points: each seed",
        )
    if "gradients" in found:
        published_block(doc, found["gradients"])
