"""Evaluation: loss and accuracy of a model on a loader, and of a checkpoint on a dataset."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Optional, Union

import torch
from torch import nn

from .checkpoint import load_checkpoint, load_model_state, model_state_from
from .precision import Precision, resolve_device, resolve_precision


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, precision: Optional[Precision] = None,
             tta_flip: bool = False) -> dict:
    """Mean cross-entropy and accuracy of ``model`` over ``loader`` (in eval mode);
    ``tta_flip`` averages the logits of each image and of its mirror image."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in loader:
        with precision.autocast() if precision is not None else contextlib.nullcontext():
            logits = model(x)
            if tta_flip:
                logits = 0.5 * (logits + model(x.flip(3)))
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation loader yielded no images")
    return {"loss": loss_sum / count, "acc": correct / count, "images": count}


def evaluate_checkpoint(path: Union[str, Path], data: Optional[str] = None, split: str = "test", *,
                        model: Optional[str] = None, batch_size: int = 512, precision: str = "auto",
                        device: str = "auto", use_ema: bool = True, tta_flip: bool = False,
                        channels_last: bool = True) -> dict:
    """Evaluate the checkpoint at ``path`` on ``split`` of ``data``.

    The model name, its keywords and the dataset default to those recorded in the
    checkpoint's config (a plain state dict needs ``model`` and ``data``); the EMA weights
    are used when the checkpoint has them and ``use_ema``.
    """
    from ..data import BatchLoader, load_dataset
    from ..models import create_model

    checkpoint = load_checkpoint(path)
    config = checkpoint.get("config") or {}
    name = model or config.get("model")
    data = data or config.get("data")
    if name is None or data is None:
        raise ValueError(f"{path} records no config: pass the model name and the data spec")
    dataset = load_dataset(data, split, val_size=config.get("val_size", 0) if split == "val" else 0,
                           seed=config.get("seed", 0))
    kwargs = dict(config.get("model_kwargs") or {}) if name == config.get("model") else {}
    net = create_model(name, num_classes=len(dataset.classes), in_chans=dataset.images.shape[1], **kwargs)
    load_model_state(net, model_state_from(checkpoint, use_ema))
    dev = resolve_device(device)
    net = net.to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    loader = BatchLoader(dataset, batch_size, shuffle=False, drop_last=False, device=dev,
                         channels_last=channels_last)
    result = evaluate(net, loader, Precision(resolve_precision(precision, dev), dev), tta_flip)
    return {**result, "model": name, "data": dataset.name, "split": split}
