"""Restate a finished study under the current rules, from what it kept: no training and no
measurement of a trained net.

A study keeps its raw measurements: each run's per-seed errors and per-image correctness
(``study.json``), the gradient slopes per (net, seed, batch, stage) and each net's lesion
evaluations (``results/*.json``). When the evidence rules change (an interval method, a
threshold, a two-sided gate), the summaries, intervals and verdicts computed from those
measurements can be recomputed without the runs' checkpoints, which are seldom kept. Parts
that are measured on freshly initialised nets only (shattered gradients) are measured again,
which takes minutes; the loss landscape needs the trained weights and is left as it was.

    restate_study("docs/studies/cifar10")      # or: skiplab study --restate --out DIR

The report says at its top that it was restated, when, and from which commit's rules.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ..atomic import write_json
from .state import jsonable

#: parts recomputed from kept measurements, and the part measured again (init only)
FROM_KEPT = ("degradation", "gradients", "lesion")
MEASURED_AGAIN = ("shattered",)


def restate_study(directory: str | Path, log: Callable[[str], None] = print):
    """Recompute every summary, interval and verdict of the finished study in ``directory``
    from its kept measurements under the current rules, and rewrite its results and report.
    Returns the :class:`~skiplab.studies.study.StudyResult`."""
    from . import degradation, gradients, lesions, shattered
    from .report import write_report
    from .study import Study, StudyResult, open_study
    from .verdict import compute_verdict

    directory = Path(directory)
    runner = open_study(None, directory, resume=True, log=log)
    study = Study(runner)
    if not study.state.data.get("complete"):
        raise ValueError(f"{directory} is not a finished study: continue it with --resume, then restate it")
    results_dir = study.path("results")
    kept = {p.stem: json.loads(p.read_text()) for p in results_dir.glob("*.json") if "-" not in p.stem}
    results = {}
    for part in study.config.parts:
        t0 = time.perf_counter()
        old = kept.get(part)
        if part == "degradation":
            results[part] = degradation.summarise(study, curves=None)
        elif part == "gradients" and old is not None:
            results[part] = gradients.summarise(
                study, old["results"], old.get("missing", []), batch=old["batch"], batches=old["batches"]
            )
        elif part == "lesion" and old is not None:
            results[part] = lesions.summarise(study, old["per_seed"], old["draws"], old["max_k"])
        elif part in MEASURED_AGAIN:
            results[part] = shattered.run(study)
        elif old is not None:
            results[part] = old
            log(f"{part}: needs the trained weights; kept as measured")
            continue
        else:
            raise ValueError(f"{directory}: part {part} has no kept results ({results_dir / (part + '.json')})")
        results[part] = json.loads(json.dumps(results[part], default=jsonable))
        write_json(results_dir / f"{part}.json", results[part], indent=1)
        log(f"{part}: restated ({time.perf_counter() - t0:.0f} s)")
    verdict = compute_verdict(study.config, results)
    study.state.data["restated"] = dict(at=time.strftime("%Y-%m-%d %H:%M:%S"), commit=source_commit())
    study.state.save()
    md, html = write_report(study, results, verdict)
    return StudyResult(study.dir, verdict, md, html, results, study.config.quick)


def source_commit() -> str | None:
    """The git commit of the skiplab source that restated it (None outside a checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
