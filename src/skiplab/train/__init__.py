"""Training: one readable loop (``fit``), recipes as YAML configs, atomic checkpoints and
exact resume, clean stops on SIGINT/SIGTERM/SIGHUP, mixed precision, EMA and DDP under torchrun. See docs/training.md.

The names below are imported on first use (PEP 562), so that importing one light module of
this package (``skiplab.train.config``, for the command's ``--help``) does not import torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Callback": "callbacks",
    "CheckpointMismatchError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_model_state": "checkpoint",
    "model_from_checkpoint": "checkpoint",
    "model_state_from": "checkpoint",
    "save_checkpoint": "checkpoint",
    "strip_training_state": "checkpoint",
    "TrainConfig": "config",
    "evaluate": "evaluation",
    "evaluate_checkpoint": "evaluation",
    "TrainingInterrupted": "interrupt",
    "FitResult": "loop",
    "NonFiniteLossError": "loop",
    "Trainer": "loop",
    "fit": "loop",
    "Task": "tasks",
    "get_task": "tasks",
    "list_tasks": "tasks",
    "register_task": "tasks",
}

__all__ = [
    "Callback",
    "CheckpointMismatchError",
    "FitResult",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "evaluate",
    "evaluate_checkpoint",
    "fit",
    "load_checkpoint",
    "load_model_state",
    "model_from_checkpoint",
    "model_state_from",
    "save_checkpoint",
    "strip_training_state",
    "Task",
    "get_task",
    "list_tasks",
    "register_task",
]

if TYPE_CHECKING:  # pragma: no cover
    from .callbacks import Callback
    from .checkpoint import (
        CheckpointMismatchError,
        load_checkpoint,
        load_model_state,
        model_from_checkpoint,
        model_state_from,
        save_checkpoint,
        strip_training_state,
    )
    from .config import TrainConfig
    from .evaluation import evaluate, evaluate_checkpoint
    from .interrupt import TrainingInterrupted
    from .loop import FitResult, NonFiniteLossError, Trainer, fit
    from .tasks import Task, get_task, list_tasks, register_task


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
