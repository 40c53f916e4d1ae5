"""Loss-landscape slices (Li et al. 2018) around the deepest trained nets of each family,
and Li's quantitative check: |λmin / λmax| of the Hessian at the trained weights
(Hessian-vector products, :mod:`skiplab.analysis.hessian`) for every seed.

1-D and 2-D slices along filter-normalised random directions (Li 2018 Eq. 1), evaluated
on the study's fixed training images. Two numbers summarise a 2-D slice: the mean loss
on the border of the grid over the loss at its centre (how fast the loss rises around
the trained weights), and the number of grid points lower than all their neighbours
(local minima: Li 2018's "chaotic" landscapes of deep plain nets have many, the
"convex-looking" ones of ResNets one). These are a qualitative comparison only.

The Hessian's extreme eigenvalues come from one Lanczos run per net (always
2 × ``HESSIAN_ITERATIONS`` Hessian-vector products, the budget of Li's two power iterations),
fp32, BatchNorm in evaluation mode. Every measurement is kept as soon as it is made, so an
interrupted part resumes: each net's eigenvalues in ``results/hessian-<run>.json``, each
landscape point in ``results/landscape-<run>.line.jsonl`` (1-D) and
``results/landscape-<run>.points.jsonl`` (2-D).

The verdict is Li's quantitative check: the paired difference |λmin/λmax|(plain) −
|λmin/λmax|(residual) of the deepest nets over seeds, with its t interval over seeds, inside
Li's regime (trained nets, at a levelled-off training loss; thresholds in
:mod:`skiplab.evidence.thresholds`).
"""

from __future__ import annotations

import json
import math
from collections.abc import MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..analysis import landscape_1d, landscape_2d, plot_contour, plot_landscape_1d
from ..analysis.hessian import channels_last_copy, hessian_extremes
from ..atomic import write_json
from ..evidence import thresholds as T
from ..evidence.stats import contrast, mean_spread, nan_mean
from .progress import progress_callback
from .regime import above_chance_gate, convergence_gate, enough_seeds, smoke_run
from .runs import RunSpec, fixed_batches

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

CONTOUR_MAX_LOSS = 10.0  # losses above are clipped in the contour plots


def grid_sizes(study: "Study") -> tuple[int, int]:
    """(points of the 1-D slice, points per axis of the 2-D slice)."""
    return (5, 3) if study.config.quick else (25, 25)


def local_minima(loss: np.ndarray) -> int:
    """Grid points strictly lower than each of their (up to 8) neighbours."""
    count = 0
    rows, cols = loss.shape
    for j in range(rows):
        for i in range(cols):
            window = loss[max(j - 1, 0) : j + 2, max(i - 1, 0) : i + 2]
            if (window > loss[j, i]).sum() == window.size - 1:
                count += 1
    return count


