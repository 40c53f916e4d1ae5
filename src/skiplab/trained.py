"""The one road from a file to a model: :func:`load_trained`.

``model, meta = skiplab.load_trained("runs/r20/checkpoints/best.pt")`` rebuilds the model a
skiplab file holds, in eval mode, with what is known about it (:class:`TrainedMeta`: task,
input shape, classes, normalisation, the training config, a SAR radiometry...). It reads

* a training checkpoint (``skiplab train``: full, or stripped by ``strip_training_state``),
  its EMA weights when it has them;
* a pruned checkpoint (its recorded ``structure``: the pruned widths, applied before loading);
* a U-Net, a SAR autoencoder or codec checkpoint, the packaged SAR model;
* an exported or quantised file (``.pt2`` torch.export program, ``.onnx``) with its sidecar,
  read by :mod:`skiplab.deploy.runtime` (named here by string, imported only for such a file).

The return value is a :class:`Trained` (``.model``, ``.meta``) that unpacks like a tuple.

The checkpoint schema
---------------------
A checkpoint is a dict read with ``torch.load(weights_only=True)``. ``format_version``
(:data:`CHECKPOINT_VERSION`, an int; the same for every writer) is its schema; ``format``
names the writer (``skiplab.train/1``, ``skiplab.prune/1``, ``skiplab.sar_model/1``).

* version 2 (written today): ``arch = {"name", "kwargs"}`` is the exact call
  ``create_model(name, **kwargs)`` that built the model (``num_classes`` and ``in_chans``
  included), then ``structure`` (pruned widths, optional), ``model`` / ``ema`` (weights),
  ``config`` (the run), ``classes``, ``mean``, ``std``, task extras (e.g. ``radiometry``).
* version 1 (no ``format_version``: every file written before it existed) recorded only
  ``config.model`` and ``config.model_kwargs``; :func:`migrate` reads the rest from what
  the file says about its data -- ``num_classes`` from ``classes``, ``in_chans`` from the
  per-channel ``mean`` -- never from the shape of a weight tensor.
* a higher version (a newer skiplab wrote it) is refused in one line
  (:class:`~skiplab.errors.CheckpointVersionError`).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import torch
from torch import nn

from .errors import CheckpointError, CheckpointMismatchError, CheckpointVersionError
from .models import apply_structure, create_model
from .models.registry import model_options
from .safe_load import safe_torch_load

__all__ = [
    "CHECKPOINT_VERSION",
    "Trained",
    "TrainedMeta",
    "load_trained",
    "read_checkpoint",
    "migrate",
    "checkpoint_header",
    "arch_of",
    "model_state_from",
    "load_model_state",
]

CHECKPOINT_VERSION = 2
PathLike = Union[str, Path]

# Files that are not checkpoints but programs, by suffix: "module:function" returning a
# Trained, imported on use (the deployment stack sits above this module and is optional).
ARTIFACT_READERS = {".pt2": "skiplab.deploy.runtime:load_artifact", ".onnx": "skiplab.deploy.runtime:load_artifact"}


@dataclass
class TrainedMeta:
    """Everything about a trained model except its weights (JSON-able, see :meth:`to_dict`)."""

    model: str
    task: str = "classify"
    input_size: tuple[int, int, int] = (3, 224, 224)  # (C, H, W) of one example input
    dynamic_hw: bool = False  # image-to-image: any H, W (multiples of the stride)
    num_classes: Optional[int] = None
    classes: list = field(default_factory=list)
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    model_kwargs: dict = field(default_factory=dict)  # create_model(model, **model_kwargs)
    config: dict = field(default_factory=dict)  # the training run's recorded config
    radiometry: Optional[dict] = None  # SAR: mapping back to physical units
    looks: Optional[float] = None
    checkpoint: Optional[str] = None
    weights: str = "random"  # "checkpoint", "checkpoint (EMA)", "random"
    format_version: Optional[int] = None  # of the file as written (before migration)
    structure: Optional[dict] = None  # pruned widths, if any
    tile_size: Optional[int] = None  # image-to-image: the training tile side
    name: str = ""  # a packaged model's name
    extras: dict = field(default_factory=dict)  # e.g. a codec's "compression" figures

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainedMeta":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["input_size"] = tuple(known.get("input_size") or (3, 224, 224))
        return cls(**known)


@dataclass
class Trained:
    """An eval-mode model and its :class:`TrainedMeta`; ``model, meta = trained`` unpacks it."""

    model: nn.Module
    meta: TrainedMeta

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.meta))

    def example_input(self, batch_size: int = 1, seed: int = 0) -> torch.Tensor:
        """A standard-normal batch of the model's input shape (inputs are normalised)."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch_size, *self.meta.input_size, generator=g)


