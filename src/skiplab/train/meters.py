"""Evaluation meters: a task's metrics accumulated over the batches of a split.

``meter.update(output, target)`` per batch (float32 outputs), then ``meter.result()`` ->
``{"loss", <the task's scores>, "images"}``; :func:`skiplab.train.evaluate` runs the loop and
:meth:`skiplab.train.tasks.Task.meter` gives the task's meter. Dice and IoU are computed from
counts over the whole split, PSNR and SSIM per image and averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Meter:
    """Accumulates a task's metrics over evaluation batches: ``update(output, target)`` with
    float32 outputs, then ``result()`` -> ``{"loss", ..., "images"}``."""

    dense = False   # outputs are images (test-time flips are undone on the output)

    def __init__(self) -> None:
        self.loss_sum, self.count = 0.0, 0

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def scores(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def result(self) -> dict:
        if self.count == 0:
            raise ValueError("the evaluation loader yielded no images")
        return {"loss": self.loss_sum / self.count, **self.scores(), "images": self.count}


class ClassificationMeter(Meter):
    """Mean cross-entropy and accuracy."""

    def __init__(self) -> None:
        super().__init__()
        self.correct = 0

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        self.correct += (logits.argmax(1) == y).sum().item()
        self.count += len(y)

    def scores(self) -> dict:
        return {"acc": self.correct / self.count}


class SegmentationMeter(Meter):
    """Mean loss per image, pixel accuracy, and Dice / IoU from counts over the whole set."""

    dense = True

    def __init__(self, criterion: nn.Module, num_classes: int) -> None:
        from .seg_losses import SegmentationScores
        super().__init__()
        self.criterion, self.scores_ = criterion, SegmentationScores(num_classes)

    def update(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        self.loss_sum += self.criterion(logits, masks).item() * len(masks)
        self.scores_.update(logits, masks)
        self.count += len(masks)

    def scores(self) -> dict:
        return segmentation_summary(self.scores_)


def segmentation_summary(scores) -> dict:
    """Pixel accuracy and mean foreground Dice / IoU of a
    :class:`~skiplab.train.seg_losses.SegmentationScores`."""
    tp, _, fn = scores.counts.double().sum(0).unbind()
    return {"acc": float(tp / (tp + fn)), "dice": scores.mean_dice, "iou": scores.mean_iou}
