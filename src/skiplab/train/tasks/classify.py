"""The ``classify`` task: images -> one class (cross-entropy; loss and accuracy)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ...data import Augmentation, BatchLoader, load_dataset
from ...models.image_to_image import ImageToImageModel
from ..meters import ClassificationMeter, Meter
from .base import Task, register_task

if TYPE_CHECKING:  # the loop imports the tasks: its type for hints only
    from ..loop import Trainer


@register_task("classify")
class ClassifyTask(Task):
    """Images -> one class: today's ``fit`` (BatchLoader with crop/flip/cutout, cross-entropy)."""

    default_best = "val_acc"
    metrics = ("loss", "acc")
    examples = "cifar10:PATH, folder:PATH, synthetic"

    def load(self, split: str, *, like: Any = None) -> Any:
        c = self.config
        return load_dataset(c.data, split, val_size=c.val_size, seed=c.seed, skip_bad=c.skip_bad, cache_dir=c.cache_dir)

    def loader(self, dataset, batch_size, *, train, device, rank=0, world_size=1):
        c = self.config
        augment = (
            Augmentation(
                crop_padding=c.crop_padding,
                pad_mode=c.pad_mode,
                flip=c.flip,
                cutout=c.cutout,
                alternate_flip=c.alternate_flip,
                crop_size=c.crop_size,
                crop_size_epochs=c.crop_size_epochs,
            )
            if train
            else None
        )
        return BatchLoader(
            dataset,
            batch_size,
            shuffle=train,
            drop_last=train,
            seed=c.seed,
            augment=augment,
            device=device,
            channels_last=c.channels_last,
            rank=rank,
            world_size=world_size,
        )

    def check_model_class(self, name, cls):
        if isinstance(cls, type) and issubclass(cls, ImageToImageModel):
            raise ValueError(
                f"task 'classify' needs a classifier; {name} maps images to "
                f"images (use task 'segment' or 'reconstruct')"
            )

    def criterion(self, dataset: Any) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)

    def forward(self, model, batch, autocast=contextlib.nullcontext):
        out = super().forward(model, batch, autocast)
        out["terms"] = {"ce": out["loss"]}  # distillation adds "kd" (train/distill.py)
        return out

    def num_sums(self, dataset):
        return 3

    def batch_sums(self, logits, y, loss):  # [loss x n, correct, n]
        return torch.stack(
            [
                loss.float() * len(y),
                (logits.argmax(1) == y).sum().float(),
                torch.tensor(float(len(y)), device=loss.device),
            ]
        )

    def train_metrics(self, sums):
        loss_sum, correct, seen = sums
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen}

    def train_error(self, sums):
        return 1 - sums[1] / sums[2]

    def meter(self, dataset: Any) -> Meter:
        return ClassificationMeter(dataset.num_classes, data=dataset.name)

    def checkpoint_extras(self, trainer: "Trainer") -> dict:
        return {**super().checkpoint_extras(trainer), "best_acc": trainer.best_value}
