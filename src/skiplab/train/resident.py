"""Training with the whole dataset resident on the device: small images, many steps, fast.

A CIFAR step of He et al. 2015 (§4.2: batch 128, 32x32 images) is a few GFLOP, so on a GPU
its time goes to kernel launches and host round trips, not arithmetic. :func:`fit_resident`
runs the same recipe as :func:`skiplab.train.fit` (a :class:`TrainConfig`: model, SGD,
schedule, crop + flip) without either:

- the training split lives on the device as uint8 (150 MB for CIFAR-10's 50,000 images);
- each epoch is shuffled and augmented at once, on the device, by the library's batched
  :class:`~skiplab.data.Augmentation` (one gather for crop and flip); the permutation and
  the augmentation draws come from a CPU generator seeded by (seed, epoch), so an epoch is
  the same on every device and a resumed run sees the same batches;
- the step is compiled (``torch.compile``; on CUDA ``mode="reduce-overhead"``: CUDA graphs,
  so a step is one launch from the host) with bf16 autocast and channels_last;
- the epoch's loss and accuracy sums stay on the device: the host waits for the device once
  an epoch, to log a metrics.csv row, evaluate and write ``checkpoints/last.pt``.

The run directory has the standard layout (``config.yaml``, ``metrics.csv``,
``checkpoints/last.pt``): ``skiplab eval`` reads it as any other run. SIGINT/SIGTERM/SIGHUP finish
the step, write last.pt (with the position in the epoch) and return; the same call with
``resume=True`` continues from it. Many runs share one GPU as separate processes
(``benchmarks/he2015_table6.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..data import Augmentation, ImageDataset
from ..data.augment import normalize
from ..trained import checkpoint_header
from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .config import TrainConfig
from .evaluation import evaluate, run_eval_split
from .interrupt import StopSignals
from .optim import build_optimizer
from .precision import Precision, resolve_device, resolve_precision, should_compile
from .runlog import RunLog
from .schedule import LRSchedule
from .seed import seed_everything
from .tasks import make_task

RESIDENT_FORMAT = "skiplab.train/1"


@dataclass
class ResidentResult:
    """What :func:`fit_resident` returns: the last epoch's row, where it stopped, the model."""

    metrics: dict
    step: int
    finished: bool  # False when a signal stopped it before ``config.steps``
    run_dir: Path
    model: nn.Module


