"""The training runs of a study: one network of one family at one depth, same recipe and
the same number of steps for all, each in its own run directory trained by
:class:`skiplab.train.Trainer` (so each is resumable on its own).

A minutes budget becomes one common number of steps: every network is timed on a few
real training steps, and the steps are chosen so that all runs together (with their
evaluations) fit in the budget. Equal steps, not equal time, is what makes the
comparison fair: a deeper network gets the same number of updates as a shallow one,
as in He et al. 2015 (64k iterations for every depth).
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..analysis import evaluate as evaluate_batches
from .recording import write_csv
from ..data import Augmentation, BatchLoader, ImageDataset
from ..models import create_model
from ..train import Callback, NonFiniteLossError, TrainConfig, Trainer, load_checkpoint, load_model_state
from ..train.checkpoint import model_state_from
from ..train.precision import Precision, resolve_precision
from .config import Family, StudyConfig

STEPS_FILE = "steps.csv"
DIVERGED_FILE = "diverged.pt"


@dataclass(frozen=True)
class RunSpec:
    """One network of the study: a family at a depth, with or without BatchNorm."""

    family: Family
    depth: int
    norm: bool = True

    @property
    def name(self) -> str:
        return f"{self.family.label}-{self.depth}" + ("" if self.norm else "-nobn")

    @property
    def model_kwargs(self) -> dict:
        # He 2015's initialisation: no zeroed last BN scale in the residual branches (Goyal
        # 2017's zero_init_residual would start every ResNet as a shallow net)
        return {"depth": self.depth, **self.family.kwargs, "zero_init_residual": False,
                **({} if self.norm else {"norm": False})}

    def build(self, num_classes: int, in_chans: int) -> nn.Module:
        return create_model(self.family.model, num_classes=num_classes, in_chans=in_chans, **self.model_kwargs)


def study_runs(config: StudyConfig) -> list[RunSpec]:
    """Every family at every depth for the degradation experiment (only the deepest pair
    when the degradation part is not asked for), plus the deepest pair without BatchNorm
    when the gradients part trains it (``--without-bn trained``)."""
    if not config.needs_training:
        return []
    depths = config.depths if "degradation" in config.parts else (config.deepest,)
    runs = [RunSpec(f, d) for f in config.families for d in depths]
    if "gradients" in config.parts and config.without_bn == "trained":
        runs += [RunSpec(f, config.deepest, norm=False) for f in config.families]
    return runs


def subset(dataset: ImageDataset, n: int, seed: int, tag: str) -> ImageDataset:
    """A fixed random subset of ``n`` images (seeded; image folders are sorted by class)."""
    n = min(n, len(dataset))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[:n]
    return ImageDataset(dataset.images[idx], dataset.labels[idx], dataset.classes, dataset.mean,
                        dataset.std, f"{dataset.name}[{tag} {n}]")


def fixed_batches(dataset: ImageDataset, n: int, seed: int, tag: str, batch_size: int = 256
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same normalised, unaugmented ``(x, y)`` batches every time (for measurements)."""
    return list(BatchLoader(subset(dataset, n, seed, tag), batch_size, shuffle=False, drop_last=False))


def choose_threads(requested: int = 0) -> int:
    """CPU threads for torch: ``requested`` when > 0; otherwise 1 on a busy machine (1-minute
    load average at or above the core count, where OpenMP threads of several processes
    spin against each other -- measured 10x slower on this 2-core machine), else 0 (torch's
    default)."""
    if requested < 0:
        raise ValueError(f"--threads must be >= 0, got {requested}")
    if requested:
        return requested
    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - no load average on this platform
        busy = False
    return 1 if busy else 0


# -- the budget ------------------------------------------------------------------------
def time_training_step(spec: RunSpec, train: ImageDataset, config: StudyConfig, repeats: int = 2) -> float:
    """Seconds of one training step (data, forward, backward, update) of ``spec`` with the
    study's precision and memory format: the fastest of ``repeats`` steps after a warm-up
    step (the first steps of a fresh net are slower than those of a running loop)."""
    torch.manual_seed(config.seed)
    recipe = config.recipe
    model = spec.build(len(train.classes), train.images.shape[1]).to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=recipe.momentum)
    loader = BatchLoader(train, recipe.batch_size, seed=config.seed, channels_last=True,
                         augment=Augmentation(crop_padding=recipe.crop_padding, flip=recipe.flip))
    cpu = torch.device("cpu")
    precision = Precision(resolve_precision(config.precision, cpu), cpu)
    batches = iter(loader)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        x, y = next(batches)
        with precision.autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def steps_for_budget(config: StudyConfig, step_seconds: dict[str, float], steps_per_epoch: int,
                     eval_images_per_epoch: int) -> int:
    """One common number of steps so that all runs (training plus the per-epoch
    evaluations, a forward pass costing about a third of a training step) fit in the
    minutes budget."""
    total = sum(step_seconds.values())
    seconds = config.budget.value * 60
    steps = seconds / total
    for _ in range(4):   # the evaluations depend on the epochs, which depend on the steps
        epochs = math.ceil(steps / steps_per_epoch)
        eval_seconds = epochs * eval_images_per_epoch / config.recipe.batch_size / 3 * total
        steps = (seconds - eval_seconds) / total
    return max(int(steps), 1)


