"""Segmentation loss and metrics: soft Dice + cross-entropy, and Dice / IoU scores.

* **Dice** (Sørensen 1948; as a loss, Milletari et al. 2016, "V-Net", Eq. 1):
  D_c = 2 |P_c ∩ G_c| / (|P_c| + |G_c|); **IoU** (Jaccard): J_c = |P_c ∩ G_c| / |P_c ∪ G_c|
  = D_c / (2 - D_c). Scores are computed per class from counts summed over every pixel of
  the batch (or, with :class:`SegmentationScores`, of the whole evaluation set) -- not
  averaged per image, so small objects in one image do not dominate.
* A class absent from both prediction and ground truth has no score (NaN) and is left out
  of the means; ``mean_dice``/``mean_iou`` average the foreground classes (all but
  ``background_index``).
* :class:`DiceCELoss` = ``ce_weight`` x cross-entropy + ``dice_weight`` x (1 - soft Dice),
  the soft Dice on the softmax probabilities with a small smoothing term (nnU-Net's
  "batch Dice", Isensee et al. 2021) so that a class absent from the batch costs nothing.

``ignore_index`` pixels (e.g. unlabelled) count in neither the loss nor the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def _check(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The target as int64 ``[B, H, W]`` (``[B, 1, H, W]`` is accepted); ValueError when its
    shape does not match ``prediction`` (``[B, K, H, W]`` logits or ``[B, H, W]`` labels)."""
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.dim() != 3 or target.shape[0] != prediction.shape[0] or target.shape[-2:] != prediction.shape[-2:]:
        raise ValueError(
            f"target must be class indices [B, H, W] matching the prediction "
            f"{tuple(prediction.shape)}; got shape {tuple(target.shape)}"
        )
    if target.is_floating_point():
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    return target.long()


def _valid(target: torch.Tensor, num_classes: int, ignore_index: Optional[int], check: bool = True) -> torch.Tensor:
    """The mask of counted pixels; ``check``: a ValueError on labels outside the classes
    (a host sync: a training step, whose labels were checked once, passes False)."""
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    if not check:
        return valid
    labels = target[valid]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"target labels must lie in [0, {num_classes}) (or be ignore_index="
            f"{ignore_index}); found [{int(labels.min())}, {int(labels.max())}]"
        )
    return valid


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: Optional[int] = None, check: bool = True
) -> torch.Tensor:
    """Per-class ``[num_classes, 3]`` counts (true positives, false positives, false negatives)
    of hard predictions ``pred`` ``[B, H, W]`` (class indices; logits ``[B, K, H, W]`` are
    arg-maxed) against ``target`` ``[B, H, W]``. ``check``: ValueErrors on labels out of
    range (host syncs); without it no step waits for the host (labels must be in range)."""
    if pred.dim() == 4:
        if pred.shape[1] != num_classes:
            raise ValueError(f"logits have {pred.shape[1]} channels but num_classes={num_classes}")
        pred = pred.argmax(1)
    target = _check(pred, target)
    valid = _valid(target, num_classes, ignore_index, check)
    if not check:  # no boolean indexing, no bincount (both wait for the host on CUDA)
        k2 = num_classes**2
        idx = torch.where(valid, target * num_classes + pred.long(), k2).flatten()
        flat = torch.zeros(k2 + 1, dtype=torch.long, device=idx.device)
        matrix = flat.index_add_(0, idx, torch.ones_like(idx))[:k2].view(num_classes, num_classes)
        tp = matrix.diagonal()
        return torch.stack([tp, matrix.sum(0) - tp, matrix.sum(1) - tp], dim=1)
    p, t = pred[valid].long(), target[valid]
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"predicted labels must lie in [0, {num_classes}); found [{int(p.min())}, {int(p.max())}]")
    matrix = torch.bincount(t * num_classes + p, minlength=num_classes**2).view(num_classes, num_classes)
    tp = matrix.diagonal()
    return torch.stack([tp, matrix.sum(0) - tp, matrix.sum(1) - tp], dim=1)


def _mean_foreground(scores: torch.Tensor, background_index: Optional[int]) -> float:
    keep = torch.ones_like(scores, dtype=torch.bool)
    if background_index is not None and scores.numel() > 1:
        keep[background_index] = False
    values = scores[keep]
    values = values[~values.isnan()]
    return float(values.mean()) if values.numel() else float("nan")


