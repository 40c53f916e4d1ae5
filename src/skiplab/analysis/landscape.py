"""Loss landscape slices (Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the Loss
Landscape of Neural Nets").

Around trained weights θ* the loss is plotted along random directions,
f(α) = L(θ* + α δ) (1-D) and f(α, β) = L(θ* + α δ + β η) (2-D, §3). Random directions
are made comparable across networks and scale-invariant layers by *filter
normalisation* (§4, Eq. 1): for each filter j of each layer i (a slice along the output
dimension: a conv's output channel, a linear layer's output unit),

    d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||θ_{i,j}||,

so each filter of the direction has the norm of the corresponding filter of the weights.
As in the paper's default (and its code's ``ignore='biasbn'``) the direction is zero on
one-dimensional parameters -- biases and BatchNorm scales and shifts -- which therefore
stay at their trained values. BatchNorm running statistics are left as they are and the
loss is evaluated in evaluation mode on a fixed list of batches.

Every function restores the weights bit-for-bit afterwards (each point is set from a
saved copy of θ*, never accumulated). :func:`plot_landscape_1d`, :func:`plot_contour` and
:func:`plot_surface` save PNGs with matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .blocks import batches_of
from .lesion import evaluate
from .plots import new_figure, save_figure

Direction = list[torch.Tensor]


def filter_normalized_direction(model: nn.Module, seed: int = 0, ignore_bias_bn: bool = True) -> Direction:
    """A Gaussian random direction, one tensor per parameter of ``model``, filter-normalised
    (Li 2018 Eq. 1). One-dimensional parameters get a zero direction when
    ``ignore_bias_bn`` (the paper's default), otherwise a copy of the weights (as its code)."""
    generator = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        w = p.detach()
        if w.dim() <= 1:
            direction.append(torch.zeros_like(w) if ignore_bias_bn else w.clone())
            continue
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32).to(w)
        d_norms = d.flatten(1).norm(dim=1)
        w_norms = w.flatten(1).norm(dim=1)
        scale = w_norms / (d_norms + 1e-10)
        direction.append(d * scale.view(-1, *([1] * (w.dim() - 1))))
    return direction


def _check_direction(model: nn.Module, direction: Direction) -> None:
    params = list(model.parameters())
    if len(direction) != len(params) or any(d.shape != p.shape for d, p in zip(direction, params)):
        raise ValueError(
            f"a direction needs one tensor per parameter of the model ({len(params)}, "
            f"same shapes), found {len(direction)} tensors"
        )


@contextlib.contextmanager
def perturbed(model: nn.Module, directions: Sequence[Direction]) -> Iterator[Callable[..., None]]:
    """Yield ``move(*coefficients)`` setting θ = θ* + Σ c_i direction_i; θ* comes back exactly on exit."""
    for d in directions:
        _check_direction(model, d)
    params = list(model.parameters())
    origin = [p.detach().clone() for p in params]

    def move(*coefficients: float) -> None:
        if len(coefficients) != len(directions):
            raise ValueError(f"expected {len(directions)} coefficients, got {len(coefficients)}")
        with torch.no_grad():
            for i, p in enumerate(params):
                value = origin[i].clone()
                for c, d in zip(coefficients, directions):
                    if c != 0:
                        value.add_(d[i], alpha=float(c))
                p.copy_(value)
        # autocast caches the low-precision copy of each weight until its context exits: a
        # landscape evaluated inside one would keep using the first point's weights
        torch.clear_autocast_cache()

    try:
        yield move
    finally:
        with torch.no_grad():
            for p, o in zip(params, origin):
                p.copy_(o)
        torch.clear_autocast_cache()


