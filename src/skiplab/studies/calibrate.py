"""A minutes budget becomes one common number of steps, timed through the real loop.

Each distinct network of an experiment runs a few steps of its own
:class:`~skiplab.train.Trainer` (same config, data, augmentation, precision and threads as
its runs; no output directory, no evaluation) and the median time between step ends after
the first is its step time. The steps are chosen once, so that all runs with their
overheads fit the budget, and written into the state: a resume, or the same command with
``--steps N``, trains exactly those steps on any machine.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Sequence

from ..train import Callback, Trainer
from .experiment import Experiment, Run

#: share of the budget kept for evaluations, checkpoints, process start-up and the drift of
#: a shared machine's speed between the timing and the runs
OVERHEAD = 0.25


class _StepTimes(Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, trainer) -> None:
        self.ends.append(time.perf_counter())


def time_steps(experiment: Experiment, run: Run, threads: int, repeats: int = 3) -> float:
    """Seconds of one training step of ``run``: the median of ``repeats`` steps after a
    warm-up step, through :class:`~skiplab.train.Trainer` itself."""
    config = experiment.train_config(run, 1 + repeats, None, threads)
    config = config.replace(
        out=None, resume=False, eval_split="none", progress=False, tensorboard=False, checkpoint_every=0
    )
    timer = _StepTimes()
    train_set, _ = experiment.datasets(run)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        trainer = Trainer(config, [timer], train_set=train_set)
        try:
            trainer.fit()
        finally:
            trainer.close()
    gaps = sorted(b - a for a, b in zip(timer.ends, timer.ends[1:]))
    return gaps[len(gaps) // 2] if gaps else float("nan")


def steps_for_budget(minutes: float, step_seconds: Sequence[float], jobs: int = 1, overhead: float = OVERHEAD) -> int:
    """Steps per run so that every run (one step time each in ``step_seconds``) fits in
    ``minutes`` with ``jobs`` runs at a time, keeping ``overhead`` of the budget aside."""
    total = sum(step_seconds)
    return max(1, int(minutes * 60 * (1 - overhead) * jobs / total))


def calibrate(experiment: Experiment, threads: int, jobs: int, log: Callable[[str], None]) -> tuple[int, dict]:
    """(steps, calibration record) for the experiment's minutes budget."""
    runs = experiment.runs()
    first = {}
    for run in runs:  # one timing per network: seeds cost the same
        first.setdefault(run.key, run)
    log(f"timing {len(first)} networks through the training loop for the {experiment.budget} budget ...")
    start = time.perf_counter()
    seconds = {key: time_steps(experiment, run, threads) for key, run in first.items()}
    share = {r.name: experiment.run_steps(r, 1000) / 1000 for r in runs}  # shorter lengths cost less
    steps = steps_for_budget(experiment.budget.value, [seconds[r.key] * share[r.name] for r in runs], jobs)
    return steps, dict(
        step_seconds={k: round(v, 4) for k, v in seconds.items()},
        jobs=jobs,
        threads=threads,
        overhead=OVERHEAD,
        seconds=round(time.perf_counter() - start, 1),
    )
