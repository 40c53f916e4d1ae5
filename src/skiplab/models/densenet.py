"""DenseNets (Huang et al. 2017, "Densely Connected Convolutional Networks").

* ImageNet DenseNet-121/169/201/161 (Table 1, DenseNet-BC with θ = 0.5): 7x7/2 conv to 2k
  channels (96 for DenseNet-161), BN-ReLU, 3x3/2 max-pool, four dense blocks with
  transitions between them, BN-ReLU, global average pool, linear classifier. Layout and
  parameter names are torchvision's (``features.conv0``, ``features.norm0``,
  ``features.denseblock1.denselayer1.norm1``, ``features.transition1.conv``,
  ``features.norm5``, ``classifier``), so torchvision and timm state dicts load with
  ``strict=True``.
* CIFAR DenseNet-BC (§4.1 and Table 2): a 3x3 conv to 2k channels, three dense blocks of
  (depth - 4) / 6 bottleneck layers, transitions with θ = 0.5, BN-ReLU, pool, linear.

A DenseNet has no residual branch: ``zero_init_residual`` is accepted so that generic code
can pass it to every model, and has nothing to zero here. ``memory_efficient=True``
checkpoints each layer's concatenation + BN + ReLU + 1x1 conv (see
:class:`~skiplab.blocks.dense.DenseLayer`); ``set_grad_checkpointing`` checkpoints whole
dense blocks instead.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..blocks import init_weights
from ..blocks.dense import DenseBlock, Transition, compressed_channels
from ..blocks.norm import ActLayer, Norm, check_act, make_act, make_norm
from .base import Classifier
from .registry import register_model


class DenseNet(Classifier):
    """Stem, dense blocks separated by compressing transitions, BN-ReLU, pool, classifier.

    Args:
        block_config: layers per dense block, e.g. ``(6, 12, 24, 16)`` for DenseNet-121.
        growth_rate: k, the channels each dense layer adds.
        num_init_features: channels of the stem conv (2k in the paper).
        bn_size: the 1x1 bottleneck has ``bn_size * k`` channels (4 in the paper).
        compression: θ, transitions keep floor(θ · channels) (0.5 for DenseNet-BC).
        drop_rate: dropout on each layer's new features.
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or ``"cifar"``
            (one 3x3 conv, no downsampling).
        memory_efficient: checkpoint each dense layer's bottleneck (same results, less memory).
        norm: "batch" (default), "group", "layer" or "none" everywhere (see
            :mod:`skiplab.blocks.norm`); act: "relu" (default), "gelu", "silu"...;
            norm_groups: most groups of a "group" norm.
        num_classes, in_chans: classifier outputs and input channels.
        zero_init_residual: accepted for a uniform interface; no effect (no residual branch).
    """

    first_conv = "features.conv0"
    classifier_name = "classifier"

    def __init__(
        self,
        block_config: Sequence[int],
        growth_rate: int = 32,
        num_init_features: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        stem: str = "imagenet",
        memory_efficient: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        zero_init_residual: bool = False,
        norm: Norm = "batch",
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_act(act)
        opts = dict(norm=norm, act=act, norm_groups=norm_groups)
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if not block_config:
            raise ValueError("block_config must list at least one dense block")
        self.in_chans = in_chans
        self.default_image_size = 224 if stem == "imagenet" else 32
        self.features = nn.Sequential()
        if stem == "imagenet":
            self.features.add_module(
                "conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
            )
            self.features.add_module("norm0", make_norm(norm, num_init_features, norm_groups))
            self.features.add_module("relu0", make_act(act, inplace=True))
            self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
            self.feature_info.append(dict(num_chs=num_init_features, reduction=2, module="features.relu0"))
            reduction = 4
        else:
            self.features.add_module(
                "conv0", nn.Conv2d(in_chans, num_init_features, kernel_size=3, padding=1, bias=False)
            )
            reduction = 1
        self.num_stem_modules = len(self.features)

        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(channels, num_layers, growth_rate, bn_size, drop_rate, memory_efficient, **opts)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i == len(block_config) - 1:
                break
            self.feature_info.append(dict(num_chs=channels, reduction=reduction, module=f"features.denseblock{i + 1}"))
            out = compressed_channels(channels, compression)
            self.features.add_module(f"transition{i + 1}", Transition(channels, out, **opts))
            channels, reduction = out, reduction * 2
        self.features.add_module(f"norm{len(block_config) + 1}", make_norm(norm, channels, norm_groups))
        # parameter-free, so torchvision's state dict (which applies F.relu) still matches
        self.features.add_module(f"relu{len(block_config) + 1}", make_act(act, inplace=True))
        self.feature_info.append(
            dict(num_chs=channels, reduction=reduction, module=f"features.relu{len(block_config) + 1}")
        )
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual)

    @property
    def stages(self) -> list[nn.Module]:
        """Dense blocks and transitions, in order (the units gradient checkpointing wraps)."""
        return list(self.features)[self.num_stem_modules : -2]

    def set_memory_efficient(self, enable: bool = True) -> None:
        """Switch every dense layer's checkpointed bottleneck on or off."""
        for m in self.modules():
            if isinstance(m, DenseBlock):
                m.set_memory_efficient(enable)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        modules = list(self.features)
        for m in modules[: self.num_stem_modules]:
            x = m(x)
        for stage in self.stages:
            x = self.run_stage(stage, x)
        norm, relu = modules[-2:]
        return relu(norm(x))


@register_model
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (k = 32, blocks 6-12-24-16): 7,978,856 parameters."""
    return DenseNet((6, 12, 24, 16), growth_rate=32, num_init_features=64, **kwargs)


@register_model
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (k = 32, blocks 6-12-32-32): 14,149,480 parameters."""
    return DenseNet((6, 12, 32, 32), growth_rate=32, num_init_features=64, **kwargs)


@register_model
def densenet201(**kwargs) -> DenseNet:
    """DenseNet-201 (k = 32, blocks 6-12-48-32): 20,013,928 parameters."""
    return DenseNet((6, 12, 48, 32), growth_rate=32, num_init_features=64, **kwargs)


@register_model
def densenet161(**kwargs) -> DenseNet:
    """DenseNet-161 (k = 48, 96 stem channels, blocks 6-12-36-24): 28,681,000 parameters."""
    return DenseNet((6, 12, 36, 24), growth_rate=48, num_init_features=96, **kwargs)


@register_model
def cifar_densenet_bc(depth: int = 100, growth_rate: int = 12, num_classes: int = 10, **kwargs) -> DenseNet:
    """CIFAR DenseNet-BC of any ``depth`` = 6n + 4 (n bottleneck layers per block, each two
    convs, plus the stem conv, two transitions and the classifier) and growth rate k."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"CIFAR DenseNet-BC depth must be 6n + 4 with n >= 1 (e.g. 40, 100, 190), got {depth}")
    n = (depth - 4) // 6
    return DenseNet(
        (n, n, n),
        growth_rate=growth_rate,
        num_init_features=2 * growth_rate,
        stem="cifar",
        num_classes=num_classes,
        **kwargs,
    )


@register_model
def cifar_densenet_bc_100_12(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 100, k = 12) for CIFAR: 0.8M parameters in Table 2 (769,162 here)."""
    return cifar_densenet_bc(depth=100, growth_rate=12, **kwargs)


@register_model
def cifar_densenet_bc_190_40(**kwargs) -> DenseNet:
    """DenseNet-BC (L = 190, k = 40) for CIFAR: 25.6M parameters in Table 2 (25,624,430 here)."""
    return cifar_densenet_bc(depth=190, growth_rate=40, **kwargs)
