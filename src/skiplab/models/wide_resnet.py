"""Wide Residual Networks for CIFAR (Zagoruyko & Komodakis 2016, "Wide Residual
Networks", §2, Table 1).

WRN-d-k: a 3x3 stem convolution of 16 filters, three stages of n = (d-4)/6
pre-activation basic blocks ("B(3,3)") with 16k, 32k and 64k filters, BN-ReLU, global
pool, fc. Dropout (§2.4) sits between the two convolutions of each block, after the
second BN-ReLU. Where the shape changes the shortcut is a 1x1 projection of the
pre-activated input, elsewhere the identity, as in the authors' code
(szagoruyko/wide-residual-networks; their convolutions have biases, these have none,
as in their later PyTorch code).
"""

from __future__ import annotations

from functools import partial

from ..blocks import PreActBlock
from .cifar_resnet import CifarResNet, blocks_from_depth, build_cifar_net
from .registry import register_model


@register_model
def cifar_wrn(depth: int = 28, widen_factor: int = 10, dropout: float = 0.0, **kwargs) -> CifarResNet:
    """WRN-``depth``-``widen_factor`` for any depth 6n+4 and integer widening k >= 1."""
    n = blocks_from_depth(depth, 2, 4)
    k = widen_factor
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"widen_factor must be an integer >= 1 (k of WRN-d-k), got {k!r}")
    block = partial(PreActBlock, dropout=dropout)
    return build_cifar_net(block, (n, n, n), (16 * k, 32 * k, 64 * k), 16, "B", **kwargs)


@register_model
def cifar_wrn_28_10(dropout: float = 0.0, **kwargs) -> CifarResNet:
    """WRN-28-10 (Table 1: 36.5M): 36,479,194 parameters; the paper adds dropout 0.3 (Table 6)."""
    return cifar_wrn(28, 10, dropout, **kwargs)


@register_model
def cifar_wrn_16_8(dropout: float = 0.0, **kwargs) -> CifarResNet:
    """WRN-16-8 (Table 1: 11.0M): 10,961,370 parameters."""
    return cifar_wrn(16, 8, dropout, **kwargs)


@register_model
def cifar_wrn_40_4(dropout: float = 0.0, **kwargs) -> CifarResNet:
    """WRN-40-4 (Table 1: 8.9M): 8,949,210 parameters."""
    return cifar_wrn(40, 4, dropout, **kwargs)
