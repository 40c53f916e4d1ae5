"""ImageNet ResNets (He et al. 2015, Table 1), Wide ResNet-50/101-2 (Zagoruyko & Komodakis
2016, torchvision's variant) and ResNeXt (Xie et al. 2017, Table 1), with optional SE /
CBAM attention on every block.

Layout and parameter names are torchvision's (conv1, bn1, layer1..layer4, fc), so
torchvision and timm state dicts load with ``strict=True``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Type, Union

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck, drop_path_rates, init_weights
from ..blocks.attention import AttnLayer
from .base import Classifier
from .registry import register_model

BlockType = Type[Union[BasicBlock, Bottleneck]]


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
    """

    def __init__(self, block: BlockType, layers: Sequence[int], num_classes: int = 1000,
                 in_chans: int = 3, groups: int = 1, width_per_group: int = 64,
                 shortcut: str = "B", attn_layer: AttnLayer = None, drop_path_rate: float = 0.0,
                 zero_init_residual: bool = True) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        kwargs = dict(shortcut=shortcut, attn_layer=attn_layer)
        if block is Bottleneck:
            kwargs.update(groups=groups, base_width=width_per_group)
        elif groups != 1 or width_per_group != 64:
            raise ValueError("groups and width_per_group apply to Bottleneck blocks only")
        rates = iter(drop_path_rates(drop_path_rate, sum(layers)))
        channels = 64
        for i, n in enumerate(layers):
            out = 64 * 2 ** i * block.expansion
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(channels, out, stride, drop_path=next(rates), **kwargs))
                channels = out
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=out, reduction=4 * 2 ** i, module=f"layer{i + 1}"))
        self.feature_info.insert(0, dict(num_chs=64, reduction=2, module="relu"))
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i}") for i in range(1, 5)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = self.run_stage(stage, x)
        return x


def _resnet(block: BlockType, layers: Sequence[int], **kwargs) -> ResNet:
    return ResNet(block, layers, **kwargs)


@register_model
def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (He 2015): 11,689,512 parameters."""
    return _resnet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (He 2015): 21,797,672 parameters."""
    return _resnet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (He 2015, stride on the 3x3 as torchvision): 25,557,032 parameters."""
    return _resnet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44,549,160 parameters."""
    return _resnet(Bottleneck, (3, 4, 23, 3), **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60,192,808 parameters."""
    return _resnet(Bottleneck, (3, 8, 36, 3), **kwargs)
