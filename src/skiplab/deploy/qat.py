"""Quantisation-aware training (QAT) on torchao's PT2E flow: the int8 scheme of
:func:`skiplab.deploy.quantize.quantize_pt2e`, learnt instead of calibrated.

    program  = torch.export(model in training mode, BatchNorm unfolded)
    prepared = prepare_qat_pt2e(program, X86InductorQuantizer(QAT config))  # fake quantisers;
                                            # each BN folded into its conv's fake-quantised weight
    fine-tune prepared: the checkpoint's own task, data, augmentation and optimiser
    int8     = convert_pt2e(prepared)       # the same q/dq graph PTQ's convert gives

Training with simulated quantisation lets the weights adapt to the int8 grid they will be
rounded to (Jacob et al. 2018, "Quantization and training of neural networks for efficient
integer-arithmetic-only inference", sec. 3 and its BN folding, sec. 3.2 / Fig. C.8;
Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference",
sec. 3.2: fine-tune from the float net, freeze the activation ranges towards the end). The
result is saved by :func:`~skiplab.deploy.quantize.save_pt2e` as the same kind of ``.pt2``
program as PTQ's, so ``skiplab eval``, ``skiplab bench`` and :func:`skiplab.load_trained`
take both alike.

The fine-tune is built from the training engine's pieces, configured by the checkpoint's
recorded recipe: the task (its loss, :meth:`Task.forward`), its training split and batched
augmentation (:meth:`Task.loader`), its optimiser (:func:`skiplab.train.optim.build_optimizer`:
type, momentum, weight decay, no decay on 1-d tensors) and the cosine of
:class:`skiplab.train.schedule.LRSchedule`. The loop is not :func:`skiplab.train.fit`: an
exported graph has no ``train()``/``eval()`` (torchao's ``move_exported_model_to_*`` switch
its BatchNorm), cannot be compiled, autocast or checkpointed as a model, and QAT adds one
event ``fit`` has no place for (observers frozen at a step).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from .extras import import_torchao_pt2e, quiet, require
from .source import ModelSource


@dataclass
class QATOptions:
    """The fine-tune of :func:`quantize_qat_pt2e`: ``steps`` optimiser steps at batch
    ``batch_size``, lr ``lr`` (default: 1 % of the recipe's peak lr -- the last rate of He
    2015's CIFAR schedule, 0.1 / 10 / 10: a fine-tune, not a retraining) decayed by a cosine
    to 0; the activation ranges are frozen after ``freeze_observers`` of the steps, so the
    weights settle on the grid they will be converted with. ``seed`` sets the data order
    and augmentation (a replication unit: PTQ's calibration is seeded apart)."""

    steps: int = 300
    lr: Optional[float] = None
    batch_size: int = 64
    freeze_observers: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"--steps must be a whole number >= 1; found {self.steps!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"--qat-lr must be > 0; found {self.lr}")
        if self.batch_size < 2:
            raise ValueError(f"QAT trains BatchNorm: --qat-batch-size must be >= 2; found {self.batch_size}")
        if not 0 < self.freeze_observers <= 1:
            raise ValueError(f"freeze_observers must be in (0, 1]; found {self.freeze_observers}")


@dataclass
class QATResult:
    module: nn.Module  # the converted int8 graph
    description: str  # what it was fine-tuned on, and how
    settings: dict  # the resolved fine-tune (optimiser, lr, ...) for the report
    losses: list[float] = field(default_factory=list)  # training loss of every step


def check_float_checkpoint(source: ModelSource) -> None:
    """Refuse (one line) what quantisation cannot start from: an exported or already
    quantised artifact (``.pt2``, ``.onnx``) instead of the float model of a checkpoint."""
    from .runtime import OrtModule, ProgramModule

    if isinstance(source.model, (ProgramModule, OrtModule)):
        raise ValueError(
            f"quantisation needs the float model of a skiplab training checkpoint "
            f"(.pt); found {source.model.path}, a {source.meta.model} file from skiplab "
            f"export/quantize (quantise its checkpoint instead)"
        )


def _unzero_norm_scales(model: nn.Module, eps: float = 1e-6) -> int:
    """γ exactly 0 (zero_init_residual, never trained) gives a conv whose BN-folded weight is
    0 in every channel, which the fused fake quantiser rejects ("zero_point must be between
    quant_min and quant_max"); such γ become ``eps``. Returns how many channels changed."""
    changed = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                zero = m.weight == 0
                changed += int(zero.sum())
                m.weight[zero] = eps
    return changed


def _prepare(source: ModelSource, batch_size: int) -> nn.Module:
    """The float model, exported in training mode and prepared for QAT."""
    pt2e = import_torchao_pt2e()
    xiq = require(
        "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", "int8 quantisation-aware training (PT2E)"
    )
    from .export import dynamic_shapes

    model = copy.deepcopy(source.model).float().train()
    _unzero_norm_scales(model)
    example = source.example_input(max(2, min(batch_size, 4)))
    program = torch.export.export(
        model, (example,), strict=True, dynamic_shapes=dynamic_shapes(source, source.meta.dynamic_hw)
    )
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=True))
    with quiet("torchao"):
        return pt2e.prepare_qat_pt2e(program.module(), quantizer)


