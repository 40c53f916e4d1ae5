"""The ``segment`` task: images -> a class per pixel (U-Nets; Dice + cross-entropy, Milletari
et al. 2016), and its loader of image and mask batches."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...data import BatchLoader, DihedralAugmentation, load_segmentation, normalize
from ...models.unet import SegmentationNet
from ..meters import Meter, SegmentationMeter, segmentation_summary
from ..seg_losses import DiceCELoss, SegmentationScores, confusion_counts
from .base import Task, register_task


@register_task("segment")
class SegmentTask(Task):
    """Images -> a class per pixel (U-Nets): Dice + cross-entropy; Dice, IoU, pixel accuracy.
    Augmentation: the 8 dihedral transforms of image and mask together (``flip``)."""

    default_best = "val_dice"
    metrics = ("loss", "acc", "dice", "iou")
    examples = "synthetic:cells"
    default_tile = 64
    LOSS_TERMS = ("ce", "dice")

    def load(self, split: str, *, like: Any = None) -> Any:
        c = self.config
        return load_segmentation(c.data, split, val_size=c.val_size, seed=c.seed, size=c.tile_size or self.default_tile)

    def loader(self, dataset, batch_size, *, train, device, rank=0, world_size=1):
        c = self.config
        augment = DihedralAugmentation(dihedral=True) if train and c.flip else None
        return SegmentationLoader(
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
        if not (isinstance(cls, type) and issubclass(cls, SegmentationNet)):
            raise ValueError(
                f"task 'segment' needs a segmentation model (unet, unet_residual, "
                f"unet_resnet18, unet_resnet34); {name} is a "
                f"{getattr(cls, '__name__', cls)}"
            )

    def criterion(self, dataset: Any) -> nn.Module:
        terms = self.config.loss or {"ce": 1.0, "dice": 1.0}
        unknown = set(terms) - set(self.LOSS_TERMS)
        if unknown:
            raise ValueError(
                f"segment loss terms must be among {self.LOSS_TERMS} (e.g. "
                f"{{ce: 1.0, dice: 1.0}}); found {sorted(unknown)}"
            )
        return DiceCELoss(ce_weight=float(terms.get("ce", 0.0)), dice_weight=float(terms.get("dice", 0.0)))

    def prepare(self, trainer):
        """The masks are checked once here; the step's loss and counts then run without a
        host sync (the dihedral augmentation keeps labels exact)."""
        masks, k = trainer.train_set.masks, trainer.train_set.num_classes
        if masks.numel() and (int(masks.min()) < 0 or int(masks.max()) >= k):
            raise ValueError(
                f"segmentation masks must hold labels in [0, {k}); found [{int(masks.min())}, {int(masks.max())}]"
            )
        self.train_criterion = self.criterion(trainer.train_set)
        self.train_criterion.check = False

    def num_sums(self, dataset):
        return 2 + 3 * dataset.num_classes

    def batch_sums(self, logits, masks, loss):  # [loss x n, tp per class, fp..., fn..., n]
        counts = confusion_counts(logits.detach(), masks, logits.shape[1], check=False)  # [K, 3]
        n = torch.tensor([float(len(masks))], device=loss.device)
        return torch.cat([(loss.float() * len(masks)).view(1), counts.T.reshape(-1).float(), n])

    def train_metrics(self, sums):
        scores = SegmentationScores((len(sums) - 2) // 3)
        scores.counts = torch.tensor(sums[1:-1], dtype=torch.float64).view(3, -1).T.round().long()
        return {"train_loss": sums[0] / sums[-1], **{f"train_{k}": v for k, v in segmentation_summary(scores).items()}}

    def train_error(self, sums):
        return 1 - self.train_metrics(sums)["train_acc"]

    def meter(self, dataset: Any) -> Meter:
        return SegmentationMeter(self.criterion(dataset), dataset.num_classes)


class SegmentationLoader(BatchLoader):
    """:class:`~skiplab.data.BatchLoader` over a :class:`~skiplab.data.SegmentationDataset`:
    yields ``(x, masks)`` -- x normalised float32 [B, C, H, W], masks int64 [B, H, W] -- with
    the same augmentation (a :class:`~skiplab.data.DihedralAugmentation`: crops and dihedral
    transforms, exact on labels) applied to both. Order, sharding and resume as BatchLoader."""

    def make_batch(self, indices: torch.Tensor, epoch: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dataset.images[indices].to(self.device).float().div_(255)
        x = normalize(x, self._mean, self._std)
        masks = self.dataset.masks[indices].to(self.device)
        if self.augment is not None and not self.augment.is_identity:
            stacked = torch.cat([x, masks.unsqueeze(1).float()], dim=1)
            params = self.augment.sample_params(
                len(indices) * self.world_size, x.shape[2], x.shape[3], self.batch_generator(epoch, batch)
            )
            stacked = self.augment.apply(stacked, params.select(slice(self.rank, None, self.world_size)))
            x, masks = stacked[:, :-1], stacked[:, -1].long()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, masks