def border_rise(loss: np.ndarray) -> float:
    """Mean loss on the border of a 2-D grid over the loss at its centre."""
    border = np.concatenate([loss[0], loss[-1], loss[1:-1, 0], loss[1:-1, -1]])
    return float(border.mean() / loss[loss.shape[0] // 2, loss.shape[1] // 2])


def curvature_contrast(curvature: list[dict]) -> dict | None:
    """|λmin/λmax|(plain) − |λmin/λmax|(residual), paired over seeds, with its t
    interval (one value per seed: the Hessian is measured once on the fixed images)."""
    plain = next((c for c in curvature if c["shortcut"] == "none"), None)
    res = next((c for c in curvature if c["shortcut"] == "identity"), None)
    if plain is None or res is None:
        return None
    a = np.array([[r["ratio"] for r in plain["seeds"]]]).T
    b = np.array([[r["ratio"] for r in res["seeds"]]]).T
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    return contrast({plain["model"]: a, res["model"]: b}, {plain["model"]: 1.0, res["model"]: -1.0})


def regime(study: "Study") -> list[str]:
    """Li's regime: trained nets (above chance) at a minimum of the training loss (its curve
    has levelled off), measured with enough seeds; never a smoke run."""
    config = study.config
    specs = [RunSpec(f, config.deepest, seed=s) for f in config.families for s in config.seed_list]
    by_net: dict[str, list[dict]] = {}
    for spec in specs:
        by_net.setdefault(spec.network, []).append(study.state.run_summary(spec.name))
    errors = {k: float(np.mean([r["train_error"] for r in v])) for k, v in by_net.items()}
    drops = {k: nan_mean([r.get("loss_plateau_drop", math.nan) for r in v]) for k, v in by_net.items()}
    return (
        smoke_run(config.quick)
        + enough_seeds(config.seeds)
        + above_chance_gate(errors, study.chance)
        + convergence_gate({}, drops)
    )


class KeptPoints(MutableMapping):
    """Landscape points (tuples of coordinates) -> ``dict(loss, accuracy)``, each appended to a
    JSON-lines file as it is set and read back on the next run (a line cut short is skipped)."""

    def __init__(self, path: Path) -> None:
        self.path, self.points, self.cut = Path(path), {}, False
        if self.path.is_file():
            text = self.path.read_text()
            self.cut = bool(text) and not text.endswith("\n")  # the next line must start afresh
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                self.points[tuple(row["point"])] = row["result"]

    def __getitem__(self, point: tuple) -> dict:
        return self.points[tuple(point)]

    def __setitem__(self, point: tuple, result: dict) -> None:
        self.points[tuple(point)] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write("\n" * self.cut + json.dumps(dict(point=list(point), result=result)) + "\n")
        self.cut = False

    def __delitem__(self, point: tuple) -> None:
        raise TypeError("kept landscape points are never deleted")

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.points)

    def __len__(self) -> int:
        return len(self.points)


def kept_hessian(study: "Study", spec: RunSpec, data: list, steps: int) -> dict:
    """:func:`hessian_extremes` of one trained net, kept in ``results/hessian-<run>.json``
    (read back when it was measured with the same images and budget)."""
    path = study.path("results") / f"hessian-{spec.name}.json"
    images = sum(len(y) for _, y in data)
    if path.is_file():
        found = json.loads(path.read_text())
        if found.get("images") == images and found.get("steps") == steps:
            return found
    import time

    wall = time.perf_counter()
    state = path.with_name(f"hessian-{spec.name}.{images}.lanczos.pt")  # the products so far
    h = hessian_extremes(study.trained(spec).float(), data, steps=steps, seed=spec.seed, state=state)
    h.update(steps=steps, seconds=round(time.perf_counter() - wall, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, h, indent=1)
    state.unlink(missing_ok=True)
    return h


def run(study: "Study") -> dict:
    n1, n2 = grid_sizes(study)
    images = 64 if study.config.quick else T.LANDSCAPE_IMAGES
    data = fixed_batches(study.train, images, study.config.seed, "landscape")
    # the contour may use fewer images (its own fixed draw): it evaluates 625 losses per net;
    # it runs first, since its points are kept one by one and the Hessian's products are costlier
    contour = (
        fixed_batches(study.train, study.config.contour_images, study.config.seed, "landscape")
        if study.config.contour_images and not study.config.quick
        else data
    )
    curves, models, figures, planes = {}, [], [], []
    for family in study.config.families:
        spec = RunSpec(family, study.config.deepest, seed=study.config.seed)
        # a channels-last copy: ~15 % less CPU time per evaluation, the same losses to ~1e-7
        model, contour_cl = channels_last_copy(study.trained(spec), contour)
        with study.autocast():
            with progress_callback(n1, f"1-D landscape {spec.name}") as p:
                line = landscape_1d(
                    model,
                    contour_cl,
                    np.linspace(-1, 1, n1),
                    seed=study.config.seed,
                    progress=p,
                    cache=KeptPoints(study.path("results") / f"landscape-{spec.name}.line.jsonl"),
                )
            with progress_callback(n2 * n2, f"2-D landscape {spec.name}") as p:
                grid = np.linspace(-1, 1, n2)
                plane = landscape_2d(
                    model,
                    contour_cl,
                    grid,
                    grid,
                    seed=study.config.seed,
                    progress=p,
                    cache=KeptPoints(study.path("results") / f"landscape-{spec.name}.points.jsonl"),
                )
        curves[spec.name] = line
        planes.append((spec, plane))
        models.append(
            dict(
                model=spec.name,
                family=family.label,
                shortcut=family.shortcut,
                origin_loss=plane.value_at_origin(),
                border_rise=border_rise(plane.loss),
                local_minima=local_minima(plane.loss),
                line=line.rows(),
                max_loss=float(plane.loss.max()),
            )
        )
    # one colour scale for every family's contours: equal colours are equal losses
    low = min(float(np.nanmin(p.loss)) for _, p in planes)
    high = max(min(CONTOUR_MAX_LOSS, max(float(np.nanmax(p.loss)) for _, p in planes)), 1.001 * low + 1e-9)
    for spec, plane in planes:
        figures.append(
            plot_contour(
                plane,
                study.path(f"landscape_{spec.name}.png"),
                vmin=low,
                vmax=high,
                title=f"{spec.name}: loss around the trained weights",
            ).name
        )
    figures.insert(0, plot_landscape_1d(curves, study.path("landscape_1d.png")).name)
    curvature = []
    for family in study.config.families:
        ratios = []
        for seed in study.config.seed_list:
            spec = RunSpec(family, study.config.deepest, seed=seed)
            h = kept_hessian(study, spec, data, 4 if study.config.quick else 2 * T.HESSIAN_ITERATIONS)
            ratios.append(dict(h, seed=seed))
        curvature.append(
            dict(
                model=RunSpec(family, study.config.deepest).network,
                family=family.label,
                shortcut=family.shortcut,
                seeds=ratios,
                ratio=mean_spread([r["ratio"] for r in ratios]),
            )
        )
    return dict(
        models=models,
        curvature=curvature,
        contrast=curvature_contrast(curvature),
        regime=regime(study),
        margin=T.LANDSCAPE_RATIO_MARGIN,
        points_1d=n1,
        points_2d=n2,
        images=sum(len(y) for _, y in data),
        contour_images=sum(len(y) for _, y in contour),
        figures=figures,
    )
