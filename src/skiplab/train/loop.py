"""The training loop: ``fit(config)`` trains a registered model on a dataset, one readable loop.

    trainer = Trainer(config)          # task, data, model, optimiser, schedule, precision, resume
    for epoch ...:                     # Trainer.fit
        for x, y in train_loader:      # Trainer.train_epoch
            train_step(x, y)           # task.forward (autocast), backward, step, EMA, lookahead
            maybe sync, checkpoint (every N steps, every M minutes, keep_steps), stop on signals
        evaluate, log a metrics.csv row, checkpoint last.pt (and best.pt)

What is learnt -- classification, segmentation or reconstruction (``config.task``) -- is a
:class:`~skiplab.train.tasks.Task`: it supplies the data and loaders, the step's computation
(``task.forward(model, batch, autocast) -> {"loss", "terms", "output", "target"}``), the
batch statistics, the evaluation metrics, the metric that picks best.pt and the checkpoint's
extras. Distillation is a task around the run's task (:class:`~skiplab.train.distill.DistillTask`).

The step syncs with the host only when it logs (:meth:`Trainer.sync`; when, and how a
non-finite loss is caught there with last.pt kept finite: :mod:`skiplab.train.stepsums`).

Everything a resumed run needs -- weights, optimiser, schedule, grad scaler, EMA, lookahead, every RNG
state, epoch, step, the position in the epoch and the epoch's running sums -- is in the
checkpoint, so in deterministic mode a killed (or signalled: :mod:`skiplab.train.interrupt`)
and resumed run ends bit-identical to an uninterrupted one (the data order and augmentation
are pure functions of seed, epoch and batch; see :class:`skiplab.data.BatchLoader`).
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import torch
from torch import nn

from .allocator import retain_freed_memory
from .callbacks import Callback, CallbackList
from .checkpoint import restore_weights, resume_trainer, save_checkpoint, trainer_state
from .config import TrainConfig
from .distill import DistillTask  # Hinton 2015 KD: a task around the run's task
from .distributed import DistInfo, all_reduce_sum, cleanup, init_distributed, wrap_ddp
from .ema import ModelEMA
from .epoch_end import end_epoch, evaluate_epoch
from .interrupt import StopSignals, TrainingInterrupted
from .lookahead import Lookahead
from .optim import build_optimizer
from .precision import Precision, resolve_device, resolve_precision, should_compile
from .runlog import RunLog, resolve_run_dir, run_length
from .schedule import LRSchedule
from .seed import seed_everything
from .steplog import StepLog
from .setup import build_data, build_model, train_mode
from .stepsums import NonFiniteLossError, StepRecord, StepSums
from .tasks import Task, make_task


@dataclass
class FitResult:
    """What :func:`fit` returns: the last epoch's metrics, every epoch's, and the model."""

    metrics: dict
    history: list = field(default_factory=list)
    run_dir: Optional[Path] = None
    model: Optional[nn.Module] = None  # the trained weights (unwrapped, not compiled)
    ema_model: Optional[nn.Module] = None  # the averaged weights when ema_decay > 0


def fit(config: TrainConfig, callbacks: Iterable[Callback] = (), *, train_set=None, eval_set=None) -> FitResult:
    """Train as ``config`` says (see :class:`TrainConfig`); works alone or under torchrun.

    Writes to ``config.out`` (default ``runs/<model>-<timestamp>/``; ``save=False``: nothing).
    SIGINT/SIGTERM/SIGHUP: the step finishes, last.pt is written, :class:`TrainingInterrupted` is
    raised and the caller's handlers are back. ``retain_memory`` is off unless asked for.

    ``train_set``/``eval_set`` (an :class:`~skiplab.data.ImageDataset`, a :class:`~skiplab.data.SegmentationDataset`
    or :class:`~skiplab.sar.SARTileDataset`) replace loading ``config.data``, for data in memory.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    trainer = Trainer(config, callbacks, train_set=train_set, eval_set=eval_set)
    try:
        return trainer.fit()
    finally:
        trainer.close()


