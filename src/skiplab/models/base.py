"""What every skiplab classifier shares, timm-style.

A classifier subclasses :class:`Classifier` and provides ``forward_features`` (input to
the last feature map) plus a ``feature_info`` list; the head (global average pool, then
the linear classifier named ``classifier_name``, "fc" as in torchvision's ResNet) and
``forward``, ``reset_classifier``, ``set_grad_checkpointing`` and input checks come
from here.
"""

from __future__ import annotations

import functools
from typing import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class Classifier(nn.Module):
    """Base class: ``forward(x) = forward_head(forward_features(x))``.

    Subclasses set, in their constructor:

    * ``self.in_chans`` -- channels the stem expects;
    * ``self.num_features`` -- channels of the last feature map (input of the head);
    * ``self.feature_info`` -- one dict per stage: ``num_chs``, ``reduction`` (the
      stride relative to the input) and ``module`` (the dotted name of the submodule
      whose output is that stage's feature map);
    * the classifier itself via :meth:`reset_classifier`.

    ``first_conv`` names the stem convolution (used to adapt 3-channel weights to
    other ``in_chans``); ``classifier_name`` names the linear head;
    ``default_image_size`` is the input side the model was designed for.
    """

    first_conv: str = "conv1"
    classifier_name: str = "fc"
    default_image_size: int = 224  # CIFAR models: 32

    @property
    def default_input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model was designed for (used by ``skiplab summary``)."""
        return (self.in_chans, self.default_image_size, self.default_image_size)

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.in_chans = 3
        self.num_classes = 0
        self.num_features = 0
        self.feature_info: list[dict] = []

    # -- input checks -------------------------------------------------------------
    @property
    def min_input_size(self) -> int:
        """Smallest spatial size the network accepts: its total stride."""
        return max([f["reduction"] for f in self.feature_info] or [1])  # no default=: torch.compile graph-breaks on it

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says what was expected when ``x`` cannot be used.

        Skipped under ``torch.fx.symbolic_trace`` (``x`` is then a ``torch.fx.Proxy``, whose
        shape is unknown): a traced graph (BN folding, quantisation) keeps no input check."""
        if isinstance(x, torch.fx.Proxy):
            return
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D batch [B, {self.in_chans}, H, W], "
                f"got a tensor of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__} was built for in_chans={self.in_chans}, "
                f"got an input with {x.shape[1]} channels (shape {tuple(x.shape)}); "
                f"create the model with in_chans={x.shape[1]}"
            )
        size = self.min_input_size
        if x.shape[-1] < size or x.shape[-2] < size:
            raise ValueError(
                f"{type(self).__name__} has a total stride of {size}: inputs must be at "
                f"least {size}x{size}, got {x.shape[-2]}x{x.shape[-1]}"
            )

    # -- stages -------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage's activations in the backward pass instead of storing
        them (``torch.utils.checkpoint``): less memory, about one more forward of compute."""
        self.grad_checkpointing = enable

    def run_stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Apply ``stage``, checkpointed when gradient checkpointing is on and training."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(stage, x, use_reentrant=False)
        return stage(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward_features (abstract)")

    # -- head ---------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear head by a fresh one with ``num_classes`` outputs
        (0 removes it: the model then returns pooled features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        setattr(self, self.classifier_name, head)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool and the linear classifier; ``pre_logits=True`` stops
        before the classifier and returns the pooled ``[B, num_features]`` vector."""
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FeatureExtractor(nn.Module):
    """Wrap a :class:`Classifier` so that it returns the per-stage feature maps.

    The maps are the outputs of the modules named in ``model.feature_info``, captured
    with forward hooks during ``model.forward_features``; the head is dropped.
    ``feature_info`` and ``channels()``/``reductions()`` describe the returned list.
    """

    def __init__(self, model: Classifier, out_indices: Iterable[int] | None = None) -> None:
        super().__init__()
        if not model.feature_info:
            raise ValueError(f"{type(model).__name__} has no feature_info: it cannot be a feature extractor")
        idx = list(range(len(model.feature_info))) if out_indices is None else list(out_indices)
        self.feature_info = [model.feature_info[i] for i in idx]
        model.reset_classifier(0)
        self.model = model
        self._names = [f["module"] for f in self.feature_info]
        self._captured: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        for name in self._names:
            if name not in modules:
                raise ValueError(f"feature_info names module {name!r}, which {type(model).__name__} lacks")
            # a partial of a bound method, not a closure: copy.deepcopy (EMA, tests) rebinds
            # it to the copy, whose hooks then fill the copy's own dict
            modules[name].register_forward_hook(functools.partial(self._capture, name))

    def _capture(self, name: str, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self._captured[name] = output

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self.feature_info]

    def reductions(self) -> list[int]:
        return [f["reduction"] for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self._captured.clear()
        self.model.forward_features(x)
        out = [self._captured[n] for n in self._names]
        self._captured.clear()
        return out
