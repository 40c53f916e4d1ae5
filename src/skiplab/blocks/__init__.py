"""Residual and skip-connection building blocks, one idea per file.

Every block maps ``[B, in_channels, H, W]`` to ``[B, out_channels, H/stride, W/stride]``
and is built as ``Block(in_channels, out_channels, stride=1, ...)``; the dense modules
(output width fixed by the growth rate), the highway layers (shape-preserving) and the
transformer blocks (tokens ``[B, N, C]`` rather than images) say how they differ in their
module docs. Every convolutional block takes ``norm`` ("batch", "group", "layer", "none") and
``act`` ("relu", "gelu", "silu"...), defaults BatchNorm and ReLU (:mod:`.norm`).
"""

from .attention import CBAM, SEModule, get_attn
from .basic import BasicBlock
from .bottleneck import Bottleneck
from .conv import conv1x1, conv3x3
from .dense import DenseBlock, DenseLayer, Transition
from .drop_path import DropPath, drop_path_rates
from .highway import ConvHighwayLayer, HighwayLayer
from .init import init_weights
from .norm import ACTIVATIONS, NORMS, group_count, make_act, make_norm, norm_layer
from .inverted_residual import ConvNormAct, InvertedResidual, PlainInvertedResidual
from .preact import PreActBlock, PreActBottleneck
from .pyramid import PyramidBasicBlock, PyramidBottleneck, pyramid_widths
from .residual import ResidualBlock
from .shortcut import ProjectionShortcut, SelectionShortcut, ZeroPadShortcut, make_shortcut
from .shake_shake import ShakeShakeBlock, shake_shake
from .transformer import PlainTransformerBlock, TransformerBlock
from .updown import ResidualDownBlock, ResidualUpBlock

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CBAM",
    "DropPath",
    "PreActBlock",
    "PreActBottleneck",
    "ProjectionShortcut",
    "ResidualBlock",
    "SEModule",
    "SelectionShortcut",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "drop_path_rates",
    "get_attn",
    "init_weights",
    "make_shortcut",
    "PyramidBasicBlock",
    "PyramidBottleneck",
    "pyramid_widths",
    "ShakeShakeBlock",
    "shake_shake",
    "ResidualDownBlock",
    "ResidualUpBlock",
    "DenseBlock",
    "DenseLayer",
    "Transition",
    "ConvHighwayLayer",
    "HighwayLayer",
    "ConvNormAct",
    "InvertedResidual",
    "PlainInvertedResidual",
    "PlainTransformerBlock",
    "TransformerBlock",
    "ACTIVATIONS",
    "NORMS",
    "group_count",
    "make_act",
    "make_norm",
    "norm_layer",
]
