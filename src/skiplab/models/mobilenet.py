"""MobileNetV2 (Sandler et al. 2018, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", Table 2), for ImageNet and CIFAR, with its no-skip twin.

The network: a 3x3 conv of 32 channels, 17 inverted residual blocks in 7 groups
(t, c, n, s of Table 2), a 1x1 conv to 1280 channels, global average pooling, dropout
0.2 and the linear classifier. Layout, parameter names and initialisation are
torchvision's (``features.0`` the stem ``Conv2dNormActivation``, ``features.1`` ...
``features.17`` the ``InvertedResidual`` blocks, ``features.18`` the last 1x1 conv,
``classifier.1`` the linear layer; He fan-out convolutions, unit BN, N(0, 0.01) linear),
so torchvision's state dict loads with ``strict=True``: 3,504,872 parameters for 1000
classes.

CIFAR (``stem="cifar"``): 32x32 inputs would leave a 1x1 map after the ImageNet
network's total stride of 32, so, as the common CIFAR implementations do (e.g. Kuang
Liu's pytorch-cifar), the stem conv has stride 1 and the first block of the 24-channel
group stride 1 instead of 2: total stride 8, a 4x4 last map. Nothing else changes (the
widths, the depth, the skips only where the shapes match, as in the paper; no
projection shortcuts are added).

``skip=False`` (``cifar_mobilenet_v2_noskip``) builds every block as
:class:`~skiplab.blocks.PlainInvertedResidual`: the same parameters, never the identity
addition. ``zero_init_residual`` defaults to ``False`` here (torchvision's init);
``True`` zeroes the last BN of each block that adds its input.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..blocks import ConvNormAct, InvertedResidual, drop_path_rates, init_weights
from ..blocks.norm import ActLayer, Norm, check_act
from .base import Classifier
from .registry import register_model

#: (t expansion, c output channels, n blocks, s stride of the first) -- Table 2
IMAGENET_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
STEMS = ("imagenet", "cifar")


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, never below ``min_value``
    (default ``divisor``) nor more than 10 % below ``value`` (torchvision's and the TF
    reference's ``_make_divisible``: how ``width_mult`` sets the channels)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class MobileNetV2(Classifier):
    """Stem conv, inverted residual blocks, 1x1 conv to 1280, pool, dropout, linear.

    Args:
        num_classes, in_chans: classifier outputs (0: none) and input channels.
        width_mult: scales every width (rounded by :func:`make_divisible`); the last
            conv keeps 1280 channels below 1.0, as torchvision.
        round_nearest: channel rounding (1 turns it off).
        stem: ``"imagenet"`` (stride 2 stem, total stride 32, 224x224) or ``"cifar"``
            (stride-1 stem and 24-channel group, total stride 8, 32x32); see the module doc.
        skip: ``False`` builds the no-skip twin.
        dropout: before the classifier (0.2 in torchvision).
        drop_path_rate: stochastic depth of the last block with a skip, decayed linearly
            over the blocks with one (Huang et al. 2016); a no-skip net rejects it.
        zero_init_residual: γ = 0 on the last BN of each block with a skip (Goyal 2017).
        norm: "batch" (default), "group", "layer" or "none" everywhere (see
            :mod:`skiplab.blocks.norm`; a depthwise layer of C channels gets the largest
            divisor of C not above ``norm_groups`` groups).
        act: "relu6" (default, the paper's), "relu", "gelu", "silu"...
    """

    first_conv = "features.0.0"
    classifier_name = "classifier"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        stem: str = "imagenet",
        skip: bool = True,
        dropout: float = 0.2,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = False,
        norm: Norm = "batch",
        act: ActLayer = "relu6",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_act(act)
        opts = dict(norm=norm, act=act, norm_groups=norm_groups)
        if stem not in STEMS:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        if drop_path_rate > 0 and not skip:
            raise ValueError(f"drop_path_rate={drop_path_rate} needs skips to drop: the no-skip net has none")
        setting = list(IMAGENET_SETTING)
        stem_stride = 2
        if stem == "cifar":
            setting[1] = (6, 24, 2, 1)
            stem_stride = 1
        self.in_chans = in_chans
        self.dropout = dropout
        self.default_image_size = 224 if stem == "imagenet" else 32

        channels = make_divisible(STEM_CHANNELS * width_mult, round_nearest)
        self.num_features = make_divisible(LAST_CHANNELS * max(1.0, width_mult), round_nearest)
        plan = []  # (in, out, stride, t) of every block
        for t, c, n, s in setting:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                plan.append((channels, out, s if i == 0 else 1, t))
                channels = out
        with_skip = [skip and stride == 1 and cin == cout for cin, cout, stride, _ in plan]
        rates = iter(drop_path_rates(drop_path_rate, max(1, sum(with_skip))))

        layers: list[nn.Module] = [ConvNormAct(in_chans, plan[0][0], stride=stem_stride, **opts)]
        reduction = stem_stride
        for (cin, cout, stride, t), has_skip in zip(plan, with_skip):
            if stride == 2:  # the map before each downsampling is a stage's output
                self._add_feature(len(layers) - 1, cin, reduction)
                reduction *= 2
            layers.append(
                InvertedResidual(
                    cin, cout, stride, expand_ratio=t, skip=skip, drop_path=next(rates) if has_skip else 0.0, **opts
                )
            )
        layers.append(ConvNormAct(channels, self.num_features, kernel_size=1, **opts))
        self._add_feature(len(layers) - 1, self.num_features, reduction)
        self.features = nn.Sequential(*layers)
        init_weights(self, zero_init_residual and skip)
        self.reset_classifier(num_classes)

    def _add_feature(self, index: int, channels: int, reduction: int) -> None:
        self.feature_info.append(dict(num_chs=channels, reduction=reduction, module=f"features.{index}"))

    @property
    def stages(self) -> list[nn.Module]:
        """The inverted residual blocks, in order (the units gradient checkpointing wraps)."""
        return list(self.features)[1:-1]

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head: ``Sequential(Dropout, Linear)`` (torchvision's layout and N(0, 0.01)
        init), or the identity for ``num_classes=0``."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        if num_classes == 0:
            self.classifier = nn.Identity()
            return
        linear = nn.Linear(self.num_features, num_classes)
        nn.init.normal_(linear.weight, 0.0, 0.01)
        nn.init.zeros_(linear.bias)
        self.classifier = nn.Sequential(nn.Dropout(self.dropout), linear)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.features[0](x)
        for block in self.stages:
            x = self.run_stage(block, x)
        return self.features[-1](x)


@register_model
def mobilenet_v2(**kwargs) -> MobileNetV2:
    """MobileNetV2 1.0 (Sandler 2018, Table 2; torchvision's names): 3,504,872 parameters."""
    return MobileNetV2(**kwargs)


@register_model
def cifar_mobilenet_v2(num_classes: int = 10, **kwargs) -> MobileNetV2:
    """MobileNetV2 for 32x32 inputs: stride-1 stem and 24-channel group (total stride 8)."""
    return MobileNetV2(num_classes=num_classes, stem="cifar", **kwargs)


@register_model
def cifar_mobilenet_v2_noskip(**kwargs) -> MobileNetV2:
    """The no-skip twin of :func:`cifar_mobilenet_v2`: the same layers and parameters,
    without the identity additions."""
    return cifar_mobilenet_v2(skip=False, **kwargs)
