"""Normalisation and activation choices shared by every block and model.

Every residual block takes ``norm`` and ``act``; the defaults (BatchNorm, ReLU) build
exactly the layers -- and parameter names -- of the papers and of torchvision, so
pretrained state dicts keep loading strictly.

``norm`` is one of

* ``"batch"`` (or ``True``): ``BatchNorm2d(C)`` -- the default; statistics of the batch
  in training, running averages in eval;
* ``"group"``: ``GroupNorm(G, C)`` (Wu & He 2018) with **G = the largest divisor of C not
  above** ``norm_groups`` (default 32, the paper's choice): 32 groups where C is a multiple
  of 32 (every ImageNet ResNet width), and e.g. 16 groups of one channel at C = 16 (the
  first stage of a CIFAR ResNet-20). timm builds ``GroupNorm(32, C)`` and fails on other
  widths; the divisor rule never fails and equals timm wherever timm works;
* ``"layer"``: ``GroupNorm(1, C)`` -- LayerNorm over (C, H, W) of each image, with a
  per-channel affine, which is what "layer norm" means for convolutional feature maps
  (timm's ``GroupNorm1``; ``nn.LayerNorm`` would normalise the last dimension, W);
* ``"none"`` (or ``False``): the identity.

GroupNorm and "layer" normalise each image on its own, so they behave the same at batch
size 1 or 2 as at 256 and the same in train and eval mode; BatchNorm does not.
The parameters of the norm are ``weight`` and ``bias`` in every case, so ``zero_init_last``
(γ = 0) works for all three.

``act`` is a name -- ``relu`` (default), ``gelu``, ``silu``, and also ``relu6``,
``leaky_relu``, ``elu``, ``prelu``, ``identity`` -- or a zero-argument factory such as
``nn.Mish``. Blocks keep the attribute names they always had (``relu``, ``relu1``...)
whatever the activation is.
"""

from __future__ import annotations

from typing import Callable, Union

from torch import nn

NORMS = ("batch", "group", "layer", "none")
DEFAULT_NORM_GROUPS = 32

Norm = Union[bool, str]
ActLayer = Union[str, Callable[[], nn.Module]]

_ACTIVATIONS: dict[str, Callable[[bool], nn.Module]] = {
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "relu6": lambda inplace: nn.ReLU6(inplace=inplace),
    "leaky_relu": lambda inplace: nn.LeakyReLU(0.01, inplace=inplace),
    "gelu": lambda inplace: nn.GELU(),
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "elu": lambda inplace: nn.ELU(inplace=inplace),
    "prelu": lambda inplace: nn.PReLU(),
    "identity": lambda inplace: nn.Identity(),
}
ACTIVATIONS = tuple(_ACTIVATIONS)


def resolve_norm(norm: Norm) -> str:
    """The name of a norm choice: ``True`` -> "batch", ``False``/``None`` -> "none"."""
    if norm is True:
        return "batch"
    if norm is False or norm is None:
        return "none"
    if isinstance(norm, str) and norm.lower() in NORMS:
        return norm.lower()
    raise ValueError(f"norm must be one of {NORMS} (or True/False), got {norm!r}")


def group_count(channels: int, groups: int = DEFAULT_NORM_GROUPS) -> int:
    """G for ``GroupNorm(G, channels)``: the largest divisor of ``channels`` not above ``groups``."""
    if groups < 1:
        raise ValueError(f"norm_groups must be >= 1, got {groups}")
    if channels < 1:
        raise ValueError(f"a norm needs at least one channel, got {channels}")
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


def make_norm(norm: Norm, channels: int, groups: int = DEFAULT_NORM_GROUPS) -> nn.Module:
    """The norm module of ``channels`` features (see the module doc for the choices)."""
    kind = resolve_norm(norm)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels, groups), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def norm_layer(norm: Norm = True, groups: int = DEFAULT_NORM_GROUPS) -> Callable[[int], nn.Module]:
    """A factory ``channels -> norm module``; ``norm_layer(True)`` is ``nn.BatchNorm2d``."""
    kind = resolve_norm(norm)
    if kind == "batch":
        return nn.BatchNorm2d
    return lambda channels: make_norm(kind, channels, groups)


def has_norm(norm: Norm) -> bool:
    """Whether the choice normalises at all (anything but "none")."""
    return resolve_norm(norm) != "none"


def make_act(act: ActLayer = "relu", inplace: bool = True) -> nn.Module:
    """An activation module from a name (see :data:`ACTIVATIONS`) or a zero-argument factory.
    ``inplace`` applies to the activations that have the option."""
    if callable(act) and not isinstance(act, str):
        return act()
    if isinstance(act, str) and act.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[act.lower()](inplace)
    raise ValueError(f"unknown activation {act!r}; expected one of {sorted(_ACTIVATIONS)} or a callable")


def check_act(act: ActLayer) -> None:
    """Raise the ValueError of :func:`make_act` before anything is built."""
    make_act(act, inplace=False)


def is_norm(module: nn.Module) -> bool:
    """A BatchNorm or GroupNorm (the norms a block's ``zero_init_last`` may zero)."""
    return isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))


def zero_norm_(module: nn.Module) -> bool:
    """γ = 0 on an affine norm; returns whether there was one (an identity has none)."""
    if is_norm(module) and getattr(module, "weight", None) is not None:
        nn.init.zeros_(module.weight)
        return True
    return False
