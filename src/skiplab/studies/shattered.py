"""Shattered gradients (Balduzzi et al. 2017): how correlated the gradient of a net's
output with respect to its input stays along a line of nearby inputs, for plain and
residual nets of every depth at initialisation (as Balduzzi Fig. 1) and for the deepest
trained nets.

The line passes through a fixed test image along a random direction of unit RMS per
pixel (t in [-r, r], r in normalised-pixel units); BatchNorm uses the statistics of the
line's points at initialisation (Balduzzi's set-up) and the running statistics of a
trained net. Summary: R(1), the autocorrelation at lag one (near 1: smooth, "brown
noise"; near 0: "white noise", shattered).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..analysis import shattered_gradients
from .figures import plot_autocorrelation
from .progress import bar
from .runs import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study

RADIUS = 2.0


def run(study: "Study") -> dict:
    config = study.config
    n_points = 32 if config.quick else 128
    x0 = study.test_probe()[0][0][0]
    trained = [RunSpec(f, config.deepest) for f in config.families] if study.has_trained_runs() else []
    todo = [(RunSpec(f, d), "init") for f in config.families for d in config.depths]
    todo += [(spec, "trained") for spec in trained]
    results = []
    progress = bar(len(todo), "shattered gradients")
    for spec, stage in todo:
        model = study.fresh(spec) if stage == "init" else study.trained(spec)
        res = shattered_gradients(model, x0, n_points=n_points, radius=RADIUS, max_lag=n_points // 4,
                                  seed=config.seed, norm_stats="line" if stage == "init" else "running")
        results.append(dict(model=spec.name, family=spec.family.label, shortcut=spec.family.shortcut,
                            depth=spec.depth, stage=stage, **res.summary(),
                            autocorrelation=[float(v) for v in res.autocorrelation]))
        progress.update()
    progress.close()
    figure = plot_autocorrelation(results, study.path("shattered.png"))
    return dict(results=results, points=n_points, radius=RADIUS, figures=[figure.name])
