"""Convolutional Highway networks for CIFAR (Srivastava, Greff & Schmidhuber 2015,
"Training Very Deep Networks"), on the three-stage layout of He et al. 2015's
CIFAR ResNets so that the two can be compared layer for layer.

Depth 6n+2, as :func:`~skiplab.models.cifar_resnet.cifar_resnet`: a 3x3 conv-BN-ReLU
stem, three stages of 2n layers at 16, 32 and 64 channels (32x32, 16x16, 8x8), global
average pooling and the classifier. A highway layer keeps its shape, so the first layer
of stages 2 and 3 is a plain projection -- conv3x3 with stride 2 to the new width, BN,
ReLU -- exactly where a plain/residual CIFAR net has its strided conv; every other layer
is a :class:`~skiplab.blocks.highway.ConvHighwayLayer`. So ``cifar_highway_56`` and
``cifar_plain56`` / ``cifar_resnet56`` have the same number of weighted layers on the
main path (the highway one has a gate conv beside each of its layers).

Deviations from the paper, whose CIFAR nets followed FitNets (max-pooling between groups,
no BN, maxout): BN in H (``norm=False`` removes it) and the ResNet layout above.
There is no residual branch: ``zero_init_residual`` is accepted so that generic code can
pass it, and has no effect (the negative gate bias is what starts each layer near the
identity); there is no ``drop_path_rate``.
"""

from __future__ import annotations

from functools import partial
from typing import Optional, Sequence

from torch import nn

from ..blocks import conv3x3
from ..blocks.highway import DEFAULT_GATE_BIAS, ConvHighwayLayer
from ..blocks.norm import ActLayer, Norm, make_act, norm_layer
from .cifar_resnet import CifarResNet, blocks_from_depth
from .registry import register_model


class StageProjection(nn.Sequential):
    """conv3x3 (strided) - BN - ReLU: changes width and resolution between highway stages."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__(
            conv3x3(in_channels, out_channels, stride),
            norm_layer(norm, norm_groups)(out_channels),
            make_act(act, inplace=True),
        )


def highway_unit(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    *,
    gate_bias: float,
    kernel_size: int,
    norm: Norm = True,
    shortcut: Optional[str] = None,
    attn_layer=None,
    drop_path: float = 0.0,
    act: ActLayer = "relu",
    norm_groups: int = 32,
) -> nn.Module:
    """One layer of a highway stage: a :class:`StageProjection` where the shape changes,
    a :class:`ConvHighwayLayer` elsewhere (the stage builder's block factory)."""
    if shortcut is not None or attn_layer is not None or drop_path:
        raise ValueError("highway layers take no shortcut, attention or drop-path")
    if in_channels != out_channels or stride != 1:
        return StageProjection(in_channels, out_channels, stride, norm, act, norm_groups)
    return ConvHighwayLayer(
        in_channels,
        out_channels,
        gate_bias=gate_bias,
        kernel_size=kernel_size,
        norm=norm,
        act=act,
        norm_groups=norm_groups,
    )


class CifarHighway(CifarResNet):
    """Three stages of convolutional highway layers for 32x32 inputs.

    Args:
        layers: layers per stage, e.g. ``(6, 6, 6)`` for depth 20 (the first layer of
            stages 2 and 3 is the projection).
        widths: channels of the three stages (16, 32, 64 as the CIFAR ResNets).
        gate_bias: initial transform-gate bias b_T (Srivastava 2015: -1 to -3).
        kernel_size: of the transform and gate convolutions.
        norm: the norm in the stem, projections and H: "batch" (default, or ``True``),
            "group", "layer" or "none" (``False``); see :mod:`skiplab.blocks.norm`.
        act: "relu" (default), "gelu", "silu"... in the stem, projections and H.
        norm_groups: most groups of a "group" norm.
        num_classes, in_chans: classifier outputs and input channels.
        zero_init_residual: accepted for a uniform interface; no effect (see module doc).
    """

    def __init__(
        self,
        layers: Sequence[int],
        widths: Sequence[int] = (16, 32, 64),
        num_classes: int = 10,
        in_chans: int = 3,
        gate_bias: float = DEFAULT_GATE_BIAS,
        kernel_size: int = 3,
        norm: Norm = True,
        zero_init_residual: bool = False,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        unit = partial(highway_unit, gate_bias=gate_bias, kernel_size=kernel_size)
        super().__init__(
            unit,
            layers,
            widths,
            widths[0],
            num_classes=num_classes,
            in_chans=in_chans,
            shortcut=None,
            norm=norm,
            zero_init_residual=False,
            act=act,
            norm_groups=norm_groups,
        )
        self.gate_bias = gate_bias


@register_model
def cifar_highway(depth: int = 20, **kwargs) -> CifarHighway:
    """CIFAR Highway network of any depth 6n+2 (2n layers per stage)."""
    n = blocks_from_depth(depth, 2, 2)
    return CifarHighway((2 * n, 2 * n, 2 * n), **kwargs)


@register_model
def cifar_highway_20(**kwargs) -> CifarHighway:
    """Highway-20: 18 conv layers between stem and classifier, 16 of them highway layers."""
    return cifar_highway(20, **kwargs)


@register_model
def cifar_highway_56(**kwargs) -> CifarHighway:
    """Highway-56 (the depth at which He 2015's plain CIFAR net degrades)."""
    return cifar_highway(56, **kwargs)


@register_model
def cifar_highway_110(**kwargs) -> CifarHighway:
    """Highway-110."""
    return cifar_highway(110, **kwargs)
