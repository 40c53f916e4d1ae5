"""Evaluation: a task's metrics (loss and accuracy; Dice/IoU; PSNR/SSIM) of a model on a
loader, and of a checkpoint on a dataset."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

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
    return padded[..., 1 - dy : 1 - dy + height, 1 - dx : 1 - dx + width]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    precision: Optional[Precision] = None,
    tta_flip: bool = False,
    meter: Optional[Meter] = None,
    tta_translate: bool = False,
    *,
    per_image: bool = False,
    on_batch: Optional[Callable[[torch.Tensor, torch.Tensor], None]] = None,
) -> dict:
    """The one evaluation loop: the metrics ``meter`` (a task's, :meth:`Task.meter`; default:
    mean cross-entropy and accuracy, classes checked against the labels) accumulates over
    ``loader``, with ``model`` in eval mode (every module's own flag restored afterwards):
    ``{"loss", ..., "images"}``. ``model`` is any ``nn.Module``: a trained network, or an
    exported ``.pt2`` program or ONNX Runtime session behind
    :func:`skiplab.deploy.load_artifact`.

    ``per_image`` (classifiers) adds ``"correct"`` (bool, one per image, in loader order) and
    ``"predicted"`` (int32 class indices). ``tta_flip`` averages the outputs of each image and
    of its mirror image (mirrored back for image outputs). ``tta_translate`` (classifiers only)
    averages that with the same for the image shifted one pixel up-left and down-right,
    weighted 1/2, 1/4, 1/4 (airbench's test-time augmentation). ``on_batch(output, target)``
    sees each batch's float32 outputs (e.g. to compare two models on the same images)."""
    meter = meter if meter is not None else ClassificationMeter()
    if per_image:
        meter.keep_per_image()
    if tta_translate and meter.dense:
        raise ValueError("tta_translate is for classifiers: shifted dense outputs do not line up with the target")

    def predict(x: torch.Tensor) -> torch.Tensor:
        output = meter.predict(model, x)
        if tta_flip:
            mirrored = meter.predict(model, x.flip(3))
            output = 0.5 * (output + (mirrored.flip(3) if meter.dense else mirrored))
        return output

    # eval mode by the modules' own flags, as nn.Module.eval() sets them: a PT2E int8 graph
    # refuses eval() (an exported model has no train mode to leave)
    flags = [(m, m.training) for m in model.modules()]
    for m, _ in flags:
        m.training = False
    try:
        for x, y in loader:
            with precision.autocast() if precision is not None else contextlib.nullcontext():
                output = predict(x)
                if tta_translate:
                    output = 0.5 * output + 0.25 * (predict(_shift(x, 1, 1)) + predict(_shift(x, -1, -1)))
            meter.update(output.float(), y)
            if on_batch is not None:
                on_batch(output.float(), y)
    finally:
        for m, flag in flags:
            m.training = flag
    return meter.result()


def evaluation_data(
    recorded: dict,
    data: Optional[str] = None,
    split: str = "test",
    *,
    radiometry: Optional[dict] = None,
    channels_last: bool = True,
    source: str = "the checkpoint",
    skip_bad: bool = False,
) -> tuple[Any, Any]:
    """The task and the ``split`` of ``data`` a model trained with config ``recorded`` is
    evaluated on (default data: the recorded one, with the same held-out part, so every split
    is normalised with the statistics the model was trained with; ``radiometry``: a
    reconstruct model's, to normalise SAR data as in training)."""
    data = data or recorded.get("data")
    if recorded.get("model") is None or data is None:
        raise ValueError(f"{source} records no config: pass the model name and the data spec")
    known = {k: v for k, v in recorded.items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig.from_dict(
        {
            **known,
            "data": data,
            "resume": False,
            "out": None,
            "val_size": known.get("val_size", 0) if data == recorded.get("data") else 0,
            "channels_last": channels_last,
            "skip_bad": skip_bad,
        }
    )
    task = make_task(config)
    extras = {"radiometry": radiometry} if radiometry is not None else {}
    return task, task.load(split, like=task.data_reference(extras))


def run_eval_split(config: TrainConfig) -> str:
    """The split a run evaluated at the end of each epoch (``eval_split: auto`` is val when
    the run held out a validation part, else test)."""
    split = {"auto": "val" if config.val_size > 0 else "test", "none": "test"}
    return split.get(config.eval_split, config.eval_split)


def evaluate_checkpoint(
    path: Union[str, Path],
    data: Optional[str] = None,
    split: Optional[str] = None,
    *,
    model: Optional[str] = None,
    batch_size: Optional[int] = None,
    precision: Optional[str] = None,
    device: str = "auto",
    use_ema: bool = True,
    tta_flip: Optional[bool] = None,
    channels_last: Optional[bool] = None,
    tta_translate: Optional[bool] = None,
    skip_bad: bool = False,
) -> dict:
    """Evaluate the checkpoint at ``path`` with its task's metrics, by default exactly as the
    run's own evaluation did at the end of training.

    Every argument left at None takes the run's recorded value: the split it evaluated (val
    when it held out a validation part, else test), the evaluation batch size, precision,
    memory format and test-time augmentation (``tta_flip``, ``tta_translate``), so a
    checkpoint reports the figure its last metrics.csv row shows; pass False to turn the
    augmentation off. The task, model name, its keywords, the dataset and its tile size
    default to those recorded as well (a plain state dict needs ``model`` and ``data`` and is
    a classifier); the EMA weights are used when the checkpoint has them and ``use_ema``. A
    reconstruct checkpoint normalises the data with the radiometry it was trained with.
    ``skip_bad`` leaves out images that cannot be decoded.
    """
    checkpoint = load_checkpoint(path)
    recorded = dict(checkpoint.get("config") or {})
    name = model or recorded.get("model")
    data = data or recorded.get("data")
    if name is None or data is None:
        raise ValueError(f"{path} records no config: pass the model name and the data spec to evaluate it")
    known = {k: v for k, v in recorded.items() if k in TrainConfig.__dataclass_fields__}
    run = TrainConfig.from_dict({**known, "resume": False, "out": None, "save": False})
    config = run.replace(
        data=data,
        skip_bad=skip_bad,
        # the same held-out part as in training, so every split is normalised
        # with the statistics the model was trained with
        val_size=run.val_size if data == recorded.get("data") else 0,
    )
    split = split or (run_eval_split(run) if data == recorded.get("data") else "test")
    setting = {
        "tta_flip": tta_flip,
        "tta_translate": tta_translate,
        "precision": precision,
        "channels_last": channels_last,
        "eval_batch_size": batch_size,
    }
    setting = {k: getattr(run, k) if v is None else v for k, v in setting.items()}
    task = make_task(config)
    dataset = task.load(split, like=task.data_reference(checkpoint))
    source = f"{path} ({recorded['model']})" if recorded.get("model") else str(path)
    net = model_from_checkpoint(checkpoint, task, dataset, name=name, use_ema=use_ema, source=source)
    dev = resolve_device(device)
    net = net.to(dev)
    if setting["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    loader = task.loader(dataset, setting["eval_batch_size"], train=False, device=dev)
    # the function and arguments of Trainer._evaluate, so the figures are the run's own
    autocast = Precision(resolve_precision(setting["precision"], dev), dev)
    result = evaluate(
        net, loader, autocast, setting["tta_flip"], meter=task.meter(dataset), tta_translate=setting["tta_translate"]
    )
    return {
        **result,
        "task": task.name,
        "model": name,
        "data": dataset.name,
        "split": split,
        "tta_flip": setting["tta_flip"],
        "tta_translate": setting["tta_translate"],
        "precision": autocast.name,
    }
