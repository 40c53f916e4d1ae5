"""The bottleneck block (He et al. 2015, Fig. 5 right), with ResNeXt groups and WRN width.

F = BN(conv1x1(relu(BN(conv3x3_s(relu(BN(conv1x1(x)))))))), y = relu(F(x) + W_s x).
The stride sits on the 3x3 conv, as torchvision ("ResNet v1.5"). The inner width is
``int(out/4 * base_width/64) * groups``: ``groups=32, base_width=4`` gives ResNeXt-50
32x4d (Xie et al. 2017, Fig. 3c), ``base_width=128`` Wide ResNet-50-2 (torchvision).
"""

from __future__ import annotations

from typing import Optional

import torch

from .attention import AttnLayer, make_attn
from .conv import check_groups, check_stride, conv1x1, conv3x3
from .drop_path import maybe_drop_path
from .norm import ActLayer, Norm, make_act, norm_layer, zero_norm_
from .residual import ResidualBlock


def bottleneck_width(out_channels: int, expansion: int, groups: int, base_width: int) -> int:
    """Channels of the 3x3 conv of a bottleneck producing ``out_channels``."""
    if out_channels % expansion:
        raise ValueError(
            f"a bottleneck's out_channels ({out_channels}) must be a multiple of its expansion ({expansion})"
        )
    return int(out_channels // expansion * (base_width / 64.0)) * groups


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (grouped, strided), 1x1 expand; ``[B, in, H, W] -> [B, out, H/s, W/s]``.

    ``out_channels`` is the block's output (4x the inner width for the default
    ``base_width=64, groups=1``). Names follow torchvision (conv1..3, bn1..3, downsample).
    Other arguments (``norm``, ``act``...) as :class:`~skiplab.blocks.basic.BasicBlock`.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 1,
        base_width: int = 64,
        shortcut: Optional[str] = "B",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        width = bottleneck_width(out_channels, self.expansion, groups, base_width)
        check_groups(width, groups, "bottleneck width")
        bn = norm_layer(norm, norm_groups)
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = bn(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = bn(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = bn(out_channels)
        self.relu = make_act(act, inplace=True)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self._init_shortcut(in_channels, out_channels, stride, shortcut, norm, norm_groups)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.se(self.bn3(self.conv3(out)))

    def zero_init_last(self) -> None:
        zero_norm_(self.bn3)
