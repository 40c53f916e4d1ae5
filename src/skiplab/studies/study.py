"""``run_study``: train the networks, run the measurement parts, write the report.

    result = run_study(StudyConfig.create())            # the default ten-minute study
    print(result.directory, *result.verdict, sep="\\n")

Order: (1) fix the common number of training steps (a minutes budget is turned into
steps by timing every network), (2) train every run that is not finished (each in
``<study>/runs/<name>/``, resumable), (3) run each part that is not finished and store
its numbers in ``<study>/results/<part>.json``, (4) compute the verdict and write
``report.md``, ``report.html`` and the figures. ``study.json`` records what is done, so
``resume=True`` redoes nothing that finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..data import ImageDataset, load_dataset
from . import degradation, gradients, landscape, lesions, shattered
from .config import StudyConfig
from .progress import inference_autocast
from .report import write_report
from .runs import (RunSpec, choose_threads, fixed_batches, load_trained, steps_for_budget, study_runs,
                   time_training_step, train_run)
from .state import STATE_FILE, StudyState, jsonable
from .verdict import compute_verdict

PART_MODULES = {"degradation": degradation, "gradients": gradients, "lesion": lesions,
                "landscape": landscape, "shattered": shattered}


class Study:
    """One study directory: its configuration, state, data and trained networks."""

    def __init__(self, config: StudyConfig, directory: Path, state: StudyState, threads: int = 0) -> None:
        self.config, self.dir, self.state = config, Path(directory), state
        self.threads = threads
        self._models: dict[str, nn.Module] = {}
        self._probes: dict[str, list] = {}

    # -- data ---------------------------------------------------------------------------
    @property
    def train(self) -> ImageDataset:
        return load_dataset(self.config.data, "train", seed=self.config.seed)

    @property
    def test(self) -> ImageDataset:
        return load_dataset(self.config.data, "test", seed=self.config.seed)

    def train_probe(self) -> list:
        """Fixed, unaugmented training images for measurements (``eval_images`` of them)."""
        if "train" not in self._probes:
            self._probes["train"] = fixed_batches(self.train, self.config.eval_images, self.config.seed, "train")
        return self._probes["train"]

    def test_probe(self) -> list:
        """Fixed test images for measurements (``eval_images`` of them)."""
        if "test" not in self._probes:
            self._probes["test"] = fixed_batches(self.test, self.config.eval_images, self.config.seed + 1, "test")
        return self._probes["test"]

    def gradient_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One fixed batch of training images (at most 128) for the gradient measurements."""
        x, y = self.train_probe()[0]
        return x[:128], y[:128]

    # -- networks -----------------------------------------------------------------------
    def runs(self) -> list[RunSpec]:
        return study_runs(self.config)

    def has_trained_runs(self) -> bool:
        return bool(self.runs())

    def run_dir(self, spec: RunSpec) -> Path:
        return self.dir / "runs" / spec.name

    def fresh(self, spec: RunSpec) -> nn.Module:
        """``spec`` at initialisation, seeded with the study's seed."""
        torch.manual_seed(self.config.seed)
        return spec.build(len(self.train.classes), self.train.images.shape[1]).eval()

    def trained(self, spec: RunSpec) -> nn.Module:
        """The trained network of a finished run (kept in memory once loaded)."""
        if spec.name not in self._models:
            if not self.state.run_done(spec.name):
                raise ValueError(f"run {spec.name} is not trained; the study trains it before the parts")
            self._models[spec.name] = load_trained(spec, self.run_dir(spec), len(self.train.classes),
                                                   self.train.images.shape[1])
        return self._models[spec.name]

    def path(self, name: str) -> Path:
        return self.dir / name

    def autocast(self):
        return inference_autocast(self.config.precision)

    # -- training -----------------------------------------------------------------------
    def fix_steps(self, log: Callable[[str], None]) -> int:
        """The common number of training steps, decided once and stored in the state."""
        if self.state.steps is not None:
            return self.state.steps
        config, train = self.config, self.train
        steps_per_epoch = len(train) // config.recipe.batch_size
        if steps_per_epoch == 0:
            raise ValueError(f"{train.name} has {len(train)} images, fewer than one batch of "
                             f"{config.recipe.batch_size}")
        calibration: dict = {}
        if config.budget.kind == "steps":
            steps = int(config.budget.value)
        elif config.budget.kind == "epochs":
            steps = int(config.budget.value) * steps_per_epoch
        else:
            log(f"timing one training step of each of the {len(self.runs())} networks for the "
                f"{config.budget} budget ...")
            start = time.perf_counter()
            seconds = {spec.name: time_training_step(spec, train, config) for spec in self.runs()}
            steps = steps_for_budget(config, seconds, steps_per_epoch, len(self.test) + config.eval_images)
            calibration = dict(step_seconds={k: round(v, 4) for k, v in seconds.items()},
                               seconds=round(time.perf_counter() - start, 1))
        calibration["steps_per_epoch"] = steps_per_epoch
        self.state.set_steps(steps, calibration)
        return steps

    def train_all(self, log: Callable[[str], None]) -> None:
        runs = self.runs()
        if not runs:
            return
        steps = self.fix_steps(log)
        log(f"training {len(runs)} networks for {steps} steps each "
            f"({steps / self.state.data['calibration']['steps_per_epoch']:.2f} epochs): "
            f"{', '.join(r.name for r in runs)}")
        for i, spec in enumerate(runs, 1):
            if self.state.run_done(spec.name):
                log(f"[{i}/{len(runs)}] {spec.name}: finished earlier, skipped")
                continue
            start = time.perf_counter()
            model, summary = train_run(spec, self.config, steps, self.run_dir(spec), self.train_probe(),
                                       self.test_probe(), self.threads)
            self._models[spec.name] = model
            self.state.finish_run(spec.name, summary)
            self.state.add_time("training", time.perf_counter() - start)
            status = f"diverged at step {summary['diverged']['step']}" if summary["diverged"] else \
                f"training loss {summary['train_loss_end']:.3f}, test accuracy {100 * summary['test_acc']:.1f}%"
            log(f"[{i}/{len(runs)}] {spec.name}: {status} ({summary['seconds']:.0f} s)")


