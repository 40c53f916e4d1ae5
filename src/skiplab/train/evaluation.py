"""Evaluation: a task's metrics (loss and accuracy; Dice/IoU; PSNR/SSIM) of a model on a
loader, and of a checkpoint on a dataset."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import torch
from torch import nn

from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .precision import Precision, resolve_device, resolve_precision
from .meters import ClassificationMeter, Meter
from .tasks import make_task


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved by (dy, dx) pixels, the uncovered border filled by reflection."""
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    height, width = x.shape[-2:]
    return padded[..., 1 - dy:1 - dy + height, 1 - dx:1 - dx + width]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, precision: Optional[Precision] = None,
             tta_flip: bool = False, meter: Optional[Meter] = None,
             tta_translate: bool = False) -> dict:
    """The metrics ``meter`` (a task's, :meth:`Task.meter`; default: mean cross-entropy and
    accuracy) accumulates over ``loader``, with ``model`` in eval mode: ``{"loss", ...,
    "images"}``. ``tta_flip`` averages the outputs of each image and of its mirror image
    (mirrored back for image outputs). ``tta_translate`` (classifiers only) averages that with
    the same for the image shifted one pixel up-left and down-right, weighted 1/2, 1/4, 1/4
    (airbench's test-time augmentation)."""
    meter = meter if meter is not None else ClassificationMeter()
    if tta_translate and meter.dense:
        raise ValueError("tta_translate is for classifiers: shifted dense outputs do not line up "
                         "with the target")

    def predict(x: torch.Tensor) -> torch.Tensor:
        output = model(x)
        if tta_flip:
            mirrored = model(x.flip(3))
            output = 0.5 * (output + (mirrored.flip(3) if meter.dense else mirrored))
        return output

    was_training = model.training
    model.eval()
    for x, y in loader:
        with precision.autocast() if precision is not None else contextlib.nullcontext():
            output = predict(x)
            if tta_translate:
                output = 0.5 * output + 0.25 * (predict(_shift(x, 1, 1)) + predict(_shift(x, -1, -1)))
        meter.update(output.float(), y)
    model.train(was_training)
    return meter.result()


def evaluation_data(recorded: dict, data: Optional[str] = None, split: str = "test", *,
                    radiometry: Optional[dict] = None, channels_last: bool = True,
                    source: str = "the checkpoint") -> tuple[Any, Any]:
    """The task and the ``split`` of ``data`` a model trained with config ``recorded`` is
    evaluated on (default data: the recorded one, with the same held-out part, so every split
    is normalised with the statistics the model was trained with; ``radiometry``: a
    reconstruct model's, to normalise SAR data as in training)."""
    data = data or recorded.get("data")
    if recorded.get("model") is None or data is None:
        raise ValueError(f"{source} records no config: pass the model name and the data spec")
    known = {k: v for k, v in recorded.items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig.from_dict({**known, "data": data, "resume": False, "out": None,
                                    "val_size": known.get("val_size", 0) if data == recorded.get("data") else 0,
                                    "channels_last": channels_last})
    task = make_task(config)
    extras = {"radiometry": radiometry} if radiometry is not None else {}
    return task, task.load(split, like=task.data_reference(extras))


def evaluate_checkpoint(path: Union[str, Path], data: Optional[str] = None, split: str = "test", *,
                        model: Optional[str] = None, batch_size: int = 512, precision: str = "auto",
                        device: str = "auto", use_ema: bool = True, tta_flip: bool = False,
                        channels_last: bool = True, tta_translate: bool = False) -> dict:
    """Evaluate the checkpoint at ``path`` on ``split`` of ``data`` with its task's metrics.

    The task, model name, its keywords, the dataset and its tile size default to those
    recorded in the checkpoint's config (a plain state dict needs ``model`` and ``data`` and
    is a classifier); the EMA weights are used when the checkpoint has them and ``use_ema``.
    A reconstruct checkpoint normalises the data with the radiometry it was trained with.
    """
    checkpoint = load_checkpoint(path)
    recorded = dict(checkpoint.get("config") or {})
    name = model or recorded.get("model")
    task, dataset = evaluation_data({**recorded, "model": name}, data, split,
                                    radiometry=checkpoint.get("radiometry"),
                                    channels_last=channels_last, source=str(path))
    net = model_from_checkpoint(checkpoint, task, dataset, name=name, use_ema=use_ema)
    dev = resolve_device(device)
    net = net.to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    loader = task.loader(dataset, batch_size, train=False, device=dev)
    result = evaluate(net, loader, Precision(resolve_precision(precision, dev), dev), tta_flip,
                      meter=task.meter(dataset), tta_translate=tta_translate)
    return {**result, "task": task.name, "model": name, "data": dataset.name, "split": split}