@dataclass
class SegmentationScores:
    """Dice and IoU accumulated over batches: ``update(logits_or_pred, target)`` then read
    ``dice`` / ``iou`` (per class, NaN for a class absent from both) and the foreground
    means ``mean_dice`` / ``mean_iou``."""

    num_classes: int
    ignore_index: Optional[int] = None
    background_index: Optional[int] = 0

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        self.counts = torch.zeros(self.num_classes, 3, dtype=torch.int64)

    def update(self, logits_or_pred: torch.Tensor, target: torch.Tensor) -> None:
        self.counts += confusion_counts(
            logits_or_pred.detach().cpu(), target.cpu(), self.num_classes, self.ignore_index
        )

    def reset(self) -> None:
        self.counts.zero_()

    @property
    def dice(self) -> torch.Tensor:
        tp, fp, fn = self.counts.double().unbind(1)
        return 2 * tp / (2 * tp + fp + fn)  # 0/0 = NaN for a class absent from both

    @property
    def iou(self) -> torch.Tensor:
        tp, fp, fn = self.counts.double().unbind(1)
        return tp / (tp + fp + fn)

    @property
    def mean_dice(self) -> float:
        return _mean_foreground(self.dice, self.background_index)

    @property
    def mean_iou(self) -> float:
        return _mean_foreground(self.iou, self.background_index)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """``{dice, iou, dice_<c>, iou_<c>}`` as plain floats (for metrics.csv)."""
        out = {f"{prefix}dice": self.mean_dice, f"{prefix}iou": self.mean_iou}
        for c in range(self.num_classes):
            out[f"{prefix}dice_{c}"] = float(self.dice[c])
            out[f"{prefix}iou_{c}"] = float(self.iou[c])
        return out


def dice_score(
    logits_or_pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: Optional[int] = None,
    background_index: Optional[int] = 0,
) -> float:
    """Mean foreground Dice of one batch (1 = perfect, 0 = disjoint)."""
    scores = SegmentationScores(num_classes, ignore_index, background_index)
    scores.update(logits_or_pred, target)
    return scores.mean_dice


def iou_score(
    logits_or_pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: Optional[int] = None,
    background_index: Optional[int] = 0,
) -> float:
    """Mean foreground IoU (Jaccard) of one batch (1 = perfect, 0 = disjoint)."""
    scores = SegmentationScores(num_classes, ignore_index, background_index)
    scores.update(logits_or_pred, target)
    return scores.mean_iou


def soft_dice(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: Optional[int] = None,
    include_background: bool = False,
    smooth: float = 1e-5,
    check: bool = True,
) -> torch.Tensor:
    """Mean over classes of the soft Dice 2 sum(p g) / (sum(p) + sum(g)), p the softmax
    probabilities, g the one-hot target, sums over the batch and pixels (differentiable).
    Class 0 is the background, left out unless ``include_background``."""
    if logits.dim() != 4:
        raise ValueError(f"logits must be [B, K, H, W], got shape {tuple(logits.shape)}")
    num_classes = logits.shape[1]
    target = _check(logits, target)
    valid = _valid(target, num_classes, ignore_index, check)
    probs = logits.float().softmax(1) * valid.unsqueeze(1)
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2) * valid.unsqueeze(1)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + smooth) / (total + smooth)
    if not include_background and num_classes > 1:
        dice = dice[1:]
    return dice.mean()


class DiceCELoss(nn.Module):
    """``ce_weight * CE(logits, target) + dice_weight * (1 - soft_dice(logits, target))``.

    Args:
        ce_weight, dice_weight: weights of the two terms (1 and 1).
        class_weights: optional per-class weights of the cross-entropy.
        ignore_index: label of pixels to ignore (None: every pixel counts).
        include_background: the soft Dice also averages over class 0.
        check: a ValueError on labels out of range (a host sync each call; a training step
            whose data were checked once sets it False).
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        class_weights: Optional[torch.Tensor] = None,
        ignore_index: Optional[int] = None,
        include_background: bool = False,
        smooth: float = 1e-5,
        check: bool = True,
    ) -> None:
        super().__init__()
        self.check = check
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ValueError(
                f"ce_weight and dice_weight must be >= 0 and not both 0, got {ce_weight} and {dice_weight}"
            )
        self.ce_weight, self.dice_weight = ce_weight, dice_weight
        self.ignore_index, self.include_background, self.smooth = ignore_index, include_background, smooth
        self.register_buffer(
            "class_weights", None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _check(logits, target)
        _valid(target, logits.shape[1], self.ignore_index, self.check)
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.ce_weight:
            ce = F.cross_entropy(
                logits.float(),
                target,
                weight=self.class_weights,
                ignore_index=-100 if self.ignore_index is None else self.ignore_index,
            )
            loss = loss + self.ce_weight * ce
        if self.dice_weight:
            dice = soft_dice(logits, target, self.ignore_index, self.include_background, self.smooth, self.check)
            loss = loss + self.dice_weight * (1 - dice)
        return loss

    def extra_repr(self) -> str:
        return f"ce_weight={self.ce_weight}, dice_weight={self.dice_weight}, ignore_index={self.ignore_index}"
