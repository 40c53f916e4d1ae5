"""The study report's sections of the parts that probe the nets: lesions (Veit et al. 2016),
the loss landscape (Li et al. 2018) and shattered gradients (Balduzzi et al. 2017)."""

from __future__ import annotations

from pathlib import Path

from ...evidence import thresholds as T
from ...evidence.document import Document
from .published import published_block


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def lesion_gaps(per_seed: list[dict]) -> str:
    """'; plain-20 has no point at blocks 4, 7 (...)' for nets with blocks that cannot be deleted."""
    gaps = {}
    for m in per_seed:
        done = {r["index"] for r in m.get("single", [])}
        gaps.setdefault(m["key"], [i + 1 for i in range(int(m.get("units") or 0)) if i not in done])
    text = "; ".join(
        f"{k} has no point at block{'s' if len(v) > 1 else ''} {', '.join(map(str, v))}" for k, v in gaps.items() if v
    )
    return (
        (f"; {text}: a plain block that changes the shape has no identity to fall back on, so it cannot be deleted")
        if text
        else ""
    )


def lesion_section(doc: Document, res: dict, found: dict) -> None:
    rows = []
    for m in res["models"]:
        accuracies: dict[int, list[float]] = {}
        for r in m["random"]:
            accuracies.setdefault(r["k"], []).append(r["accuracy"])
        by_k = ", ".join(f"{k}: {pct(sum(a) / len(a))}" for k, a in sorted(accuracies.items()))
        rows.append(
            [
                m["model"],
                pct(m["baseline"]["accuracy"]),
                m["deletable"],
                f"{100 * m['mean_drop']:.1f}",
                f"{100 * m['max_drop']:.1f}",
                pct(m["mean_lesioned_accuracy"]),
                by_k or "-",
            ]
        )
    doc.table(
        [
            "network",
            "accuracy",
            "deletable blocks",
            "mean drop, one block (points)",
            "worst drop",
            "mean accuracy, one block deleted",
            "accuracy with k random blocks deleted",
        ],
        rows,
    )
    doc.paragraph(
        f"On the whole test split ({res['images']} images), every seed; drops exclude the downsampling "
        f"blocks (Veit 2016 report them apart). A residual block is deleted by keeping only its shortcut; "
        f"a plain block (a pair of conv layers) by replacing it with the identity where it keeps its "
        f"input's shape. k random deletions, k = 1..{res['max_k']}: {res['draws']} draws per k over the seeds."
    )
    from ...evidence.stats import interval_text

    doc.items(
        [
            f"{m['model']}: retained above-chance fraction after one deletion "
            f"{interval_text(m['retained_single'], 1.0, '', 2)} (seed spread and binomial error of each accuracy)"
            for m in res["models"]
            if m.get("retained_single")
        ]
    )
    for fig in res["figures"]:
        doc.image(
            Path(fig),
            "test accuracy after deleting one block (left) and k random blocks (right); lines: mean "
            "over seeds (right: and draws), points: each seed (right: each draw), at 0: each "
            "seed's accuracy with nothing deleted" + lesion_gaps(res.get("per_seed", [])),
        )
    if "lesion" in found:
        published_block(doc, found["lesion"])


def landscape_section(doc: Document, res: dict, found: dict) -> None:
    rows = [[m["model"], m["origin_loss"], m["border_rise"], m["local_minima"], m["max_loss"]] for m in res["models"]]
    doc.table(
        [
            "network",
            "loss at the trained weights",
            "border loss / centre loss",
            "local minima on the grid",
            "highest loss on the grid",
        ],
        rows,
    )
    doc.paragraph(
        f"Filter-normalised directions (Li 2018 Eq. 1), α, β in [-1, 1]; {res['points_1d']} points in 1-D, "
        f"a {res['points_2d']}x{res['points_2d']} grid in 2-D, on {res['images']} fixed training images. "
        f"The contours are a qualitative comparison only; the quantitative one is Li's |λmin/λmax|:"
    )
    doc.table(
        ["network", "|λmin / λmax| (mean ± sd over seeds)", "λmax per seed", "λmin per seed"],
        [
            [
                c["model"],
                f"{c['ratio'][0]:.3g} ± {c['ratio'][1]:.2g}",
                ", ".join(f"{r['lambda_max']:.3g}" for r in c["seeds"]),
                ", ".join(f"{r['lambda_min']:.3g}" for r in c["seeds"]),
            ]
            for c in res.get("curvature", [])
        ],
    )
    if res.get("contrast"):
        from ...evidence.stats import interval_text

        doc.paragraph(
            f"Plain minus residual |λmin/λmax|, paired over seeds: {interval_text(res['contrast'], 1.0, '', None)} "
            f"(t interval over seeds; Li's claim agrees when it lies above +{res['margin']:g})."
        )
    for fig in res["figures"]:
        doc.image(Path(fig), fig.replace("_", " ").removesuffix(".png"))
    if "landscape" in found:
        published_block(doc, found["landscape"])


