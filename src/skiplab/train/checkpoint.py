"""Checkpoints that survive being killed, and loading that explains what does not fit.

:func:`save_checkpoint` writes atomically (:mod:`skiplab.atomic`: a temporary file in the
same directory, fsynced and renamed over the target), so at any instant the target is either
the previous complete checkpoint or the new complete one.
:func:`load_checkpoint` uses ``torch.load(weights_only=True)`` (no code in the file runs) and
says in words what a file that is not a checkpoint is; :func:`load_model_state` refuses a
state dict of another architecture in one line naming what differs.
"""

from __future__ import annotations

import random
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

from ..atomic import torch_save
from ..trained import checkpoint_header, load_model_state, model_state_from, read_checkpoint, load_trained  # noqa: F401 (model_state_from: re-exported by skiplab.train)


from ..errors import CheckpointMismatchError  # (re-exported: it was defined here)
from ..models.weights import load_weights, read_state_dict
from ..writable import output_errors


def save_checkpoint(state: Mapping[str, Any], path: Union[str, Path]) -> Path:
    """Write ``state`` to ``path`` atomically (:func:`skiplab.atomic.torch_save`); a failed
    write (a full disk) is an :class:`~skiplab.errors.OutputError` naming the file, and the
    previous checkpoint there is kept."""
    with output_errors(path):
        return torch_save(dict(state), path)


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict:
    """:func:`skiplab.trained.read_checkpoint`: read safely, the format version checked and
    an older file migrated to the current schema."""
    return read_checkpoint(path, map_location)


def rng_state() -> dict:
    """Every random-number generator's state, as tensors and ints (``weights_only`` safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    """random.setstate needs tuples where a round trip may have produced lists."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


RUN_IDENTITY = ("task", "model", "model_kwargs", "data", "tile_size", "batch_size", "seed", "optimizer")


def check_same_run(
    state: Mapping[str, Any], config: Mapping[str, Any], defaults: Mapping[str, Any], path: Union[str, Path]
) -> None:
    """A ValueError if ``config`` differs from the checkpoint's in a field that makes it
    another run (:data:`RUN_IDENTITY`); ``defaults`` fill fields older checkpoints lack."""
    changed = [k for k in RUN_IDENTITY if state["config"].get(k, defaults[k]) != config[k]]
    if changed:
        raise ValueError(
            f"cannot resume {path}: the config changed in {changed} "
            f"(checkpoint: {[state['config'].get(k) for k in changed]}, "
            f"now: {[config[k] for k in changed]})"
        )


def trainer_state(trainer: Any) -> dict:
    """Everything a :class:`~skiplab.train.Trainer` needs to resume exactly (its checkpoint)."""
    loader_state = dict(trainer.train_loader.state_dict(), epoch=trainer.epoch, batch=trainer.batch_in_epoch)
    return {
        "format": "skiplab.train/1",
        **checkpoint_header(trainer.model),
        "config": trainer.config.to_dict(),
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema else None,
        "rng": rng_state(),
        "lookahead": trainer.lookahead.state_dict() if trainer.lookahead else None,
        "step": trainer.step,
        "epoch": trainer.epoch,
        "batch_in_epoch": trainer.batch_in_epoch,
        "loader": loader_state,
        "epoch_sums": list(trainer.epoch_sums),  # (syncs)
        "epoch_terms": dict(trainer.sums.host_terms),
        "epoch_time": trainer.epoch_time,
        "best": {"metric": trainer.task.best_metric, "value": trainer.best_value},
        **trainer.task.checkpoint_extras(trainer),
        **({"structure": trainer.structure} if getattr(trainer, "structure", None) else {}),
    }


