"""ResNeXt for CIFAR (Xie et al. 2017, "Aggregated Residual Transformations for Deep
Neural Networks", §5.3 and Table 7).

ResNeXt-29: a 3x3 stem of 64 filters + BN + ReLU, three stages of n = (29-2)/9 = 3
post-activation bottleneck blocks whose 3x3 convolution is split into C groups
(Fig. 3c, the equivalent grouped-convolution form) of width d each, so the inner width
is C*d at every stage scale (d = 64 "base width" at the first stage, doubling with
the stage); block outputs 256/512/1024; projection shortcuts (1x1 conv + BN) where the
shape changes, as in the authors' code (facebookresearch/ResNeXt, shortcut type B).
"""

from __future__ import annotations

from functools import partial

from ..blocks import Bottleneck
from .cifar_resnet import CifarResNet, blocks_from_depth, build_cifar_net
from .registry import register_model


@register_model
def cifar_resnext(depth: int = 29, cardinality: int = 8, base_width: int = 64, **kwargs) -> CifarResNet:
    """ResNeXt-``depth`` ``cardinality``x``base_width``d for any depth 9n+2."""
    n = blocks_from_depth(depth, 3, 2)
    block = partial(Bottleneck, groups=cardinality, base_width=base_width)
    return build_cifar_net(block, (n, n, n), (256, 512, 1024), 64, "B", **kwargs)


@register_model
def cifar_resnext29_8x64d(**kwargs) -> CifarResNet:
    """ResNeXt-29 8x64d (Table 7: 34.4M): 34,426,698 parameters."""
    return cifar_resnext(29, 8, 64, **kwargs)


@register_model
def cifar_resnext29_16x64d(**kwargs) -> CifarResNet:
    """ResNeXt-29 16x64d (Table 7: 68.1M): 68,155,210 parameters."""
    return cifar_resnext(29, 16, 64, **kwargs)
