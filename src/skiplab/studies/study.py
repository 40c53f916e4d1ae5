"""``run_study``: train the networks on the runner, run the measurement parts, write the report.

    result = run_study(StudyConfig.create())            # the default ten-minute study
    print(result.directory, *result.verdict, sep="\\n")

Order: (1) the runner fixes the common number of training steps (``--steps`` outright, or a
minutes budget timed through the training loop, once, into ``study.json``), (2) it trains
every (network, seed) run that is not finished (``<study>/runs/<network>-s<seed>/``, each
resumable, ``--jobs`` at a time) -- a run that the configuration's ``runs:`` names is reused
from its own directory or checkpoint and never trained, (3) each part that is not finished runs and stores its
numbers in ``<study>/results/<part>.json``, (4) the verdict (intervals, regime gates) and
``report.md``, ``report.html`` and the figures. ``resume=True`` redoes nothing that finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..atomic import write_json
from ..data import ImageDataset, load_dataset
from .config import StudyConfig, existing_checkpoint
from .experiment import Experiment, Run
from .progress import inference_autocast
from .runner import Runner
from .runs import RunSpec, fixed_batches, load_trained, measure_fit, study_runs, subset, train_config
from .state import jsonable

STATE_FILE = "study.json"


class StudyExperiment(Experiment):
    """The skip-connection study as an experiment of the runner: its runs are every family
    at every depth and seed (see :func:`~skiplab.studies.runs.study_runs`)."""

    state_file = STATE_FILE
    what = "a study"

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self._data: dict[str, ImageDataset] = {}
        self._probes: dict[str, list] = {}

    def to_dict(self) -> dict:
        return self.config.to_dict()

    @classmethod
    def from_dict(cls, config: dict) -> "StudyExperiment":
        return cls(StudyConfig.from_dict(config))

    # -- data -----------------------------------------------------------------------------
    def dataset(self, split: str) -> ImageDataset:
        """A split of the study's data; "train" is the declared fixed subset of
        ``train_images`` images (seeded by the study's first seed) when one is set."""
        if split not in self._data:
            data = load_dataset(self.config.data, split, seed=self.config.seed)
            n = self.config.train_images
            if split == "train" and n:
                if n < self.config.recipe.batch_size or n > len(data):
                    raise ValueError(
                        f"--train-images must be between one batch ({self.config.recipe.batch_size}) "
                        f"and the {len(data)} training images of {data.name}; got {n}"
                    )
                data = subset(data, n, self.config.seed, "subset")
            self._data[split] = data
        return self._data[split]

    def datasets(self, run: Run):
        """None: the trainer loads the data itself, a declared subset included
        (``train_subset`` in the run's ``train.yaml``), so ``skiplab train --config`` trains
        the same run; the study evaluates after training, so no eval set."""
        return None, None

    def validate(self) -> None:
        train = self.dataset("train")
        self.dataset("test")
        if len(train) < self.config.recipe.batch_size:
            raise ValueError(
                f"{train.name} has {len(train)} images, fewer than one batch of {self.config.recipe.batch_size}"
            )

    def train_probe(self) -> list:
        """The fixed, unaugmented training subset (``eval_images``) for training error."""
        if "train" not in self._probes:
            self._probes["train"] = fixed_batches(
                self.dataset("train"), self.config.eval_images, self.config.seed, "train"
            )
        return self._probes["train"]

    def test_batches(self) -> list:
        """The whole test split, unaugmented."""
        if "test" not in self._probes:
            test = self.dataset("test")
            self._probes["test"] = fixed_batches(test, len(test), self.config.seed + 1, "test")
        return self._probes["test"]

    # -- runs -------------------------------------------------------------------------------
    def specs(self) -> list[RunSpec]:
        return study_runs(self.config)

    def runs(self) -> list[Run]:
        return [s.run for s in self.specs()]

    def existing(self, run: Run) -> Optional[Path]:
        """The checkpoint the study's ``runs:`` mapping names for ``run`` (reused, never
        retrained), or None."""
        path = self.config.runs.get(run.name)
        return existing_checkpoint(path) if path is not None else None

    @property
    def budget(self):
        return self.config.budget

    def steps_per_epoch(self) -> int:
        return len(self.dataset("train")) // self.config.recipe.batch_size

    def run_steps(self, run: Run, steps: int) -> int:
        return RunSpec.from_run(run).steps(steps)

    def train_config(self, run: Run, steps: int, run_dir: Optional[Path], threads: int):
        return train_config(RunSpec.from_run(run), self.config, steps, run_dir, threads)

    def build(self, spec: RunSpec) -> nn.Module:
        train = self.dataset("train")
        return spec.build(len(train.classes), train.images.shape[1])

    def load(self, spec: RunSpec, run_dir: Path, step: Optional[int] = None) -> nn.Module:
        train = self.dataset("train")
        existing = self.existing(spec.run) if step is None else None
        return load_trained(spec, run_dir, len(train.classes), train.images.shape[1], step, path=existing)

    def summarise(self, run: Run, run_dir: Path, trained: dict) -> dict:
        from .curves import STEPS_FILE, end_of_training, read_epochs, read_steps

        spec = RunSpec.from_run(run)
        model = self.load(spec, run_dir)
        # a reused run trained by `skiplab train` keeps its curve per epoch (metrics.csv) only
        curve = read_steps(run_dir / STEPS_FILE) or read_epochs(run_dir / "metrics.csv")
        return dict(
            name=run.name,
            key=run.key,
            network=spec.network,
            family=spec.family.key,
            depth=spec.depth,
            norm=spec.norm,
            seed=run.seed,
            length=spec.length,
            steps=trained["steps"],
            seconds=trained["seconds"],
            diverged=trained.get("diverged"),
            parameters=sum(p.numel() for p in model.parameters()),
            **end_of_training(curve),
            reused=self.config.runs.get(run.name),
            **measure_fit(model, self.train_probe(), self.test_batches()),
        )


class Study:
    """What the measurement parts see: the configuration, data, state and networks."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.experiment: StudyExperiment = runner.experiment  # type: ignore[assignment]
        self.config: StudyConfig = self.experiment.config
        self.state = runner.state
        self.dir = runner.dir
        self._models: dict[str, nn.Module] = {}

    @property
    def train(self) -> ImageDataset:
        return self.experiment.dataset("train")

    @property
    def test(self) -> ImageDataset:
        return self.experiment.dataset("test")

    @property
    def chance(self) -> float:
        return 1 / len(self.train.classes)

    def train_probe(self) -> list:
        return self.experiment.train_probe()

    def test_probe(self) -> list:
        """The whole test split (lesions are measured on all of it, as Veit did)."""
        return self.experiment.test_batches()

    def gradient_batch(self, index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch of training images (at most 128) for the gradient measurements."""
        x = torch.cat([b[0] for b in self.train_probe()])
        y = torch.cat([b[1] for b in self.train_probe()])
        lo = (index * 128) % max(1, len(y) - 127) if len(y) > 128 else 0
        return x[lo : lo + 128], y[lo : lo + 128]

    def runs(self) -> list[RunSpec]:
        return self.experiment.specs()

    def run_dir(self, spec: RunSpec) -> Path:
        return self.runner.run_dir(spec.run)

    def fresh(self, spec: RunSpec) -> nn.Module:
        """``spec`` at initialisation, seeded with its seed."""
        torch.manual_seed(spec.seed)
        return self.experiment.build(spec).eval()

    def snapshot(self, spec: RunSpec, step: int) -> nn.Module:
        """The weights of a finished run at ``step`` (a kept ``checkpoints/step-N.pt``)."""
        return self.experiment.load(spec, self.run_dir(spec), step)

    def trained(self, spec: RunSpec) -> nn.Module:
        """The trained network of a finished run (kept in memory once loaded)."""
        if spec.name not in self._models:
            if not self.state.run_done(spec.name):
                raise ValueError(f"run {spec.name} is not trained; the study trains it before the parts")
            self._models[spec.name] = self.experiment.load(spec, self.run_dir(spec))
        return self._models[spec.name]

    def path(self, name: str) -> Path:
        return self.dir / name

    def autocast(self):
        return inference_autocast(self.config.precision)


@dataclass
class StudyResult:
    directory: Path
    verdict: list[str]
    report_md: Path
    report_html: Path
    results: dict
    quick: bool = False


def open_study(
    config: Optional[StudyConfig],
    out: Optional[str | Path],
    resume: bool,
    threads: int = 0,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> Runner:
    """A new study in ``out`` (default runs/study-<timestamp>) or the one to resume."""
    return Runner.open_in(StudyExperiment, config, out, resume, "study", threads=threads, jobs=jobs, log=log)


def run_study(
    config: Optional[StudyConfig] = None,
    out: Optional[str | Path] = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    threads: int = 0,
    jobs: int = 1,
    plan: bool = False,
) -> Optional[StudyResult]:
    """Run (or continue) a study and write its report; see the module docstring.
    ``threads``: torch CPU threads per run (0 = automatic); ``jobs``: runs trained at once in
    worker processes; ``plan``: only fix the steps and write each run's ``train.yaml``."""
    runner = open_study(
        config if config is not None or resume else StudyConfig.create(), out, resume, threads, jobs, log
    )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(runner.threads)
    try:
        if plan:
            paths = runner.plan()
            log(f"planned {len(paths)} runs of {runner.state.steps} steps in {runner.dir}/runs/")
            return None
        return _run(Study(runner), log)
    finally:
        torch.set_num_threads(previous_threads)


def _run(study: Study, log: Callable[[str], None]) -> StudyResult:
    from . import degradation, gradients, landscape, lesions, shattered
    from .report import write_report
    from .verdict import compute_verdict

    modules = {
        "degradation": degradation,
        "gradients": gradients,
        "lesion": lesions,
        "landscape": landscape,
        "shattered": shattered,
    }
    config, state = study.config, study.state
    log(
        f"study in {study.dir}/ on {config.data}: {', '.join(f.label for f in config.families)} nets "
        f"at depths {', '.join(map(str, config.depths))}, seeds {', '.join(map(str, config.seed_list))}; "
        f"parts {', '.join(config.parts)}"
    )
    state.data["threads"] = study.runner.threads
    start = time.perf_counter()
    if study.runs():
        study.runner.train()
    torch.set_num_threads(study.runner.measure_threads)
    results = {}
    results_dir = study.path("results")
    for part in config.parts:
        path = results_dir / f"{part}.json"
        if state.part_done(part) and path.is_file():
            results[part] = json.loads(path.read_text())
            log(f"{part}: finished earlier, skipped")
            continue
        t0 = time.perf_counter()
        results[part] = json.loads(json.dumps(modules[part].run(study), default=jsonable))
        results_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, results[part], indent=1)
        state.finish_part(part, time.perf_counter() - t0)
        log(f"{part}: done ({time.perf_counter() - t0:.0f} s)")
    state.add_time("total", time.perf_counter() - start)
    verdict = compute_verdict(config, results)
    md, html = write_report(study, results, verdict)
    state.finish()
    return StudyResult(study.dir, verdict, md, html, results, config.quick)
