"""Deep fully connected networks for gradient-flow studies at any depth: the same layers
wired three ways.

Every block owns one layer F(x) = W act(norm(x)) + b (pre-activation order, He et al.
2016, "Identity Mappings in Deep Residual Networks", Eq. 3) and differs only in how its
output is formed:

* ``mlp_plain``:    y = F(x)                          (an ordinary MLP);
* ``mlp_residual``: y = x + F(x)                      (He et al. 2016, Eq. 3);
* ``mlp_highway``:  y = F(x) T(x) + x (1 - T(x)), T = sigmoid(W_T x + b_T)
  (Srivastava et al. 2015, Eq. 2-3; the gate's W_T and b_T are the only extra parameters).

The network is: ``stem`` = Linear(in_features, width), ``depth`` blocks, a final
norm + act, and the linear classifier ``fc``; ``depth + 2`` weight layers in all.

Deviations from the convolutional classifiers' contract (see
:class:`~skiplab.models.base.Classifier`):

* inputs are ``[B, in_features]`` vectors or images ``[B, C, H, W]`` with
  ``C * H * W == in_features``, flattened (``check_input`` says which shape it wanted);
* ``forward_head`` has no spatial pooling; ``feature_info`` lists every block
  (``blocks.0`` ... ) with ``reduction`` 1, so ``features_only=True`` returns each
  block's output, for per-layer analysis;
* ``first_conv`` is the stem Linear: 3-channel stem weights cannot be adapted to other
  ``in_chans`` (the weight loader leaves 2-D weights alone);
* ``drop_path_rate`` and ``zero_init_residual`` apply to ``mlp_residual`` only (zero-init
  zeroes each block's W and b, so a fresh block is the identity); the plain and highway
  nets reject a non-zero ``drop_path_rate`` and ignore ``zero_init_residual``. The Eq.-1
  residual form x + act(norm(Wx)) is not used: with zeroed weights its gradient dies at
  act'(0) and without norm its activations double at every block.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..blocks.drop_path import drop_path_rates, maybe_drop_path
from ..blocks.highway import DEFAULT_GATE_BIAS, HighwayLayer
from .base import Classifier
from .registry import register_model

KINDS = ("plain", "residual", "highway")
NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda width: nn.Identity(),
    "batch": nn.BatchNorm1d,
    "layer": nn.LayerNorm,
}
# activation and the gain of He initialisation that keeps the signal's scale under it
ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], float]] = {
    "relu": (nn.ReLU, math.sqrt(2.0)),
    "leaky_relu": (nn.LeakyReLU, nn.init.calculate_gain("leaky_relu", 0.01)),
    "gelu": (nn.GELU, math.sqrt(2.0)),
    "silu": (nn.SiLU, math.sqrt(2.0)),
    "tanh": (nn.Tanh, 5.0 / 3.0),
    "linear": (nn.Identity, 1.0),
}


def _choice(value: str, options, what: str) -> str:
    if value not in options:
        raise ValueError(f"{what} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return value


class MLPLayer(nn.Module):
    """F(x) = W act(norm(x)) + b on ``[B, width]``."""

    def __init__(self, width: int, norm: str = "batch", act: str = "relu") -> None:
        super().__init__()
        self.norm = NORMS[_choice(norm, NORMS, "norm")](width)
        self.act = ACTIVATIONS[_choice(act, ACTIVATIONS, "act")][0]()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.act(self.norm(x)))


class PlainMLPBlock(nn.Module):
    """y = F(x): the block of the plain net (no shortcut)."""

    has_shortcut = False
    downsample = None

    def __init__(self, width: int, norm: str = "batch", act: str = "relu") -> None:
        super().__init__()
        self.transform = MLPLayer(width, norm, act)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The branch F(x) (the whole block, for a plain block)."""
        return self.transform(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x)


class ResidualMLPBlock(PlainMLPBlock):
    """y = x + DropPath(F(x))."""

    def __init__(self, width: int, norm: str = "batch", act: str = "relu", drop_path: float = 0.0) -> None:
        super().__init__(width, norm, act)
        self.drop_path = maybe_drop_path(drop_path)

    has_shortcut = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.residual(x))

    def zero_init_last(self) -> None:
        """W = 0, b = 0: the block starts as the identity and W still gets a gradient."""
        nn.init.zeros_(self.transform.linear.weight)
        nn.init.zeros_(self.transform.linear.bias)


