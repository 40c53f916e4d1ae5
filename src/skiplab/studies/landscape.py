"""Loss-landscape slices (Li et al. 2018) around the deepest trained nets of each family,
and Li's quantitative check: |λmin / λmax| of the Hessian at the trained weights
(Hessian-vector products, :mod:`skiplab.analysis.hessian`) for every seed.

1-D and 2-D slices along filter-normalised random directions (Li 2018 Eq. 1), evaluated
on the study's fixed training images. Two numbers summarise a 2-D slice: the mean loss
on the border of the grid over the loss at its centre (how fast the loss rises around
the trained weights), and the number of grid points lower than all their neighbours
(local minima: Li 2018's "chaotic" landscapes of deep plain nets have many, the
"convex-looking" ones of ResNets one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..analysis import landscape_1d, landscape_2d, plot_contour, plot_landscape_1d
from ..analysis.hessian import hessian_extremes
from .progress import progress_callback
from .runs import RunSpec, fixed_batches
from .stats import mean_spread

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

CONTOUR_MAX_LOSS = 10.0   # losses above are clipped in the contour plots


def grid_sizes(study: "Study") -> tuple[int, int]:
    """(points of the 1-D slice, points per axis of the 2-D slice)."""
    return (5, 3) if study.config.quick else (25, 25)


def local_minima(loss: np.ndarray) -> int:
    """Grid points strictly lower than each of their (up to 8) neighbours."""
    count = 0
    rows, cols = loss.shape
    for j in range(rows):
        for i in range(cols):
            window = loss[max(j - 1, 0):j + 2, max(i - 1, 0):i + 2]
            if (window > loss[j, i]).sum() == window.size - 1:
                count += 1
    return count


def border_rise(loss: np.ndarray) -> float:
    """Mean loss on the border of a 2-D grid over the loss at its centre."""
    border = np.concatenate([loss[0], loss[-1], loss[1:-1, 0], loss[1:-1, -1]])
    return float(border.mean() / loss[loss.shape[0] // 2, loss.shape[1] // 2])


def run(study: "Study") -> dict:
    n1, n2 = grid_sizes(study)
    images = 64 if study.config.quick else 2000
    data = fixed_batches(study.train, images, study.config.seed, "landscape")
    curvature = []
    for family in study.config.families:
        ratios = []
        for seed in study.config.seed_list:
            spec = RunSpec(family, study.config.deepest, seed=seed)
            h = hessian_extremes(study.trained(spec).float(), data, iters=3 if study.config.quick else 20, seed=seed)
            ratios.append(dict(h, seed=seed))
        curvature.append(dict(model=RunSpec(family, study.config.deepest).network, family=family.label,
                              shortcut=family.shortcut, seeds=ratios,
                              ratio=mean_spread([r["ratio"] for r in ratios])))
    curves, models, figures = {}, [], []
    for family in study.config.families:
        spec = RunSpec(family, study.config.deepest, seed=study.config.seed)
        model = study.trained(spec)
        with study.autocast():
            with progress_callback(n1, f"1-D landscape {spec.name}") as p:
                line = landscape_1d(model, data, np.linspace(-1, 1, n1), seed=study.config.seed, progress=p)
            with progress_callback(n2 * n2, f"2-D landscape {spec.name}") as p:
                grid = np.linspace(-1, 1, n2)
                plane = landscape_2d(model, data, grid, grid, seed=study.config.seed, progress=p)
        curves[spec.name] = line
        path = plot_contour(plane, study.path(f"landscape_{spec.name}.png"),
                            title=f"{spec.name}: loss around the trained weights", vmax=CONTOUR_MAX_LOSS)
        figures.append(path.name)
        models.append(dict(model=spec.name, family=family.label, shortcut=family.shortcut,
                           origin_loss=plane.value_at_origin(), border_rise=border_rise(plane.loss),
                           local_minima=local_minima(plane.loss), line=line.rows(),
                           max_loss=float(plane.loss.max())))
    figures.insert(0, plot_landscape_1d(curves, study.path("landscape_1d.png")).name)
    return dict(models=models, curvature=curvature, points_1d=n1, points_2d=n2, images=sum(len(y) for _, y in data),
                figures=figures)
