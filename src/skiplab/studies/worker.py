"""Train one run of an experiment -- in the runner's process, in a worker process, or on
another machine under a scheduler.

    python -m skiplab.studies.worker EXPERIMENT_DIR RUN_NAME [--threads N]

reads the experiment's state (its class, configuration and the fixed number of steps),
trains ``RUN_NAME`` with :class:`~skiplab.train.Trainer` (resuming from the run's
``checkpoints/last.pt`` when there is one) and writes ``runs/<name>/trained.json``; the
next ``--resume`` of the experiment picks it up. The run's own ``train.yaml`` (written by
the runner) is the same run for ``skiplab train --config runs/<name>/train.yaml`` where the
run reads its data from disk (every study run does: a declared subset is ``train_subset``
in it, the step curve ``step_log``, the gradient snapshots ``keep_steps``); the runner folds
such a run in from its ``checkpoints/last.pt``. Training output goes to ``runs/<name>/train.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import torch

from .curves import StepLog
from .experiment import Experiment, Run, experiment_class
from .state import ExperimentState, read_json, write_json_atomic

TRAINED_FILE = "trained.json"
CONFIG_FILE = "train.yaml"
DIVERGED_FILE = "diverged.pt"
STATE_POINTER = "experiment.txt"


def find_run(experiment: Experiment, name: str) -> Run:
    runs = {r.name: r for r in experiment.runs()}
    if name not in runs:
        raise ValueError(f"no run {name!r} in this experiment; its runs are {', '.join(runs)}")
    return runs[name]


def write_run_config(experiment: Experiment, run: Run, steps: int, run_dir: Path, threads: int) -> Path:
    """``runs/<name>/train.yaml``: the run's full training configuration."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG_FILE
    path.write_text(experiment.train_config(run, steps, run_dir, threads).to_yaml())
    return path


def train(experiment: Experiment, run: Run, steps: int, run_dir: Path, threads: int = 0) -> dict:
    """Train (or finish) ``run``; returns and writes what ``trained.json`` holds: steps
    done, wall-clock, the last epoch's metrics, and whether (where) the loss diverged.

    A run whose loss turns non-finite stops there and keeps its last finite weights in
    ``diverged.pt`` (the measurements use them and the report says so)."""
    from ..train import NonFiniteLossError, Trainer

    run_dir.mkdir(parents=True, exist_ok=True)
    config = experiment.train_config(run, steps, run_dir, threads)
    config = config.replace(resume=(run_dir / "checkpoints" / "last.pt").exists())
    train_set, eval_set = experiment.datasets(run)
    steplog = None if config.step_log else StepLog()  # the trainer writes steps.csv itself
    start = time.perf_counter()
    with open(run_dir / "train.log", "a") as log, contextlib.redirect_stdout(log):
        trainer = Trainer(config, [steplog] if steplog else [], train_set=train_set, eval_set=eval_set)
        diverged, metrics = None, {}
        try:
            if _stopped:  # a pool worker signalled while the run was set up
                raise StoppedBeforeRun(run.name)
            metrics = trainer.fit().metrics
        except NonFiniteLossError as err:
            diverged = dict(step=trainer.step, message=str(err).split(":")[0])
            trainer.callbacks.on_fit_end(trainer)  # the step curve up to the divergence
            torch.save(trainer.model.state_dict(), run_dir / DIVERGED_FILE)
        finally:
            trainer.close()
    trained = dict(
        steps=trainer.step,
        seconds=round(time.perf_counter() - start, 1),
        diverged=diverged,
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    )
    write_json_atomic(run_dir / TRAINED_FILE, trained)
    return trained


def read_trained(run_dir: Path) -> dict | None:
    """What ``trained.json`` holds -- or, for a run trained by ``skiplab train --config
    runs/<name>/train.yaml`` (which writes no ``trained.json``), the same read from its
    ``checkpoints/last.pt`` (written into ``trained.json`` so it is read once)."""
    path = Path(run_dir) / TRAINED_FILE
    if path.is_file():
        return read_json(path, "a run")
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if not last.is_file():
        return None
    trained, state = checkpoint_trained(last)
    if state.get("config", {}).get("steps") and trained["steps"] >= state["config"]["steps"]:
        write_json_atomic(path, trained)
    return trained


def checkpoint_trained(path: Path, trained_by: str = "skiplab train") -> tuple[dict, dict]:
    """(what ``trained.json`` would hold, the checkpoint) of the run that wrote checkpoint
    ``path``; nothing is written."""
    from ..train import load_checkpoint

    state = load_checkpoint(path)
    trained = dict(
        steps=int(state["step"]), seconds=float("nan"), diverged=None, metrics={}, trained_by=trained_by
    )  # its wall-clock is in its own train log
    return trained, state


# ---- a worker process of the runner (--jobs N) ---------------------------------------------
_stopped = False  # a signal came: this worker process starts no further run


def _stop_between_runs(signum, frame) -> None:
    global _stopped
    _stopped = True


def start_in_pool() -> None:
    """A pool worker's start (the runner's ``initializer``): its own process group, so a Ctrl-C
    at the terminal reaches the runner alone, which passes each signal on to its workers once;
    a signal that comes between runs (or before the training loop takes over the signals)
    means "start no further run"."""
    os.setpgrp()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_between_runs)


class StoppedBeforeRun(KeyboardInterrupt):
    """A worker that a signal stopped did not start run ``name``."""


def train_from_state(state_path: str, name: str, threads: int = 0) -> dict:
    """Worker entry: rebuild the experiment from its state file and train run ``name``."""
    global _stopped
    if _stopped:
        raise StoppedBeforeRun(name)
    try:
        return _train_from_state(state_path, name, threads)
    except KeyboardInterrupt:  # the run saved its last.pt: no further run in this process
        _stopped = True
        raise


def _train_from_state(state_path: str, name: str, threads: int) -> dict:
    state = ExperimentState.load(Path(state_path))
    experiment = experiment_class(state.experiment).from_dict(state.config)
    if state.steps is None:
        raise ValueError(f"{state_path} has no fixed number of steps yet: run the experiment (or its --plan) first")
    if threads:
        torch.set_num_threads(threads)
    run = find_run(experiment, name)
    return train(experiment, run, state.steps, state.dir / "runs" / run.name, threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m skiplab.studies.worker",
        description="Train one run of a skiplab experiment (for a job scheduler).",
    )
    p.add_argument("directory", help="the experiment directory (holds its state file)")
    p.add_argument("run", help="the run's name (runs/<name>/)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    directory = Path(args.directory)
    pointer = directory / STATE_POINTER
    try:
        state_file = pointer.read_text().strip() if pointer.is_file() else "experiment.json"
        trained = train_from_state(str(directory / state_file), args.run, args.threads)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{args.run}: {trained['steps']} steps in {trained['seconds']:.0f} s"
        + (f", diverged at step {trained['diverged']['step']}" if trained["diverged"] else "")
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
