"""Load torchvision, timm or skiplab weights into a skiplab model, with clear errors.

``load_weights(model, source)`` takes a state dict or a file (``torch.load(...,
weights_only=True)``, or ``.safetensors`` when that package is installed), unwraps
training checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) and the ``module.``
(DataParallel) / ``_orig_mod.`` (``torch.compile``) prefixes, then:

* adapts the stem when the model's ``in_chans`` differs from the weights' (the layer
  ``model.first_conv`` names): 1 channel sums the RGB kernels, so a grey image gives
  exactly what the 3-channel model gives on that image replicated to RGB; other counts
  repeat the kernels cyclically and rescale by ``channels_in_weights / in_chans``, as
  timm's ``adapt_input_conv``;
* refuses a classifier of another size unless ``drop_classifier=True`` (which keeps the
  model's own freshly initialised head); a model without a head (``num_classes=0``)
  ignores the weights' classifier;
* reports every other mismatch -- missing, unexpected and shape-mismatched tensors -- in
  one ValueError instead of a traceback from ``load_state_dict``.

BatchNorm's ``num_batches_tracked`` may be absent (old torchvision checkpoints).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import torch
from torch import nn

from ..safe_load import safe_torch_load

StateDict = Mapping[str, torch.Tensor]
WeightSource = Union[StateDict, str, "os.PathLike[str]"]

CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
MAX_LISTED = 12


@dataclass
class LoadReport:
    """What :func:`load_weights` did: names of the tensors in each category."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def read_state_dict(source: WeightSource) -> dict[str, torch.Tensor]:
    """The plain ``name -> tensor`` mapping in ``source`` (a mapping or a file path)."""
    if isinstance(source, (str, os.PathLike)):
        source = _read_file(os.fspath(source))
    if not isinstance(source, Mapping):
        raise ValueError(f"weights must be a state dict or a path to one, got {type(source).__name__}")
    while not _is_state_dict(source):
        inner = next((source[k] for k in CHECKPOINT_KEYS if isinstance(source.get(k), Mapping)), None)
        if inner is None:
            raise ValueError(
                "expected a state dict (names -> tensors) or a checkpoint holding one under "
                f"{' / '.join(repr(k) for k in CHECKPOINT_KEYS)}; found the keys "
                f"{_listing(list(map(str, source)))}"
            )
        source = inner
    state = dict(source)
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _read_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weights file at {path!r}")
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ValueError(f"{path} is a safetensors file: `pip install safetensors` to read it") from err
        return load_file(path, device="cpu")
    return safe_torch_load(path, map_location="cpu", what="weights file")


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Stem kernel ``[O, I, k, k]`` for ``in_chans`` inputs: summed over I when
    ``in_chans == 1``, else repeated cyclically and scaled by ``I / in_chans``."""
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    have = weight.shape[1]
    if have == in_chans:
        return weight
    work = weight.float()
    if in_chans == 1:
        work = work.sum(dim=1, keepdim=True)
    else:
        work = work.repeat(1, math.ceil(in_chans / have), 1, 1)[:, :in_chans] * (have / in_chans)
    return work.to(weight.dtype)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _prefixed(names, prefix: str) -> list[str]:
    return [k for k in names if k.startswith(prefix + ".")]


def _adapt_stem(model: nn.Module, state: dict, own: dict, report: LoadReport) -> None:
    name = getattr(model, "first_conv", None)
    key = f"{name}.weight"
    if not name or key not in state or key not in own:
        return
    theirs, mine = state[key].shape, own[key].shape
    if len(theirs) == 4 and theirs != mine and theirs[:1] + theirs[2:] == mine[:1] + mine[2:]:
        state[key] = adapt_input_conv(state[key], mine[1])
        report.adapted.append(key)


def _handle_classifier(model: nn.Module, state: dict, own: dict, drop: bool, report: LoadReport) -> None:
    name = getattr(model, "classifier_name", None)
    if not name:
        return
    theirs, mine = _prefixed(state, name), _prefixed(own, name)
    if not theirs:
        return
    if drop or not mine:  # dropping on request, or the model has no head (num_classes=0)
        for key in theirs:
            del state[key]
        report.dropped.extend(theirs)
        return
    bad = [k for k in theirs if k in own and state[k].shape != own[k].shape]
    if bad:
        key = f"{name}.weight" if f"{name}.weight" in bad else bad[0]
        raise ValueError(
            f"the weights' classifier '{name}' has {state[key].shape[0]} outputs but the model's has "
            f"{own[key].shape[0]} ({key}: weights {list(state[key].shape)} vs model {list(own[key].shape)}); "
            f"create the model with num_classes={state[key].shape[0]}, or pass drop_classifier=True to "
            f"keep the model's freshly initialised {own[key].shape[0]}-way head"
        )


def load_weights(
    model: nn.Module, source: WeightSource, strict: bool = True, drop_classifier: bool = False
) -> LoadReport:
    """Load ``source`` (a state dict, a checkpoint dict or a file path) into ``model`` in place.

    Args:
        strict: any missing, unexpected or shape-mismatched tensor is a ValueError that
            lists them all; ``strict=False`` loads the tensors that fit and reports the rest.
        drop_classifier: ignore the weights' classifier and keep the model's head
            (fine-tuning on another number of classes).

    Returns:
        a :class:`LoadReport` naming the loaded, missing, unexpected, mismatched,
        adapted (stem) and dropped (classifier) tensors.
    """
    from .base import FeatureExtractor

    target = model.model if isinstance(model, FeatureExtractor) else model
    state = read_state_dict(source)
    own = target.state_dict()
    report = LoadReport()
    _adapt_stem(target, state, own, report)
    _handle_classifier(target, state, own, drop_classifier, report)
    kept_head = set(_prefixed(own, getattr(target, "classifier_name", "") or "")) if report.dropped else set()

    report.missing = [k for k in own if k not in state and k not in kept_head and not k.endswith("num_batches_tracked")]
    report.unexpected = [k for k in state if k not in own]
    report.mismatched = [
        f"{k}: weights {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if strict and (report.missing or report.unexpected or report.mismatched):
        lines = [f"the weights do not fit {type(target).__name__} (strict=True):"]
        for title, names in (
            ("missing from the weights", report.missing),
            ("unexpected in the weights", report.unexpected),
            ("shape mismatch", report.mismatched),
        ):
            if names:
                lines.append(f"  {title} ({len(names)}): {_listing(names)}")
        lines.append("pass strict=False to load the tensors that fit and keep the model's values for the rest")
        raise ValueError("\n".join(lines))
    report.loaded = [k for k in state if k in own and state[k].shape == own[k].shape]
    merged = dict(own)
    merged.update({k: state[k] for k in report.loaded})
    target.load_state_dict(merged, strict=True)
    return report
