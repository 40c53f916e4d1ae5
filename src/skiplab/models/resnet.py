"""ImageNet ResNets (He et al. 2015, Table 1), Wide ResNet-50/101-2 (Zagoruyko & Komodakis
2016, torchvision's variant), ResNeXt (Xie et al. 2017, Table 1), SE-ResNet-50 (Hu et al.
2018) and CBAM-ResNet-50 (Woo et al. 2018).

Layout and parameter names are torchvision's (conv1, bn1, layer1..layer4, fc), so
torchvision and timm state dicts load with ``strict=True``; the SE modules are named as
timm's (``layerX.Y.se.fc1`` / ``fc2``). :func:`add_stages` builds the four stages and is
shared with the pre-activation ResNets (:mod:`skiplab.models.preact_resnet`).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence, Type

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck, drop_path_rates, init_weights
from ..blocks.attention import AttnLayer
from ..blocks.norm import ActLayer, Norm, check_act, make_act, make_norm, resolve_norm
from .base import Classifier
from .registry import register_model

BlockType = Type[nn.Module]  # BasicBlock, Bottleneck, PreActBlock, PreActBottleneck

#: blocks per stage of the depths of He et al. 2015, Table 1 (basic blocks below 50).
STAGE_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STEM_CHANNELS = 64


def stage_depths(depth: int) -> tuple[int, ...]:
    if depth not in STAGE_DEPTHS:
        raise ValueError(f"ImageNet ResNet depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
    return STAGE_DEPTHS[depth]


def block_options(
    block: BlockType, groups: int, width_per_group: int, shortcut: str, attn_layer: AttnLayer, **norm_act: Any
) -> dict[str, Any]:
    """Keyword arguments for every ``block`` of a ResNet; groups/width only for bottlenecks.
    ``norm_act`` (``norm``, ``act``, ``norm_groups``) is passed on where given."""
    options: dict[str, Any] = dict(shortcut=shortcut, attn_layer=attn_layer, **norm_act)
    if "base_width" in inspect.signature(block).parameters:
        options.update(groups=groups, base_width=width_per_group)
    elif groups != 1 or width_per_group != 64:
        raise ValueError(
            f"groups and width_per_group apply to bottleneck blocks only; {block.__name__} "
            f"has neither (got groups={groups}, width_per_group={width_per_group})"
        )
    return options


def add_stages(
    model: Classifier,
    block: BlockType,
    layers: Sequence[int],
    in_channels: int,
    drop_path_rate: float = 0.0,
    **block_kwargs: Any,
) -> int:
    """Add ``layer1`` ... ``layerN`` to ``model`` after a stem of stride 4 and ``in_channels``.

    Stage i has ``layers[i]`` blocks of ``64 * 2**i * block.expansion`` output channels; its
    first block has stride 2 (except in stage 1, after the max-pool). Drop-path rates grow
    linearly to ``drop_path_rate`` over all blocks (Huang et al. 2016). Appends one
    ``feature_info`` entry per stage and returns the channels of the last stage.
    """
    if len(layers) == 0 or any(int(n) < 1 for n in layers):
        raise ValueError(f"layers must give at least one block per stage, got {tuple(layers)}")
    rates = iter(drop_path_rates(drop_path_rate, sum(layers)))
    channels = in_channels
    for i, n in enumerate(layers):
        out = STEM_CHANNELS * 2**i * block.expansion
        blocks = []
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            blocks.append(block(channels, out, stride, drop_path=next(rates), **block_kwargs))
            channels = out
        model.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        model.feature_info.append(dict(num_chs=out, reduction=4 * 2**i, module=f"layer{i + 1}"))
    return channels


class ResNet(Classifier):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), four stages of ``block``, global pool, fc.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: outputs of the classifier (0: none, ``forward`` returns pooled features).
        in_chans: input channels (1 for SAR or grayscale).
        groups, width_per_group: ResNeXt cardinality and width (Bottleneck only).
        shortcut: "B" (projection where the shape changes, torchvision) or "C" (always).
        attn_layer: "se" or "cbam" on every block's residual branch.
        drop_path_rate: stochastic depth of the last block, decayed linearly (Huang 2016).
        zero_init_residual: γ = 0 on each block's last BN (Goyal 2017).
        norm: "batch" (default), "group", "layer" or "none" in every block and the stem
            (see :mod:`skiplab.blocks.norm`; GroupNorm takes the largest divisor of the width
            not above ``norm_groups``).
        act: "relu" (default), "gelu", "silu"... everywhere the net has a ReLU.
        norm_groups: most groups of a "group" norm (32).

    Subclasses change the stem and what follows the last stage by overriding
    ``build_stem``/``forward_stem`` and ``build_final``/``forward_final``.
    """

    def __init__(
        self,
        block: BlockType,
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        shortcut: str = "B",
        attn_layer: AttnLayer = None,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        norm: Norm = "batch",
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_act(act)
        self.in_chans = in_chans
        self._norm, self._act, self._norm_groups = resolve_norm(norm), act, norm_groups
        self.conv1 = nn.Conv2d(in_chans, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)
        self.build_stem()
        norm_act = (
            {}
            if (self._norm, act, norm_groups) == ("batch", "relu", 32)
            else dict(norm=self._norm, act=act, norm_groups=norm_groups)
        )
        options = block_options(block, groups, width_per_group, shortcut, attn_layer, **norm_act)
        self.num_features = add_stages(self, block, layers, STEM_CHANNELS, drop_path_rate, **options)
        self.build_final()
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual)

    def build_stem(self) -> None:
        """The layers after ``conv1``: BN, ReLU and the 3x3/2 max-pool."""
        self.bn1 = make_norm(self._norm, STEM_CHANNELS, self._norm_groups)
        self.relu = make_act(self._act, inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.feature_info.append(dict(num_chs=STEM_CHANNELS, reduction=2, module="relu"))

    def build_final(self) -> None:
        """Layers between the last stage and the pool: none in a post-activation ResNet."""

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def stages(self) -> list[nn.Sequential]:
        """``layer1`` ... ``layerN``, in forward order."""
        return [module for name, module in self.named_children() if name.startswith("layer")]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.forward_stem(x)
        for stage in self.stages:
            x = self.run_stage(stage, x)
        return self.forward_final(x)


def _resnet(depth: int, overrides: dict[str, Any], **defaults: Any) -> ResNet:
    """ResNet-``depth`` (basic blocks below 50 layers), ``overrides`` winning over ``defaults``."""
    block = BasicBlock if depth < 50 else Bottleneck
    return ResNet(block, stage_depths(depth), **{**defaults, **overrides})


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (He 2015): 11,689,512 parameters."""
    return _resnet(18, kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (He 2015): 21,797,672 parameters."""
    return _resnet(34, kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (He 2015, stride on the 3x3 as torchvision): 25,557,032 parameters."""
    return _resnet(50, kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44,549,160 parameters."""
    return _resnet(101, kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60,192,808 parameters."""
    return _resnet(152, kwargs)


@register_model
def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2 (torchvision: bottleneck 3x3 width doubled): 68,883,240 parameters."""
    return _resnet(50, kwargs, width_per_group=128)


@register_model
def wide_resnet101_2(**kwargs) -> ResNet:
    """Wide ResNet-101-2 (torchvision): 126,886,696 parameters."""
    return _resnet(101, kwargs, width_per_group=128)


@register_model
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 32x4d (Xie 2017, Table 1): 25,028,904 parameters."""
    return _resnet(50, kwargs, groups=32, width_per_group=4)


@register_model
def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 32x8d (torchvision): 88,791,336 parameters."""
    return _resnet(101, kwargs, groups=32, width_per_group=8)


@register_model
def resnext101_64x4d(**kwargs) -> ResNet:
    """ResNeXt-101 64x4d (Xie 2017, Table 5): 83,455,272 parameters."""
    return _resnet(101, kwargs, groups=64, width_per_group=4)


@register_model
def seresnet50(**kwargs) -> ResNet:
    """SE-ResNet-50 (Hu 2018, Fig. 3: SE after bn3, r = 16; timm's names): 28,088,024 parameters."""
    return _resnet(50, kwargs, attn_layer="se")


@register_model
def cbam_resnet50(**kwargs) -> ResNet:
    """CBAM-ResNet-50 (Woo 2018, Fig. 3, r = 16): 28,073,576 parameters.

    The paper's Table 4 says 28.09M: the authors' channel MLP (nn.Linear) has biases,
    16,048 parameters more (28,089,624); skiplab's (as timm's) has none.
    """
    return _resnet(50, kwargs, attn_layer="cbam")
