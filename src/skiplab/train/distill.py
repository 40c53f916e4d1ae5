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
and ``kd_alpha`` in its :class:`~skiplab.train.TrainConfig`: the trainer wraps the run's task
in a :class:`DistillTask`, which runs the wrapped task's step, then the teacher on the very
batch the student saw (same augmentation; eval mode, no gradients, the same autocast), and
adds the ``kd`` term to the wrapped task's dict: ``loss`` becomes the mix above, ``terms``
holds ``ce`` (the wrapped task's loss) and ``kd`` (T^2 KL, unweighted), so metrics.csv gets
``train_ce`` and ``train_kd`` columns. The loop knows nothing of distillation.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, model_from_checkpoint
from .tasks.base import TaskWrapper


def kd_soft(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL( softmax(teacher / T) || softmax(student / T) ), summed over classes, batch mean."""
    log_p_student = F.log_softmax(student.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher.float() / temperature, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def kd_combine(soft: torch.Tensor, hard: torch.Tensor, *, temperature: float, alpha: float) -> torch.Tensor:
    """``alpha * T^2 * soft + (1 - alpha) * hard`` (in that order of operations)."""
    return alpha * temperature**2 * soft + (1 - alpha) * hard


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    hard_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> torch.Tensor:
    """Hinton 2015 KD loss of ``student`` logits against ``teacher`` logits and labels (see
    the module documentation); ``alpha = 0`` is the hard loss alone."""
    return kd_combine(
        kd_soft(student, teacher, temperature), hard_loss(student, target), temperature=temperature, alpha=alpha
    )


def load_teacher(
    path: str, task: Any, dataset: Any, device: torch.device, *, channels_last: bool = False, compile: bool = False
) -> nn.Module:
    """The teacher checkpoint ``path`` as a frozen eval-mode model for ``dataset`` (its
    classes must be the student's), on ``device``, compiled if asked."""
    checkpoint = load_checkpoint(path)
    if "classes" in checkpoint and list(checkpoint["classes"]) != list(dataset.classes):
        raise ValueError(
            f"teacher {path} was trained on classes "
            f"{list(checkpoint['classes'])[:5]}..., the data has "
            f"{list(dataset.classes)[:5]}..."
        )
    teacher = model_from_checkpoint(checkpoint, task, dataset).to(device)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    teacher = teacher.eval().requires_grad_(False)
    return torch.compile(teacher) if compile else teacher


class DistillTask(TaskWrapper):
    """A classification task with a teacher (see the module documentation): ``inner``'s
    step plus the KD term, ``temperature`` T and ``alpha`` as in :func:`kd_loss`. The
    teacher is given, or loaded from ``teacher_path`` by :meth:`prepare`."""

    def __init__(
        self,
        inner: Any,
        temperature: float = 4.0,
        alpha: float = 0.9,
        *,
        teacher: nn.Module | None = None,
        teacher_path: str | None = None,
    ) -> None:
        super().__init__(inner)
        self.temperature, self.alpha = temperature, alpha
        self.teacher = None if teacher is None else teacher.eval().requires_grad_(False)
        self.teacher_path = teacher_path

    @classmethod
    def wrap(cls, task: Any, config: Any) -> Any:
        """``task`` in a DistillTask when ``config.teacher`` names one, else ``task``."""
        if not config.teacher:
            return task
        return cls(task, config.kd_temperature, config.kd_alpha, teacher_path=config.teacher)

    def prepare(self, trainer: Any) -> None:
        self.inner.prepare(trainer)
        if self.teacher is None:
            self.teacher = load_teacher(
                self.teacher_path,
                self.inner,
                trainer.train_set,
                trainer.device,
                channels_last=trainer.config.channels_last,
                compile=trainer.compiled,
            )

    def teacher_logits(
        self, x: torch.Tensor, autocast: Callable[[], ContextManager] = contextlib.nullcontext
    ) -> torch.Tensor:
        """The teacher's logits on ``x``: eval mode, no gradients, the student's autocast."""
        with torch.no_grad(), autocast():
            return self.teacher(x)

    def forward(
        self, model: nn.Module, batch: Any, autocast: Callable[[], ContextManager] = contextlib.nullcontext
    ) -> dict:
        out = self.inner.forward(model, batch, autocast)
        hard = out["loss"]
        soft = kd_soft(out["output"].float(), self.teacher_logits(batch[0], autocast), self.temperature)
        loss = kd_combine(soft, hard, temperature=self.temperature, alpha=self.alpha)
        terms = dict(out.get("terms") or {"ce": hard})
        terms["kd"] = self.temperature**2 * soft.detach()
        return {**out, "loss": loss, "terms": terms}
