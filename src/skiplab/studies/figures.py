"""Figures of a study report, drawn with matplotlib's Agg canvas (no display needed).

Each function takes the numbers a part measured and writes one PNG; colours follow the
family (plain, resnet, ...) and line styles the depth or the condition, the same in
every figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evidence.figures import DEPTH_STYLES, colour, new_figure, save_figure, seed_band, smooth

__all__ = [
    "DEPTH_STYLES",
    "colour",
    "new_figure",
    "save_figure",
    "seed_band",
    "smooth",
    "plot_degradation",
    "plot_gradient_flow",
    "plot_lesion",
    "plot_autocorrelation",
]


def plot_degradation(curves: dict[str, dict], families: list[str], path: Path) -> Path:
    """He 2015 Fig. 6 layout: one column per family; training loss (top, log scale) and
    training error in % on the augmented batches (bottom) against steps, one line per
    depth: the mean over seeds, the band spanning the seeds. Rows share their y-limits so
    the families compare at a glance."""
    fig = new_figure(5.2 * len(families), 7.0)
    axes = fig.subplots(2, len(families), squeeze=False, sharex=True, sharey="row")
    for col, family in enumerate(families):
        runs = sorted((c for c in curves.values() if c["family"] == family), key=lambda c: c["depth"])
        for i, run in enumerate(runs):
            seeds = [s for s in run["seeds"] if s["step"]]
            if not seeds:
                continue
            window = max(1, min(len(s["step"]) for s in seeds) // 25)
            colour_ = colour(family)
            style = dict(
                color=colour_, linestyle=DEPTH_STYLES[i % len(DEPTH_STYLES)], alpha=0.45 + 0.55 * (i + 1) / len(runs)
            )
            label = f"{family}-{run['depth']} (mean of {len(seeds)} seeds; band: their range)"
            for row, key, scale in ((0, "loss", 1.0), (1, "error", 100.0)):
                steps, mean, lo, hi = seed_band(seeds, key, window)
                axes[row, col].plot(steps, scale * mean, label=label, **style)
                axes[row, col].fill_between(steps, scale * lo, scale * hi, color=colour_, alpha=0.15, linewidth=0)
        axes[0, col].set_title(f"{family} nets")
        axes[0, col].set_ylabel("training loss (log scale)")
        axes[0, col].set_yscale("log")
        axes[1, col].set_ylabel("training error on the batches (%)")
        axes[1, col].set_xlabel("step")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_gradient_flow(results: list[dict], path: Path) -> Path:
    """Per-element RMS of each layer's weight gradient (top) and of dL/dx entering each block
    (bottom) against depth, log scale; one column per BatchNorm setting (shared y-limits per
    row, tick labels on every panel). The x-axis runs from the output (left) to the input
    (right), the way the gradient flows, so a line rising to the right is a gradient that
    grows on its way to the input (exploding) and a falling one shrinks (vanishing). Dashed
    = at initialisation, dotted = snapshots during training, solid = after training; line:
    geometric mean over seeds and batches, band: their range, points: each seed (geometric
    mean over its batches)."""
    settings = [s for s in (True, False) if any(r["norm"] == s for r in results)]
    fig = new_figure(5.5 * len(settings), 7.4)
    axes = fig.subplots(2, len(settings), squeeze=False, sharey="row")
    for col, norm in enumerate(settings):
        groups: dict[tuple, list[dict]] = {}
        for r in results:
            if r["norm"] == norm:
                groups.setdefault((r.get("key", r["model"]), r["stage"]), []).append(r)
        for (key, stage), rows in groups.items():
            seeds, batches = len({r.get("seed") for r in rows}), len({r.get("batch", 0) for r in rows})
            style = dict(
                color=colour(rows[0]["family"]),
                linestyle="--" if stage == "init" else "-" if stage == "trained" else ":",
                label=f"{key} {'at init' if stage == 'init' else stage} (mean of {seeds} seeds x "
                f"{batches} batches; band: their range; points: each seed)",
            )
            for row, field in ((0, "layers"), (1, "blocks")):
                curves = [np.asarray(r[field], dtype=np.float64).reshape(-1, 2) for r in rows]
                n = min(len(c) for c in curves)
                x = curves[0][:n, 0] + (1 if field == "blocks" else 0)
                y = np.stack([np.clip(c[:n, 1], 1e-30, None) for c in curves])
                ax = axes[row, col]
                ax.plot(x, np.exp(np.log(y).mean(0)), marker=".", markersize=3, **style)
                ax.fill_between(x, y.min(0), y.max(0), color=style["color"], alpha=0.15, linewidth=0)
                by_seed: dict = {}
                for r, v in zip(rows, y):
                    by_seed.setdefault(r.get("seed"), []).append(np.log(v))
                for v in by_seed.values():
                    ax.plot(
                        x,
                        np.exp(np.mean(v, axis=0)),
                        linestyle="none",
                        marker="o",
                        markersize=1.6,
                        color=style["color"],
                        alpha=0.45,
                    )
        axes[0, col].set_title(
            ("with BatchNorm" if norm else "without BatchNorm")
            + "\nrising to the right: grows towards the input (exploding); falling: vanishing",
            fontsize=9,
        )
        axes[0, col].set_xlabel("layer, from the output (left) to the first conv (right)")
        axes[1, col].set_xlabel("block, from the output (left) to the input (right)")
        axes[0, col].set_ylabel("RMS of ∂L/∂W per element")
        axes[1, col].set_ylabel("RMS of ∂L/∂x entering the block")
        for ax in axes[:, col]:
            ax.set_yscale("log")
            ax.invert_xaxis()
            ax.tick_params(labelleft=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    return save_figure(fig, path)


def _ranges(numbers: list[int]) -> str:
    """1-based block numbers as text: "4, 7" or "10, 19"."""
    return ", ".join(str(n) for n in numbers)


def plot_lesion(per_seed: list[dict], path: Path) -> Path:
    """Veit 2016 Fig. 3 and 5a: test accuracy after deleting each single block (left) and
    after deleting k random blocks (right). Points: each seed (right: each draw); line: the
    mean over seeds (and draws); x = 0 (left) and k = 0 (right): nothing deleted, each seed's
    own baseline, so a seed's points compare with its own baseline rather than with the
    mean (dashed). Blocks a net cannot delete (a plain block that changes the shape has no
    identity to fall back on) have no point; the legend names them and the line breaks
    there. Both panels share the y-axis."""
    fig = new_figure(11.0, 6.0)
    left, right = fig.subplots(1, 2, sharey=True)
    for key in dict.fromkeys(m["key"] for m in per_seed):
        runs = [m for m in per_seed if m["key"] == key]
        c = colour(runs[0]["family"])
        units = max(int(m.get("units") or 0) for m in runs) or 1 + max(r["index"] for m in runs for r in m["single"])
        blocks = np.arange(1, units + 1)
        acc = np.full((len(runs), units), np.nan)
        for i, m in enumerate(runs):
            for r in m["single"]:
                acc[i, r["index"]] = 100 * r["accuracy"]
        missing = [int(b) for b in blocks if np.isnan(acc[:, b - 1]).all()]
        bases = np.array([100 * m["baseline"]["accuracy"] for m in runs])
        counts = (~np.isnan(acc)).sum(0)
        mean = np.where(counts > 0, np.nansum(acc, 0) / np.maximum(counts, 1), np.nan)
        left.plot(
            np.r_[0, blocks],
            np.r_[bases.mean(), mean],
            marker="o",
            markersize=3,
            color=c,
            label=f"{key} (line: mean of {len(runs)} seeds; points: each seed; 0: nothing deleted)",
        )
        for i in range(len(runs)):
            left.plot(
                np.r_[0, blocks],
                np.r_[bases[i], acc[i]],
                linestyle="none",
                marker="o",
                markersize=2.2,
                color=c,
                alpha=0.4,
            )
        left.axhline(bases.mean(), color=c, linestyle="--", linewidth=1, label=f"{key}, nothing deleted (mean)")
        if missing:
            left.plot(
                [],
                [],
                linestyle=":",
                linewidth=0.8,
                color=c,
                label=f"{key}: no point at block{'s' if len(missing) > 1 else ''} {_ranges(missing)} "
                f"(changes the shape: cannot be deleted without a shortcut)",
            )
            for b in missing:
                left.axvline(b, color=c, linestyle=":", linewidth=0.8, alpha=0.6)
        rows = [r for m in runs for r in m["random"]]
        ks = sorted({r["k"] for r in rows})
        if ks:
            by_k = [[100 * r["accuracy"] for r in rows if r["k"] == k] for k in ks]
            right.plot(
                [0] + ks,
                [bases.mean()] + [float(np.mean(a)) for a in by_k],
                marker="o",
                color=c,
                label=f"{key} (line: mean of the draws over {len(runs)} seeds; points: each draw)",
            )
            right.plot(np.zeros(len(bases)), bases, linestyle="none", marker="o", markersize=2.2, color=c, alpha=0.4)
            for k, a in zip(ks, by_k):
                right.plot(np.full(len(a), k), a, linestyle="none", marker="o", markersize=2.2, color=c, alpha=0.4)
    for ax in (left, right):
        ax.axhline(100 * per_seed[0]["chance"], color="grey", linestyle=":", linewidth=1, label="chance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    left.set_ylabel("test accuracy (%)")
    left.set_xlabel("deleted block (0: nothing deleted; dashed: the mean over seeds of that)")
    left.set_title("delete one block")
    right.set_xlabel("k blocks deleted at random (0: nothing deleted)")
    from matplotlib.ticker import MaxNLocator

    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_title("delete k random blocks")
    return save_figure(fig, path)


def plot_autocorrelation(results: list[dict], path: Path, floor: float | None = None) -> Path:
    """Balduzzi 2017 Fig. 1-style: centred autocorrelation of input gradients against the lag,
    at initialisation; one panel per family (shared y-axis), one line per depth: the mean over
    init seeds, the band spanning the seeds, points: each seed. The grey line is white noise:
    ``floor``, the centred estimator's value for it, about -1/(N-1) on N line points
    (:func:`skiplab.studies.shattered.white_noise_floor`), not 0; without ``floor`` it is
    worked out from the curves' length (``N // 4 + 1`` lags)."""
    families = list(dict.fromkeys(r["family"] for r in results))
    fig = new_figure(5.0 * len(families), 3.8)
    axes = fig.subplots(1, len(families), squeeze=False, sharey=True)[0]
    for ax, family in zip(axes, families):
        runs = sorted((r for r in results if r["family"] == family), key=lambda r: (r["stage"], r["depth"]))
        for i, r in enumerate(runs):
            lags = np.arange(len(r["autocorrelation"]))
            seeds = np.asarray(r.get("autocorrelation_seeds") or [r["autocorrelation"]], dtype=np.float64)
            style = dict(
                color=colour(family),
                linestyle=DEPTH_STYLES[i % len(DEPTH_STYLES)],
                alpha=0.4 + 0.6 * (i + 1) / len(runs),
            )
            ax.plot(
                lags,
                r["autocorrelation"],
                linewidth=1.4,
                label=f"{r['model']} (mean of {len(seeds)} init seeds; band: their range; points: each seed)",
                **style,
            )
            ax.fill_between(lags, seeds.min(0), seeds.max(0), color=colour(family), alpha=0.12, linewidth=0)
            for one in seeds:
                ax.plot(lags, one, linestyle="none", marker="o", markersize=1.2, color=colour(family), alpha=0.35)
        if floor is None:
            lags_n = max((len(r["autocorrelation"]) for r in runs), default=2)
            floor = -1.0 / (4 * (lags_n - 1) - 1)
        ax.axhline(
            floor,
            color="grey",
            linewidth=0.9,
            label=f"white noise: −1/(N−1) = {floor:.4f} (N = {round(1 - 1 / floor)} line points), not 0",
        )
        ax.set_xlabel("lag (points along the input line)")
        ax.set_ylabel("centred gradient autocorrelation")
        ax.set_title(f"{family} nets")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