def restore_trainer_state(trainer: Any, state: Mapping[str, Any]) -> None:
    """The inverse of :func:`trainer_state`: weights, optimiser, schedule, scaler, EMA,
    Lookahead, random generators and progress counters (the loader's position is the
    trainer's to restore, when its loader exists)."""
    if state.get("stripped"):
        raise ValueError(
            "cannot resume from a stripped checkpoint (it keeps the weights, not the "
            "optimiser or the data position): fine-tune it with init_from instead"
        )
    load_model_state(trainer.model, state["model"])
    for key in ("optimizer", "schedule", "scaler", "ema", "lookahead"):
        part = getattr(trainer, key)
        if part is not None and state.get(key) is not None:
            part.load_state_dict(state[key])
    set_rng_state(state["rng"])
    trainer.step, trainer.epoch = state["step"], state["epoch"]
    trainer.batch_in_epoch = state["batch_in_epoch"]
    trainer.sums.load(state["epoch_sums"], state.get("epoch_terms"))  # (a StepSums)
    trainer.epoch_time = state["epoch_time"]
    trainer.best_value = state["best"]["value"] if "best" in state else state["best_acc"]


def resume_trainer(trainer: Any) -> bool:
    """Continue the run in ``trainer.last_path`` if ``resume`` is set: check that it is the same
    run (:func:`check_same_run`) and restore its state; False when there is nothing to resume.
    An existing last.pt without ``resume`` is refused, so a run is never overwritten."""
    c = trainer.config
    if trainer.last_path is None or not trainer.last_path.exists():
        if c.resume and trainer.is_main:
            print(f"resume: no checkpoint at {trainer.last_path}; starting a new run")
        return False
    if not c.resume:
        raise ValueError(
            f"{trainer.last_path} exists: pass resume (--resume) to continue that run, or choose another out directory"
        )
    state = load_checkpoint(trainer.last_path, map_location=trainer.device)
    check_same_run(state, c.to_dict(), type(c)().to_dict(), trainer.last_path)
    restore_trainer_state(trainer, state)
    trainer._loader_state = state["loader"]
    if trainer.is_main:
        print(
            f"resumed {trainer.last_path}: epoch {trainer.epoch}, batch {trainer.batch_in_epoch}, step {trainer.step}"
        )
    return True


def restore_weights(trainer: Any, path: Optional[Path]) -> Optional[int]:
    """Load the weights (and EMA) of the checkpoint ``path`` into ``trainer``, if it exists;
    its step, or None (after a non-finite loss: the last finite weights)."""
    if path is None or not Path(path).exists():
        return None
    state = load_checkpoint(path, map_location=trainer.device)
    load_model_state(trainer.model, state["model"])
    if trainer.ema is not None and state.get("ema") is not None:
        trainer.ema.load_state_dict(state["ema"])
    return int(state["step"])


TRAINING_ONLY = (
    "optimizer",
    "schedule",
    "scaler",
    "rng",
    "lookahead",
    "loader",
    "epoch_sums",
    "epoch_terms",
    "batch_in_epoch",
    "epoch_time",
)


def strip_training_state(checkpoint: Mapping[str, Any]) -> dict:
    """``checkpoint`` without what only resuming needs (:data:`TRAINING_ONLY`: optimiser,
    schedule, scaler, random generators, loader position): what ``eval``, ``export``,
    ``quantize``, ``prune`` and ``distill --teacher`` read, at about half the size (timm's
    ``clean_checkpoint.py`` does the same). Marked ``stripped``, so ``--resume`` refuses it."""
    if "model" not in checkpoint:
        raise ValueError("not a skiplab training checkpoint (no 'model' entry)")
    return {**{k: v for k, v in checkpoint.items() if k not in TRAINING_ONLY}, "stripped": True}


def model_from_checkpoint(
    checkpoint: Mapping[str, Any],
    task: Any,
    dataset: Any,
    *,
    name: Optional[str] = None,
    use_ema: bool = True,
    source: Optional[str] = None,
) -> nn.Module:
    """The trained model a checkpoint holds (:func:`skiplab.load_trained`: the recorded
    architecture, pruned widths and weights, the EMA copy when there is one and ``use_ema``),
    in training mode; ``name`` replaces the recorded architecture, ``dataset`` sizes what the
    checkpoint does not record (a plain state dict) and the task checks the model's kind;
    ``source`` names the checkpoint in a mismatch error."""
    recorded = (checkpoint.get("config") or {}).get("model")
    if (name or recorded) is None:
        raise ValueError("the checkpoint records no model name: pass it (--model)")
    if hasattr(task, "check_model_class"):
        from ..models.registry import get_model_fn

        task.check_model_class(name or recorded, typing.get_type_hints(get_model_fn(name or recorded)).get("return"))
    sizes = task.model_kwargs(dataset) if hasattr(task, "model_kwargs") else {}
    trained = load_trained(checkpoint, model=name, model_kwargs=sizes, use_ema=use_ema, source=source)
    differ = [
        f"{k}={trained.meta.model_kwargs[k]}, the data {v}"
        for k, v in sizes.items()
        if trained.meta.model_kwargs.get(k, v) != v
    ]
    if differ:
        raise CheckpointMismatchError(
            f"{source or 'the checkpoint'} does not fit "
            f"{getattr(dataset, 'name', 'the data')}: the model has "
            f"{'; '.join(differ)}"
        )
    return trained.model.train()