@dataclass
class Landscape:
    """Loss and accuracy on a 1-D (``betas`` None, arrays [len(alphas)]) or 2-D grid
    (arrays [len(betas), len(alphas)]: rows are β, columns α)."""

    alphas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    betas: Optional[np.ndarray] = None

    def rows(self) -> list[dict[str, Any]]:
        if self.betas is None:
            return [
                dict(alpha=float(a), loss=float(l), accuracy=float(c))
                for a, l, c in zip(self.alphas, self.loss, self.accuracy)
            ]
        return [
            dict(alpha=float(a), beta=float(b), loss=float(self.loss[j, i]), accuracy=float(self.accuracy[j, i]))
            for j, b in enumerate(self.betas)
            for i, a in enumerate(self.alphas)
        ]

    def value_at_origin(self) -> float:
        """The loss at the grid point (0, 0), which must exist."""
        i = int(np.flatnonzero(self.alphas == 0)[0])
        return float(self.loss[i] if self.betas is None else self.loss[int(np.flatnonzero(self.betas == 0)[0]), i])


def _grid(values: Optional[Sequence[float]], default_points: int) -> np.ndarray:
    grid = np.linspace(-1.0, 1.0, default_points) if values is None else np.asarray(values, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"a landscape axis needs at least two coordinates, got {grid.tolist()}")
    return grid


def _measure(
    model: nn.Module,
    batches: list,
    move: Callable[..., None],
    point: tuple[float, ...],
    cache: Optional[MutableMapping],
) -> dict[str, float]:
    """The loss and accuracy at ``point``: from ``cache`` when it holds it, else measured
    (and put into it)."""
    if cache is not None and point in cache:
        return cache[point]
    move(*point)
    res = evaluate(model, batches)
    if cache is not None:
        cache[point] = res
    return res


def landscape_1d(
    model: nn.Module,
    data: Any,
    alphas: Optional[Sequence[float]] = None,
    direction: Optional[Direction] = None,
    seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
    cache: Optional[MutableMapping] = None,
) -> Landscape:
    """f(α) = L(θ* + α δ) for α in ``alphas`` (default 21 points in [-1, 1]) on ``data``.
    ``progress(done, total)`` is called after each point. ``cache``: a mapping from the point
    ``(α,)`` to its ``dict(loss, accuracy)``; points it holds are read, not measured, and
    measured ones are put into it (a persistent mapping makes the slice resumable)."""
    batches = batches_of(data)
    alphas = _grid(alphas, 21)
    direction = direction if direction is not None else filter_normalized_direction(model, seed)
    loss, acc = np.zeros(len(alphas)), np.zeros(len(alphas))
    with perturbed(model, [direction]) as move:
        for i, a in enumerate(alphas):
            res = _measure(model, batches, move, (float(a),), cache)
            loss[i], acc[i] = res["loss"], res["accuracy"]
            if progress:
                progress(i + 1, len(alphas))
    return Landscape(alphas, loss, acc)


def landscape_2d(
    model: nn.Module,
    data: Any,
    alphas: Optional[Sequence[float]] = None,
    betas: Optional[Sequence[float]] = None,
    directions: Optional[tuple[Direction, Direction]] = None,
    seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
    cache: Optional[MutableMapping] = None,
) -> Landscape:
    """f(α, β) = L(θ* + α δ + β η) on the grid ``alphas`` x ``betas`` (default 11 x 11 in
    [-1, 1]^2). Directions default to two filter-normalised ones (seeds ``seed``, ``seed+1``).
    Each point is one pass over ``data`` without autograd; ``cache`` as in :func:`landscape_1d`,
    keyed ``(α, β)``."""
    batches = batches_of(data)
    alphas, betas = _grid(alphas, 11), _grid(betas, 11)
    if directions is None:
        directions = (filter_normalized_direction(model, seed), filter_normalized_direction(model, seed + 1))
    loss = np.zeros((len(betas), len(alphas)))
    acc = np.zeros_like(loss)
    total, done = loss.size, 0
    with perturbed(model, list(directions)) as move:
        for j, b in enumerate(betas):
            for i, a in enumerate(alphas):
                res = _measure(model, batches, move, (float(a), float(b)), cache)
                loss[j, i], acc[j, i] = res["loss"], res["accuracy"]
                done += 1
                if progress:
                    progress(done, total)
    return Landscape(alphas, loss, acc, betas)


