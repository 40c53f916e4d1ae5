"""The three-stage CIFAR network shared by the CIFAR ResNet family, and He et al. 2015's
CIFAR-10 ResNets with their plain twins ("Deep Residual Learning", §4.2, Fig. 6, Table 6).

:class:`CifarResNet` is the one builder: a 3x3 stem convolution, three stages of
residual blocks at 32x32, 16x16 and 8x8 (the first block of stages 2 and 3 has stride
2), global average pooling and a linear classifier. With post-activation blocks
(:class:`~skiplab.blocks.BasicBlock`, :class:`~skiplab.blocks.Bottleneck`) the stem is
conv-BN-ReLU; with pre-activation blocks (:class:`~skiplab.blocks.PreActBlock`,
:class:`~skiplab.blocks.PreActBottleneck`, He et al. 2016) the stem is the convolution
alone and a final BN-ReLU precedes the pool, as in the authors' code.
The pre-activation, Wide ResNet, ResNeXt and small ResNets reuse it
(``cifar_preact.py``, ``wide_resnet.py``, ``cifar_resnext.py``, ``small_resnet.py``).

He 2015 §4.2: depth 6n+2 -- the stem, 3 stages of n basic blocks (2n layers each) with
16, 32 and 64 filters, and the fc layer; option-A (zero-padding, parameter-free)
shortcuts. A plain net (``cifar_plain*``) has the very same layers and parameters; only
the shortcut is missing.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..blocks import BasicBlock, conv3x3, drop_path_rates, init_weights
from ..blocks.attention import AttnLayer
from ..blocks.norm import ActLayer, Norm, check_act, make_act, norm_layer
from ..blocks.preact import PreActResidualBlock
from .base import Classifier
from .registry import register_model

BlockFactory = Callable[..., nn.Module]


def blocks_from_depth(depth: int, layers_per_block: int, extra_layers: int) -> int:
    """n, the blocks per stage, of a 3-stage net of ``depth = 3 * layers_per_block * n + extra_layers``.

    He 2015: 6n+2 (basic blocks, stem + fc); He 2016 bottlenecks: 9n+2; WRN: 6n+4.
    """
    step = 3 * layers_per_block
    if (
        not isinstance(depth, int)
        or isinstance(depth, bool)
        or depth < step + extra_layers
        or (depth - extra_layers) % step
    ):
        examples = ", ".join(str(step * n + extra_layers) for n in (1, 2, 3))
        raise ValueError(f"depth must be {step}n+{extra_layers} ({examples}, ...), got {depth!r}")
    return (depth - extra_layers) // step


def is_preact(block: BlockFactory) -> bool:
    """Whether ``block`` (a class or a ``functools.partial`` of one) is a pre-activation block."""
    cls = getattr(block, "func", block)
    return isinstance(cls, type) and issubclass(cls, PreActResidualBlock)


class CifarResNet(Classifier):
    """Stem conv3x3, three stages of ``block``, global average pool, fc -- for 32x32 inputs.

    Args:
        block: a block class, or a ``functools.partial`` of one carrying its own options
            (``groups``/``base_width`` of a bottleneck, ``dropout`` of a WRN block).
        layers: blocks per stage, e.g. ``(3, 3, 3)`` for ResNet-20.
        widths: output channels of each stage (of its blocks).
        stem_width: output channels of the stem convolution.
        num_classes: outputs of the classifier (0: ``forward`` returns pooled features).
        in_chans: input channels (1 for SAR or grayscale).
        shortcut: "A" (zero-pad), "B" (projection where the shape changes), "C" (always
            projection) -- see :mod:`skiplab.blocks.shortcut` -- or ``None``: the plain net.
        norm: "batch" (default, or ``True``), "group", "layer", or "none" (``False``: the
            net without any BatchNorm, for studies of BN's role); see :mod:`skiplab.blocks.norm`.
        act: "relu" (default), "gelu", "silu"... everywhere the net has a ReLU.
        norm_groups: most groups of a "group" norm (the largest divisor of each width not
            above it: 16 groups of one channel at width 16, 32 at widths 32 and 64).
        attn_layer: "se" or "cbam" on every block's residual branch.
        drop_path_rate: stochastic depth of the last block, decayed linearly (Huang 2016).
        zero_init_residual: zero the last scale of every residual branch (Goyal 2017), so
            each block starts as its shortcut (post-activation: relu(x); pre-activation: x).
            Post-activation blocks zero their last BN's γ, so with ``norm=False`` there is
            nothing to zero and the option changes nothing; pre-activation blocks zero
            their last conv, with or without BN. Plain nets (``shortcut=None``) ignore it:
            a plain block would output relu(0) = 0 and no gradient would flow.
    """

    default_image_size = 32

    def __init__(
        self,
        block: BlockFactory,
        layers: Sequence[int],
        widths: Sequence[int],
        stem_width: int,
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: Optional[str] = "A",
        norm: Norm = True,
        attn_layer: AttnLayer = None,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(layers) != 3 or len(widths) != 3:
            raise ValueError(
                f"a CIFAR ResNet has 3 stages: layers and widths need 3 entries each, "
                f"got layers={tuple(layers)}, widths={tuple(widths)}"
            )
        if any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"every stage needs at least one block, got layers={tuple(layers)}")
        self.in_chans = in_chans
        self.preact = is_preact(block)
        check_act(act)
        bn = norm_layer(norm, norm_groups)
        # passed to the blocks only where they differ from the defaults, so a block factory
        # without these options (a user's partial) keeps working
        norm_act = dict(norm=norm)
        if act != "relu" or norm_groups != 32:
            norm_act.update(act=act, norm_groups=norm_groups)
        self.conv1 = conv3x3(in_chans, stem_width)
        if not self.preact:
            self.bn1 = bn(stem_width)
            self.relu = make_act(act, inplace=True)

        rates = iter(drop_path_rates(drop_path_rate, sum(layers)))
        channels = stem_width
        for i, (n, width) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    block(
                        channels,
                        width,
                        stride,
                        shortcut=shortcut,
                        attn_layer=attn_layer,
                        drop_path=next(rates),
                        **norm_act,
                    )
                )
                channels = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=2**i, module=f"layer{i + 1}"))
        if self.preact:
            self.bn_final = bn(channels)
            self.relu_final = make_act(act, inplace=True)
            self.feature_info[-1]["module"] = "relu_final"  # the last stage's map, normalised
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual and shortcut is not None)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.conv1(x)
        if not self.preact:
            x = self.relu(self.bn1(x))
        for stage in self.stages:
            x = self.run_stage(stage, x)
        if self.preact:
            x = self.relu_final(self.bn_final(x))
        return x


def build_cifar_net(
    block: BlockFactory,
    layers: Sequence[int],
    widths: Sequence[int],
    stem_width: int,
    default_shortcut: Optional[str],
    **kwargs,
) -> CifarResNet:
    """A :class:`CifarResNet` with the family's ``default_shortcut``; ``kwargs`` override it."""
    kwargs.setdefault("shortcut", default_shortcut)
    return CifarResNet(block, layers, widths, stem_width, **kwargs)


def he2015_net(depth: int, plain: bool, **kwargs) -> CifarResNet:
    """He 2015 §4.2: 6n+2 layers, basic blocks of 16/32/64 filters, option-A shortcuts."""
    n = blocks_from_depth(depth, 2, 2)
    if plain and kwargs.get("shortcut") is not None:
        raise ValueError(
            f"a plain net has no shortcut, got shortcut={kwargs['shortcut']!r}; build cifar_resnet{depth} to choose one"
        )
    return build_cifar_net(BasicBlock, (n, n, n), (16, 32, 64), 16, None if plain else "A", **kwargs)


@register_model
def cifar_resnet(depth: int = 20, **kwargs) -> CifarResNet:
    """CIFAR ResNet of any depth 6n+2 (He 2015 §4.2)."""
    return he2015_net(depth, plain=False, **kwargs)


@register_model
def cifar_plain(depth: int = 20, **kwargs) -> CifarResNet:
    """Plain twin of :func:`cifar_resnet`: the same layers without shortcuts (He 2015 §4.2)."""
    return he2015_net(depth, plain=True, **kwargs)


@register_model
def cifar_resnet20(**kwargs) -> CifarResNet:
    """ResNet-20 (He 2015, Table 6: 0.27M): 269,722 parameters."""
    return cifar_resnet(20, **kwargs)


@register_model
def cifar_resnet32(**kwargs) -> CifarResNet:
    """ResNet-32 (He 2015, Table 6: 0.46M): 464,154 parameters."""
    return cifar_resnet(32, **kwargs)


@register_model
def cifar_resnet44(**kwargs) -> CifarResNet:
    """ResNet-44 (He 2015, Table 6: 0.66M): 658,586 parameters."""
    return cifar_resnet(44, **kwargs)


@register_model
def cifar_resnet56(**kwargs) -> CifarResNet:
    """ResNet-56 (He 2015, Table 6: 0.85M): 853,018 parameters."""
    return cifar_resnet(56, **kwargs)


@register_model
def cifar_resnet110(**kwargs) -> CifarResNet:
    """ResNet-110 (He 2015, Table 6: 1.7M): 1,727,962 parameters."""
    return cifar_resnet(110, **kwargs)


@register_model
def cifar_resnet1202(**kwargs) -> CifarResNet:
    """ResNet-1202 (He 2015, Table 6: 19.4M): 19,421,274 parameters."""
    return cifar_resnet(1202, **kwargs)


@register_model
def cifar_plain20(**kwargs) -> CifarResNet:
    """Plain-20 (He 2015, Fig. 6 left): the layers of ResNet-20 without shortcuts."""
    return cifar_plain(20, **kwargs)


@register_model
def cifar_plain32(**kwargs) -> CifarResNet:
    """Plain-32 (He 2015, Fig. 6 left)."""
    return cifar_plain(32, **kwargs)


@register_model
def cifar_plain44(**kwargs) -> CifarResNet:
    """Plain-44 (He 2015, Fig. 6 left)."""
    return cifar_plain(44, **kwargs)


@register_model
def cifar_plain56(**kwargs) -> CifarResNet:
    """Plain-56 (He 2015, Fig. 6 left): its training error is higher than Plain-20's."""
    return cifar_plain(56, **kwargs)


@register_model
def cifar_plain110(**kwargs) -> CifarResNet:
    """Plain-110 (He 2015, Fig. 6: its error is above 60%, so the figure leaves it out)."""
    return cifar_plain(110, **kwargs)
