"""Shake-Shake ResNets for CIFAR (Gastaldi 2017, "Shake-Shake regularization", §2.2, Table 1-2).

"26 2x96d": depth 26 = 6n+2 with n = 4 three-branch blocks per stage, the two residual
branches of the first stage 96 channels wide (then 192 and 384); a conv3x3-BN stem of 16
channels, a final ReLU, global average pooling and a linear classifier, as the author's
code. The skeleton is :class:`~skiplab.models.pyramidnet.CifarStagedNet`.
"""

from __future__ import annotations

from ..blocks.attention import AttnLayer
from ..blocks.norm import ActLayer, Norm
from ..blocks.shake_shake import ShakeShakeBlock
from .cifar_resnet import blocks_from_depth
from .pyramidnet import CifarStagedNet
from .registry import register_model


class ShakeShakeNet(CifarStagedNet):
    """Three stages of :class:`~skiplab.blocks.shake_shake.ShakeShakeBlock` (Gastaldi 2017, §2.2).

    Args:
        depth: 6n+2 (n blocks per stage; each block counts 2 layers, as in the paper's naming).
        width: channels of the first stage's branches ("96d"); stages 2 and 3 double it.
        shake_forward, shake_backward, shake_level: the variant of Table 1 (default
            Shake-Shake-Image, the paper's CIFAR-10 setting).
        attn_layer: "se" or "cbam" on every block's mixed branch.
        norm, act, norm_groups: as :class:`~skiplab.models.pyramidnet.CifarStagedNet`.
        num_classes, in_chans, drop_path_rate, zero_init_residual: as every classifier.
    """

    def __init__(
        self,
        depth: int = 26,
        width: int = 96,
        num_classes: int = 10,
        in_chans: int = 3,
        shake_forward: str = "shake",
        shake_backward: str = "shake",
        shake_level: str = "image",
        attn_layer: AttnLayer = None,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        norm: Norm = "batch",
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        n = blocks_from_depth(depth, 2, 2)
        if width < 1 or width % 2:
            raise ValueError(
                f"width must be a positive even number (the downsampling shortcut splits it in halves), got {width}"
            )
        self.depth, self.width = depth, width
        widths = [[width * 2**i] * n for i in range(3)]
        options = dict(
            shake_forward=shake_forward, shake_backward=shake_backward, shake_level=shake_level, attn_layer=attn_layer
        )
        super().__init__(
            ShakeShakeBlock,
            widths,
            16,
            False,
            options,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_path_rate=drop_path_rate,
            zero_init_residual=zero_init_residual,
            norm=norm,
            act=act,
            norm_groups=norm_groups,
        )


@register_model
def cifar_shake_shake(depth: int = 26, width: int = 96, **kwargs) -> ShakeShakeNet:
    """Shake-Shake net "depth 2x{width}d" (Gastaldi 2017, §2.2)."""
    return ShakeShakeNet(depth=depth, width=width, **kwargs)


@register_model
def cifar_shake_shake_26_2x96d(**kwargs) -> ShakeShakeNet:
    """Shake-Shake 26 2x96d (Gastaldi 2017, Table 1: 26.2M): 26,192,922 parameters."""
    return cifar_shake_shake(26, 96, **kwargs)
