"""Pre-activation CIFAR ResNets (He et al. 2016, "Identity Mappings in Deep Residual
Networks", §4-5, Table 2 and Table 4).

Each unit is x_{l+1} = x_l + F(x_l) with BN and ReLU before each convolution (Fig. 4e,
Eq. 3), so the identity path runs unobstructed from the stem to the final BN-ReLU.
Layout of the authors' code (KaimingHe/resnet-1k-layers): a 3x3 stem convolution of 16
filters with no BN-ReLU after it (the first unit pre-activates it), three stages,
BN-ReLU, global pool, fc. Where the shape changes the shortcut is a 1x1 projection of
the pre-activated input (option "B"); elsewhere it is the identity.

* ResNet-110: basic units (16/32/64 filters), depth 6n+2, 1.7M parameters.
* ResNet-164 / ResNet-1001: bottleneck units with outputs 64/128/256 (inner width a
  quarter of that), depth 9n+2; 1.7M and 10.2M parameters.

The authors put the stride of a bottleneck on its first 1x1 conv; here it is on the 3x3
(as torchvision): the parameters are the same, the 1x1 no longer skips 3 of 4 pixels.
"""

from __future__ import annotations

from ..blocks import PreActBlock, PreActBottleneck
from .cifar_resnet import CifarResNet, blocks_from_depth, build_cifar_net
from .registry import register_model


@register_model
def cifar_preact_resnet(depth: int = 164, bottleneck: bool = True, **kwargs) -> CifarResNet:
    """Pre-activation CIFAR ResNet of any depth: 9n+2 with bottlenecks, 6n+2 without."""
    if bottleneck:
        n = blocks_from_depth(depth, 3, 2)
        return build_cifar_net(PreActBottleneck, (n, n, n), (64, 128, 256), 16, "B", **kwargs)
    n = blocks_from_depth(depth, 2, 2)
    return build_cifar_net(PreActBlock, (n, n, n), (16, 32, 64), 16, "B", **kwargs)


@register_model
def cifar_preact_resnet110(**kwargs) -> CifarResNet:
    """Pre-activation ResNet-110, basic units (He 2016, Table 2: 1.7M): 1,730,522 parameters."""
    return cifar_preact_resnet(110, bottleneck=False, **kwargs)


@register_model
def cifar_preact_resnet164(**kwargs) -> CifarResNet:
    """Pre-activation ResNet-164, bottleneck units (He 2016, Table 4: 1.7M): 1,703,258 parameters."""
    return cifar_preact_resnet(164, bottleneck=True, **kwargs)


@register_model
def cifar_preact_resnet1001(**kwargs) -> CifarResNet:
    """Pre-activation ResNet-1001, bottleneck units (He 2016, Table 4: 10.2M): 10,327,706 parameters
    (10,178,490 without BatchNorm, the count that rounds to the published 10.2M)."""
    return cifar_preact_resnet(1001, bottleneck=True, **kwargs)