class MLP(Classifier):
    """Stem Linear, ``depth`` plain / residual / highway blocks of width ``width``,
    norm + act, linear classifier.

    Args:
        kind: "plain", "residual" or "highway" (given by the registered functions).
        depth: number of blocks (hidden layers between the stem and the classifier).
        width: features of every hidden layer.
        in_features: input size; default ``in_chans * img_size ** 2`` (flattened images).
        in_chans, img_size: the images the default ``in_features`` is computed from.
        num_classes: classifier outputs (0: ``forward`` returns the features).
        norm: "none", "batch" (BatchNorm1d) or "layer" (LayerNorm) inside every F.
        act: "relu", "leaky_relu", "gelu", "silu", "tanh" or "linear".
        gate_bias: initial b_T of the highway gates.
        drop_path_rate: stochastic depth of the last residual block, decayed linearly.
        zero_init_residual: residual blocks start as the identity (W = 0, b = 0).
    """

    first_conv = "stem"
    default_image_size = 32

    def __init__(
        self,
        kind: str,
        depth: int = 20,
        width: int = 256,
        in_features: int | None = None,
        in_chans: int = 3,
        img_size: int = 32,
        num_classes: int = 10,
        norm: str = "batch",
        act: str = "relu",
        gate_bias: float = DEFAULT_GATE_BIAS,
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        _choice(kind, KINDS, "kind")
        _choice(norm, NORMS, "norm")
        _choice(act, ACTIVATIONS, "act")
        for name, value in (("depth", depth), ("width", width), ("in_chans", in_chans), ("img_size", img_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if drop_path_rate and kind != "residual":
            raise ValueError(f"drop_path_rate applies to residual blocks only; mlp_{kind} has none")
        self.kind = kind
        self.in_chans = in_chans
        self.default_image_size = img_size
        self.in_features = in_features if in_features is not None else in_chans * img_size * img_size
        if self.in_features < 1:
            raise ValueError(f"in_features must be positive, got {self.in_features}")
        self.stem = nn.Linear(self.in_features, width)
        rates = drop_path_rates(drop_path_rate, depth)
        if kind == "plain":
            blocks = [PlainMLPBlock(width, norm, act) for _ in range(depth)]
        elif kind == "residual":
            blocks = [ResidualMLPBlock(width, norm, act, rate) for rate in rates]
        else:
            blocks = [HighwayLayer(width, gate_bias, transform=MLPLayer(width, norm, act)) for _ in range(depth)]
        self.blocks = nn.Sequential(*blocks)
        self.norm = NORMS[norm](width)
        self.act = ACTIVATIONS[act][0]()
        self.feature_info = [dict(num_chs=width, reduction=1, module=f"blocks.{i}") for i in range(depth)]
        self.num_features = width
        self.reset_classifier(num_classes)
        self._init_weights(ACTIVATIONS[act][1], zero_init_residual and kind == "residual")

    def _init_weights(self, gain: float, zero_init_residual: bool) -> None:
        """He-style normal init, std = gain / sqrt(fan_in), zero biases (the highway gate
        bias is a separate parameter and keeps its value); unit/zero norms."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=gain / math.sqrt(m.in_features))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for block in self.blocks:
                block.zero_init_last()

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.blocks)

    @property
    def min_input_size(self) -> int:
        return 1

    def check_input(self, x: torch.Tensor) -> None:
        """Accept ``[B, in_features]`` or ``[B, C, H, W]`` with C*H*W == in_features."""
        expected = (
            f"[B, {self.in_features}] or images [B, {self.in_chans}, {self.default_image_size}, "
            f"{self.default_image_size}] (any [B, ...] with {self.in_features} values per sample)"
        )
        if isinstance(x, torch.fx.Proxy):  # symbolic tracing: no shape to check
            return
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects {expected}, got shape {tuple(x.shape)}")
        per_sample = math.prod(x.shape[1:])
        if per_sample != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects {expected}, got shape {tuple(x.shape)} "
                f"({per_sample} values per sample); set in_features={per_sample}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.stem(x.flatten(1))
        for block in self.blocks:
            x = self.run_stage(block, x)
        return self.act(self.norm(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The linear classifier (no pooling: the features are already vectors)."""
        return x if pre_logits else self.get_classifier()(x)


@register_model
def mlp_plain(**kwargs) -> MLP:
    """Plain deep MLP: y = F(x) per block (see the module doc)."""
    return MLP("plain", **kwargs)


@register_model
def mlp_residual(**kwargs) -> MLP:
    """Residual deep MLP: y = x + F(x) per block."""
    return MLP("residual", **kwargs)


@register_model
def mlp_highway(**kwargs) -> MLP:
    """Highway deep MLP: y = F(x) T(x) + x (1 - T(x)) per block."""
    return MLP("highway", **kwargs)
