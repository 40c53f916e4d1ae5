"""Diagnostics of why skip connections work.

Each diagnostic is a plain function on a model and a batch (or a list of ``(x, y)``
batches) returning rows (dicts of scalars) or a small dataclass with ``rows()`` /
``summary()``; those that make sense during training also come as a ``Callback`` for
``skiplab.train.fit`` that writes a CSV table into the run directory (in
:mod:`skiplab.studies.recording`, so that this package does not import train/).

* gradient flow -- :func:`gradient_flow` (callback: ``skiplab.studies.GradientFlowCallback``)
* residual-branch ratio ‖F(x)‖/‖x‖ -- :func:`residual_ratio` (``skiplab.studies.ResidualRatioCallback``)
* activation statistics and dead ReLUs -- :func:`activation_stats`
* lesions (Veit et al. 2016) -- :func:`lesion_study`, :func:`delete_blocks`, :func:`swap_blocks`
* path lengths (Veit et al. 2016) -- :func:`path_length_distribution`, :func:`path_gradients`
* loss landscape (Li et al. 2018) -- :func:`landscape_1d`, :func:`landscape_2d`, plots
* shattered gradients (Balduzzi et al. 2017) -- :func:`shattered_gradients`
* figures -- :mod:`skiplab.analysis.plots` (PNG, Agg canvas)

Blocks are found generically (:func:`find_units`): any module with ``residual(x)`` and
``has_shortcut``; models without blocks are described layer by layer.
"""

from .activations import activation_stats
from .blocks import Unit, eval_mode, find_blocks, find_units, override, residual_blocks
from .gradient_flow import GradientFlow, gradient_flow, weight_layers
from .landscape import (
    Landscape,
    filter_normalized_direction,
    landscape_1d,
    landscape_2d,
    plot_contour,
    plot_landscape_1d,
    plot_surface,
)
from .lesion import (
    LesionStudy,
    delete_blocks,
    evaluate,
    lesion_random,
    lesion_reorder,
    lesion_single,
    lesion_study,
    swap_blocks,
)
from .plots import plot_autocorrelation, plot_gradient_flow, plot_lesion, plot_path_lengths
from .paths import PathGradients, path_gradients, path_length_counts, path_length_distribution
from .residual_ratio import residual_ratio
from .shattered import ShatteredGradients, gradient_autocorrelation, input_gradients_along_line, shattered_gradients

__all__ = [
    "GradientFlow",
    "Landscape",
    "LesionStudy",
    "PathGradients",
    "ShatteredGradients",
    "Unit",
    "activation_stats",
    "delete_blocks",
    "eval_mode",
    "evaluate",
    "filter_normalized_direction",
    "find_blocks",
    "find_units",
    "gradient_autocorrelation",
    "gradient_flow",
    "input_gradients_along_line",
    "landscape_1d",
    "landscape_2d",
    "lesion_random",
    "lesion_reorder",
    "lesion_single",
    "lesion_study",
    "override",
    "path_gradients",
    "path_length_counts",
    "path_length_distribution",
    "plot_autocorrelation",
    "plot_contour",
    "plot_gradient_flow",
    "plot_landscape_1d",
    "plot_lesion",
    "plot_path_lengths",
    "plot_surface",
    "residual_blocks",
    "residual_ratio",
    "shattered_gradients",
    "swap_blocks",
    "weight_layers",
]
