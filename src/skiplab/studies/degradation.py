"""The degradation experiment (He et al. 2015 §4.2, Fig. 6): plain and residual nets of
growing depth, trained with the same recipe for the same number of steps, over seeds.

Measured as He measured it: the training *error* (here in evaluation mode, on the study's
fixed training subset) and the test error (the whole test split) of every network and
seed. He's finding is a contrast between the families, so the headline is the
interaction

    I = [e(plain-deep) − e(plain-shallow)] − [e(res-deep) − e(res-shallow)]

(deepest against shallowest depth) with its t interval over seeds, the images' sampling error added
(:mod:`skiplab.evidence.stats`); I > 0 is He's degradation: depth costs the plain nets more
than the residual ones. Each family's own deep − shallow difference is given beside it,
and the same contrasts for every shorter training length (``--lengths``: separate runs with
their own schedule), so the reader sees how the ordering depends on the length; the
verdict is read at the full length. The residual row ("deeper ResNets train better or no
worse") is a claim about converged nets and has its own gate
(:func:`~skiplab.studies.regime.convergence_gate`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..evidence.stats import difference, interaction, mean_spread, nan_mean, wrong_matrix
from .curves import STEPS_FILE, read_steps
from .figures import plot_degradation
from .regime import convergence_gate, degradation_gate, enough_seeds, smoke_run

if TYPE_CHECKING:  # pragma: no cover
    from .study import Study


def contrasts(correct: dict[str, list[str]], plain: str, res: str, shallow: int, deep: int, suffix: str = "") -> dict:
    """Each family's deep − shallow difference and the interaction, from per-seed
    correctness strings ``correct["<label>-<depth><suffix>"]``."""
    e = {k: wrong_matrix(v) for k, v in correct.items()}
    n = lambda f, d: f"{f}-{d}{suffix}"  # noqa: E731
    out = {"interaction": interaction(e, n(plain, deep), n(plain, shallow), n(res, deep), n(res, shallow))}
    for family in (plain, res):
        out[family] = difference(e, n(family, deep), n(family, shallow))
    return out


def length_suffix(length: float) -> str:
    return "" if length == 1.0 else f"-L{round(100 * length)}"


def run(study: "Study") -> dict:
    curves = {}
    for spec in study.runs():
        if not spec.norm or spec.length != 1.0:
            continue
        steps = read_steps(study.run_dir(spec) / STEPS_FILE)
        curves.setdefault(spec.key, dict(family=spec.family.label, depth=spec.depth, seeds=[]))["seeds"].append(
            dict(step=[r["step"] for r in steps], loss=[r["loss"] for r in steps], error=[r["error"] for r in steps])
        )
    return summarise(study, curves)


def summarise(study: "Study", curves: dict | None) -> dict:
    """The part's result from the runs' summaries kept in the study state (per-seed errors and
    per-image correctness): tables, contrasts with their intervals and the regime, and the
    figure from the step ``curves`` (``None``: the runs' step logs are gone, the figure that
    is there is kept). Re-run on a finished study (:mod:`~skiplab.studies.restate`) it
    restates the numbers under the current rules."""
    config = study.config
    rows = [study.state.run_summary(spec.name) for spec in study.runs() if spec.norm]
    name = "degradation.png"
    if curves is not None:
        name = plot_degradation(curves, [f.label for f in config.families], study.path(name)).name
    networks = {}
    for row in rows:
        n = networks.setdefault(
            row["key"],
            dict(
                family=row["family"],
                depth=row["depth"],
                seeds=[],
                length=row.get("length", 1.0),
                parameters=row["parameters"],
                train_error=[],
                test_error=[],
                train_error_end=[],
                loss_plateau_drop=[],
                diverged=[],
                train_correct=[],
                test_correct=[],
            ),
        )
        n["seeds"].append(row["seed"])
        for k in ("train_error", "test_error", "train_error_end", "train_correct", "test_correct"):
            n[k].append(row[k])
        n["loss_plateau_drop"].append(row.get("loss_plateau_drop", math.nan))
        if row.get("diverged"):
            n["diverged"].append(row["seed"])
    table = {
        k: dict(
            {x: v for x, v in n.items() if not x.endswith("_correct")},
            train_error_mean_sd=mean_spread(n["train_error"]),
            test_error_mean_sd=mean_spread(n["test_error"]),
        )
        for k, n in networks.items()
    }
    plain = next((f.label for f in config.families if f.is_plain), None)
    res = next((f.label for f in config.families if f.is_residual), None)
    shallow, deep = config.shallowest, config.deepest
    out = dict(
        networks=table,
        figures=[name],
        steps=study.state.steps,
        classes=len(study.train.classes),
        shallow=shallow,
        deep=deep,
        plain=plain,
        residual=res,
        train_images=config.eval_images,
        test_images=len(study.test),
    )
    if plain and res:
        out["lengths"] = {}
        for length in config.lengths:
            x = length_suffix(length)
            steps = max(1, round(length * study.state.steps))
            entry = {
                f"{split}_contrasts": contrasts(
                    {k: n[f"{split}_correct"] for k, n in networks.items()}, plain, res, shallow, deep, x
                )
                for split in ("train", "test")
            }
            compared = [f"{f}-{d}{x}" for f in (plain, res) for d in (shallow, deep)]
            mean_train = {k: table[k]["train_error_mean_sd"][0] for k in compared}
            entry["regime"] = (
                smoke_run(config.quick)
                + enough_seeds(config.seeds)
                + degradation_gate(mean_train, [f"{plain}-{shallow}{x}", f"{res}-{shallow}{x}"], study.chance)
            )
            # the residual row ("deeper ResNets train better or no worse") speaks of converged nets
            converged = [f"{res}-{d}{x}" for d in (shallow, deep)]
            entry["residual_regime"] = entry["regime"] + convergence_gate(
                {k: mean_train[k] for k in converged}, {k: nan_mean(table[k]["loss_plateau_drop"]) for k in converged}
            )
            out["lengths"][str(steps)] = dict(entry, length=length)
            if length == 1.0:
                out.update(entry)
    return out
