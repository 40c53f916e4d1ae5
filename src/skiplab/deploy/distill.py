"""Distillation runs and their comparison with the same student trained from scratch.

The loss itself is in :mod:`skiplab.train.distill` (Hinton et al. 2015), usable by any
recipe; this module runs a student with a teacher for several seeds and, beside it, the
same student with the same config *without* the teacher (same schedule, data order,
augmentation and init for a seed), and reports the paired difference of the final
accuracies: the mean over seeds and a Student-t interval. Existing scratch runs can be
paired instead of retrained (``scratch_dirs``) when their config matches in every field
but the run bookkeeping.

A single seed without comparison writes ``out`` as a normal run directory; otherwise
``out/kd_s{seed}/`` and ``out/scratch_s{seed}/`` are run directories and
``out/distill_report.json`` holds the comparison. Runs resume (``--resume``) and finished
runs are read back from their ``metrics.csv``.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Optional, Sequence, Union

import yaml

from ..atomic import write_json
from ..evidence import seed_interval
from ..train import TrainConfig, fit

# config fields that may differ between a KD run and its scratch twin
BOOKKEEPING = (
    "out",
    "resume",
    "progress",
    "teacher",
    "kd_temperature",
    "kd_alpha",
    "tensorboard",
    "num_threads",
    "checkpoint_every",
    "log_every",
)


def paired_difference(treated: Sequence[float], control: Sequence[float]) -> dict:
    """Mean of ``treated[i] - control[i]`` with its 95 % t interval over seeds
    (:func:`skiplab.evidence.seed_interval`; None for one pair)."""
    if len(treated) != len(control) or not treated:
        raise ValueError(f"need paired values, got {len(treated)} and {len(control)}")
    diffs = [a - b for a, b in zip(treated, control)]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return {"mean": mean, "low": None, "high": None, "n": 1, "diffs": diffs}
    low, high = seed_interval(diffs)
    return {"mean": mean, "low": low, "high": high, "n": len(diffs), "diffs": diffs}


def final_metric(run_dir: Union[str, Path], metric: str = "val_acc") -> Optional[float]:
    """``metric`` in the last row of a run's metrics.csv that has it (None: not there)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return None
    rows = [r for r in csv.DictReader(path.open()) if r.get(metric) not in (None, "")]
    return float(rows[-1][metric]) if rows else None


def _run(config: TrainConfig) -> float:
    """Train ``config`` unless its run directory is marked DONE; its final val_acc."""
    run_dir = Path(config.out)
    if not (run_dir / "DONE").exists():
        fit(config)
        (run_dir / "DONE").write_text("finished\n")
    value = final_metric(run_dir)
    if value is None:
        raise ValueError(
            f"{run_dir}/metrics.csv has no val_acc: distillation runs need an evaluation split (eval_split not 'none')"
        )
    return value


def check_twin(kd: TrainConfig, scratch_dir: Union[str, Path]) -> None:
    """Raise unless the scratch run at ``scratch_dir`` has ``kd``'s config but for
    :data:`BOOKKEEPING` fields (same model, data, schedule, seed...)."""
    path = Path(scratch_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"scratch run {scratch_dir} has no config.yaml")
    theirs = yaml.safe_load(path.read_text()) or {}
    ours = kd.to_dict()
    diff = [k for k in ours if k not in BOOKKEEPING and theirs.get(k, TrainConfig().to_dict()[k]) != ours[k]]
    if diff:
        raise ValueError(
            f"scratch run {scratch_dir} differs from the distilled student in "
            + ", ".join(f"{k} ({theirs.get(k)!r} vs {ours[k]!r})" for k in diff)
        )


def distill_compare(
    config: TrainConfig,
    seeds: Sequence[int],
    out: Union[str, Path],
    *,
    compare_scratch: bool = True,
    scratch_dirs: Sequence[Union[str, Path]] = (),
) -> dict:
    """Train ``config`` (which names a ``teacher``) for every seed and, when
    ``compare_scratch``, the same student without the teacher -- or pair the given
    ``scratch_dirs`` (one per seed, in order) -- and report the paired difference of the
    final ``val_acc`` (see the module documentation)."""
    if config.teacher is None:
        raise ValueError("distillation needs a teacher checkpoint (--teacher)")
    if scratch_dirs and len(scratch_dirs) != len(seeds):
        raise ValueError(f"--scratch needs one run per seed: {len(seeds)} seeds, {len(scratch_dirs)} runs")
    out = Path(out)
    if len(seeds) == 1 and not compare_scratch and not scratch_dirs:
        return {"kd": [_run(config.replace(out=str(out), seed=seeds[0]))], "seeds": list(seeds)}
    kd, scratch = [], []
    for i, seed in enumerate(seeds):
        student = config.replace(out=str(out / f"kd_s{seed}"), seed=seed)
        kd.append(_run(student))
        if scratch_dirs:
            check_twin(student, scratch_dirs[i])
            value = final_metric(scratch_dirs[i])
            if value is None:
                raise ValueError(f"scratch run {scratch_dirs[i]} has no val_acc in metrics.csv")
            scratch.append(value)
        elif compare_scratch:
            scratch.append(_run(student.replace(out=str(out / f"scratch_s{seed}"), teacher=None)))
    report = {
        "teacher": config.teacher,
        "student": config.model,
        "seeds": list(seeds),
        "kd_temperature": config.kd_temperature,
        "kd_alpha": config.kd_alpha,
        "metric": "val_acc (last epoch)",
        "kd": kd,
    }
    if scratch:
        report.update(
            scratch=scratch,
            scratch_dirs=[str(d) for d in scratch_dirs] or [str(out / f"scratch_s{s}") for s in seeds],
            difference_points={
                k: (None if v is None else 100 * v) if k != "diffs" else [100 * d for d in v]
                for k, v in paired_difference(kd, scratch).items()
                if k != "n"
            },
            pairs=len(kd),
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "distill_report.json", report)
    return report


def format_comparison(report: dict) -> str:
    """The table ``skiplab distill`` prints: per seed, KD vs scratch, and the paired mean."""
    lines = [f"{'seed':>6}  {'KD acc %':>9}  {'scratch %':>9}  {'diff':>7}"]
    scratch = report.get("scratch") or [None] * len(report["kd"])
    for seed, a, b in zip(report["seeds"], report["kd"], scratch):
        lines.append(
            f"{seed:>6}  {100 * a:9.2f}  "
            + (f"{100 * b:9.2f}  {100 * (a - b):+7.2f}" if b is not None else f"{'-':>9}")
        )
    d = report.get("difference_points")
    if d:
        interval = (
            f" (95% interval {d['low']:+.2f} to {d['high']:+.2f})"
            if d["low"] is not None
            else " (one seed: no interval)"
        )
        lines.append(f"KD - scratch over {report['pairs']} seeds: {d['mean']:+.2f} points{interval}")
    return "\n".join(lines)