def device_batches(
    dataset: ImageDataset, device: torch.device, batch_size: int, channels_last: bool = True
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``dataset`` normalised, in evaluation batches already on ``device``."""
    out = []
    for start in range(0, len(dataset), batch_size):
        x = dataset.images[start : start + batch_size].to(device).float().div_(255)
        x = normalize(x, dataset.mean, dataset.std)
        out.append(
            (
                x.contiguous(memory_format=torch.channels_last) if channels_last else x,
                dataset.labels[start : start + batch_size].to(device),
            )
        )
    return out


def epoch_order(seed: int, epoch: int, n: int, augment: Augmentation, height: int, width: int):
    """The permutation and augmentation draws of one epoch, from a CPU generator seeded by
    (seed, epoch): the same on every device and after every resume."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    return perm, augment.sample_params(n, height, width, g)


class ResidentEpochs:
    """The training split on the device, handed out as whole augmented epochs."""

    def __init__(self, dataset: ImageDataset, config: TrainConfig, device: torch.device) -> None:
        self.images = dataset.images.to(device)  # uint8 [N, C, H, W]
        self.labels = dataset.labels.to(device)
        self.mean, self.std = dataset.mean, dataset.std
        self.seed, self.device, self.channels_last = config.seed, device, config.channels_last
        self.augment = Augmentation(
            crop_padding=config.crop_padding, pad_mode=config.pad_mode, flip=config.flip, cutout=config.cutout
        )
        self.steps_per_epoch = len(dataset) // config.batch_size  # drop_last, as fit()

    def epoch(self, epoch: int, chunk: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of ``epoch`` (0-based): shuffled, normalised and augmented, on the device."""
        n, _, h, w = self.images.shape
        perm, params = epoch_order(self.seed, epoch, n, self.augment, h, w)
        perm = perm.to(self.device)
        parts = []
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            x = self.images[perm[rows]].float().div_(255)
            parts.append(self.augment.apply(normalize(x, self.mean, self.std), params.select(rows)))
        x = torch.cat(parts)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[perm]


def fit_resident(
    config: TrainConfig,
    train_set: ImageDataset,
    eval_set: ImageDataset,
    *,
    out: Union[str, Path],
    resume: bool = True,
    pause_at: Optional[int] = None,
    log=print,
) -> ResidentResult:
    """Train ``config`` with ``train_set`` resident on the device; evaluate ``eval_set`` after
    every ``config.eval_every`` epochs; write the run to ``out`` (see the module doc).

    ``pause_at``: return after that many steps, last.pt written, as a signal would (a
    time-boxed slot); the same call without it continues to ``config.steps``."""
    config.check()
    if config.freeze or config.layer_decay != 1:
        raise ValueError("fit_resident trains every parameter at one learning rate: freeze and layer_decay need fit()")
    device = resolve_device(config.device)
    precision = Precision(resolve_precision(config.precision, device), device)
    seed_everything(config.seed, config.deterministic)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    task = make_task(config)
    model = task.create_model(train_set).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    epochs = ResidentEpochs(train_set, config, device)
    if epochs.steps_per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training split ({len(train_set)} images)")
    total = config.steps or config.epochs * epochs.steps_per_epoch
    schedule = LRSchedule(config, epochs.steps_per_epoch, total)
    out = Path(out)
    last = out / "checkpoints" / "last.pt"
    step = batch_in_epoch = 0
    sums = torch.zeros(3, device=device)  # loss * n, correct, n of the epoch so far
    epoch_time = 0.0
    if resume and last.is_file():
        state = load_checkpoint(last, map_location=device)
        load_model_state(model, state["model"], source=str(last))
        optimizer.load_state_dict(state["optimizer"])
        step, batch_in_epoch = state["step"], state["batch_in_epoch"]
        sums, epoch_time = state["epoch_sums"].to(device), state["epoch_time"]
        log(f"resume: {last} at step {step}")
    runlog = RunLog(out, config.to_yaml(), tensorboard=False)
    runlog.restore_rows(step // epochs.steps_per_epoch)
    compiled = should_compile(
        config.compile,
        device,
        deterministic=config.deterministic,
        total_steps=total,
        image_size=train_set.images.shape[-1],
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    batch_n = torch.tensor(float(config.batch_size), device=device)

    def forward_loss(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the batch's [loss * n, correct, n] (what the epoch sums)."""
        with precision.autocast():
            logits = model(x)
        loss = criterion(logits.float(), y)
        return loss, torch.stack([loss.detach() * batch_n, (logits.argmax(1) == y).sum().float(), batch_n])

    if compiled:  # CUDA graphs on CUDA: one launch per forward and one per backward
        forward_loss = torch.compile(forward_loss, mode="reduce-overhead" if device.type == "cuda" else None)
    eval_batches = device_batches(eval_set, device, config.eval_batch_size, config.channels_last)
    log(
        f"{config.model}: {len(train_set)} images resident on {device}, {total} steps of "
        f"{config.batch_size}, precision {precision.name}, compile {compiled}; outputs in {out}/"
    )

    def checkpoint() -> None:
        save_checkpoint(
            {
                "format": RESIDENT_FORMAT,
                **checkpoint_header(model),
                "trainer": "resident",
                "config": config.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "epoch": step // epochs.steps_per_epoch,
                "batch_in_epoch": batch_in_epoch,
                "epoch_sums": sums.cpu(),
                "epoch_time": epoch_time,
                "classes": list(train_set.classes),
                "mean": list(train_set.mean),
                "std": list(train_set.std),
            },
            last,
        )

    row: dict = {}
    end = min(total, pause_at) if pause_at else total
    model.train()
    with StopSignals() as stop:
        while step < end and not stop.requested:
            epoch = step // epochs.steps_per_epoch
            x_epoch, y_epoch = epochs.epoch(epoch)
            started = time.perf_counter()
            for b in range(batch_in_epoch, epochs.steps_per_epoch):
                if step >= end or stop.requested:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = schedule(step)
                rows = slice(b * config.batch_size, (b + 1) * config.batch_size)
                loss, batch_sums = forward_loss(x_epoch[rows], y_epoch[rows])
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sums += batch_sums
                step, batch_in_epoch = step + 1, b + 1
            epoch_time += time.perf_counter() - started
            if batch_in_epoch < epochs.steps_per_epoch and step < total:
                break  # stopped or paused inside the epoch
            row = epoch_row(epoch + 1, step, schedule(step - 1), sums, epoch_time)
            if (epoch + 1) % config.eval_every == 0 or step >= total:
                scores = evaluate(model, eval_batches, precision)
                row.update(val_loss=scores["loss"], val_acc=scores["acc"])
                model.train()
            runlog.epoch_row(row)
            if not math.isfinite(row["train_loss"]):
                checkpoint()
                raise FloatingPointError(
                    f"the training loss became {row['train_loss']} in epoch {epoch + 1}; stopped (last.pt kept)"
                )
            batch_in_epoch, epoch_time = 0, 0.0
            sums = torch.zeros(3, device=device)
            checkpoint()
            log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        checkpoint()
    runlog.close()
    return ResidentResult(metrics=row, step=step, finished=step >= total, run_dir=out, model=model)


def epoch_row(epoch: int, step: int, lr: float, sums: torch.Tensor, seconds: float) -> dict:
    """One metrics.csv row from the epoch's device-side sums (the one host sync)."""
    loss_sum, correct, n = sums.tolist()
    n = max(n, 1.0)
    return {
        "epoch": epoch,
        "step": step,
        "lr": lr,
        "train_loss": loss_sum / n,
        "train_acc": correct / n,
        "images_per_s": n / max(seconds, 1e-9),
        "epoch_time_s": seconds,
    }


def load_resident_data(config: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    """The training split and the split the run evaluates (:func:`run_eval_split`) of
    ``config.data``, through the task's loader (the same images and statistics as ``fit``)."""
    task = make_task(config)
    return task.load("train"), task.load(run_eval_split(config))
