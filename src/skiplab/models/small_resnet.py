"""The small three-stage ResNet of teaching material: a quick, real baseline.

A 3x3 stem of 32 filters + BN + ReLU, three stages of post-activation basic blocks
(He et al. 2015, Fig. 2) with 32, 64 and 128 filters at 32x32, 16x16 and 8x8, global
pool, fc. ``blocks_per_stage`` (default 1: 8 weighted layers, 308,650 parameters) sets
the depth; shortcuts are 1x1 projections where the shape changes (option "B", what
most course code writes). Twice the width of He 2015's ResNet-20 at a third of its
depth: it trains to a useful CIFAR-10 accuracy in minutes on a CPU.
"""

from __future__ import annotations

from ..blocks import BasicBlock
from .cifar_resnet import CifarResNet, build_cifar_net
from .registry import register_model


@register_model
def small_resnet(blocks_per_stage: int = 1, **kwargs) -> CifarResNet:
    """Small ResNet: stem 32, stages 32/64/128 of ``blocks_per_stage`` basic blocks each.

    The default has 308,650 parameters (10 classes); depth is 6 * blocks_per_stage + 2.
    """
    n = blocks_per_stage
    return build_cifar_net(BasicBlock, (n, n, n), (32, 64, 128), 32, "B", **kwargs)
