"""The post-activation basic block (He et al. 2015, Fig. 2 and Eq. 1-2).

y = relu(F(x) + W_s x), with F = BN(conv3x3(relu(BN(conv3x3(x))))). With ``shortcut=None``
the same layers form the *plain* block y = relu(F(x)) of the paper's plain baselines
(§4.1), so a residual net and its plain twin differ only in the shortcut.
"""

from __future__ import annotations

from typing import Optional

import torch

from .attention import AttnLayer, make_attn
from .conv import check_stride, conv3x3
from .drop_path import maybe_drop_path
from .norm import ActLayer, Norm, make_act, norm_layer, zero_norm_
from .residual import ResidualBlock


class BasicBlock(ResidualBlock):
    """Two 3x3 convs; ``[B, in, H, W] -> [B, out, H/stride, W/stride]``.

    Parameter names follow torchvision (conv1, bn1, conv2, bn2, downsample).

    Args:
        shortcut: "A", "B" or "C" (see :mod:`skiplab.blocks.shortcut`), or ``None`` for
            the plain block with no shortcut at all.
        attn_layer: attention on the branch before the addition ("se", "cbam", a callable).
        drop_path: stochastic-depth probability of the branch.
        norm: "batch" (default, or ``True``), "group", "layer" or "none" (``False``: the
            identity, for studies of BN's role); see :mod:`skiplab.blocks.norm`.
        act: activation ("relu" default, "gelu", "silu", ... or a factory).
        norm_groups: most groups of a "group" norm (the largest divisor of the width not above it).
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: Optional[str] = "B",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        bn = norm_layer(norm, norm_groups)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = bn(out_channels)
        self.relu = make_act(act, inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = bn(out_channels)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self._init_shortcut(in_channels, out_channels, stride, shortcut, norm, norm_groups)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch F(x) (before the addition and the last ReLU)."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.se(self.bn2(self.conv2(out)))

    def zero_init_last(self) -> None:
        """γ = 0 on the branch's last norm (Goyal et al. 2017): the block starts as relu(W_s x)."""
        zero_norm_(self.bn2)
