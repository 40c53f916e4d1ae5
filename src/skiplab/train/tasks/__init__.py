"""Training tasks, one per module, registered by name (:func:`register_task`): ``classify``
and ``segment`` here; domain packages add theirs (``reconstruct`` in :mod:`skiplab.sar.training.task`)."""

from .base import Task, get_task, list_tasks, make_task, register_task
from .classify import ClassifyTask
from .segment import SegmentationLoader, SegmentTask

__all__ = [
    "Task",
    "get_task",
    "list_tasks",
    "make_task",
    "register_task",
    "ClassifyTask",
    "SegmentTask",
    "SegmentationLoader",
]
