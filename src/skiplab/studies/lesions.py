"""The lesion study (Veit, Wilber & Belongie 2016) on the deepest trained nets of each family.

Deleting a residual block keeps only its shortcut; deleting a block of a plain net (a
pair of conv layers, the twin of a residual block) replaces it by the identity, which
is possible where the block keeps the shape of its input (see
:mod:`skiplab.analysis.lesion`). Measured on a fixed set of test images: the accuracy
with each single block deleted (Veit Fig. 3) and with k random non-downsampling blocks
deleted at once (Veit Fig. 5a).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..analysis import delete_blocks, evaluate, lesion_random
from ..analysis.lesion import is_deletable, lesion_units
from .figures import plot_lesion
from .progress import bar
from .runs import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study


def lesion_settings(study: "Study") -> tuple[int, int]:
    """(largest k of the random deletions, draws per k), by the study's scale."""
    config = study.config
    if config.quick:
        return 2, 1
    return (4, 2) if config.data.startswith("synthetic") else (6, 2)


def lesion_model(study: "Study", spec: RunSpec) -> dict:
    model = study.trained(spec)
    data = study.test_probe()
    max_k, draws = lesion_settings(study)
    with study.autocast():
        units = lesion_units(model, data)
        deletable = [u for u in units if is_deletable(u)]
        candidates = [u for u in deletable if not u.downsampling]
        ks = list(range(1, min(max_k, len(candidates)) + 1))
        progress = bar(1 + len(deletable) + len(ks), f"lesions {spec.name}")
        baseline = evaluate(model, data)
        progress.update()
        single = []
        for u in deletable:
            with delete_blocks([u]):
                res = evaluate(model, data)
            single.append(dict(u.row(), accuracy=res["accuracy"], loss=res["loss"],
                               accuracy_drop=baseline["accuracy"] - res["accuracy"]))
            progress.update()
        random_rows = []
        for k in ks:
            random_rows += lesion_random(model, data, [k], draws=draws, seed=study.config.seed + k, units=units)
            progress.update()
        progress.close()
    inner = [r["accuracy_drop"] for r in single if not r["downsampling"]]
    mean = lambda v: sum(v) / len(v) if v else math.nan  # noqa: E731
    return dict(model=spec.name, family=spec.family.label, shortcut=spec.family.shortcut, depth=spec.depth,
                baseline=baseline, single=single, random=random_rows, units=len(units),
                deletable=len(deletable), chance=1 / len(study.test.classes),
                mean_drop=mean(inner), max_drop=max(inner, default=math.nan),
                mean_lesioned_accuracy=mean([r["accuracy"] for r in single if not r["downsampling"]]))


def run(study: "Study") -> dict:
    models = [lesion_model(study, RunSpec(f, study.config.deepest)) for f in study.config.families]
    figure = plot_lesion(models, study.path("lesion.png"))
    max_k, draws = lesion_settings(study)
    return dict(models=models, images=study.config.eval_images, max_k=max_k, draws=draws,
                figures=[figure.name])
