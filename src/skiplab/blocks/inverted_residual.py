"""The inverted residual block with a linear bottleneck (Sandler et al. 2018, "MobileNetV2:
Inverted Residuals and Linear Bottlenecks", §3.3-3.4, Table 1 and Fig. 3b).

A thin ``in_channels`` bottleneck is expanded by ``t`` (the expansion ratio) with a 1x1
conv, filtered by a 3x3 depthwise conv (the stride), and projected back by a *linear*
1x1 conv (BN, no ReLU6: §3.2, Fig. 2):

    F(x) = BN(W_pw-linear ReLU6(BN(W_dw ReLU6(BN(W_expand x)))))

and y = x + F(x) where the shapes allow it (stride 1 and ``in_channels == out_channels``),
else y = F(x): the shortcut joins the bottlenecks, not the expanded layers (the
"inverted" of the title). With ``t = 1`` the expansion conv is left out, as in Table 2's
first bottleneck. :class:`PlainInvertedResidual` is the no-skip twin: the very same
layers and parameter names, and never the identity addition.

Shape contract (the one of :mod:`skiplab.blocks`): ``[B, in, H, W] -> [B, out,
ceil(H/stride), ceil(W/stride)]``. Module names follow torchvision's ``InvertedResidual``
(``conv.0.0``, ``conv.0.1``, ... under ``conv``), so its state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import check_stride
from .drop_path import maybe_drop_path
from .norm import ActLayer, Norm, make_act, make_norm, zero_norm_


class ConvNormAct(nn.Sequential):
    """Conv (no bias), BatchNorm, ReLU6: torchvision's ``Conv2dNormActivation`` with
    MobileNetV2's defaults, whose children are named ``0``, ``1``, ``2``. ``norm`` and ``act``
    choose others (see :mod:`skiplab.blocks.norm`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm: Norm = True,
        act: ActLayer = "relu6",
        norm_groups: int = 32,
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            make_norm(norm, out_channels, norm_groups),
            make_act(act, inplace=True),
        )
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3 (stride), linear 1x1 projection; identity skip when the
    shapes match. ``[B, in, H, W] -> [B, out, H/stride, W/stride]``.

    Args:
        expand_ratio: t, the hidden width is ``round(in_channels * t)`` (6 in the paper).
        skip: ``False`` never adds the input (the no-skip twin of a study).
        drop_path: stochastic-depth probability of the branch where it is added to the
            skip (Huang et al. 2016); it has no effect on blocks without one.
        norm: "batch" (default, or ``True``), "group", "layer" or "none"; see
            :mod:`skiplab.blocks.norm`.
        act: activation after the expansion and the depthwise conv ("relu6" default, the
            paper's; "relu", "gelu", "silu"...). The projection stays linear.
        norm_groups: most groups of a "group" norm (a depthwise layer of C channels gets
            the largest divisor of C not above it).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6,
        skip: bool = True,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu6",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        if expand_ratio <= 0:
            raise ValueError(f"expand_ratio must be > 0, got {expand_ratio}")
        hidden = int(round(in_channels * expand_ratio))
        self.stride = stride
        self.out_channels = out_channels
        self.skip = skip
        # torchvision's name: whether this block adds its input
        self.use_res_connect = skip and stride == 1 and in_channels == out_channels
        opts = dict(norm=norm, act=act, norm_groups=norm_groups)
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, kernel_size=1, **opts))  # expand (pw)
        layers += [
            ConvNormAct(hidden, hidden, stride=stride, groups=hidden, **opts),  # depthwise
            nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False),  # pw-linear
            make_norm(norm, out_channels, norm_groups),
        ]
        self.conv = nn.Sequential(*layers)
        self.drop_path = maybe_drop_path(drop_path if self.use_res_connect else 0.0)

    @property
    def has_shortcut(self) -> bool:
        """Whether the block adds its input (the attribute :mod:`skiplab.analysis` reads)."""
        return self.use_res_connect

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The branch F(x): expansion, depthwise filter, linear bottleneck."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.drop_path(self.residual(x))
        return self.residual(x)

    def zero_init_last(self) -> None:
        """γ = 0 on the last BN (Goyal et al. 2017) where the block adds its input, so the
        block starts as the identity; blocks without a skip keep their BN (they would
        output 0 and pass no gradient)."""
        if self.use_res_connect:
            zero_norm_(self.conv[-1])

    def extra_repr(self) -> str:
        return f"use_res_connect={self.use_res_connect}"


class PlainInvertedResidual(InvertedResidual):
    """The no-skip twin of :class:`InvertedResidual`: the same layers, parameter names and
    counts, and y = F(x) always."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 6,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu6",
        norm_groups: int = 32,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            stride,
            expand_ratio,
            skip=False,
            drop_path=drop_path,
            norm=norm,
            act=act,
            norm_groups=norm_groups,
        )
