"""Evaluation meters: a task's metrics accumulated over the batches of a split.

``meter.update(output, target)`` per batch (float32 outputs), then ``meter.result()`` ->
``{"loss", <the task's scores>, "images"}``; :func:`skiplab.train.evaluate` runs the loop and
:meth:`skiplab.train.tasks.Task.meter` gives the task's meter. Dice and IoU are computed from
counts over the whole split, PSNR and SSIM per image and averaged.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataMismatchError


class Meter:
    """Accumulates a task's metrics over evaluation batches: ``update(output, target)`` with
    float32 outputs, then ``result()`` -> ``{"loss", ..., "images"}``."""

    dense = False  # outputs are images (test-time flips are undone on the output)

    def __init__(self) -> None:
        self.loss_sum, self.count = 0.0, 0

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The output of ``model`` on a batch that :meth:`update` scores: ``model(x)`` (a
        meter may ask the model for more, e.g. a codec's rate)."""
        return model(x)

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def scores(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def keep_per_image(self) -> "Meter":
        """Also return per-image outputs in :meth:`result` (classifiers: see
        :class:`ClassificationMeter`)."""
        raise ValueError(f"{type(self).__name__} keeps no per-image outputs")

    def result(self) -> dict:
        if self.count == 0:
            raise ValueError("the evaluation loader yielded no images")
        return {"loss": self.loss_sum / self.count, **self.scores(), "images": self.count}


class ClassificationMeter(Meter):
    """Mean loss (cross-entropy, or ``loss_fn``'s batch mean) and accuracy; with
    ``keep_per_image()`` also, per image, whether the model was right (``"correct"``, a bool
    tensor) and the class it predicted (``"predicted"``, int32) -- what a paired interval over
    the evaluation images or a top-1 agreement needs.

    Every batch is checked against the data: a model whose output has another number of classes
    than ``num_classes`` (the data's, when known), or than the largest label needs, is refused
    in one line (:class:`~skiplab.errors.DataMismatchError`) naming ``source`` and ``data``.
    """

    def __init__(
        self,
        num_classes: Optional[int] = None,
        *,
        data: str = "the data",
        source: str = "the model",
        loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.data, self.source, self.loss_fn = num_classes, data, source, loss_fn
        self.correct = 0
        self.per_image: Optional[dict[str, list[torch.Tensor]]] = None

    def keep_per_image(self) -> "ClassificationMeter":
        self.per_image = {"correct": [], "predicted": []}
        return self

    def check(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Refuse outputs that are not one score per class of the data (the labels' range is
        checked only when the data's number of classes is not known)."""
        if logits.ndim != 2:
            raise DataMismatchError(
                f"{self.source} does not fit {self.data}: expected one score per "
                f"class, the model gives outputs of shape {tuple(logits.shape[1:])}"
            )
        width = logits.shape[1]
        needed = self.num_classes if self.num_classes is not None else int(y.max()) + 1 if len(y) else 0
        if width != needed and (self.num_classes is not None or width < needed):
            raise DataMismatchError(
                f"{self.source} does not fit {self.data}: the model has "
                f"num_classes={width}, the data "
                f"{needed if self.num_classes is not None else f'labels up to {needed - 1}'}"
            )

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.check(logits, y)
        if self.loss_fn is None:
            self.loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        else:
            self.loss_sum += float(self.loss_fn(logits, y)) * len(y)
        predicted = logits.argmax(1)
        hits = predicted == y
        self.correct += hits.sum().item()
        self.count += len(y)
        if self.per_image is not None:
            self.per_image["correct"].append(hits.cpu())
            self.per_image["predicted"].append(predicted.to(torch.int32).cpu())

    def scores(self) -> dict:
        return {"acc": self.correct / self.count}

    def result(self) -> dict:
        result = super().result()
        if self.per_image is not None:
            result.update({k: torch.cat(v) for k, v in self.per_image.items()})
        return result


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