def shattered_section(doc: Document, res: dict, found: dict) -> None:
    floor = res.get("floor", 0.0)
    rows = [
        [
            r["model"],
            f"{r['lag1']:.3f} ± {r['lag1_sd']:.3f}",
            len(r["lag1_seeds"]),
            "at the floor" if r.get("at_floor") else "above",
        ]
        for r in res["results"]
    ]
    rows += [
        [f"control: {c['model']} (1-D input)", f"{c['lag1'][0]:.3f} ± {c['lag1'][1]:.3f}", c["seeds"], "-"]
        for c in res.get("control", [])
    ]
    doc.table(
        [
            "network (at init)",
            "centred correlation R(1), mean ± sd over seeds",
            "init seeds",
            f"against the white-noise floor {floor:+.4f}",
        ],
        rows,
    )
    fits = res.get("fits") or {}
    if fits:
        g = lambda v: f"{v:.3g}"  # noqa: E731
        doc.table(
            [
                "family",
                "depths fitted",
                "depths at the floor",
                "a (2^-aL)",
                "b (L^-b)",
                "RSS exponential",
                "RSS power law",
                "better fit",
            ],
            [
                [
                    f,
                    ", ".join(map(str, x.get("depths", []))) or "-",
                    ", ".join(map(str, x.get("at_floor", []))) or "-",
                    g(x["per_layer_log2"]),
                    g(x["power"]),
                    g(x.get("rss_exponential", float("nan"))),
                    g(x.get("rss_power", float("nan"))),
                    x.get("better", "undetermined"),
                ]
                for f, x in fits.items()
            ],
        )
    iv = res.get("intervals")
    if iv:
        from ...evidence.stats import interval_text

        ci = lambda c: interval_text(c, 1.0, "", 3, "fewer than two depths above the floor")  # noqa: E731
        doc.table(
            ["family", "rate a in R(1) ∝ 2^(-aL)", "Balduzzi", "power b in R(1) ∝ L^(-b)", "Balduzzi"],
            [
                [
                    f,
                    ci(iv[f"{f}_per_layer_log2"]),
                    "1 (plain)" if f == res["plain"] else "-",
                    ci(iv[f"{f}_power"]),
                    "0.5 (ResNet)" if f == res["residual"] else "-",
                ]
                for f in (res["plain"], res["residual"])
            ],
        )
        doc.paragraph(
            f"Plain minus residual rate a: {ci(iv['difference'])}. Intervals: t over init seeds (n - 1 "
            f"df) with the (image, direction) pairs' sampling error added (a jackknife within each seed). "
            f"The fits are of R(1) minus the white-noise floor -1/(N-1) = {floor:+.4f} on the depths "
            f"above it; a depth whose R(1) interval reaches the floor is fully shattered at this "
            f"resolution and is left out, so a family's rate rests only on the depths listed."
        )
    doc.paragraph(
        f"Centred correlation (Balduzzi's) of the input gradient of one output between neighbouring points "
        f"of {res['points']} along a line through a test image (radius {res['radius']:g} normalised-pixel "
        f"units, random direction of unit RMS per pixel), averaged over {res['images']} images x "
        f"{res['directions']} directions per init seed. The MLP control is Balduzzi Fig. 1's set-up "
        f"(24 layers of 200 rectifiers with BatchNorm, 1-D input) and the gate: the plain one must shatter "
        f"(R(1) below {T.SHATTERED_CONTROL_PLAIN_MAX:g}) and the residual one must not (above "
        f"{T.SHATTERED_CONTROL_RESIDUAL_MIN:g}), or no verdict is given."
    )
    for fig in res["figures"]:
        doc.image(
            Path(fig),
            "centred autocorrelation of input gradients against lag (mean over images, directions "
            "and seeds; band: the seeds' range, points: each seed); grey: white noise, "
            f"{res.get('floor', -1 / (res['points'] - 1)):.4f} = −1/(N−1) on N = {res['points']} "
            "line points, not 0",
        )
    if "shattered" in found:
        published_block(doc, found["shattered"])
