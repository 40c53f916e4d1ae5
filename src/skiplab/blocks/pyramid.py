"""Pyramidal residual units (Han, Kim & Kim 2017, "Deep Pyramidal Residual Networks").

The widths grow a little at every unit instead of doubling at each downsampling
(§3, Eq. 2, additive form): unit k of N has D_k = 16 + floor(alpha * k / N) channels,
see :func:`pyramid_widths`. The unit is the paper's Fig. 6(d):

* basic: F = BN(conv3x3(relu(BN(conv3x3_s(BN(x)))))) ;
* bottleneck: F = BN(conv1x1(relu(BN(conv3x3_s(relu(BN(conv1x1(BN(x))))))))), expansion 4;

and y = F(x) + W_s x with *no* ReLU after the addition (§4.1, Fig. 6(d)). The shortcut
W_s is the zero-padded identity (§3: "zero-padded identity-mapping shortcut", Fig. 5(b)),
with 2x2 average pooling where the unit downsamples (§4: pooling gave the best results),
so PyramidNets need no projection parameters at all.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .attention import AttnLayer, make_attn
from .conv import check_stride, conv1x1, conv3x3
from .drop_path import maybe_drop_path
from .norm import ActLayer, Norm, make_act, norm_layer, zero_norm_
from .residual import ResidualBlock
from .shortcut import ZeroPadShortcut

WIDTH_ROUNDINGS = ("floor", "round")


def pyramid_widths(alpha: float, num_blocks: int, base: int = 16, rounding: str = "floor") -> list[int]:
    """The widths D_1..D_N of the N pyramidal units: ``base + floor(alpha * k / N)`` (Eq. 2).

    ``rounding="round"`` rounds ``base + alpha * k / N`` to the nearest integer instead, as the
    authors' PyTorch code does (``int(round(...))``); use it to load their checkpoints.
    For bottleneck units these are the inner widths; the outputs are 4x as wide.
    """
    if num_blocks < 1:
        raise ValueError(f"a PyramidNet needs at least one unit, got num_blocks={num_blocks}")
    if alpha < 0:
        raise ValueError(f"the widening factor alpha must be >= 0, got {alpha}")
    if rounding not in WIDTH_ROUNDINGS:
        raise ValueError(f"rounding must be one of {WIDTH_ROUNDINGS}, got {rounding!r}")
    if rounding == "floor":
        # alpha * k / N, not (alpha / N) * k: exact where the quotient is a whole number
        return [base + math.floor(alpha * k / num_blocks) for k in range(1, num_blocks + 1)]
    step, width, widths = alpha / num_blocks, float(base), []
    for _ in range(num_blocks):  # accumulated in floating point, as the authors' code
        width += step
        widths.append(int(round(width)))
    return widths


class PoolPadShortcut(nn.Sequential):
    """Zero-padded identity with 2x2 average pooling where ``stride == 2`` (Fig. 5(b), §4).

    Parameter-free. The pooling uses ``ceil_mode`` so that its output matches a strided
    3x3 convolution (``ceil(H/2)``) on odd sizes too; on even sizes it is the paper's pool.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        check_stride(stride)
        layers: list[nn.Module] = []
        if stride == 2:
            layers.append(nn.AvgPool2d(2, stride=2, ceil_mode=True))
        if out_channels != in_channels:
            layers.append(ZeroPadShortcut(in_channels, out_channels))
        super().__init__(*layers)


class PyramidResidualBlock(ResidualBlock):
    """Base of the pyramidal units: y = DropPath(F(x)) + W_s x, nothing after the addition.

    ``shortcut="A"`` is the paper's pooled zero-padded identity (:class:`PoolPadShortcut`);
    "B"/"C" are the projections of :func:`~skiplab.blocks.shortcut.make_shortcut` (the
    alternatives of Fig. 5) and ``None`` the plain unit y = F(x) (same layers, no addition).
    """

    last_bn: str = ""  # name of the branch's last BatchNorm, zeroed by ``zero_init_last``

    def _init_shortcut(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        shortcut: Optional[str],
        norm: Norm,
        norm_groups: int = 32,
    ) -> None:
        if shortcut != "A":
            return super()._init_shortcut(in_channels, out_channels, stride, shortcut, norm, norm_groups)
        self.has_shortcut = True
        same_shape = stride == 1 and in_channels == out_channels
        self.downsample = None if same_shape else PoolPadShortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop_path(self.residual(x))
        return out + self.shortcut(x) if self.has_shortcut else out

    def zero_init_last(self) -> None:
        """γ = 0 on the branch's last norm: a fresh unit is its (zero-padded) shortcut."""
        zero_norm_(getattr(self, self.last_bn))


class PyramidBasicBlock(PyramidResidualBlock):
    """BN-conv3x3-BN-ReLU-conv3x3-BN (Fig. 6(d)); ``[B, in, H, W] -> [B, out, H/s, W/s]``.

    Names follow the authors' code (bn1, conv1, bn2, conv2, bn3).

    Args:
        shortcut: "A" (pooled zero-padded identity, the paper's), "B"/"C" (projection) or
            ``None`` for the plain unit.
        attn_layer: attention on the branch before the addition ("se", "cbam", a callable).
        drop_path: stochastic-depth probability of the branch (the shortcut always stays).
        norm: "batch" (default, or ``True``), "group", "layer" or "none" (``False``: the
            identity, for studies of BN's role); see :mod:`skiplab.blocks.norm`.
        act: activation ("relu" default, "gelu", "silu", ... or a factory).
        norm_groups: most groups of a "group" norm (the largest divisor of the width not above it).
    """

    expansion = 1
    last_bn = "bn3"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: Optional[str] = "A",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        bn = norm_layer(norm, norm_groups)
        self.bn1 = bn(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = bn(out_channels)
        self.relu = make_act(act, inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn3 = bn(out_channels)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self._init_shortcut(in_channels, out_channels, stride, shortcut, norm, norm_groups)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the residual branch."""
        out = self.relu(self.bn2(self.conv1(self.bn1(x))))
        return self.se(self.bn3(self.conv2(out)))


class PyramidBottleneck(PyramidResidualBlock):
    """BN-1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN (Fig. 6(d) with a bottleneck, §4.1).

    ``out_channels`` = 4 x the inner width D_k. Names follow the authors' code
    (bn1, conv1, bn2, conv2, bn3, conv3, bn4). Other arguments as :class:`PyramidBasicBlock`.
    """

    expansion = 4
    last_bn = "bn4"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shortcut: Optional[str] = "A",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        if out_channels % self.expansion:
            raise ValueError(
                f"a pyramidal bottleneck's out_channels must be a multiple of {self.expansion}, got {out_channels}"
            )
        width = out_channels // self.expansion
        bn = norm_layer(norm, norm_groups)
        self.bn1 = bn(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = bn(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn3 = bn(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn4 = bn(out_channels)
        self.relu = make_act(act, inplace=True)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self._init_shortcut(in_channels, out_channels, stride, shortcut, norm, norm_groups)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the residual branch."""
        out = self.relu(self.bn2(self.conv1(self.bn1(x))))
        out = self.relu(self.bn3(self.conv2(out)))
        return self.se(self.bn4(self.conv3(out)))
