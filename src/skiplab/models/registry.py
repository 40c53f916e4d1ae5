"""The model registry: every architecture is one short function, found by name.

``create_model("resnet50", num_classes=10, in_chans=1)`` looks the function up, checks the
keywords against the model class's constructor (so a misspelt keyword is named, with the
closest valid ones), builds the model and, with ``features_only=True``, wraps it so that
it returns the per-stage feature maps (see :class:`~skiplab.models.base.FeatureExtractor`).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
import typing
from typing import Any, Callable

from torch import nn

from ..errors import ModelOptionError, UnknownModelError
from ..plugins import load_plugins

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model function under its own name. Its return annotation must be the
    model class, so that :func:`create_model` can validate keywords against it."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching a shell-style ``pattern``, those of the
    domain plugins included (:func:`skiplab.plugins.load_plugins`, imported on the first call:
    the list does not depend on what the caller imported before)."""
    load_plugins()
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def is_model(name: str) -> bool:
    if name not in _MODELS:
        load_plugins()  # a domain package's model (e.g. sar_codec_*), not imported yet
    return name in _MODELS


def _closest(word: str, choices: typing.Iterable[str], n: int = 3) -> str:
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def model_options(name: str) -> list[str]:
    """Keyword options the model ``name`` accepts (from its class's constructor)."""
    fn = get_model_fn(name)
    cls = typing.get_type_hints(fn).get("return")
    params = {}
    for obj in (fn, cls.__init__ if isinstance(cls, type) else None):
        if obj is None:
            continue
        for p in inspect.signature(obj).parameters.values():
            # arguments without a default (block, layers) are the model function's to give
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self" and p.default is not p.empty:
                params[p.name] = p
    return sorted(params) + ["features_only"]


def get_model_fn(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        load_plugins()  # a domain package's model (e.g. sar_codec_*), not imported yet
    if name not in _MODELS:
        raise UnknownModelError(
            f"unknown model {name!r}{_closest(name, _MODELS)} (skiplab.list_models() lists all {len(_MODELS)})"
        )
    return _MODELS[name]


def create_model(name: str, *, features_only: bool = False, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``.

    Common keywords (every classifier): ``num_classes``, ``in_chans``, ``drop_path_rate``
    (residual models), ``zero_init_residual``; ``features_only=True`` returns a
    :class:`FeatureExtractor` whose forward gives the list of per-stage feature maps.
    Any other keyword overrides a constructor argument of the model's class.
    """
    fn = get_model_fn(name)
    valid = set(model_options(name))
    for key in kwargs:
        if key not in valid:
            raise ModelOptionError(
                f"{name} has no option {key!r}{_closest(key, valid)} (valid options: {', '.join(sorted(valid))})"
            )
    try:
        model = fn(**kwargs)
    except TypeError as err:
        fixed = re.search(r"got multiple values for (?:keyword )?argument '(\w+)'", str(err))
        if not fixed:
            raise
        generic = [m for m in _MODELS if m != name and name.startswith(m.rstrip("_"))]
        hint = f"; the generic {generic[0]!r} lets you choose it" if generic else ""
        raise ModelOptionError(f"{name} fixes {fixed[1]!r} itself, so it cannot be passed{hint}") from None
    if features_only:
        from .base import FeatureExtractor

        model = FeatureExtractor(model)
    # the call that rebuilds it: a checkpoint records it (skiplab.trained.checkpoint_header)
    model.skiplab_arch = {"name": name, "kwargs": {**kwargs, **({"features_only": True} if features_only else {})}}
    return model