def initial_model(
    task: Any, dataset: Any, init_from: Optional[str] = None, log: Optional[Callable[[str], None]] = None
) -> tuple[nn.Module, Optional[dict]]:
    """A run's starting model and its pruned widths: ``task.create_model(dataset)`` (random
    init, no structure), or with ``init_from`` the weights of that file (fine-tuning):

    * a skiplab checkpoint made for data of this shape: its model, weights and ``structure``
      (the run's checkpoints keep the structure);
    * otherwise -- a skiplab checkpoint of other data, or a torchvision/timm state-dict file --
      a fresh model for ``dataset`` takes the weights that fit (:func:`skiplab.models.load_weights`):
      a stem for another number of channels adapted (1: the RGB kernels summed, timm's
      ``adapt_input_conv``), a head for another class count dropped and started afresh; every
      other mismatch is an error. ``log`` gets one line saying what was adapted.
    """
    if not init_from:
        return task.create_model(dataset), None
    start = load_checkpoint(init_from)
    recorded = (start.get("config") or {}).get("model")
    named = f"{init_from}" + (f" ({recorded})" if recorded else "")
    source = f"init_from {named}"
    if "model" in start and (start.get("arch") or {}).get("name"):
        try:
            return model_from_checkpoint(start, task, dataset, name=task.config.model, source=source), start.get(
                "structure"
            )
        except CheckpointMismatchError:
            if start.get("structure"):
                raise
        state = dict(load_trained(start, model=task.config.model, source=source).model.state_dict())
    else:
        state = read_state_dict(init_from)
    model = task.create_model(dataset)
    report = load_transferred(model, state, named)
    if log is not None:
        log(report)
    return model, None


def load_transferred(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> str:
    """Load ``state`` into ``model`` adapting the stem's channels and dropping a head of
    another size (:func:`skiplab.models.load_weights`, strict otherwise); one line saying so."""
    own = model.state_dict()
    head = getattr(model, "classifier_name", "") or ""
    head_keys = [k for k in own if head and k.startswith(head + ".")]
    drop = any(k in state and state[k].shape != own[k].shape for k in head_keys)
    try:
        report = load_weights(model, state, strict=True, drop_classifier=drop)
    except ValueError as err:  # its first line names the model, its last suggests strict=False
        lines = [line.strip() for line in str(err).splitlines()]
        what = "; ".join(lines[1:-1] if len(lines) > 2 else lines)
        raise CheckpointMismatchError(f"init_from {source} does not fit {type(model).__name__}: {what}") from None
    parts = [f"init_from {source}: {len(report.loaded)} tensors loaded"]
    stem = getattr(model, "first_conv", "")
    for key in report.adapted:
        parts.append(
            f"stem {key} adapted {state[key].shape[1]} -> {own[key].shape[1]} channels"
            + (" (RGB kernels summed)" if own[key].shape[1] == 1 else " (kernels repeated, rescaled)")
        )
    if report.dropped:
        weight = next((k for k in report.dropped if k.endswith("weight")), report.dropped[0])
        parts.append(
            f"head {head} ({state[weight].shape[0]} classes) dropped, a fresh "
            f"{own[weight].shape[0]}-way head initialised"
        )
    if not report.adapted and not report.dropped:
        parts.append(f"nothing adapted ({stem or 'stem'} and {head or 'head'} fit)")
    return "; ".join(parts)
