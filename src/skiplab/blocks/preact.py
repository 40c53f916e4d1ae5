"""Pre-activation residual blocks (He et al. 2016, "Identity Mappings in Deep Residual
Networks", Fig. 4e and Eq. 3-4).

x_{l+1} = x_l + F(x_l) with F = conv(relu(BN(conv(relu(BN(x_l)))))): nothing follows the
addition, so the shortcut path is a pure identity from any block to any later one.
Where the shape changes, the projection (no BN: its input is already normalised) takes
the pre-activated input relu(BN(x)), as in the authors' code.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .attention import AttnLayer, make_attn
from .bottleneck import bottleneck_width
from .conv import check_groups, check_stride, conv1x1, conv3x3
from .drop_path import maybe_drop_path
from .norm import ActLayer, Norm, make_act, norm_layer
from .shortcut import make_shortcut


class PreActResidualBlock(nn.Module):
    """Base of the pre-activation blocks: y = DropPath(F(x)) + W_s x, no final ReLU."""

    def _init_shortcut(self, in_channels: int, out_channels: int, stride: int, shortcut: Optional[str]) -> None:
        self.has_shortcut = shortcut is not None
        self.downsample = (
            make_shortcut(in_channels, out_channels, stride, shortcut, norm=False) if self.has_shortcut else None
        )

    def residual_from_preact(self, pre: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must define residual_from_preact (abstract)")

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the residual branch."""
        return self.residual_from_preact(self.relu(self.bn1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.drop_path(self.residual_from_preact(pre))
        if not self.has_shortcut:
            return out
        if self.downsample is None:
            return out + x
        # option A keeps the raw input on its path; projections read the pre-activation.
        src = x if not isinstance(self.downsample, nn.Sequential) else pre
        return out + self.downsample(src)


class PreActBlock(PreActResidualBlock):
    """Two BN-ReLU-conv3x3 units; ``[B, in, H, W] -> [B, out, H/stride, W/stride]``.

    Arguments as :class:`~skiplab.blocks.basic.BasicBlock`, plus ``dropout``: the
    probability of the dropout between the two convolutions of Wide ResNets (Zagoruyko &
    Komodakis 2016, §2.4: after the second BN-ReLU). It has no parameters, so the state
    dict is the same with or without it.
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
        dropout: float = 0.0,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        bn = norm_layer(norm, norm_groups)
        self.bn1 = bn(in_channels)
        self.relu = make_act(act, inplace=False)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = bn(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()  # Dropout checks 0 <= p <= 1
        self.conv2 = conv3x3(out_channels, out_channels)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self._init_shortcut(in_channels, out_channels, stride, shortcut)

    def residual_from_preact(self, pre: torch.Tensor) -> torch.Tensor:
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return self.se(out)

    def zero_init_last(self) -> None:
        """Zero the last conv of the branch: the block starts as its shortcut."""
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(PreActResidualBlock):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (strided, grouped), BN-ReLU-conv1x1 (He 2016 Fig. 4e
    with the bottleneck of He 2015 Fig. 5). Arguments as :class:`~skiplab.blocks.bottleneck.Bottleneck`."""

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
        self.bn1 = bn(in_channels)
        self.relu = make_act(act, inplace=False)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = bn(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = bn(width)
        self.conv3 = conv1x1(width, out_channels)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self._init_shortcut(in_channels, out_channels, stride, shortcut)

    def residual_from_preact(self, pre: torch.Tensor) -> torch.Tensor:
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return self.se(out)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)
