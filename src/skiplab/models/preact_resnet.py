"""ImageNet pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual
Networks", Fig. 4e, Eq. 3-4 and the appendix on ImageNet).

x_{l+1} = x_l + F(x_l) with BN-ReLU-conv units inside F, so the signal runs from the
stem to the last stage through identities only. The stem is the 7x7/2 conv and the
3x3/2 max-pool, without BN-ReLU: every block starts with its own BN-ReLU, and the
projection of each stage's first block reads that pre-activation (the paper's
"activation right after conv1 ... before splitting into two paths"). As the last unit
is not followed by a ReLU, a final BN-ReLU (``final_bn``, ``final_relu``) precedes the
pooling (the paper's "extra activation after the last element-wise addition").

The layout is timm's ``resnetv2_*`` (same parameter counts, other names):

============================  ===========
preact_resnet18               11,687,720
preact_resnet34               21,795,880
preact_resnet50               25,549,352
preact_resnet101              44,541,480
preact_resnet152              60,185,128
============================  ===========
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..blocks import PreActBlock, PreActBottleneck
from ..blocks.norm import make_act, make_norm
from .registry import register_model
from .resnet import STEM_CHANNELS, ResNet, stage_depths


class PreActResNet(ResNet):
    """A :class:`~skiplab.models.resnet.ResNet` of :class:`PreActBlock` or
    :class:`PreActBottleneck`, with a stem without BN-ReLU and a final BN-ReLU.

    Arguments as :class:`~skiplab.models.resnet.ResNet`; ``zero_init_residual`` zeroes each
    block's last convolution, so a fresh network is conv1, max-pool and identities.
    """

    def build_stem(self) -> None:
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.feature_info.append(dict(num_chs=STEM_CHANNELS, reduction=2, module="conv1"))

    def build_final(self) -> None:
        self.final_bn = make_norm(self._norm, self.num_features, self._norm_groups)
        self.final_relu = make_act(self._act, inplace=True)
        # the last stage's map is un-normalised: features are read after the final BN-ReLU
        self.feature_info[-1] = dict(self.feature_info[-1], module="final_relu")

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv1(x))

    def forward_final(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_relu(self.final_bn(x))


def _preact_resnet(depth: int, overrides: dict[str, Any]) -> PreActResNet:
    block = PreActBlock if depth < 50 else PreActBottleneck
    return PreActResNet(block, stage_depths(depth), **overrides)


@register_model
def preact_resnet18(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-18 (He 2016): 11,687,720 parameters."""
    return _preact_resnet(18, kwargs)


@register_model
def preact_resnet34(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-34 (He 2016): 21,795,880 parameters."""
    return _preact_resnet(34, kwargs)


@register_model
def preact_resnet50(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-50 (He 2016): 25,549,352 parameters."""
    return _preact_resnet(50, kwargs)


@register_model
def preact_resnet101(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-101 (He 2016): 44,541,480 parameters."""
    return _preact_resnet(101, kwargs)


@register_model
def preact_resnet152(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-152 (He 2016): 60,185,128 parameters."""
    return _preact_resnet(152, kwargs)
