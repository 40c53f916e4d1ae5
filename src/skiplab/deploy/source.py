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

from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..models import create_model
from ..models.image_to_image import ImageToImageModel
from ..models.registry import is_model
from ..trained import Trained, TrainedMeta, input_size, load_trained, task_of

# The metadata and the (model, metadata) pair of skiplab.load_trained, under the names this
# package has always used.
SourceMeta = TrainedMeta
ModelSource = Trained


def load_source(
    name_or_path: Union[str, Path],
    *,
    num_classes: Optional[int] = None,
    in_chans: Optional[int] = None,
    image_size: Optional[int] = None,
    use_ema: bool = True,
    model_kwargs: Optional[dict] = None,
    seed: int = 0,
) -> ModelSource:
    """A skiplab file (a path: :func:`skiplab.load_trained`, which reads its architecture
    from what the checkpoint records) or a registered model (a name, random weights seeded by
    ``seed``) as an eval-mode :class:`ModelSource`.

    ``num_classes`` / ``in_chans`` / ``model_kwargs`` size a registered model (defaults: the
    model's own); ``image_size`` overrides the example input side (default: the tile size of
    an image-to-image checkpoint, else the model's ``default_input_size``).
    """
    text = str(name_or_path)
    path = Path(text)
    if not path.is_file() and is_model(text):
        return _from_name(text, num_classes, in_chans, image_size, model_kwargs or {}, seed)
    if not path.is_file():
        raise FileNotFoundError(
            f"{text} is neither a checkpoint file nor a registered model name (skiplab models lists them)"
        )
    return load_trained(path, use_ema=use_ema, image_size=image_size)


def _from_name(
    name: str,
    num_classes: Optional[int],
    in_chans: Optional[int],
    image_size: Optional[int],
    model_kwargs: dict,
    seed: int,
) -> ModelSource:
    kwargs = dict(model_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    torch.manual_seed(seed)
    model = create_model(name, **kwargs).eval()
    task = task_of(model)
    meta = SourceMeta(
        model=name,
        task=task,
        input_size=input_size(model, task, None, image_size),
        dynamic_hw=isinstance(model, ImageToImageModel),
        num_classes=getattr(model, "num_classes", None) or None,
        model_kwargs=kwargs,
        weights="random",
    )
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