# -- the schema ---------------------------------------------------------------------------------
def arch_of(model: nn.Module) -> Optional[dict]:
    """``{"name", "kwargs"}`` of the :func:`~skiplab.create_model` call that built ``model``
    (None for a model built otherwise)."""
    arch = getattr(model, "skiplab_arch", None)
    return {"name": arch["name"], "kwargs": dict(arch["kwargs"])} if arch else None


def checkpoint_header(model: nn.Module) -> dict:
    """What every checkpoint writer puts in: the schema version and how to rebuild ``model``."""
    return {"format_version": CHECKPOINT_VERSION, "arch": arch_of(model)}


def _version(state: Mapping[str, Any], source: str) -> int:
    version = state.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{source} has format_version {version!r}: not a skiplab checkpoint")
    if version > CHECKPOINT_VERSION:
        from . import __version__

        raise CheckpointVersionError(
            f"{source} is a checkpoint of format version {version}, written by a newer skiplab; "
            f"this one ({__version__}) reads versions up to {CHECKPOINT_VERSION}: upgrade skiplab"
        )
    return version


def _recorded_arch(state: Mapping[str, Any]) -> Optional[dict]:
    """A version-1 file's ``arch``, from its config and what it says about its data."""
    config = state.get("config") or {}
    name = config.get("model")
    if name is None:
        return None
    kwargs = dict(config.get("model_kwargs") or {})
    try:
        options = set(model_options(name))
    except ValueError:
        return {"name": name, "kwargs": kwargs}  # (an unknown name: create_model will say so)
    if "num_classes" in options and state.get("classes"):
        kwargs.setdefault("num_classes", len(state["classes"]))
    if "in_chans" in options and state.get("mean"):
        kwargs.setdefault("in_chans", len(state["mean"]))
    return {"name": name, "kwargs": kwargs}


def migrate(state: Mapping[str, Any], source: str = "the checkpoint") -> dict:
    """``state`` in the current schema (:data:`CHECKPOINT_VERSION`); its original version is
    kept as ``written_version``. A one-line :class:`CheckpointVersionError` for a newer one."""
    version = _version(state, source)
    out = dict(state)
    if version == 1 or not out.get("arch"):
        out["arch"] = _recorded_arch(out)
    out["written_version"], out["format_version"] = version, CHECKPOINT_VERSION
    return out


def read_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> dict:
    """A checkpoint file read safely (``weights_only=True``; a one-line error saying what a
    file that is not a checkpoint is), its version checked and migrated (:func:`migrate`)."""
    state = safe_torch_load(path, map_location=map_location, what="checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a skiplab checkpoint (it holds a {type(state).__name__}, not a dict of tensors)"
        )
    return migrate(state, str(path))


# -- weights ------------------------------------------------------------------------------------
def model_state_from(checkpoint: Mapping[str, Any], use_ema: bool = True) -> dict:
    """The model weights in a checkpoint: the EMA copy when there is one and ``use_ema``,
    else ``model``; a plain state dict (tensor values) is returned as it is."""
    if use_ema and checkpoint.get("ema") is not None:
        return checkpoint["ema"]["module"]
    if "model" in checkpoint:
        return checkpoint["model"]
    weights = {k: v for k, v in checkpoint.items() if k not in ("format_version", "written_version", "arch")}
    if weights and all(isinstance(v, torch.Tensor) for v in weights.values()):
        return weights
    raise CheckpointError("checkpoint holds no model weights (no 'model' entry)")


