"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
Neural Network", §2): the student also matches the teacher's softened class probabilities.

With logits ``s`` (student) and ``t`` (teacher), temperature T and weight alpha::

    loss = alpha * T^2 * KL( softmax(t / T) || softmax(s / T) ) + (1 - alpha) * CE(s, y)

The T^2 factor keeps the soft term's gradients at the same scale as the hard term's when T
changes (§2: "the magnitudes of the gradients produced by the soft targets scale as
1/T^2"). KL is summed over classes and averaged over the batch; CE is the run's own
criterion (label smoothing included). Defaults T = 4, alpha = 0.9 are RepDistiller's
(Tian et al. 2020) CIFAR settings.

Any classification recipe distils by setting ``teacher`` (a checkpoint), ``kd_temperature``
and ``kd_alpha`` in its :class:`~skiplab.train.TrainConfig`: the loop asks
:class:`Distiller` for the teacher's logits on the very batch the student sees (same
augmentation), in eval mode, without gradients, under the same autocast.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, model_from_checkpoint


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, *,
            temperature: float, alpha: float,
            hard_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
            ) -> torch.Tensor:
    """Hinton 2015 KD loss of ``student`` logits against ``teacher`` logits and labels (see
    the module documentation); ``alpha = 0`` is the hard loss alone."""
    log_p_student = F.log_softmax(student.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher.float() / temperature, dim=1)
    soft = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard_loss(student, target)


class Distiller:
    """The teacher of a run and the loss it adds (``config.teacher``, ``kd_*`` fields)."""

    def __init__(self, teacher: nn.Module, temperature: float, alpha: float,
                 hard_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> None:
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.alpha, self.hard_loss = temperature, alpha, hard_loss
        self.autocast = autocast

    @classmethod
    def from_config(cls, config: Any, task: Any, dataset: Any, device: torch.device,
                    hard_loss: Callable, precision: Any = None, compile: bool = False
                    ) -> Optional["Distiller"]:
        """Load ``config.teacher`` for ``dataset`` (its classes must be the student's); None
        when the config names no teacher. ``precision`` (a :class:`~skiplab.train.precision.
        Precision`) gives the teacher the student's autocast."""
        if not config.teacher:
            return None
        checkpoint = load_checkpoint(config.teacher)
        if "classes" in checkpoint and list(checkpoint["classes"]) != list(dataset.classes):
            raise ValueError(f"teacher {config.teacher} was trained on classes "
                             f"{list(checkpoint['classes'])[:5]}..., the data has "
                             f"{list(dataset.classes)[:5]}...")
        teacher = model_from_checkpoint(checkpoint, task, dataset).to(device)
        if config.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        teacher = teacher.eval().requires_grad_(False)
        return cls(torch.compile(teacher) if compile else teacher, config.kd_temperature,
                   config.kd_alpha, hard_loss,
                   precision.autocast if precision is not None else contextlib.nullcontext)

    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits on ``x``: eval mode, no gradients, the student's autocast."""
        with torch.no_grad(), self.autocast():
            return self.teacher(x)

    def __call__(self, x: torch.Tensor, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The KD loss of the ``student`` logits on the batch ``x`` with labels ``target``."""
        return self.loss(student, self.teacher_logits(x), target)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return kd_loss(student, teacher, target, temperature=self.temperature, alpha=self.alpha,
                       hard_loss=self.hard_loss)
