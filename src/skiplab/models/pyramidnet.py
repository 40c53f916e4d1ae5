"""PyramidNets for CIFAR (Han, Kim & Kim 2017, "Deep Pyramidal Residual Networks", §3-4, Table 4).

A conv3x3-BN stem with 16 channels, three stages of pyramidal units (the first unit of
stages 2 and 3 has stride 2) whose widths grow by alpha/N at every unit (additive
PyramidNet, Eq. 2), a final BN-ReLU, global average pooling and a linear classifier;
shortcuts are the pooled zero-padded identity, so the net has no projection parameters.
Depth: 6n+2 with basic units, 9n+2 with bottlenecks (n units per stage).

:class:`CifarStagedNet` is the skeleton with one width per *unit*; the Shake-Shake nets
(:mod:`skiplab.models.shake_shake`) reuse it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from ..blocks import conv3x3, drop_path_rates, init_weights
from ..blocks.attention import AttnLayer
from ..blocks.norm import ActLayer, Norm, check_act, make_act, norm_layer, resolve_norm
from ..blocks.pyramid import PyramidBasicBlock, PyramidBottleneck, pyramid_widths
from .base import Classifier
from .cifar_resnet import blocks_from_depth
from .registry import register_model

BlockFactory = Callable[..., nn.Module]


class CifarStagedNet(Classifier):
    """Stem conv3x3-BN, three stages of units with one output width each, a final
    (BN-)ReLU, global average pool, fc -- for 32x32 inputs.

    Args:
        block: unit class (or partial) called as ``block(in, out, stride, drop_path=p, **block_kwargs)``.
        widths: three sequences, the output channels of every unit of each stage.
        stem_width: output channels of the stem.
        final_norm: put a BN before the final ReLU (PyramidNet) or not (Shake-Shake).
        block_kwargs: options passed to every unit.
        norm: "batch" (default), "group", "layer" or "none" in the stem, the units and the
            final norm (see :mod:`skiplab.blocks.norm`).
        act: "relu" (default), "gelu", "silu"... in the units and before the pool.
        norm_groups: most groups of a "group" norm.
        num_classes, in_chans, drop_path_rate, zero_init_residual: as every classifier.
    """

    default_image_size = 32

    def __init__(
        self,
        block: BlockFactory,
        widths: Sequence[Sequence[int]],
        stem_width: int,
        final_norm: bool,
        block_kwargs: dict[str, Any],
        num_classes: int = 10,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        norm: Norm = "batch",
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_act(act)
        bn = norm_layer(norm, norm_groups)
        if resolve_norm(norm) != "batch" or act != "relu" or norm_groups != 32:
            block_kwargs = dict(block_kwargs, norm=norm, act=act, norm_groups=norm_groups)
        if len(widths) != 3 or any(len(w) < 1 for w in widths):
            raise ValueError(
                f"a CIFAR net has 3 stages of at least one unit, got widths per stage {[len(w) for w in widths]}"
            )
        self.in_chans = in_chans
        self.conv1 = conv3x3(in_chans, stem_width)
        self.bn1 = bn(stem_width)
        rates = iter(drop_path_rates(drop_path_rate, sum(len(w) for w in widths)))
        channels = stem_width
        for i, stage_widths in enumerate(widths):
            units = []
            for j, width in enumerate(stage_widths):
                stride = 2 if (i > 0 and j == 0) else 1
                units.append(block(channels, width, stride, drop_path=next(rates), **block_kwargs))
                channels = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*units))
            self.feature_info.append(dict(num_chs=channels, reduction=2**i, module=f"layer{i + 1}"))
        self.bn_final = bn(channels) if final_norm else nn.Identity()
        self.relu_final = make_act(act, inplace=True)
        self.feature_info[-1]["module"] = "relu_final"  # the last stage's map, activated
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.bn1(self.conv1(x))  # no ReLU: every unit starts with a BN (or a ReLU)
        for stage in self.stages:
            x = self.run_stage(stage, x)
        return self.relu_final(self.bn_final(x))


class PyramidNet(CifarStagedNet):
    """Additive PyramidNet for CIFAR (Han et al. 2017, §3-4).

    Args:
        depth: 6n+2 (basic units) or 9n+2 (bottlenecks); n units per stage, N = 3n in all.
        alpha: the widening factor: the last unit is 16 + alpha channels wide (x4 for bottlenecks).
        bottleneck: use :class:`~skiplab.blocks.pyramid.PyramidBottleneck` units.
        width_rounding: "floor" (Eq. 2) or "round" (the authors' code, to load its weights);
            see :func:`~skiplab.blocks.pyramid.pyramid_widths`.
        shortcut: "A" (pooled zero-padded identity, the paper's), "B"/"C" (projections,
            Fig. 5) or ``None`` for the plain net.
        attn_layer: "se" or "cbam" on every unit's branch.
        norm, act, norm_groups: as :class:`CifarStagedNet`.
        num_classes, in_chans, drop_path_rate, zero_init_residual: as every classifier.
    """

    def __init__(
        self,
        depth: int = 110,
        alpha: float = 48,
        bottleneck: bool = False,
        num_classes: int = 10,
        in_chans: int = 3,
        width_rounding: str = "floor",
        shortcut: Optional[str] = "A",
        attn_layer: AttnLayer = None,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        norm: Norm = "batch",
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        block = PyramidBottleneck if bottleneck else PyramidBasicBlock
        n = blocks_from_depth(depth, 3 if bottleneck else 2, 2)
        widths = [w * block.expansion for w in pyramid_widths(alpha, 3 * n, 16, width_rounding)]
        self.depth, self.alpha = depth, alpha
        super().__init__(
            block,
            [widths[:n], widths[n : 2 * n], widths[2 * n :]],
            16,
            True,
            dict(shortcut=shortcut, attn_layer=attn_layer),
            num_classes=num_classes,
            in_chans=in_chans,
            drop_path_rate=drop_path_rate,
            zero_init_residual=zero_init_residual and shortcut is not None,
            norm=norm,
            act=act,
            norm_groups=norm_groups,
        )


@register_model
def cifar_pyramidnet(depth: int = 110, alpha: float = 48, bottleneck: bool = False, **kwargs) -> PyramidNet:
    """Additive PyramidNet of any depth and widening factor (Han et al. 2017, Eq. 2)."""
    return PyramidNet(depth=depth, alpha=alpha, bottleneck=bottleneck, **kwargs)


@register_model
def cifar_pyramidnet110_a48(**kwargs) -> PyramidNet:
    """PyramidNet-110, alpha = 48, basic units (Han 2017, Table 4: 1.7M): 1,739,730 parameters."""
    return cifar_pyramidnet(110, 48, False, **kwargs)


@register_model
def cifar_pyramidnet272_a200(**kwargs) -> PyramidNet:
    """PyramidNet-272, alpha = 200, bottlenecks (Han 2017, Table 4: 26.0M): 26,049,562 parameters."""
    return cifar_pyramidnet(272, 200, True, **kwargs)
