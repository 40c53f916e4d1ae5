"""What export, quantisation, bench and eval start from: a training checkpoint or a
registered model name, as an eval-mode model plus the metadata a runtime needs.

``load_source("runs/r20/checkpoints/best.pt")`` rebuilds the checkpoint's model (its recorded
name and keywords, the EMA weights when there are some) exactly as ``skiplab eval`` does;
``load_source("resnet50")`` builds the registered model with random weights (speed work
only). The metadata (:class:`SourceMeta`) is what the JSON sidecar of an exported file
records: input shape, channels, normalisation, classes, task, and the SAR radiometry of a
reconstruct checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from ..models import apply_structure, create_model
from ..models.image_to_image import ImageToImageModel
from ..models.registry import is_model
from ..train import load_checkpoint, load_model_state, model_state_from



@dataclass
class SourceMeta:
    """Everything about a model except its weights (JSON-able, see :meth:`to_dict`)."""

    model: str
    task: str = "classify"
    input_size: tuple[int, int, int] = (3, 224, 224)   # (C, H, W) of one example input
    dynamic_hw: bool = False           # image-to-image: any H, W (multiples of the stride)
    num_classes: Optional[int] = None
    classes: list = field(default_factory=list)
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    model_kwargs: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)        # the training run's recorded config
    radiometry: Optional[dict] = None                 # SAR: mapping back to physical units
    looks: Optional[float] = None
    checkpoint: Optional[str] = None
    weights: str = "random"                           # "checkpoint", "checkpoint (EMA)", "random"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SourceMeta":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["input_size"] = tuple(known.get("input_size") or (3, 224, 224))
        return cls(**known)


@dataclass
class ModelSource:
    """An eval-mode model and its :class:`SourceMeta`."""

    model: nn.Module
    meta: SourceMeta

    def example_input(self, batch_size: int = 1, seed: int = 0) -> torch.Tensor:
        """A standard-normal batch of the model's input shape (inputs are normalised)."""
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch_size, *self.meta.input_size, generator=g)


def _task_of(model: nn.Module) -> str:
    from ..models.autoencoder import Autoencoder
    from ..models.unet import SegmentationNet
    if isinstance(model, Autoencoder):
        return "reconstruct"
    if isinstance(model, SegmentationNet):
        return "segment"
    return "classify"


def _first_conv_in_chans(state: dict) -> Optional[int]:
    for value in state.values():
        if value.dim() == 4:
            return int(value.shape[1])
    return None


def _input_size(model: nn.Module, task: str, config: dict, image_size: Optional[int]
                ) -> tuple[int, int, int]:
    c, h, w = getattr(model, "default_input_size", (getattr(model, "in_chans", 3), 32, 32))
    side = image_size or (config.get("tile_size") if task != "classify" else None) or None
    return (int(c), int(side or h), int(side or w))


def load_source(name_or_path: Union[str, Path], *, num_classes: Optional[int] = None,
                in_chans: Optional[int] = None, image_size: Optional[int] = None,
                use_ema: bool = True, model_kwargs: Optional[dict] = None,
                seed: int = 0) -> ModelSource:
    """A checkpoint written by ``skiplab train`` (a path) or a registered model (a name,
    random weights seeded by ``seed``) as an eval-mode :class:`ModelSource`.

    ``num_classes`` / ``in_chans`` / ``model_kwargs`` size a registered model (defaults: the
    model's own); ``image_size`` overrides the example input side (default: the tile size of
    an image-to-image checkpoint, else the model's ``default_input_size``).
    """
    text = str(name_or_path)
    path = Path(text)
    if not path.is_file() and is_model(text):
        return _from_name(text, num_classes, in_chans, image_size, model_kwargs or {}, seed)
    if not path.is_file():
        raise FileNotFoundError(f"{text} is neither a checkpoint file nor a registered model "
                                f"name (skiplab models lists them)")
    checkpoint = load_checkpoint(path)
    recorded = checkpoint.get("config") or {}
    name = recorded.get("model")
    if name is None:
        raise ValueError(f"{path} records no model name (a plain state dict?): expected a "
                         f"checkpoint written by skiplab train")
    state = model_state_from(checkpoint, use_ema)
    kwargs = dict(recorded.get("model_kwargs") or {})
    classes = list(checkpoint.get("classes") or [])
    task = recorded.get("task", "classify")
    if task != "reconstruct":
        kwargs.setdefault("num_classes", num_classes or len(classes) or None)
        if kwargs["num_classes"] is None:
            del kwargs["num_classes"]
    kwargs.setdefault("in_chans", in_chans or len(checkpoint.get("mean") or [])
                      or _first_conv_in_chans(state) or 3)
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    apply_structure(model, checkpoint.get("structure"))   # the pruned widths, if any
    load_model_state(model, state)
    model.eval()
    meta = SourceMeta(
        model=name, task=task, input_size=_input_size(model, task, recorded, image_size),
        dynamic_hw=isinstance(model, ImageToImageModel),
        num_classes=getattr(model, "num_classes", None) or None, classes=classes,
        mean=list(checkpoint.get("mean") or []), std=list(checkpoint.get("std") or []),
        model_kwargs={k: v for k, v in kwargs.items()}, config=dict(recorded),
        radiometry=checkpoint.get("radiometry"), looks=checkpoint.get("looks"),
        checkpoint=str(path),
        weights="checkpoint (EMA)" if use_ema and checkpoint.get("ema") is not None else "checkpoint")
    return ModelSource(model, meta)


def _from_name(name: str, num_classes: Optional[int], in_chans: Optional[int],
               image_size: Optional[int], model_kwargs: dict, seed: int) -> ModelSource:
    kwargs = dict(model_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    torch.manual_seed(seed)
    model = create_model(name, **kwargs).eval()
    task = _task_of(model)
    meta = SourceMeta(model=name, task=task, input_size=_input_size(model, task, {}, image_size),
                      dynamic_hw=isinstance(model, ImageToImageModel),
                      num_classes=getattr(model, "num_classes", None) or None,
                      model_kwargs=kwargs, weights="random")
    return ModelSource(model, meta)


def describe(meta: SourceMeta) -> str:
    """One line: model, weights, input shape."""
    c, h, w = meta.input_size
    hw = "any HxW" if meta.dynamic_hw else f"{h}x{w}"
    return f"{meta.model} ({meta.task}, {meta.weights} weights, input [B, {c}, {hw}])"


def to_jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and tensors as lists (for the sidecar)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value