def plot_landscape_1d(curves: dict[str, Landscape], path: str | Path, title: str = "") -> Path:
    """Loss (and accuracy, right axis) along α for one or more labelled 1-D landscapes."""
    fig, (ax,) = new_figure()
    acc_ax = ax.twinx()
    for label, land in curves.items():
        (line,) = ax.plot(land.alphas, land.loss, label=f"{label} loss")
        acc_ax.plot(land.alphas, 100 * land.accuracy, linestyle="--", color=line.get_color(), label=f"{label} accuracy")
    losses = np.concatenate([land.loss for land in curves.values()])
    log_scale = losses.min() > 0 and losses.max() / losses.min() > 100
    if log_scale:  # far from the minimum the loss of deep plain nets explodes by orders of magnitude
        ax.set_yscale("log")
    ax.set_xlabel("α (filter-normalised direction)")
    ax.set_ylabel("loss (log scale)" if log_scale else "loss")
    acc_ax.set_ylabel("accuracy (%)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or "1-D loss landscape (Li et al. 2018)")
    return save_figure(fig, path)


def plot_contour(
    land: Landscape,
    path: str | Path,
    title: str = "",
    levels: int = 20,
    vmax: Optional[float] = None,
    vmin: Optional[float] = None,
) -> Path:
    """Contour plot of a 2-D landscape (Li 2018 Fig. 5) with its colour bar; losses above
    ``vmax`` are clipped. Give the same ``vmin``/``vmax`` to landscapes that are compared,
    so equal colours mean equal losses.

    When the losses span more than two decades (far from the minimum they explode) the
    ``levels`` contour levels are spaced logarithmically, so the basin stays visible."""
    if land.betas is None:
        raise ValueError("plot_contour needs a 2-D landscape (landscape_2d), got a 1-D one")
    loss = np.clip(land.loss, None, vmax) if vmax is not None else land.loss
    lo = float(np.nanmin(loss)) if vmin is None else vmin
    hi = float(np.nanmax(loss)) if vmax is None else vmax
    log = lo > 0 and hi / lo > 100
    from matplotlib.colors import LogNorm, Normalize

    fig, (ax,) = new_figure(5.6, 4.5)
    cs = ax.contour(
        land.alphas,
        land.betas,
        loss,
        levels=np.geomspace(lo, hi, levels) if log else np.linspace(lo, hi, levels),
        cmap="viridis",
        norm=LogNorm(lo, hi) if log else Normalize(lo, hi),
    )
    ax.clabel(cs, inline=True, fontsize=7, fmt="%.3g")
    fig.colorbar(cs, ax=ax, label="loss" + (" (log scale)" if log else ""))
    ax.plot([0], [0], marker="*", color="red", markersize=10, linestyle="none", label="the trained weights")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    ax.set_title(title or "loss contours (Li et al. 2018)")
    return save_figure(fig, path)


def plot_surface(land: Landscape, path: str | Path, title: str = "", vmax: Optional[float] = None) -> Path:
    """3-D surface plot of a 2-D landscape (Li 2018 Fig. 1)."""
    from matplotlib.figure import Figure

    if land.betas is None:
        raise ValueError("plot_surface needs a 2-D landscape (landscape_2d), got a 1-D one")
    loss = np.clip(land.loss, None, vmax) if vmax is not None else land.loss
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    a, b = np.meshgrid(land.alphas, land.betas)
    ax.plot_surface(a, b, loss, cmap="viridis", linewidth=0, antialiased=True)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    ax.set_zlabel("loss")
    ax.set_title(title or "loss surface (Li et al. 2018)")
    return save_figure(fig, path)