class Trainer:
    """One training run; ``Trainer(config).fit()`` is what :func:`fit` does."""

    def __init__(
        self, config: TrainConfig, callbacks: Iterable[Callback] = (), *, train_set=None, eval_set=None
    ) -> None:
        self.config = config = resolve_run_dir(config)  # checked writable before any work
        self.callbacks = CallbackList([*callbacks, StepLog()] if config.step_log else callbacks)
        self.device = resolve_device(config.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.is_main = self.dist.is_main
        if config.batch_size % self.dist.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the number of processes ({self.dist.world_size})"
            )
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        if config.retain_memory:
            retain_freed_memory()
        seed_everything(config.seed, config.deterministic)

        self.task: Task = DistillTask.wrap(make_task(config, check_data=train_set is None), config)
        build_data(self, train_set, eval_set)  # train_set/loader, eval_set/loader
        self.model, self.structure = build_model(self)  # and frozen_norms (freeze)
        self.optimizer = build_optimizer(self.model, config)
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.schedule = LRSchedule(config, self.steps_per_epoch, self.total_steps)
        self.precision = Precision(resolve_precision(config.precision, self.device), self.device)
        self.scaler = self.precision.grad_scaler()
        self.ema = ModelEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.lookahead = (
            Lookahead(self.model, config.lookahead_every, config.lookahead_decay, self.total_steps)
            if config.lookahead_every
            else None
        )
        self.compiled = should_compile(
            config.compile,
            self.device,
            deterministic=config.deterministic,
            total_steps=self.total_steps,
            image_size=self.task.image_size(self.train_set),
            model=self.model,
        )
        self.task.prepare(self)  # the criterion; a teacher (distillation)

        # progress counters (restored by a resume)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self._loss = float("nan")  # the last synced step's loss (.loss syncs)
        self.best_value = -math.inf if self.task.higher_is_better else math.inf  # of task.best_metric
        self.sums = StepSums(self.task.num_sums(self.train_set), self.device)  # the epoch's, on device
        self.epoch_time = 0.0
        self._pending: dict = {}  # scalars from .log() for this epoch's row
        self.run_dir = Path(config.out) if config.out else None
        self.last_path = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
        self.stop, self._stop_votes = StopSignals(), 0.0  # armed by fit(); DDP: ranks signalled
        self._next_timed_save = math.inf
        resumed = resume_trainer(self)
        self.runlog = None
        if self.run_dir is not None and self.is_main:
            self.runlog = RunLog(
                self.run_dir, config.to_yaml(), config.tensorboard, purge_step=self.step if resumed else None
            )
            if resumed:
                self.runlog.restore_rows(self.epoch)

        ddp_model = wrap_ddp(self.model, self.dist, self.device)
        self.train_model = torch.compile(ddp_model) if self.compiled else ddp_model

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return trainer_state(self)

    @property
    def epoch_sums(self) -> list[float]:
        """The task's batch sums over the epoch so far (syncs)."""
        self.sync()
        return list(self.sums.host)

    @epoch_sums.setter
    def epoch_sums(self, values) -> None:
        self.sums.load(values)

    @property
    def loss(self) -> float:
        """The last step's loss (syncs: reading it every step syncs every step)."""
        self.sync()
        return self._loss

    def save(self, name: str = "last.pt") -> None:
        self.sync()  # every checkpoint follows a sync that found every loss finite
        if self.run_dir is not None and self.is_main:
            save_checkpoint(self.state_dict(), self.run_dir / "checkpoints" / name)
            if name == "last.pt" and self.config.checkpoint_minutes:
                self._next_timed_save = time.monotonic() + 60 * self.config.checkpoint_minutes

    # -- the loop -----------------------------------------------------------------------
    def log(self, values: dict) -> None:
        """Add scalars to this epoch's metrics.csv row and to TensorBoard (callbacks use it)."""
        self._pending.update(values)
        if self.runlog is not None:
            self.runlog.scalars(self.step, values)

    def fit(self) -> FitResult:
        """Train to the end; on SIGINT/SIGTERM/SIGHUP save last.pt after the current step and raise
        :class:`TrainingInterrupted` (see :mod:`skiplab.train.interrupt`)."""
        with self.stop:
            return self._fit()

    def _fit(self) -> FitResult:
        c = self.config
        if self.is_main:
            print(
                f"training {c.model} on {self.train_set.name} ({len(self.train_set)} images), "
                f"{run_length(self.total_steps, self.epochs, self.steps_per_epoch)}, precision {self.precision.name}, "
                f"channels_last {c.channels_last}, compile {self.compiled}, "
                f"{self.dist.world_size} process(es)"
                + (f"; outputs in {self.run_dir}/" if self.run_dir is not None else ""),
                flush=True,
            )
        if c.checkpoint_minutes:
            self._next_timed_save = time.monotonic() + 60 * c.checkpoint_minutes
        self.callbacks.on_fit_start(self)
        history = list(self.runlog.rows) if self.runlog else []
        metrics: dict = dict(history[-1]) if history else {}
        while self.epoch < self.epochs and self.step < self.total_steps:
            train = self.train_epoch()
            self._stop_if_signalled()
            if self.lookahead is not None:  # evaluate and checkpoint the slow weights
                self.lookahead.sync(self.model)
            metrics = {"epoch": self.epoch + 1, "step": self.step, "lr": self.schedule(self.step - 1), **train}
            last = self.epoch + 1 >= self.epochs or self.step >= self.total_steps
            if self.eval_loader is not None and ((self.epoch + 1) % c.eval_every == 0 or last):
                metrics.update(evaluate_epoch(self))
            self.callbacks.on_epoch_end(self, metrics)
            metrics.update(self._pending)  # scalars callbacks passed to .log()
            self._pending = {}
            self.epoch += 1
            self.batch_in_epoch, self.epoch_time = 0, 0.0
            self.sums.reset()
            end_epoch(self, metrics)
            history.append(metrics)
            if self.epoch < self.epochs and self.step < self.total_steps:  # (a finished run ends)
                self._stop_if_signalled()  # signalled during the evaluation
        self.callbacks.on_fit_end(self)
        if self.is_main and self.run_dir is not None:
            print(f"outputs in {self.run_dir}/: config.yaml, metrics.csv, TensorBoard events, checkpoints/")
        return FitResult(
            metrics=metrics,
            history=history,
            run_dir=self.run_dir,
            model=self.model,
            ema_model=self.ema.module if self.ema else None,
        )

    def _stop_requested(self) -> bool:
        """A signal asked to stop (under DDP: any rank's, by this step's all-reduce)."""
        return self._stop_votes > 0 if self.dist.enabled else self.stop.requested

    def _stop_if_signalled(self) -> None:
        """If a signal asked to stop: write last.pt and raise TrainingInterrupted."""
        if self._stop_requested():
            self.save("last.pt")  # signum None: a DDP rank stopped by another rank's signal
            raise TrainingInterrupted(
                self.stop.signum or signal.SIGTERM,
                self.last_path,
                self.step,
                f"step {self.step} (epoch {self.epoch + 1}, batch {self.batch_in_epoch} of {self.steps_per_epoch})",
            )

    def train_epoch(self) -> dict:
        c = self.config
        train_mode(self)  # frozen BatchNorm stays in eval mode
        self.train_loader.set_epoch(self.epoch)
        if self.batch_in_epoch:
            self.train_loader.load_state_dict(self._loader_state)
        bar = None
        if self.is_main and c.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.steps_per_epoch,
                initial=self.batch_in_epoch,
                leave=False,
                desc=f"epoch {self.epoch + 1}/{self.epochs}",
                unit="batch",
                dynamic_ncols=True,
                disable=None,
            )  # a terminal only: no redraws in a redirected log
        start = time.perf_counter() - self.epoch_time
        for x, y in self.train_loader:
            self.train_step(x, y)
            self.batch_in_epoch += 1
            self.epoch_time = time.perf_counter() - start
            if bar is not None:
                bar.update(1)
                if self.sums.unsynced == 0:  # the postfix shows the last sync's sums
                    shown = {k[6:]: f"{v:.3f}" for k, v in self.task.train_metrics(self.sums.host).items()}
                    bar.set_postfix(shown, img_s=f"{self.sums.host[-1] / self.epoch_time:.0f}", refresh=False)
            if self.runlog is not None and self.step % c.log_every == 0:  # synced at this step
                self.runlog.scalars(self.step, {"loss": self.loss, "lr": self.schedule(self.step - 1)}, prefix="step/")
            if (
                c.checkpoint_every and self.step % c.checkpoint_every == 0
            ) or time.monotonic() >= self._next_timed_save:
                self.save("last.pt")
            if self.step in c.keep_steps:
                self.save(f"step-{self.step}.pt")
            if self.step >= self.total_steps or self._stop_requested():
                break
        if bar is not None:
            bar.close()
        self.sync()
        return {
            **self.sums.metrics(self.task.train_metrics),
            "images_per_s": self.sums.host[-1] / max(self.epoch_time, 1e-9),
            "epoch_time_s": self.epoch_time,
        }

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One step: the task's forward (under autocast), backward, optimiser step, EMA,
        Lookahead; its statistics stay on the device until the next :meth:`sync`."""
        lr = self.schedule(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        out = self.task.forward(self.train_model, (x, y), self.precision.autocast)
        terms = out.get("terms") if len(out.get("terms") or ()) > 1 else {}  # one: the loss
        local = self.task.step_sums(out)  # [loss x n, ..., n]; then term x n for several
        if terms:
            local = torch.cat([local, torch.stack([t.detach().float() for t in terms.values()]) * local[-1]])
        # one all-reduce: the global sums and (DDP) the ranks asked to stop; no host sync here
        if self.dist.enabled:
            local = torch.cat([local, local.new_tensor([float(self.stop.requested)])])
        self.sums.add(
            all_reduce_sum(local, self.dist),
            step=self.step + 1,
            epoch=self.epoch + 1,
            batch=self.batch_in_epoch + 1,
            lr=lr,
            term_names=terms,
        )
        self.scaler.scale(out["loss"]).backward()
        self.scaler.unscale_(self.optimizer)  # true gradients for callbacks and clipping
        self.callbacks.on_after_backward(self)
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        if self.lookahead is not None:
            self.lookahead.step(self.model, self.step)
        if self.step % self.config.log_every == 0 or not self.schedule.error_warmup_done:
            self.sync()  # (the error-gated warm-up needs each step's error for the next lr)
        self.callbacks.on_step_end(self)

    def sync(self) -> None:
        """Bring the steps since the last sync to the host (one transfer): epoch sums, last
        loss, the schedule's error, the callbacks' :meth:`~Callback.on_steps`; a non-finite
        loss raises :class:`NonFiniteLossError` (see the module documentation)."""
        records = self.sums.sync()
        if not records:
            return
        bad = next((r for r in records if not r.finite), None)
        good = records if bad is None else records[: records.index(bad)]
        for error in (self.task.train_error(r.sums) for r in good):
            if error is not None:
                self.schedule.observe_train_error(error)
        if good:
            self._loss = good[-1].loss
            self.callbacks.on_steps(self, good)
        if self.dist.enabled:
            self._stop_votes = records[-1].vote
        if bad is not None:
            self._diverged(bad)

    def _diverged(self, bad: StepRecord) -> None:
        found_at, self.step = self.step, bad.step - 1  # the step the loss was for
        last_good = restore_weights(self, self.last_path)  # the last finite ones, if saved
        saved = f"; the last good checkpoint is {self.last_path}" if last_good is not None else ""
        raise NonFiniteLossError(
            f"loss is {bad.loss} at step {self.step} (epoch {bad.epoch}, batch {bad.batch}) with "
            f"lr {bad.lr:.6g}: training stopped (found at the sync after step {found_at}; no "
            f"checkpoint written since){saved}. Lower the lr, add warm-up or grad_clip, or use "
            f"fp32.",
            step=self.step,
            last_good=last_good,
        )

    def close(self) -> None:
        if self.runlog is not None:
            self.runlog.close()
        cleanup(self.dist)