def load_model_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], max_listed: int = 3, source: str = "the checkpoint"
) -> None:
    """``model.load_state_dict(state, strict=True)``, or a one-line CheckpointMismatchError
    naming ``source`` (e.g. the file and its model) and what differs: the number of classes
    when the heads differ, then the tensors of another shape, missing and unexpected."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if not (missing or unexpected or shaped):
        model.load_state_dict(state, strict=True)
        return
    parts = []
    head = f"{getattr(model, 'classifier_name', 'fc')}.weight"
    if head in shaped and state[head].ndim >= 1 and state[head].shape[0] != own[head].shape[0]:
        parts.append(f"the checkpoint has {state[head].shape[0]} classes, the model {own[head].shape[0]}")
    for title, items in (
        (
            "of another shape",
            [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in shaped],
        ),
        ("missing from the checkpoint", missing),
        ("not in the model", unexpected),
    ):
        if items:
            more = f", ... and {len(items) - max_listed} more" if len(items) > max_listed else ""
            parts.append(f"{len(items)} tensor{'s' * (len(items) > 1)} {title} ({', '.join(items[:max_listed])}{more})")
    raise CheckpointMismatchError(
        f"{source} does not fit {type(model).__name__} (another architecture or size?): {'; '.join(parts)}"
    )


# -- the loader ---------------------------------------------------------------------------------
def task_of(model: nn.Module) -> str:
    """The task a model is built for: reconstruct (autoencoders), segment (U-Nets), classify."""
    from .models.autoencoder import Autoencoder
    from .models.unet import SegmentationNet

    if isinstance(model, Autoencoder):
        return "reconstruct"
    if isinstance(model, SegmentationNet):
        return "segment"
    return "classify"


def input_size(
    model: nn.Module, task: str, tile_size: Optional[int] = None, image_size: Optional[int] = None
) -> tuple[int, int, int]:
    """(C, H, W) of one example input: the model's ``default_input_size``, its side replaced
    by ``image_size`` or, for an image-to-image model, the training tile side."""
    c, h, w = getattr(model, "default_input_size", (getattr(model, "in_chans", 3), 32, 32))
    side = image_size or (tile_size if task != "classify" else None) or None
    return (int(c), int(side or h), int(side or w))


def load_trained(
    path: Union[PathLike, Mapping[str, Any]],
    *,
    model: Optional[str] = None,
    model_kwargs: Optional[Mapping[str, Any]] = None,
    use_ema: bool = True,
    image_size: Optional[int] = None,
    map_location: Union[str, torch.device] = "cpu",
    source: Optional[str] = None,
) -> Trained:
    """The model a skiplab file holds, in eval mode, and its metadata: a :class:`Trained`
        (``model, meta = load_trained(path)``).

        ``path`` is a checkpoint (``.pt``; or a dict already read by :func:`read_checkpoint`) or an
        exported program (``.pt2``, ``.onnx``, with its sidecar). ``model`` names the
        architecture of a plain state dict, or replaces the recorded one (its recorded keywords are
        then dropped, its sizes kept); ``model_kwargs`` fill keywords the file does not record
        (e.g. ``num_classes`` of a plain state dict). ``use_ema``: the EMA weights when the file
        has them. ``image_size``: the side of ``meta.input_size``. ``source`` names a dict ``path``
    in errors. Errors are one-line
        :class:`~skiplab.errors.SkiplabError` s: not a checkpoint, a newer format version, weights
        that do not fit the recorded architecture.
    """
    if not isinstance(path, Mapping) and Path(path).suffix in ARTIFACT_READERS:
        module, function = ARTIFACT_READERS[Path(path).suffix].split(":")
        return getattr(importlib.import_module(module), function)(path)
    if isinstance(path, Mapping):
        checkpoint = path if "written_version" in path else migrate(path, source or "the checkpoint")
        where = source
    else:
        checkpoint, where = read_checkpoint(path, map_location), str(path)
    arch = checkpoint.get("arch") or {}
    name = model or arch.get("name")
    if name is None:
        raise CheckpointError(
            f"{where or 'the checkpoint'} records no model name (a plain state "
            f"dict?): pass the architecture (model=..., skiplab --model)"
        )
    recorded = dict(arch.get("kwargs") or {})
    if model and model != arch.get("name"):  # another architecture: keep only the sizes
        recorded = {k: v for k, v in recorded.items() if k in ("num_classes", "in_chans")}
    kwargs = {**dict(model_kwargs or {}), **recorded}
    config = dict(checkpoint.get("config") or {})
    label = (
        f"{where} ({config['model']})"
        if where and config.get("model") and source is None
        else where or "the checkpoint"
    )
    net = create_model(name, **kwargs)
    apply_structure(net, checkpoint.get("structure"))  # the pruned widths, if any
    load_model_state(net, model_state_from(checkpoint, use_ema), source=label)
    net.eval()
    task = config.get("task") or task_of(net)
    tile = checkpoint.get("tile_size") or config.get("tile_size") or None
    from .models.image_to_image import ImageToImageModel

    meta = TrainedMeta(
        model=name,
        task=task,
        input_size=input_size(net, task, tile, image_size),
        dynamic_hw=isinstance(net, ImageToImageModel),
        num_classes=getattr(net, "num_classes", None) or None,
        classes=list(checkpoint.get("classes") or []),
        mean=list(checkpoint.get("mean") or []),
        std=list(checkpoint.get("std") or []),
        model_kwargs=kwargs,
        config=config,
        radiometry=checkpoint.get("radiometry"),
        looks=checkpoint.get("looks"),
        checkpoint=where,
        weights="checkpoint (EMA)" if use_ema and checkpoint.get("ema") is not None else "checkpoint",
        format_version=checkpoint.get("written_version"),
        structure=checkpoint.get("structure"),
        tile_size=int(tile) if tile else None,
        name=str(checkpoint.get("name") or ""),
        extras={k: checkpoint[k] for k in ("compression", "best") if k in checkpoint},
    )
    return Trained(net, meta)
