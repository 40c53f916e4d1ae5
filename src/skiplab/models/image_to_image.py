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

    @property
    def default_input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the tiles the model was designed for (used by ``skiplab summary``)."""
        return (self.in_chans, self.default_image_size, self.default_image_size)

    @property
    def reduction(self) -> int:
        """Total stride of the encoder (the deepest ``feature_info`` reduction)."""
        return max((f["reduction"] for f in self.feature_info), default=1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError saying what was expected when ``x`` is not ``[B, in_chans, H, W]``."""
        name = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f"{name} expects a 4-D batch [B, {self.in_chans}, H, W], "
                             f"got a tensor of shape {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"{name} was built for in_chans={self.in_chans}, got an input with "
                             f"{x.shape[1]} channels (shape {tuple(x.shape)}); create the model "
                             f"with in_chans={x.shape[1]}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward_features (abstract)")

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each level's activations in the backward pass instead of storing them
        (``torch.utils.checkpoint``): less memory, about one more forward of compute."""
        self.grad_checkpointing = enable

    def run_stage(self, stage: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        """Apply ``stage``, checkpointed when gradient checkpointing is on and training."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(stage, *inputs, use_reentrant=False)
        return stage(*inputs)


def check_widths(widths: Sequence[int], what: str = "widths") -> tuple[int, ...]:
    """A non-empty tuple of positive channel counts, or a ValueError naming ``what``."""
    values = tuple(widths)
    if not values or not all(isinstance(w, int) and w > 0 for w in values):
        raise ValueError(f"{what} must be a non-empty sequence of positive integers, got {widths!r}")
    return values
