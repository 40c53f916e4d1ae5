"""The addition every post-activation residual block ends with (He et al. 2015, Eq. 1-2).

y = relu(DropPath(F(x)) + W_s x). A block subclasses :class:`ResidualBlock`, builds its
layers and defines ``residual(x)`` = F(x); ``downsample`` holds W_s (``None`` = identity)
and ``has_shortcut=False`` makes it the plain block y = relu(F(x)).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .norm import Norm, norm_layer  # noqa: F401  (norm_layer: re-exported, its old home)
from .shortcut import make_shortcut


class ResidualBlock(nn.Module):
    """Base of the post-activation blocks: the shortcut, the addition and the last ReLU."""

    def _init_shortcut(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        shortcut: Optional[str],
        norm: Norm,
        norm_groups: int = 32,
    ) -> None:
        self.has_shortcut = shortcut is not None
        self.downsample = (
            make_shortcut(in_channels, out_channels, stride, shortcut, norm, norm_groups) if self.has_shortcut else None
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define residual (abstract)")

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """W_s x: the identity or the projection."""
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop_path(self.residual(x))
        if self.has_shortcut:
            out = out + self.shortcut(x)
        return self.relu(out)
