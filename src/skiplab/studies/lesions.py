"""The lesion study (Veit, Wilber & Belongie 2016) on the deepest trained nets of each
family, every seed, on the whole test split.

Deleting a residual block keeps only its shortcut; deleting a block of a plain net (a
pair of conv layers, the twin of a residual block) replaces it by the identity, where the
block keeps the shape of its input (see :mod:`skiplab.analysis.lesion`). Measured: the
accuracy with each single block deleted (Veit Fig. 3) and with k = 1..10 random
non-downsampling blocks deleted at once, at least ``LESION_DRAWS`` draws per k over the
seeds (Veit Fig. 5a). The number compared with Veit is the *retained above-chance
fraction* (acc − chance) / (baseline − chance): 1 = nothing lost, 0 = down to chance.
Its interval is the t interval over seeds with each accuracy's binomial error on the
shared test images added (:mod:`skiplab.evidence`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..analysis import delete_blocks, evaluate, lesion_random
from ..analysis.lesion import is_deletable, lesion_units
from ..evidence import thresholds as T
from ..evidence.intervals import binomial_se, seed_interval_with_sampling
from .figures import plot_lesion
from .progress import bar
from .runs import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study


def retained(accuracy: float, baseline: float, chance: float) -> float:
    """(acc − chance) / (baseline − chance): the share of the above-chance accuracy kept."""
    return (accuracy - chance) / (baseline - chance) if baseline > chance else math.nan


def retained_interval(values: list[list[float]], ses: list[list[float]], confidence: float = T.CONFIDENCE) -> dict:
    """Mean retained fraction over seeds (each the mean over its blocks), with the t interval
    over seeds plus the binomial error of the accuracies on the shared test images
    (:func:`~skiplab.evidence.intervals.seed_interval_with_sampling`). The blocks of a seed
    are scored on the same images, so a seed's block mean is given the mean of its blocks'
    standard errors (their errors fully correlated: the conservative bound)."""
    per_seed = [float(np.mean(v)) for v in values]
    within = [float(np.mean(s)) for s in ses]
    return seed_interval_with_sampling(per_seed, within, confidence)


class Evaluations:
    """Each lesioned evaluation of one net, appended to a JSON-lines file as soon as it is
    measured (key: the deleted blocks) and read back instead of measured again: an interrupted
    lesion part resumes at the next evaluation, not at the next net."""

    def __init__(self, path, model, data) -> None:
        import json
        from pathlib import Path

        self.path, self.model, self.data = Path(path), model, data
        self.done: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut short by a kill
                    continue
                self.done[row["key"]] = row["result"]

    def __call__(self, units) -> dict:
        import json

        key = " ".join(u.name for u in units) or "(none)"
        if key not in self.done:
            with delete_blocks(units):
                self.done[key] = evaluate(self.model, self.data)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(dict(key=key, result=self.done[key])) + "\n")
        return self.done[key]


def lesion_model(study: "Study", spec: RunSpec, draws: int, max_k: int) -> dict:
    model = study.trained(spec)
    data = study.test_probe()
    n = sum(len(y) for _, y in data)
    chance = study.chance
    measure = Evaluations(study.path("results") / f"lesion-{spec.name}.evaluations.jsonl", model, data)
    with study.autocast():
        units = lesion_units(model, data)
        deletable = [u for u in units if is_deletable(u)]
        candidates = [u for u in deletable if not u.downsampling]
        ks = list(range(1, min(max_k, len(candidates)) + 1))
        progress = bar(1 + len(deletable) + len(ks), f"lesions {spec.name}")
        baseline = measure([])
        progress.update()
        single = []
        for u in deletable:
            res = measure([u])
            single.append(
                dict(
                    u.row(),
                    accuracy=res["accuracy"],
                    loss=res["loss"],
                    accuracy_drop=baseline["accuracy"] - res["accuracy"],
                    retained=retained(res["accuracy"], baseline["accuracy"], chance),
                    retained_se=binomial_se(res["accuracy"], n) / max(baseline["accuracy"] - chance, 1e-9),
                )
            )
            progress.update()
        random_rows = []
        for k in ks:
            random_rows += lesion_random(
                model, data, [k], draws=draws, seed=spec.seed * 1000 + k, units=units, measure=measure
            )
            progress.update()
        progress.close()
    for r in random_rows:
        r["retained"] = retained(r["accuracy"], baseline["accuracy"], chance)
    inner = [r for r in single if not r["downsampling"]]
    mean = lambda v: sum(v) / len(v) if v else math.nan  # noqa: E731
    return dict(
        model=spec.name,
        key=spec.key,
        seed=spec.seed,
        family=spec.family.label,
        shortcut=spec.family.shortcut,
        depth=spec.depth,
        baseline=baseline,
        single=single,
        random=random_rows,
        units=len(units),
        deletable=len(deletable),
        chance=chance,
        images=n,
        mean_drop=mean([r["accuracy_drop"] for r in inner]),
        max_drop=max((r["accuracy_drop"] for r in inner), default=math.nan),
        mean_lesioned_accuracy=mean([r["accuracy"] for r in inner]),
    )


def kept(study: "Study", spec: RunSpec, draws: int, max_k: int) -> dict:
    """:func:`lesion_model`, kept per net in ``results/lesion-<run>.json`` as soon as it is
    measured: an interrupted lesion part resumes at the next net."""
    import json
    from ..atomic import write_json
    from .state import jsonable

    path = study.path("results") / f"lesion-{spec.name}.json"
    if path.is_file():
        found = json.loads(path.read_text())
        if found.get("draws") == draws and found.get("max_k") == max_k:
            return found["result"]
    result = json.loads(json.dumps(lesion_model(study, spec, draws, max_k), default=jsonable))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, dict(draws=draws, max_k=max_k, result=result), indent=1)
    return result


def run(study: "Study") -> dict:
    config = study.config
    seeds = config.seed_list
    draws = 1 if config.quick else math.ceil(T.LESION_DRAWS / len(seeds))
    max_k = 2 if config.quick else T.LESION_MAX_K
    # the residual nets first: they carry Veit's claim (an interrupted part keeps them)
    order = sorted(config.families, key=lambda f: not f.is_residual)
    measured = {(f.key, s): kept(study, RunSpec(f, config.deepest, seed=s), draws, max_k) for f in order for s in seeds}
    per_seed = [measured[f.key, s] for f in config.families for s in seeds]
    return summarise(study, per_seed, draws * len(seeds), max_k)


def summarise(study: "Study", per_seed: list[dict], draws: int, max_k: int) -> dict:
    """The part's result from each net's kept lesion measurements: per family the retained
    fraction's interval over seeds, and the figure. Re-run on a finished study
    (:mod:`~skiplab.studies.restate`) it restates them under the current rules."""
    config = study.config
    models = []
    for family in config.families:
        runs = [m for m in per_seed if m["family"] == family.label]
        inner = [[r for r in m["single"] if not r["downsampling"]] for m in runs]
        first = dict(runs[0])
        first.update(
            model=runs[0]["key"],
            seeds=[m["seed"] for m in runs],
            mean_drop=float(np.mean([m["mean_drop"] for m in runs])),
            max_drop=float(np.max([m["max_drop"] for m in runs])),
            mean_lesioned_accuracy=float(np.mean([m["mean_lesioned_accuracy"] for m in runs])),
            baseline=dict(
                accuracy=float(np.mean([m["baseline"]["accuracy"] for m in runs])),
                per_seed=[m["baseline"]["accuracy"] for m in runs],
            ),
            random=[dict(r, seed=m["seed"]) for m in runs for r in m["random"]],
            retained_single=retained_interval(
                [[r["retained"] for r in rows] for rows in inner], [[r["retained_se"] for r in rows] for rows in inner]
            )
            if all(inner)
            else None,
        )
        models.append(first)
    figure = plot_lesion(per_seed, study.path("lesion.png"))
    return dict(
        models=models, per_seed=per_seed, images=len(study.test), max_k=max_k, draws=draws, figures=[figure.name]
    )