# -- one run ---------------------------------------------------------------------------
class StepLog(Callback):
    """Records every step's loss, batch accuracy and lr into ``steps.csv`` of the run
    directory (the training curves of the report); survives the trainer's resume."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._prev = (0.0, 0.0, 0.0)
        self.path: Optional[Path] = None

    def on_fit_start(self, trainer) -> None:
        if trainer.run_dir is not None:
            self.path = Path(trainer.run_dir) / STEPS_FILE
            self.rows = [r for r in read_steps(self.path) if r["step"] <= trainer.step]
        self._prev = tuple(trainer.epoch_sums)

    def on_step_end(self, trainer) -> None:
        _, correct, seen = trainer.epoch_sums
        prev = self._prev if seen > self._prev[2] else (0.0, 0.0, 0.0)
        n = seen - prev[2]
        self.rows.append(dict(step=trainer.step, epoch=trainer.epoch + 1, loss=trainer.loss,
                              acc=(correct - prev[1]) / n if n else math.nan,
                              lr=trainer.schedule(trainer.step - 1)))
        self._prev = tuple(trainer.epoch_sums)

    def save(self) -> None:
        if self.path is not None and self.rows:
            write_csv(self.rows, self.path)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self.save()

    def on_fit_end(self, trainer) -> None:
        self.save()


def read_steps(path: Path) -> list[dict[str, float]]:
    """The rows of a ``steps.csv`` (empty when the file does not exist)."""
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return [dict(step=int(r["step"]), epoch=int(r["epoch"]), loss=float(r["loss"]), acc=float(r["acc"]),
                     lr=float(r["lr"])) for r in csv.DictReader(f)]


def train_config(spec: RunSpec, config: StudyConfig, steps: int, run_dir: Path, threads: int = 0) -> TrainConfig:
    """The trainer's configuration of one run: the study's recipe, ``steps`` steps."""
    r = config.recipe
    resume = (run_dir / "checkpoints" / "last.pt").exists()
    return TrainConfig.from_dict(dict(
        out=str(run_dir), seed=config.seed, resume=resume, model=spec.family.model,
        model_kwargs=spec.model_kwargs, data=config.data, eval_split="test", batch_size=r.batch_size,
        eval_batch_size=256, crop_padding=r.crop_padding, flip=r.flip,
        lr=r.lr if spec.norm else r.no_bn_lr, momentum=r.momentum, weight_decay=r.weight_decay,
        schedule=r.schedule, warmup_steps=r.warmup_steps, steps=steps,
        grad_clip=0.0 if spec.norm else r.no_bn_grad_clip, precision=config.precision, compile="off",
        checkpoint_every=max(steps // 10, 50), log_every=max(steps // 50, 1), num_threads=threads,
        tensorboard=not config.quick))


def end_of_training(rows: list[dict[str, float]], fraction: float = 0.1) -> dict[str, float]:
    """Mean training loss and error over the last ``fraction`` of the steps (at least 5):
    the value at the end of a training curve, as He 2015 Fig. 6 reads it."""
    if not rows:
        return dict(train_loss_end=math.nan, train_error_end=math.nan)
    tail = rows[-max(5, int(len(rows) * fraction)):]
    return dict(train_loss_end=sum(r["loss"] for r in tail) / len(tail),
                train_error_end=1 - sum(r["acc"] for r in tail) / len(tail))


def train_run(spec: RunSpec, config: StudyConfig, steps: int, run_dir: Path,
              train_probe: list, test_probe: list, threads: int = 0) -> tuple[nn.Module, dict]:
    """Train (or continue) one run; returns the trained model and its summary numbers.

    A run whose loss becomes non-finite stops there; it is reported as diverged (at
    which step) and its last finite weights are kept for the measurements."""
    run_dir.mkdir(parents=True, exist_ok=True)
    steplog = StepLog()
    trainer = Trainer(train_config(spec, config, steps, run_dir, threads), [steplog])
    start = time.perf_counter()
    diverged: Optional[dict] = None
    try:
        result = trainer.fit()
        metrics = result.metrics
    except NonFiniteLossError as err:
        diverged = dict(step=trainer.step, message=str(err).split(":")[0])
        steplog.save()
        torch.save(trainer.model.state_dict(), run_dir / DIVERGED_FILE)
        metrics = {}
    finally:
        trainer.close()
    model = trainer.model.eval()
    summary = dict(name=spec.name, family=spec.family.key, depth=spec.depth, norm=spec.norm,
                   steps=trainer.step, seconds=round(time.perf_counter() - start, 1),
                   parameters=sum(p.numel() for p in model.parameters()), diverged=diverged,
                   **end_of_training(steplog.rows))
    summary.update(measure_fit(model, train_probe, test_probe))
    if "val_acc" in metrics:
        summary["test_acc_full"] = metrics["val_acc"]
    return model, summary


def measure_fit(model: nn.Module, train_probe: list, test_probe: list) -> dict[str, float]:
    """Loss and accuracy, in evaluation mode and fp32, on fixed training and test images."""
    train = evaluate_batches(model, train_probe)
    test = evaluate_batches(model, test_probe)
    return dict(train_loss_eval=train["loss"], train_acc_eval=train["accuracy"],
                test_loss=test["loss"], test_acc=test["accuracy"])


def load_trained(spec: RunSpec, run_dir: Path, num_classes: int, in_chans: int) -> nn.Module:
    """The final weights of a finished run (its last checkpoint, or its last finite
    weights when it diverged), in evaluation mode."""
    model = spec.build(num_classes, in_chans)
    diverged = run_dir / DIVERGED_FILE
    if diverged.is_file():
        state = torch.load(diverged, map_location="cpu", weights_only=True)
    else:
        state = model_state_from(load_checkpoint(run_dir / "checkpoints" / "last.pt"))
    load_model_state(model, state)
    return model.eval()
