"""The trainer's data and model, as the config says (split from :mod:`skiplab.train.loop`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .checkpoint import initial_model
from .transfer import freeze, frozen_norms, keep_frozen_norms_eval


def build_data(trainer, train_set, eval_set) -> None:
    """The trainer's ``train_set``, ``train_loader``, ``eval_set`` and ``eval_loader``."""
    c, task = trainer.config, trainer.task
    trainer.train_set = train_set if train_set is not None else task.load("train")
    if c.train_subset and train_set is None:
        trainer.train_set = trainer.train_set.random_subset(c.train_subset, c.train_subset_seed)
    trainer.train_loader = task.loader(
        trainer.train_set,
        c.batch_size // trainer.dist.world_size,
        train=True,
        device=trainer.device,
        rank=trainer.dist.rank,
        world_size=trainer.dist.world_size,
    )
    if len(trainer.train_loader) == 0:
        raise ValueError(
            f"batch_size {c.batch_size} is larger than the training set "
            f"({len(trainer.train_set)} images): no full batch per epoch"
        )
    split = {"auto": "val" if c.val_size > 0 else "test"}.get(c.eval_split, c.eval_split)
    trainer.eval_loader = None
    if split != "none" and (eval_set is not None or train_set is None):
        trainer.eval_set = (
            eval_set if eval_set is not None else task.load(split, like=trainer.train_set)
        )  # e.g. its radiometry
        trainer.eval_loader = task.loader(trainer.eval_set, c.eval_batch_size, train=False, device=trainer.device)


def build_model(trainer) -> tuple[nn.Module, Any]:
    """The trainer's model (random, or ``init_from``; ``freeze`` applied) on its device, and
    its pruned structure; sets ``trainer.frozen_norms`` (see :func:`train_mode`)."""
    c = trainer.config
    model, structure = initial_model(
        trainer.task, trainer.train_set, c.init_from, log=print if trainer.is_main else None
    )
    if c.whiten_init:
        if not hasattr(model, "init_whitening"):
            raise ValueError(f"whiten_init: {c.model} has no init_whitening(images) method")
        images = trainer.train_set.images[:5000].float() / 255
        mean = torch.tensor(trainer.train_set.mean).view(1, -1, 1, 1)
        std = torch.tensor(trainer.train_set.std).view(1, -1, 1, 1)
        model.init_whitening((images - mean) / std)
    if c.grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ValueError(f"grad_checkpointing: {c.model} has no set_grad_checkpointing")
        model.set_grad_checkpointing(True)
    if c.freeze:
        frozen = freeze(model, c.freeze)
        if trainer.is_main:
            total = sum(p.numel() for p in model.parameters())
            fixed = sum(p.numel() for n, p in model.named_parameters() if n in set(frozen))
            print(
                f"freeze {' '.join(c.freeze)}: {len(frozen)} tensors, {fixed:,} of {total:,} "
                f"parameters fixed; their BatchNorm statistics too"
            )
    trainer.frozen_norms = frozen_norms(model)
    model = model.to(trainer.device)
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, structure


def train_mode(trainer) -> None:
    """The trainer's model in training mode, but for the BatchNorm layers that ``freeze``
    fixed: they stay in eval mode, so their running statistics stay the pretrained ones."""
    trainer.train_model.train()
    keep_frozen_norms_eval(trainer.frozen_norms)
