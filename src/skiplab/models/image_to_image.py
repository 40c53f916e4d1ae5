"""What skiplab's image-to-image networks share: autoencoders and U-Nets.

They are not classifiers (their output is an image, not logits), but they keep the
classifier conventions that tools rely on: ``in_chans``, ``feature_info`` (one dict per
encoder level: ``num_chs``, ``reduction``, ``module``, in forward order, so
``create_model(..., features_only=True)`` and ``skiplab summary`` work),
``default_input_size``, ``check_input`` and ``set_grad_checkpointing``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .base import Classifier


class ImageToImageModel(nn.Module):
    """Base class of networks mapping ``[B, in_chans, H, W]`` to ``[B, out, H, W]``.

    Subclasses set ``in_chans`` and ``feature_info`` in their constructor and define
    ``forward_features(x)`` (the encoder: input to its deepest feature map), which is what
    :class:`~skiplab.models.base.FeatureExtractor` runs.
    """

    default_image_size: int = 256

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.in_chans = 1
        self.feature_info: list[dict] = []

    # the classifiers' own: (C, H, W) for ``skiplab summary``, and the gradient-checkpointing switch
    default_input_size = Classifier.default_input_size
    set_grad_checkpointing = Classifier.set_grad_checkpointing

    @property
    def reduction(self) -> int:
        """Total stride of the encoder (the deepest ``feature_info`` reduction)."""
        return max([f["reduction"] for f in self.feature_info] or [1])  # no default=: torch.compile graph-breaks on it

    @property
    def min_input_size(self) -> int:
        """Smallest side accepted (1: any size; autoencoders need their total stride)."""
        return 1

    # 4-D, ``in_chans`` channels, at least ``min_input_size``: the classifiers' own check
    check_input = Classifier.check_input

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward_features (abstract)")

    def run_stage(self, stage: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        """Apply ``stage`` to one or more inputs (a U-Net up-stage takes the skip too),
        checkpointed when gradient checkpointing is on and training."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(stage, *inputs, use_reentrant=False)
        return stage(*inputs)


def check_widths(widths: Sequence[int], what: str = "widths") -> tuple[int, ...]:
    """A non-empty tuple of positive channel counts, or a ValueError naming ``what``."""
    values = tuple(widths)
    if not values or not all(isinstance(w, int) and w > 0 for w in values):
        raise ValueError(f"{what} must be a non-empty sequence of positive integers, got {widths!r}")
    return values