def quantize_qat_pt2e(
    source: ModelSource,
    options: Optional[QATOptions] = None,
    *,
    data: Optional[str] = None,
    progress: Callable[[str], None] = lambda s: None,
) -> QATResult:
    """Quantisation-aware training of ``source`` (see the module documentation) on the
    training split of ``data`` (default: the recorded data); the converted int8 graph runs
    and saves as :func:`~skiplab.deploy.quantize.quantize_pt2e`'s does."""
    from ..train.evaluation import evaluation_data
    from ..train.optim import build_optimizer
    from ..train.schedule import LRSchedule
    from ..train.seed import seed_everything

    options = options or QATOptions()
    check_float_checkpoint(source)
    recorded = dict(source.meta.config)
    if not (data or recorded.get("data")):
        raise ValueError(
            "quantisation-aware training needs training data: the source records "
            "none (a model name?); pass --data SPEC or a trained checkpoint"
        )
    task, train_set = evaluation_data(
        {**(recorded or {"model": source.meta.model, "task": source.meta.task}), "seed": options.seed},
        data,
        "train",
        radiometry=source.meta.radiometry,
        channels_last=False,
    )
    recipe = task.config  # the recorded run's config, this seed, these data
    lr = options.lr if options.lr is not None else recipe.lr / 100
    config = recipe.replace(
        lr=lr,
        batch_size=options.batch_size,
        steps=options.steps,
        schedule="cosine",
        min_lr_factor=0.0,
        warmup_epochs=0.0,
        warmup_steps=0,
        error_warmup_lr=0.0,
        layer_decay=1.0,
        freeze=[],
    )
    loader = task.loader(train_set, options.batch_size, train=True, device=torch.device("cpu"))
    if not len(loader):
        raise ValueError(
            f"the training split of {train_set.name} has fewer than {options.batch_size} images: lower --qat-batch-size"
        )

    fq = require("torchao.quantization.pt2e", "int8 quantisation-aware training (PT2E)")
    seed_everything(options.seed, deterministic=False)
    prepared = _prepare(source, options.batch_size)
    fq.move_exported_model_to_train(prepared)
    task.train_criterion = task.criterion(train_set)  # what Task.prepare sets for fit
    optimizer = build_optimizer(prepared, config)
    schedule = LRSchedule(config, len(loader), options.steps)
    freeze_at = math.ceil(options.freeze_observers * options.steps)
    losses: list[float] = []
    for step in range(options.steps):
        if step % len(loader) == 0:
            loader.set_epoch(step // len(loader))
            batches = iter(loader)
        if step == freeze_at:
            prepared.apply(fq.disable_observer)
        for group in optimizer.param_groups:
            group["lr"] = schedule(step) * group["lr_scale"]
        out = task.forward(prepared, next(batches))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(prepared.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(float(out["loss"].detach()))
        if (step + 1) % max(1, options.steps // 10) == 0:
            progress(f"QAT step {step + 1}/{options.steps}, loss {losses[-1]:.4f}")
    fq.move_exported_model_to_eval(prepared)
    with quiet("torchao"), torch.no_grad():
        converted = import_torchao_pt2e().convert_pt2e(prepared)

    settings = {
        "steps": options.steps,
        "batch_size": options.batch_size,
        "lr": lr,
        "schedule": "cosine to 0",
        "optimizer": config.optimizer,
        "momentum": config.momentum,
        "nesterov": config.nesterov,
        "weight_decay": config.weight_decay,
        "label_smoothing": config.label_smoothing,
        "freeze_observers": options.freeze_observers,
        "seed": options.seed,
    }
    description = (
        f"QAT on {len(train_set)} images of {train_set.name} (the recipe's augmentation): "
        f"{options.steps} steps of {config.optimizer} (the recipe's: momentum "
        f"{config.momentum:g}, weight decay {config.weight_decay:g}) at batch "
        f"{options.batch_size}, lr {lr:g} cosine to 0, ranges frozen after "
        f"{options.freeze_observers:.0%}, seed {options.seed}"
    )
    return QATResult(converted, description, settings, losses)