@dataclass
class StudyResult:
    directory: Path
    verdict: list[str]
    report_md: Path
    report_html: Path
    results: dict


def new_study_dir(root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = root / f"study-{stamp}", 1
    while path.exists():
        n += 1
        path = root / f"study-{stamp}-{n}"
    return path


def latest_unfinished(root: Path = Path("runs")) -> Path:
    """The most recent study under ``root`` that did not complete (for a bare --resume)."""
    candidates = sorted(root.glob(f"study-*/{STATE_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        if not json.loads(path.read_text()).get("complete"):
            return path.parent
    raise FileNotFoundError(f"no unfinished study under {root}/ to resume; pass --out STUDY_DIR")


def open_study(config: Optional[StudyConfig], out: Optional[str | Path], resume: bool, threads: int = 0) -> Study:
    """A new study in ``out`` (default runs/study-<timestamp>) or the one to resume."""
    if resume:
        directory = Path(out) if out is not None else latest_unfinished()
        state = StudyState.load(directory)
        if config is not None and state.config.differences(config):
            raise ValueError(f"cannot resume {directory} with other options: "
                             f"{', '.join(state.config.differences(config))} differ from the study's")
        return Study(state.config, directory, state, threads)
    if config is None:
        raise ValueError("a new study needs a StudyConfig")
    directory = Path(out) if out is not None else new_study_dir()
    if (directory / STATE_FILE).exists():
        raise ValueError(f"{directory} already holds a study: pass --resume to continue it, "
                         f"or choose another --out")
    state = StudyState(directory, config)
    state.save()
    return Study(config, directory, state, threads)


def run_study(config: Optional[StudyConfig] = None, out: Optional[str | Path] = None, resume: bool = False,
              log: Callable[[str], None] = print, threads: int = 0) -> StudyResult:
    """Run (or continue) a study and write its report; see the module docstring.
    ``threads``: torch CPU threads, 0 = automatic (see :func:`~skiplab.studies.runs.choose_threads`)."""
    threads = choose_threads(threads)
    study = open_study(config if config is not None or resume else StudyConfig.create(), out, resume, threads)
    config, state = study.config, study.state
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(study, log)
    finally:
        torch.set_num_threads(previous_threads)


def _run(study: Study, log: Callable[[str], None]) -> StudyResult:
    config, state = study.config, study.state
    log(f"study in {study.dir}/ on {config.data}: {', '.join(f.label for f in config.families)} nets "
        f"at depths {', '.join(map(str, config.depths))}; parts {', '.join(config.parts)}; "
        f"{study.threads or torch.get_num_threads()} thread(s)")
    state.data["threads"] = study.threads or torch.get_num_threads()
    start = time.perf_counter()
    study.train_all(log)
    results = {}
    results_dir = study.path("results")
    for part in config.parts:
        path = results_dir / f"{part}.json"
        if state.part_done(part) and path.is_file():
            results[part] = json.loads(path.read_text())
            log(f"{part}: finished earlier, skipped")
            continue
        t0 = time.perf_counter()
        results[part] = json.loads(json.dumps(PART_MODULES[part].run(study), default=jsonable))
        results_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results[part], indent=1))
        state.finish_part(part, time.perf_counter() - t0)
        log(f"{part}: done ({time.perf_counter() - t0:.0f} s)")
    state.add_time("total", time.perf_counter() - start)
    verdict = compute_verdict(config, results)
    md, html = write_report(study, results, verdict)
    state.finish()
    return StudyResult(study.dir, verdict, md, html, results)
