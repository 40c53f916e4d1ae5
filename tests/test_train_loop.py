"""skiplab.train.fit end to end on a tiny synthetic task: run directory, callbacks, NaN stop,
exact resume in-process, the train/eval CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

import pytest
import torch
import yaml

from skiplab.cli import main
from skiplab.models import create_model
from skiplab.train import (
    Callback,
    CheckpointMismatchError,
    NonFiniteLossError,
    TrainConfig,
    evaluate_checkpoint,
    fit,
    load_checkpoint,
    save_checkpoint,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# 8 steps per epoch; fp32 NCHW is the fastest path for a net this small
TINY = dict(
    data="synthetic:shapes-128,test=32",
    model="cifar_fast_resnet",
    model_kwargs={"widths": [8, 16, 16]},
    epochs=2,
    batch_size=16,
    eval_batch_size=32,
    progress=False,
    lr=0.2,
    warmup_epochs=0.5,
    compile="off",
    precision="fp32",
    channels_last=False,
)
STEPS_PER_EPOCH = 128 // 16


def tiny(tmp_path=None, **overrides) -> TrainConfig:
    out = {"out": str(tmp_path / "run")} if tmp_path is not None else {"save": False}
    return TrainConfig.from_dict({**TINY, **out, **overrides})


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_fit_writes_the_run_directory(tmp_path, capsys):
    defaults = dict(checkpoint_every=3, epochs=3, precision="auto", channels_last=True)
    result = fit(tiny(tmp_path, **defaults))
    run = tmp_path / "run"
    assert result.run_dir == run
    saved = TrainConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    assert saved == tiny(tmp_path, **defaults)
    rows = read_metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [8, 16, 24]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "lr"):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])  # it learns
    assert list(run.glob("events.out.tfevents.*"))
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert (last["step"], last["epoch"], last["batch_in_epoch"]) == (24, 3, 0)
    assert best["best_acc"] == max(float(r["val_acc"]) for r in rows)
    assert f"outputs in {run}" in capsys.readouterr().out
    assert result.metrics["step"] == 24 and result.model is not None


class Recorder(Callback):
    def __init__(self):
        self.calls = []
        self.grad_norms = []

    def on_fit_start(self, trainer):
        self.calls.append("start")

    def on_after_backward(self, trainer):
        self.grad_norms.append(sum(p.grad.norm() ** 2 for p in trainer.model.parameters() if p.grad is not None).item())

    def on_step_end(self, trainer):
        self.calls.append(("step", trainer.step, round(trainer.loss, 6)))

    def on_epoch_end(self, trainer, metrics):
        trainer.log({"my_metric": trainer.epoch + 0.5})
        self.calls.append(("epoch", trainer.epoch, "val_acc" in metrics))

    def on_fit_end(self, trainer):
        self.calls.append("end")


def test_callbacks_see_every_step_and_can_log_columns(tmp_path):
    rec = Recorder()
    fit(tiny(tmp_path), callbacks=[rec])
    steps = [c for c in rec.calls if c[0] == "step"]
    assert rec.calls[0] == "start" and rec.calls[-1] == "end"
    assert [s[1] for s in steps] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert len(rec.grad_norms) == 2 * STEPS_PER_EPOCH and all(g > 0 for g in rec.grad_norms)
    assert [c for c in rec.calls if c[0] == "epoch"] == [("epoch", 0, True), ("epoch", 1, True)]
    assert [r["my_metric"] for r in read_metrics(tmp_path / "run")] == ["0.5", "1.5"]


class Poison(Callback):
    """Corrupts a weight after step 5, as an exploding update would."""

    def on_step_end(self, trainer):
        if trainer.step == 5:
            with torch.no_grad():
                trainer.model.fc.weight.fill_(float("inf"))


def test_nan_loss_stops_naming_step_and_lr_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(
        NonFiniteLossError,
        match=r"loss is nan at step 5 \(epoch 1, batch 6\) with "
        r"lr 0\.\d+.*last good checkpoint is .*last.pt",
    ):
        fit(tiny(tmp_path, checkpoint_every=2), callbacks=[Poison()])
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["step"] == 4
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())


def test_diverging_lr_is_caught_before_the_weights_are_ruined(tmp_path):
    config = tiny(tmp_path, lr=1e30, warmup_epochs=0, schedule="constant", precision="fp32")
    with pytest.raises(NonFiniteLossError, match=r"at step \d+ .* with lr 1e\+30"):
        fit(config)


class Crash(Exception):
    pass


class CrashAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            raise Crash()


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        dict(ema_decay=0.9, optimizer="adamw", lr=0.01, label_smoothing=0.1, grad_clip=1.0),
        # airbench's parts: Lookahead, 64x BN-bias lr, alternating flips; then fast_cifar's Muon
        dict(
            lookahead_every=2,
            lookahead_decay=0.77,
            norm_bias_lr_scale=64.0,
            nesterov=True,
            lr=0.02,
            alternate_flip=True,
            crop_padding=2,
            pad_mode="reflect",
        ),
        dict(optimizer="muon", muon_lr=0.1, nesterov=True, lr=0.02),
    ],
    ids=["ema-adamw", "lookahead", "muon"],
)
def test_resume_mid_epoch_is_bit_identical(tmp_path, recipe):
    """In-process version of the SIGKILL test (test_train_resume_kill.py), with EMA, AdamW,
    label smoothing and clipping, with Lookahead, or with Muon: crash at step 11, resume from
    the step-9 checkpoint, end exactly where an uninterrupted run ends."""
    common = dict(deterministic=True, checkpoint_every=3, **recipe)
    reference = fit(tiny(tmp_path / "a", **common))
    with pytest.raises(Crash):
        fit(tiny(tmp_path / "b", **common), callbacks=[CrashAt(11)])
    state = load_checkpoint(tmp_path / "b" / "run" / "checkpoints" / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (9, 1, 1)  # mid-epoch
    resumed = fit(tiny(tmp_path / "b", resume=True, **common))
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    if reference.ema_model is not None:
        assert all(
            torch.equal(a, b)
            for a, b in zip(reference.ema_model.state_dict().values(), resumed.ema_model.state_dict().values())
        )
    ref_rows = read_metrics(tmp_path / "a" / "run")
    res_rows = read_metrics(tmp_path / "b" / "run")
    assert [r["train_loss"] for r in ref_rows] == [r["train_loss"] for r in res_rows]


@pytest.mark.slow
def test_existing_run_needs_resume_and_same_model(tmp_path):
    fit(tiny(tmp_path, epochs=1))
    with pytest.raises(ValueError, match="pass resume"):
        fit(tiny(tmp_path, epochs=2))
    with pytest.raises(ValueError, match=r"the config changed in \['model_kwargs'\]"):
        fit(tiny(tmp_path, epochs=2, resume=True, model_kwargs={"widths": [8, 16, 32]}))
    result = fit(tiny(tmp_path, epochs=2, resume=True))  # continues with epoch 2
    assert result.metrics["epoch"] == 2 and len(read_metrics(tmp_path / "run")) == 2


def test_bf16_and_fp32_agree_within_bf16_tolerance():
    one = dict(epochs=1, eval_split="none")
    fp32 = fit(tiny(None, precision="fp32", **one)).metrics
    bf16 = fit(tiny(None, precision="bf16", **one)).metrics
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=0.02)


@pytest.mark.slow
def test_grad_checkpointing_gives_the_same_weights():
    one = dict(epochs=1, eval_split="none")
    plain = fit(tiny(None, **one)).model
    ckpt = fit(tiny(None, grad_checkpointing=True, **one)).model
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_cli_train_then_eval(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "epochs": 5}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(recipe), "--epochs", "1", "--lr", "0.1", "--out", str(out)]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.1
    assert "final: epoch 1" in capsys.readouterr().out
    with pytest.MonkeyPatch.context() as env:  # torchrun's other ranks leave it to rank 0
        env.setenv("RANK", "1")
        assert main(["train", "--config", str(recipe), "--epochs", "1", "--out", str(tmp_path / "r1")]) == 0
        assert "final:" not in capsys.readouterr().out
    assert main(["eval", str(out / "checkpoints" / "last.pt")]) == 0
    text = capsys.readouterr().out
    assert "cifar_fast_resnet on synthetic:shapes-128" in text and "(test split, 32 images" in text
    result = evaluate_checkpoint(out / "checkpoints" / "last.pt")
    assert 0 <= result["acc"] <= 1 and result["images"] == 32


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--lr", "-1"]) == 2
    assert "'lr' must be > 0" in capsys.readouterr().err
    fit(tiny(tmp_path, epochs=1))
    assert main(["eval", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--model", "cifar_resnet20"]) == 2
    err = capsys.readouterr().err
    assert "does not fit CifarResNet" in err and "missing from the checkpoint" in err
    with pytest.raises(CheckpointMismatchError):
        evaluate_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", model="cifar_resnet20")


# -- eval as the run evaluated; command-line lengths; --skip-bad -----------------------------
def test_eval_reproduces_the_runs_final_evaluation_with_its_tta(tmp_path, capsys):
    result = fit(tiny(tmp_path, epochs=1, val_size=32, tta_flip=True, tta_translate=True))
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    scores = evaluate_checkpoint(ckpt)
    assert scores["split"] == "val" and scores["tta_flip"] and scores["tta_translate"]
    assert (scores["loss"], scores["acc"]) == (result.metrics["val_loss"], result.metrics["val_acc"])
    plain = evaluate_checkpoint(ckpt, tta_flip=False, tta_translate=False)
    assert plain["loss"] != scores["loss"]
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--no-tta", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["loss"] == plain["loss"] and not shown["tta_flip"] and not shown["tta_translate"]


def test_a_length_on_the_command_line_replaces_the_recipes_other(capsys):
    recipe = str(CONFIGS / "he2015_cifar.yaml")  # a steps recipe (64,000)
    assert main(["train", "--config", recipe, "--epochs", "1", "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["epochs"], shown["steps"]) == (1, 0) and shown["retain_memory"] is True
    assert main(["train", "--config", recipe, "--steps", "50", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["steps"] == 50


def test_eval_skip_bad(tmp_path, capsys):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    (tmp_path / "imgs" / "b" / "bad.png").write_bytes(b"not a png")
    kwargs = {"widths": [8, 16, 16]}
    save_checkpoint(
        {
            "config": {
                "model": "cifar_fast_resnet",
                "model_kwargs": kwargs,
                "precision": "fp32",
                "data": f"folder:{tmp_path / 'imgs'}",
                "channels_last": False,
            },
            "model": create_model("cifar_fast_resnet", num_classes=2, **kwargs).state_dict(),
        },
        tmp_path / "ck.pt",
    )
    args = ["eval", str(tmp_path / "ck.pt"), "--split", "train", "--json"]
    assert main(args) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main([*args, "--skip-bad"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 4


def test_stripped_checkpoint_evaluates_the_same_and_refuses_resume(tmp_path):
    """strip_training_state drops the optimiser and RNG state, keeps what eval reads (same
    accuracy), is smaller, and --resume on it fails with a one-line reason."""
    from skiplab.train import strip_training_state

    fit(tiny(tmp_path, epochs=1))
    full = tmp_path / "run" / "checkpoints" / "last.pt"
    stripped = tmp_path / "stripped" / "checkpoints" / "last.pt"
    save_checkpoint(strip_training_state(load_checkpoint(full)), stripped)
    state = load_checkpoint(stripped)
    assert state["stripped"] and "optimizer" not in state and "rng" not in state
    assert stripped.stat().st_size < full.stat().st_size
    assert evaluate_checkpoint(stripped)["loss"] == evaluate_checkpoint(full)["loss"]
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(stripped.read_bytes())
    with pytest.raises(ValueError, match="stripped checkpoint"):
        fit(tiny(tmp_path, epochs=2, resume=True))
    with pytest.raises(ValueError, match="no 'model'"):
        strip_training_state({"config": {}})
