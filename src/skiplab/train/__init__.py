"""Training: one readable loop (``fit``), recipes as YAML configs, atomic checkpoints and
exact resume, clean stops on SIGINT/SIGTERM, mixed precision, EMA and DDP under torchrun. See docs/training.md."""

from .callbacks import Callback
from .checkpoint import (CheckpointMismatchError, load_checkpoint, load_model_state, model_from_checkpoint,
                         model_state_from, save_checkpoint, strip_training_state)
from .config import TrainConfig
from .evaluation import evaluate, evaluate_checkpoint
from .interrupt import TrainingInterrupted
from .loop import FitResult, NonFiniteLossError, Trainer, fit
from .tasks import Task, get_task, list_tasks, register_task

__all__ = ["Callback", "CheckpointMismatchError", "FitResult", "NonFiniteLossError", "TrainConfig",
           "Trainer", "TrainingInterrupted", "evaluate", "evaluate_checkpoint", "fit",
           "load_checkpoint", "load_model_state", "model_from_checkpoint", "model_state_from",
           "save_checkpoint", "strip_training_state", "Task", "get_task", "list_tasks", "register_task"]
