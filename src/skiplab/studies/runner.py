"""The one experiment runner: state, seeds, steps, resume, worker processes, curves.

    runner = Runner.open(StudyExperiment(config), out="runs/s1")   # validates, then writes state
    runner.fix_steps()          # the budget -> steps, once, into the state (or --steps N)
    runner.train()              # every unfinished (network, seed) run, --jobs N at a time
    runner.summary(run)         # a finished run's numbers

Every run is an independent :class:`~skiplab.train.Trainer` run in
``<dir>/runs/<network>-s<seed>/`` with its own ``train.yaml`` (written before it
starts), ``steps.csv`` (the step curve), checkpoints and ``trained.json``; a killed
experiment continues with ``--resume`` and loses at most the steps since each unfinished
run's last checkpoint. With ``jobs > 1`` the runs train in that many worker processes
(``spawn``), the CPU threads split between them; to spread them over machines, fix the steps
with :meth:`Runner.plan`, hand each run to a scheduler as ``skiplab train --config
DIR/runs/<name>/train.yaml`` (or ``python -m skiplab.studies.worker DIR RUN``, see
:mod:`skiplab.studies.worker`) and finish with ``--resume``, which folds the trained runs in.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import active_children, get_context
from pathlib import Path
from typing import Any, Callable, Optional

from . import worker
from .calibrate import calibrate
from .experiment import Experiment, Run, experiment_class
from .state import ExperimentState


def choose_threads(requested: int = 0, jobs: int = 1) -> int:
    """Torch CPU threads per run: ``requested`` when > 0; else the cores split between the
    ``jobs`` (at least 1); on a busy machine (1-minute load average at or above the core
    count) 1 -- OpenMP threads of several processes spinning against each other ran 10x
    slower on a 2-core machine."""
    if requested < 0:
        raise ValueError(f"--threads must be >= 0, got {requested}")
    if requested:
        return requested
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= cores
    except OSError:  # pragma: no cover - no load average on this platform
        busy = False
    return 1 if busy else max(1, cores // max(1, jobs))


def load_average() -> Optional[tuple[float, float, float]]:
    try:
        return tuple(round(v, 2) for v in os.getloadavg())  # type: ignore[return-value]
    except OSError:  # pragma: no cover
        return None


def new_directory(prefix: str, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / f"{prefix}-{stamp}", 1
    while path.exists():
        n += 1
        path = root / f"{prefix}-{stamp}-{n}"
    return path


def latest_unfinished(prefix: str, state_file: str, what: str, root: Path = Path("runs")) -> Path:
    """The newest ``runs/<prefix>-*`` whose state is not complete (for a bare --resume)."""
    import json

    candidates = sorted(root.glob(f"{prefix}-*/{state_file}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            if not json.loads(path.read_text()).get("complete"):
                return path.parent
        except ValueError:
            continue
    raise FileNotFoundError(f"no unfinished {what.split()[-1]} under {root}/ to resume; pass --out DIR")


@contextlib.contextmanager
def _sigterm_interrupts():
    """While the parent waits for its workers, SIGTERM raises KeyboardInterrupt as SIGINT
    does (instead of killing it silently), so it can stop them, wait for them to save and say
    so; the exception carries the signal (``signum``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        err = KeyboardInterrupt()
        err.signum = signum  # type: ignore[attr-defined]
        raise err

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_workers(pool: ProcessPoolExecutor, signum: int) -> None:
    """Pass ``signum`` on to every worker (:func:`worker.start_in_pool`: a Ctrl-C reaches this
    process alone) and wait for them: a run in progress saves its last checkpoint after its
    current step and stops, as ``skiplab train`` does, and no further run starts. A second
    signal meanwhile stops them at once (SIGKILL; the checkpoints written before are kept,
    every write being atomic)."""
    for process in active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        for process in active_children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        pool.shutdown(wait=True, cancel_futures=True)


class RunsInterrupted(KeyboardInterrupt):
    """Training stopped because a worker process died or a signal came (``signum``: exit
    status 128 + it); every finished run is kept, and ``--resume`` continues the others from
    their last checkpoints."""

    def __init__(self, summary: str, signum: int = signal.SIGINT) -> None:
        self.summary, self.exit_code = summary, 128 + signum
        super().__init__(summary)


class Runner:
    """One experiment directory: its experiment, state, and trained runs."""

    def __init__(
        self,
        experiment: Experiment,
        state: ExperimentState,
        threads: int = 0,
        jobs: int = 1,
        log: Callable[[str], None] = print,
    ) -> None:
        self.experiment, self.state = experiment, state
        self.jobs = max(1, int(jobs))
        self.threads = choose_threads(threads, self.jobs)
        self.log = log

    @property
    def dir(self) -> Path:
        return self.state.dir

    @property
    def measure_threads(self) -> int:
        """Torch threads for the measurements after training: every thread the ``jobs``
        shared (measured in one process, they would otherwise leave cores idle)."""
        return self.threads * self.jobs

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open_in(
        cls,
        experiment_type: type,
        config: Any,
        out: Optional[str | Path],
        resume: bool,
        prefix: str,
        *,
        threads: int = 0,
        jobs: int = 1,
        log: Callable[[str], None] = print,
    ) -> "Runner":
        """:meth:`open` with the directory found for the caller: ``out``, else a new
        ``runs/<prefix>-<timestamp>`` (or, resuming, the latest unfinished one there); the
        experiment is ``experiment_type(config)`` (None when resuming without a config)."""
        if out is not None:
            directory = Path(out)
        elif resume:
            directory = latest_unfinished(prefix, experiment_type.state_file, "a study")
        else:
            directory = new_directory(prefix)
        experiment = experiment_type(config) if config is not None else None
        return cls.open(
            experiment, directory, resume, threads=threads, jobs=jobs, log=log, experiment_type=experiment_type
        )

    @classmethod
    def open(
        cls,
        experiment: Optional[Experiment],
        directory: Path,
        resume: bool,
        *,
        threads: int = 0,
        jobs: int = 1,
        log: Callable[[str], None] = print,
        experiment_type: Optional[type] = None,
    ) -> "Runner":
        """A new experiment in ``directory`` (its inputs validated before any state is
        written), or the one there to resume (``experiment``, when given, must match)."""
        directory = Path(directory)
        state_file = (experiment or experiment_type).state_file  # type: ignore[union-attr]
        what = (experiment or experiment_type).what  # type: ignore[union-attr]
        path = directory / state_file
        if resume:
            state = ExperimentState.load(path, what)
            stored = experiment_class(state.experiment).from_dict(state.config)
            if experiment_type is not None and not isinstance(stored, experiment_type):
                raise ValueError(f"{directory} holds {state.experiment}, not {experiment_type.__name__}")
            if experiment is not None and experiment.to_dict() != stored.to_dict():
                changed = [k for k in stored.to_dict() if stored.to_dict()[k] != experiment.to_dict().get(k)]
                raise ValueError(f"cannot resume {directory} with other options: {', '.join(changed)} differ")
            return cls(stored, state, threads, jobs, log)
        if experiment is None:
            raise ValueError(f"a new {what.split()[-1]} needs its configuration")
        if path.exists():
            raise ValueError(f"{directory} already holds {what}: pass --resume to continue it, or choose another --out")
        experiment.validate()  # bad inputs fail here, before anything is written
        state = ExperimentState(path, experiment.dotted(), experiment.to_dict())
        state.save()
        (directory / worker.STATE_POINTER).write_text(state_file + "\n")
        return cls(experiment, state, threads, jobs, log)

    # -- steps ----------------------------------------------------------------------------
    def fix_steps(self) -> int:
        """The common number of training steps, decided once and stored in the state."""
        if self.state.steps is not None:
            return self.state.steps
        budget = self.experiment.budget
        per_epoch = self.experiment.steps_per_epoch()
        calibration: dict = {"steps_per_epoch": per_epoch}
        runs = self.experiment.runs()
        reused = [self.experiment.existing(r) for r in runs]
        if runs and all(p is not None for p in reused):
            # every run is reused: the steps are theirs, whatever the budget says (timing a
            # minutes budget would train)
            steps = max(worker.checkpoint_trained(Path(p))[0]["steps"] for p in reused)
            calibration["reused_runs"] = True
            if budget.kind == "steps" and int(budget.value) != steps:
                self.log(
                    f"every run is reused: the study's steps are theirs ({steps}), not the budget's {int(budget.value)}"
                )
        elif budget.kind == "steps":
            steps = int(budget.value)
        elif budget.kind == "epochs":
            steps = int(budget.value) * per_epoch
        else:
            steps, timing = calibrate(self.experiment, self.threads, self.jobs, self.log)
            calibration.update(timing)
        calibration["load_average"] = load_average()
        self.state.set_steps(steps, calibration)
        return steps

    # -- training -------------------------------------------------------------------------
    def run_dir(self, run: Run) -> Path:
        """``<dir>/runs/<name>/`` -- or, for a run reused from elsewhere, its own directory."""
        existing = self.experiment.existing(run)
        if existing is not None:
            existing = Path(existing)
            return existing.parent.parent if existing.parent.name == "checkpoints" else existing.parent
        return self.dir / "runs" / run.name

    def reuse(self, run: Run) -> Optional[str]:
        """Fold in a run trained before (:meth:`Experiment.existing`) without training it; its
        trained steps are its checkpoint's. Returns the log line, or None when not reused."""
        existing = self.experiment.existing(run)
        if existing is None:
            return None
        if not self.state.run_done(run.name):
            trained, _ = worker.checkpoint_trained(Path(existing), trained_by=f"reused: {existing}")
            self._finish(run, trained)
        trained = self.state.data["runs"][run.name]["trained"]
        steps = self.experiment.run_steps(run, self.state.steps) if self.state.steps else None
        other = f"; the study's recipe has {steps}" if steps is not None and steps != trained["steps"] else ""
        return f"{run.name}: reused {existing} ({trained['steps']} steps{other}), not trained"

    def summary(self, run: Run) -> dict:
        return self.state.run_summary(run.name)

    def _finish(self, run: Run, trained: dict) -> str:
        summary = self.experiment.summarise(run, self.run_dir(run), trained)
        self.state.finish_run(run.name, trained, summary)
        if trained.get("diverged"):
            return f"diverged at step {trained['diverged']['step']}"
        return f"{trained['steps']} steps, {trained['seconds']:.0f} s"

    def plan(self) -> list[Path]:
        """Fix the steps and write every run's ``train.yaml`` without training (for a scheduler)."""
        steps = self.fix_steps()
        return [
            worker.write_run_config(self.experiment, r, steps, self.run_dir(r), self.threads)
            for r in self.experiment.runs()
            if self.experiment.existing(r) is None
        ]

    def train(self) -> None:
        """Train every run that is not finished; fold in runs a scheduler trained."""
        runs = self.experiment.runs()
        steps = self.fix_steps()
        per_epoch = self.state.data["calibration"].get("steps_per_epoch") or 1
        todo, reused = [], 0
        for run in runs:
            line = self.reuse(run)
            if line is not None:
                self.log(line)
                reused += 1
                continue
            if self.state.run_done(run.name):
                continue
            trained = worker.read_trained(self.run_dir(run))
            if trained is not None and (
                trained["steps"] >= self.experiment.run_steps(run, steps) or trained.get("diverged")
            ):
                self.log(f"{run.name}: trained elsewhere, {self._finish(run, trained)}")
                continue
            todo.append(run)
        done = len(runs) - len(todo)
        if not todo:
            self.log(
                f"nothing to train: {'every run' if len(runs) > 1 else 'the run'} finished earlier "
                f"or reused ({len(runs)})"
            )
            return
        self.log(
            f"training {len(runs)} runs for {steps} steps each ({steps / per_epoch:.2f} epochs), "
            f"{self.jobs} at a time, {self.threads} thread(s) each"
            + (f"; {done} finished earlier or reused, skipped" if done else "")
        )
        for run in todo:
            worker.write_run_config(self.experiment, run, steps, self.run_dir(run), self.threads)
        start = time.perf_counter()
        if self.jobs == 1 or len(todo) <= 1:
            for i, run in enumerate(todo, done + 1):
                trained = worker.train(self.experiment, run, steps, self.run_dir(run), self.threads)
                self.log(f"[{i}/{len(runs)}] {run.name}: {self._finish(run, trained)}")
        else:
            with (
                ProcessPoolExecutor(
                    max_workers=self.jobs, mp_context=get_context("spawn"), initializer=worker.start_in_pool
                ) as pool,
                _sigterm_interrupts(),
            ):
                futures = {
                    pool.submit(worker.train_from_state, str(self.state.path), run.name, self.threads): run
                    for run in todo
                }
                try:
                    for i, future in enumerate(as_completed(futures), done + 1):
                        run = futures[future]
                        self.log(f"[{i}/{len(runs)}] {run.name}: {self._finish(run, future.result())}")
                except BaseException as err:  # a stopped worker or a signal: start no further run
                    if type(err) is KeyboardInterrupt:
                        signum = getattr(err, "signum", signal.SIGINT)
                        _stop_workers(pool, signum)  # the workers save their last.pt
                        raise RunsInterrupted(
                            f"stopped by {signal.Signals(signum).name}; each run in "
                            f"progress saved its last checkpoint in {self.dir}",
                            signum,
                        ) from err
                    pool.shutdown(wait=True, cancel_futures=True)
                    if isinstance(err, BrokenProcessPool):
                        raise RunsInterrupted(
                            f"a worker process died before its run finished "
                            f"(killed, or out of memory); finished runs are kept in "
                            f"{self.dir}"
                        ) from err
                    raise
        if todo:
            self.state.add_time("training", time.perf_counter() - start)
