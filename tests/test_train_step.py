"""The task owns the step (Task.forward -> dict), the step's sums stay on the device until a
sync, a non-finite loss is caught at the next sync with last.pt kept finite, and distillation
is a task around another task."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skiplab.train import Callback, NonFiniteLossError, TrainConfig, Trainer, fit, load_checkpoint
from skiplab.train.distill import DistillTask, kd_loss
from skiplab.train.seg_losses import confusion_counts
from skiplab.train.tasks import ClassifyTask

TINY = dict(
    data="synthetic:shapes-128,test=32",
    model="cifar_fast_resnet",
    model_kwargs={"widths": [8, 16, 16]},
    epochs=1,
    batch_size=16,
    eval_batch_size=32,
    progress=False,
    lr=0.2,
    warmup_epochs=0.5,
    compile="off",
    precision="fp32",
    channels_last=False,
    deterministic=True,
)


def tiny(tmp_path=None, **overrides) -> TrainConfig:
    out = {"out": str(tmp_path / "run")} if tmp_path is not None else {"save": False}
    return TrainConfig.from_dict({**TINY, **out, **overrides})


class Records(Callback):
    def __init__(self):
        self.steps = []

    def on_steps(self, trainer, steps):
        self.steps += steps


def test_device_sums_equal_a_per_step_host_accumulation(monkeypatch):
    records = Records()
    trainer = Trainer(tiny(log_every=1000), [records])
    per_step = []
    step_sums = trainer.task.step_sums

    def recorded(out):  # the reference: each step's sums brought to the host at once
        sums = step_sums(out)
        per_step.append(sums.tolist())
        return sums

    monkeypatch.setattr(trainer.task, "step_sums", recorded)
    batches = list(trainer.train_loader)[:6]
    for x, y in batches:
        trainer.train_step(x, y)
        trainer.batch_in_epoch += 1
    assert trainer.sums.unsynced == 6 and records.steps == []  # nothing synced yet
    expected = [0.0] * len(per_step[0])
    for sums in per_step:
        expected = [a + b for a, b in zip(expected, sums)]
    assert trainer.epoch_sums == expected  # exactly: float64 both ways
    assert trainer.sums.unsynced == 0
    assert [r.step for r in records.steps] == [1, 2, 3, 4, 5, 6]
    assert [r.batch for r in records.steps] == [1, 2, 3, 4, 5, 6]
    assert [r.sums for r in records.steps] == per_step
    assert trainer.loss == per_step[-1][0] / per_step[-1][-1]
    metrics = trainer.task.train_metrics(expected)
    assert trainer.sums.metrics(trainer.task.train_metrics) == metrics  # one term: no columns


def test_log_every_syncs_and_steplog_gets_every_step(tmp_path):
    records = Records()
    fit(tiny(tmp_path, log_every=3, step_log=True, epochs=2), [records])
    assert [r.step for r in records.steps] == list(range(1, 17))
    import csv

    with open(tmp_path / "run" / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 17))
    assert [float(r["loss"]) for r in rows] == pytest.approx([r.loss for r in records.steps])
    assert all(0 <= float(r["error"]) <= 1 for r in rows)


class Poison(Callback):
    """Corrupts a weight after step 5, as an exploding update would."""

    def on_step_end(self, trainer):
        if trainer.step == 5:
            with torch.no_grad():
                trainer.model.fc.weight.fill_(float("inf"))


def test_non_finite_loss_is_caught_at_the_next_sync_and_last_pt_stays_finite(tmp_path):
    trainer = Trainer(tiny(tmp_path, checkpoint_every=4, log_every=100, checkpoint_minutes=0), [Poison()])
    with pytest.raises(
        NonFiniteLossError,
        match=r"loss is nan at step 5 \(epoch 1, batch 6\) with "
        r"lr 0\.\d+: training stopped \(found at the sync "
        r"after step 8.*last good checkpoint is .*last.pt",
    ) as err:
        trainer.fit()
    trainer.close()
    assert (err.value.step, err.value.last_good) == (5, 4) and trainer.step == 5
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["step"] == 4  # not rewritten at step 8 (the sync that found it)
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    for name, value in trainer.model.state_dict().items():  # the model got last.pt's weights back
        assert torch.equal(value, last["model"][name]), name


def test_kd_task_gives_the_loss_the_old_distiller_gave():
    torch.manual_seed(0)
    student, teacher = nn.Linear(12, 5), nn.Linear(12, 5).eval()
    x, y = torch.randn(8, 12), torch.randint(0, 5, (8,))
    inner = ClassifyTask(TrainConfig(label_smoothing=0.1))
    inner.train_criterion = inner.criterion(None)
    task = DistillTask(inner, temperature=3.0, alpha=0.7, teacher=teacher)
    out = task.forward(student, (x, y))
    with torch.no_grad():
        t_logits = teacher(x)
    old = kd_loss(
        student(x).float(), t_logits, y, temperature=3.0, alpha=0.7, hard_loss=inner.train_criterion
    )  # what Distiller computed in the loop
    assert torch.equal(out["loss"], old)
    assert set(out["terms"]) == {"ce", "kd"}
    ce = inner.train_criterion(student(x), y)
    assert torch.equal(out["terms"]["ce"], ce)
    assert out["loss"].item() == pytest.approx(0.7 * out["terms"]["kd"].item() + 0.3 * ce.item(), rel=1e-6)
    out["loss"].backward()  # gradients reach the student only
    assert student.weight.grad is not None and teacher.weight.grad is None
    assert task.best_metric == inner.best_metric and task.train_metrics is not None  # delegated


def test_fit_with_a_teacher_adds_kd_and_ce_columns(tmp_path):
    fit(tiny(tmp_path / "teacher", eval_split="none"))
    teacher = str(tmp_path / "teacher" / "run" / "checkpoints" / "last.pt")
    result = fit(
        tiny(tmp_path / "student", teacher=teacher, kd_alpha=0.5, kd_temperature=2.0, keep_steps=[3], eval_split="none")
    )
    m = result.metrics
    assert math.isfinite(m["train_kd"]) and math.isfinite(m["train_ce"])
    assert m["train_loss"] == pytest.approx(0.5 * m["train_kd"] + 0.5 * m["train_ce"], rel=1e-5)
    state = load_checkpoint(tmp_path / "student" / "run" / "checkpoints" / "step-3.pt")
    assert set(state["epoch_terms"]) == {"ce", "kd"}  # mid-epoch: a resume continues them


def test_confusion_counts_without_checks_match_the_checked_ones():
    torch.manual_seed(0)
    logits, target = torch.randn(3, 4, 9, 9), torch.randint(0, 4, (3, 9, 9))
    assert torch.equal(confusion_counts(logits, target, 4, check=False), confusion_counts(logits, target, 4))
    target[0, 0, :3] = 255
    assert torch.equal(
        confusion_counts(logits, target, 4, ignore_index=255, check=False),
        confusion_counts(logits, target, 4, ignore_index=255),
    )


# ---- task options: owned by tasks, given flat (old recipes) or grouped ------------------------
def test_task_options_grouped_or_flat_are_the_same_config():
    flat = TrainConfig.from_dict({"teacher": "t.pt", "kd_alpha": 0.5, "label_smoothing": 0.1})
    grouped = TrainConfig.from_dict({"task_options": {"teacher": "t.pt", "kd_alpha": 0.5, "label_smoothing": 0.1}})
    assert flat == grouped and grouped.kd_alpha == 0.5
    options = grouped.task_options()
    assert options["kd_alpha"] == 0.5 and options["label_smoothing"] == 0.1
    assert "lr" not in options and "tile_size" not in options
    assert "kd_alpha" not in TrainConfig().task_options()  # no teacher: no distill options
    assert set(TrainConfig(task="segment").task_options("segment")) == {"tile_size", "loss"}
    assert ClassifyTask(grouped).options == options
    with pytest.raises(ValueError, match=r"task_options key 'lr' is a general key"):
        TrainConfig.from_dict({"task_options": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"kd_alpha is given twice"):
        TrainConfig.from_dict({"kd_alpha": 0.4, "task_options": {"kd_alpha": 0.5}})


def test_options_of_another_task_are_refused():
    from skiplab.train.tasks import make_task

    with pytest.raises(
        ValueError,
        match=r"alternate_flip, tta_translate: classification options, "
        r"not for task 'segment'",
    ):
        make_task(TrainConfig(task="segment", data="synthetic:cells", tta_translate=True, alternate_flip=True))
    with pytest.raises(
        ValueError,
        match=r"tile_stride: options of task reconstruct, not for "
        r"task 'classify'",
    ):
        make_task(TrainConfig(tile_stride=8))


def test_a_flag_overrides_a_grouped_option_of_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task_options: {kd_alpha: 0.5, label_smoothing: 0.1}\nlr: 0.2\n")
    config = TrainConfig.from_yaml(recipe, {"kd_alpha": 0.7})
    assert (config.kd_alpha, config.label_smoothing, config.lr) == (0.7, 0.1, 0.2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (host syncs are a GPU cost)")
@pytest.mark.parametrize("task", ["classify", "segment"])
def test_the_cuda_step_does_not_sync_with_the_host_between_logs(task):
    data = {"classify": {}, "segment": dict(task="segment", data="synthetic:cells-64", model="unet", model_kwargs={})}[
        task
    ]
    trainer = Trainer(tiny(device="cuda", precision="bf16", log_every=1000, deterministic=False, **data))
    batches = list(trainer.train_loader)[:4]
    trainer.train_step(*batches[0])  # first-step allocations, lazy inits
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x, y in batches[1:]:
            trainer.train_step(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.sums.unsynced == 4 and math.isfinite(trainer.loss)
