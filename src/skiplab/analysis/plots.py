"""Figures of the diagnostics as PNGs, for reports (matplotlib's Agg canvas, no display).

Each function takes the rows a diagnostic returns, keyed by a label per network (e.g.
``{"plain-56": rows, "resnet-56": rows}``), and writes one figure:

* :func:`plot_gradient_flow` -- weight-gradient norm per layer against depth (log scale);
* :func:`plot_lesion` -- accuracy after deleting each block (Veit 2016 Fig. 3) and
  after deleting k random blocks (Fig. 5a);
* :func:`plot_path_lengths` -- path-length distribution and gradient per length (Fig. 6);
* :func:`plot_autocorrelation` -- gradient autocorrelation against lag (Balduzzi 2017 Fig. 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

Rows = Sequence[Mapping[str, Any]]


def save_figure(fig, path: str | Path) -> Path:
    """Render ``fig`` (a ``matplotlib.figure.Figure``) to a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def new_figure(width: float = 6.0, height: float = 4.0, cols: int = 1):
    """A figure with ``cols`` side-by-side axes (a list)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height))
    return fig, [fig.add_subplot(1, cols, i + 1) for i in range(cols)]


def plot_gradient_flow(flows: Mapping[str, Rows], path: str | Path, title: str = "") -> Path:
    """Per-layer weight-gradient norms (``gradient_flow(...).layers``) against depth."""
    fig, (ax,) = new_figure()
    for label, rows in flows.items():
        main = [r for r in rows if not r["shortcut"] and r["kind"] != "norm"]
        ax.plot([r["depth"] for r in main], [max(r["grad_norm"], 1e-30) for r in main], marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("layer (depth)")
    ax.set_ylabel("‖∂L/∂W‖")
    ax.legend(fontsize=8)
    ax.set_title(title or "gradient norm per layer")
    return save_figure(fig, path)


def plot_lesion(
    singles: Mapping[str, Rows],
    path: str | Path,
    randoms: Mapping[str, Rows] | None = None,
    baselines: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Left: accuracy with each block deleted (``lesion_single`` rows); right, when given,
    mean accuracy with k random blocks deleted (``lesion_random`` rows)."""
    fig, axes = new_figure(cols=2 if randoms else 1)
    for label, rows in singles.items():
        (line,) = axes[0].plot([r["index"] for r in rows], [100 * r["accuracy"] for r in rows], marker="o", label=label)
        if baselines and label in baselines:
            axes[0].axhline(100 * baselines[label], color=line.get_color(), linestyle=":")
    axes[0].set_xlabel("deleted block")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_title(title or "deleting one block (Veit et al. 2016)")
    axes[0].legend(fontsize=8)
    if randoms:
        for label, rows in randoms.items():
            ks = sorted({r["k"] for r in rows})
            means = [100 * sum(r["accuracy"] for r in rows if r["k"] == k) / sum(r["k"] == k for r in rows) for k in ks]
            axes[1].plot(ks, means, marker="o", label=label)
        axes[1].set_xlabel("blocks deleted (k)")
        axes[1].set_ylabel("mean accuracy (%)")
        axes[1].set_title("deleting k random blocks")
        axes[1].legend(fontsize=8)
    return save_figure(fig, path)


def plot_path_lengths(rows: Rows, path: str | Path, title: str = "") -> Path:
    """Veit Fig. 6: number of paths per length, gradient magnitude per path, and total
    gradient per length (``path_gradients(...).rows``)."""
    fig, axes = new_figure(width=4.5, cols=3)
    lengths = [r["length"] for r in rows]
    axes[0].bar(lengths, [r["paths"] for r in rows])
    axes[0].set_title("paths per length")
    axes[1].semilogy(lengths, [max(r["mean_grad_norm"], 1e-30) for r in rows], marker=".")
    axes[1].set_title("gradient magnitude per path")
    axes[2].plot(lengths, [r["total_gradient"] for r in rows], marker=".")
    axes[2].set_title("total gradient per length")
    for ax in axes:
        ax.set_xlabel("path length")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_autocorrelation(curves: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Gradient autocorrelation against lag, one curve per network."""
    fig, (ax,) = new_figure()
    for label, values in curves.items():
        ax.plot(range(len(values)), list(values), label=label)
    ax.axhline(0.0, color="grey", linewidth=0.5)
    ax.set_xlabel("lag (points along the input line)")
    ax.set_ylabel("autocorrelation")
    ax.legend(fontsize=8)
    ax.set_title(title or "shattered gradients (Balduzzi et al. 2017)")
    return save_figure(fig, path)
