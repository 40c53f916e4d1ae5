"""skiplab.train building blocks: config validation, schedules, optimiser groups, EMA,
Lookahead, precision choice and checkpoint files (whole runs: see test_train_loop.py)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest
import torch
import yaml

import skiplab
from skiplab.train import (
    CheckpointMismatchError,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from skiplab.train.allocator import retain_freed_memory
from skiplab.train.config import field_docs
from skiplab.train.ema import ModelEMA
from skiplab.train.lookahead import Lookahead
from skiplab.train.muon import Muon, orthogonalize
from skiplab.train.optim import build_optimizer, param_groups
from skiplab.train.precision import Precision, cpu_supports_bf16, resolve_precision, should_compile
from skiplab.train.schedule import LRSchedule

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# -- config -------------------------------------------------------------------------------
def test_unknown_key_is_named_with_suggestions_from_names_and_aliases():
    with pytest.raises(ValueError, match=r"unknown config key 'lerning_rate'; did you mean 'lr'\?") as info:
        TrainConfig.from_dict({"lerning_rate": 0.1})
    assert "batch_size" not in str(info.value)  # not every key
    with pytest.raises(ValueError, match=r"'num-epochs'.*did you mean 'epochs'"):
        TrainConfig.from_dict({"num-epochs": 3})
    with pytest.raises(ValueError, match=r"'epoch'.*did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("lr", -0.1, r"'lr' must be > 0, got -0.1"),
        ("lr", "fast", r"'lr' must be float, got 'fast'"),
        ("epochs", 2.5, r"'epochs' must be int"),
        ("flip", "yes", r"'flip' must be bool"),
        ("optimizer", "lamb", r"'optimizer' must be one of 'sgd', 'adamw', 'muon', got 'lamb'"),
        ("precision", "int8", r"'precision' must be one of 'auto', 'bf16', 'fp16', 'fp32'"),
        ("weight_decay", -1e-4, r"'weight_decay' must be >= 0"),
        ("label_smoothing", 1.0, r"label_smoothing must be in \[0, 1\)"),
        ("lr", float("nan"), r"'lr' must be finite"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(key, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({key: value})


def test_cross_field_checks():
    with pytest.raises(ValueError, match="multistep' needs milestones"):
        TrainConfig.from_dict({"schedule": "multistep"})
    with pytest.raises(ValueError, match="milestones must be increasing"):
        TrainConfig.from_dict({"schedule": "multistep", "milestones": [48000, 32000]})
    with pytest.raises(ValueError, match="resume needs out"):
        TrainConfig.from_dict({"resume": True})


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("lr: 0.1\nepochs: 5\nmilestones: [2, 4]\nschedule: multistep\n")
    config = TrainConfig.from_yaml(path, {"epochs": 30, "lr": 0.2})
    assert (config.epochs, config.lr, config.milestones) == (30, 0.2, [2, 4])
    assert TrainConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
    assert TrainConfig.from_dict({"lr": 1}).lr == 1.0 and isinstance(TrainConfig.from_dict({"lr": 1}).lr, float)


def test_every_field_is_documented():
    docs = field_docs()
    assert len(docs) >= 50
    assert all(len(doc) > 10 for doc in docs.values()), [k for k, d in docs.items() if len(d) <= 10]


@pytest.mark.parametrize("name", ["he2015_cifar", "preact_cifar", "wrn_cifar", "imagenet_resnet", "fast_cifar"])
def test_recipes_are_valid_and_every_field_is_commented(name):
    path = CONFIGS / f"{name}.yaml"
    config = TrainConfig.from_yaml(path)
    assert skiplab.models.is_model(config.model), config.model
    keys = yaml.safe_load(path.read_text())
    for line in path.read_text().splitlines():
        key = line.split(":")[0].strip()
        if key in keys:
            assert "#" in line, f"{name}.yaml: field {key!r} has no comment"


def test_he2015_recipe_is_the_paper_setup():
    c = TrainConfig.from_yaml(CONFIGS / "he2015_cifar.yaml")
    assert (c.batch_size, c.lr, c.momentum, c.weight_decay, c.steps) == (128, 0.1, 0.9, 1e-4, 64000)
    assert (c.schedule, c.milestones, c.milestone_unit, c.gamma) == ("multistep", [32000, 48000], "step", 0.1)
    assert (c.crop_padding, c.flip, c.val_size, c.eval_split) == (4, True, 0, "test")


# -- schedules ----------------------------------------------------------------------------
def _schedule(**kw) -> LRSchedule:
    config = TrainConfig.from_dict(kw)
    return LRSchedule(config, steps_per_epoch=100, total_steps=kw.get("steps") or 100 * config.epochs)


def test_multistep_he2015_divides_by_ten_at_32k_and_48k():
    s = _schedule(lr=0.1, steps=64000, schedule="multistep", milestones=[32000, 48000], milestone_unit="step")
    assert [s(i) for i in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_multistep_in_epochs_with_gamma():
    s = _schedule(lr=0.1, epochs=200, schedule="multistep", milestones=[60, 120, 160], gamma=0.2)
    assert s(5999) == pytest.approx(0.1) and s(6000) == pytest.approx(0.02)
    assert s(16000) == pytest.approx(0.1 * 0.2**3)


def test_cosine_with_linear_warmup():
    s = _schedule(lr=0.4, epochs=10, schedule="cosine", warmup_epochs=1, warmup_start_factor=0.1)
    assert s(0) == pytest.approx(0.04)
    assert s(50) == pytest.approx(0.04 + 0.36 * 0.5)
    assert s(100) == pytest.approx(0.4)
    assert s(100 + 450) == pytest.approx(0.2)  # half-way through the cosine
    assert s(1000) == pytest.approx(0.0, abs=1e-12)


def test_onecycle_rises_then_falls_linearly():
    s = _schedule(lr=1.0, epochs=10, schedule="onecycle", warmup_epochs=2, warmup_start_factor=0.2, min_lr_factor=0.1)
    assert s(0) == pytest.approx(0.2) and s(200) == pytest.approx(1.0)
    assert s(600) == pytest.approx(0.55) and s(1000) == pytest.approx(0.1)
    assert max(s(i) for i in range(1000)) == pytest.approx(1.0)


def test_he2015_resnet110_error_gated_warmup():
    s = _schedule(lr=0.1, epochs=10, schedule="constant", error_warmup_lr=0.01, error_warmup_until=0.8)
    for _ in range(10):
        s.observe_train_error(0.9)
    assert s(10) == 0.01
    restored = _schedule(lr=0.1, epochs=10, schedule="constant", error_warmup_lr=0.01)
    while not s.error_warmup_done:
        s.observe_train_error(0.5)
    assert s(11) == pytest.approx(0.1)
    restored.load_state_dict(s.state_dict())
    assert restored(12) == pytest.approx(0.1)


# -- optimiser ----------------------------------------------------------------------------
def test_no_weight_decay_on_norm_and_bias():
    model = skiplab.create_model("cifar_resnet20")
    groups = param_groups(model, 5e-4)
    decayed, free = groups
    assert all(p.ndim == 4 or p.ndim == 2 for p in decayed["params"]) and decayed["weight_decay"] == 5e-4
    assert all(p.ndim == 1 for p in free["params"]) and free["weight_decay"] == 0.0
    n_bn = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert len(free["params"]) == 2 * n_bn + 1  # BN weight and bias, fc bias
    assert len(param_groups(model, 5e-4, decay_norm_and_bias=True)) == 1


def test_norm_bias_lr_scale_gives_bn_biases_their_own_group_and_lr():
    model = skiplab.create_model("cifar_resnet20")
    groups = param_groups(model, 5e-4, norm_bias_lr_scale=64.0)
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 64.0]
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in groups[2]["params"]} == bn_biases and groups[2]["weight_decay"] == 0.0
    assert id(model.fc.bias) in {id(p) for p in groups[1]["params"]}  # not a norm bias
    # decayed biases keep the decay per step: lr x 64 times weight decay / 64
    assert param_groups(model, 5e-4, True, 64.0)[1]["weight_decay"] == pytest.approx(5e-4 / 64)
    # the loop multiplies the scheduled lr by each group's scale
    trainer = Trainer(
        TrainConfig.from_dict(
            dict(
                data="synthetic:shapes-64,test=16",
                model="cifar_resnet20",
                batch_size=16,
                progress=False,
                compile="off",
                precision="fp32",
                lr=0.1,
                schedule="constant",
                norm_bias_lr_scale=64.0,
                save=False,
            )
        )
    )
    x, y = next(iter(trainer.train_loader))
    trainer.train_step(x, y)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.1, 0.1, 6.4])


def test_lookahead_averages_copies_back_and_ramps_up():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    lookahead = Lookahead(model, every=5, decay=0.8, total_steps=100)
    assert lookahead.rho(0) == 0 and lookahead.rho(50) == pytest.approx(0.8 / 8)
    assert lookahead.rho(100) == pytest.approx(0.8) and lookahead.rho(200) == pytest.approx(0.8)
    slow = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    lookahead.step(model, 4)  # not a sync step
    assert torch.equal(lookahead.slow["0.weight"], slow)
    lookahead.step(model, 100)  # rho = 0.8
    expected = 0.8 * slow + 0.2 * (slow + 1)
    assert torch.allclose(model[0].weight, expected) and torch.allclose(lookahead.slow["0.weight"], expected)
    assert "1.num_batches_tracked" not in lookahead.slow  # integer buffers are left alone


def test_build_optimizer_kinds():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    sgd = build_optimizer(model, TrainConfig.from_dict({"nesterov": True, "momentum": 0.9}))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    adamw = build_optimizer(model, TrainConfig.from_dict({"optimizer": "adamw", "betas": [0.9, 0.95]}))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.9, 0.95)


@pytest.mark.parametrize("shape", [(48, 216), (300, 40)])
def test_orthogonalize_evens_out_the_singular_values(shape):
    g = torch.randn(shape) @ torch.diag(torch.logspace(-1, 1, shape[1]))  # condition ~100
    s, s_in = torch.linalg.svdvals(orthogonalize(g).float()), torch.linalg.svdvals(g)
    assert s.max() < 1.5 and s.median() > 0.5  # Jordan: mostly in (0.5, 1.5) after 3 steps
    assert s.max() / s.min() < min(10.0, s_in.max() / s_in.min() / 3)
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    cosine = torch.nn.functional.cosine_similarity(orthogonalize(g).float().flatten(), (u @ vh).flatten(), 0)
    assert cosine > 0.9  # it approximates U V^T
    with pytest.raises(ValueError, match="matrix"):
        orthogonalize(torch.randn(2, 3, 4))


def test_muon_sgd_groups_step_exactly_like_torch_sgd():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    muon = Muon(a.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    sgd = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        x = torch.randn(4, 5)
        for model, opt in ((a, muon), (b, sgd)):
            opt.zero_grad()
            model(x).square().sum().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_muon_step_normalises_the_filters_and_moves_them_orthogonally():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3)
    opt = Muon([dict(params=[conv.weight], use_muon=True)], lr=0.05, momentum=0.0)
    conv.weight.grad = torch.randn_like(conv.weight)
    before = conv.weight.detach() * 16**0.5 / conv.weight.detach().norm()
    opt.step()
    step = (before - conv.weight.detach()).reshape(16, -1) / 0.05
    s = torch.linalg.svdvals(step)
    assert s.min() > 0.3 and s.max() < 1.5
    with pytest.raises(ValueError, match="1-d parameters"):
        Muon([dict(params=[conv.bias], use_muon=True)], lr=0.1)


def test_build_optimizer_muon_takes_the_conv_filters():
    model = skiplab.create_model("cifar_resnet20")
    config = TrainConfig.from_dict(
        dict(optimizer="muon", lr=0.1, muon_lr=0.2, muon_momentum=0.6, nesterov=True, norm_bias_lr_scale=64.0)
    )
    opt = build_optimizer(model, config)
    assert isinstance(opt, Muon)
    muon = [g for g in opt.param_groups if g["use_muon"]]
    assert len(muon) == 1 and muon[0]["lr_scale"] == pytest.approx(2.0) and muon[0]["momentum"] == 0.6
    filters = [p for p in model.parameters() if p.dim() == 4]
    assert {id(p) for p in muon[0]["params"]} == {id(p) for p in filters}
    others = [p for g in opt.param_groups if not g["use_muon"] for p in g["params"]]
    assert len(others) + len(filters) == len(list(model.parameters()))
    assert id(model.fc.weight) in {id(p) for p in others}
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 1.0, 64.0, 2.0]


# -- EMA and precision --------------------------------------------------------------------
def test_ema_follows_the_lerp_rule_with_warmup():
    model = torch.nn.BatchNorm1d(2)
    ema = ModelEMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.num_batches_tracked.fill_(7)
    ema.update(model)  # d = min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.module.weight, torch.full((2,), d * 1 + (1 - d) * 2))
    assert ema.module.num_batches_tracked.item() == 7
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_precision_choice():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_supports_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert Precision("fp16", cpu).grad_scaler().is_enabled()
    assert not Precision("bf16", cpu).grad_scaler().is_enabled()
    with Precision("bf16", cpu).autocast():
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("half", cpu)


def test_compile_auto_policy():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    long = dict(deterministic=False, total_steps=1000, image_size=32)
    resnet, fast = skiplab.create_model("cifar_resnet20"), skiplab.create_model("cifar_fast_resnet_s")
    assert should_compile("auto", cpu, **long, model=resnet)
    assert not should_compile("auto", cpu, **long, model=fast)  # max-pool: eager is faster
    assert should_compile("auto", cuda, **long, model=fast)
    assert not should_compile("auto", cpu, **dict(long, image_size=224), model=resnet)
    assert not should_compile("auto", cpu, **dict(long, total_steps=100), model=resnet)
    assert not should_compile("auto", cuda, **dict(long, deterministic=True), model=resnet)
    assert should_compile("on", cpu, **long, model=fast) and not should_compile("off", cuda, **long)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retain_memory_stops_the_page_faults_of_big_tensors():
    """Without it, glibc maps every tensor above 32 MiB afresh: 10,000 page faults each
    (a process that never called it measures 102,000 for these ten)."""

    def faults_of_10_tensors() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            torch.empty(40 << 20, dtype=torch.uint8).fill_(1)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert retain_freed_memory() and retain_freed_memory()  # idempotent
    faults_of_10_tensors()
    assert faults_of_10_tensors() < 1000
    # off for library calls (process-wide), on under the skiplab command
    assert TrainConfig().retain_memory is None and "page faults" in field_docs()["retain_memory"]


# -- checkpoints --------------------------------------------------------------------------
def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


class _Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_load_refuses_pickled_code_and_garbage(tmp_path):
    torch.save({"model": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(
        ValueError,
        match=r"evil.pt holds objects that are not tensors \(a pickled "
        r"(builtins\.)?print\).*never .*weights_only=False",
    ):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "broken.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="broken.pt was not written by torch.save"):
        load_checkpoint(tmp_path / "broken.pt")
    (tmp_path / "text.pt").write_text("101 dalmatians\n")
    with pytest.raises(ValueError, match="text.pt is a text file .*not a checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    save_checkpoint({"w": torch.ones(1000)}, tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cut.pt is truncated or damaged \(500 bytes"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_other_architecture_lists_mismatched_tensors():
    small = skiplab.create_model("cifar_resnet20").state_dict()
    bigger = skiplab.create_model("cifar_resnet32")
    with pytest.raises(CheckpointMismatchError) as info:
        load_model_state(bigger, small)
    text = str(info.value)
    assert "72 tensors missing from the checkpoint" in text and "layer1.3.conv1.weight" in text
    assert len(text.splitlines()) == 1
    wide = skiplab.create_model("cifar_resnet20", num_classes=100)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"the checkpoint has 10 classes, the model 100; "
        r"2 tensors of another shape \(fc.weight: checkpoint \(10, 64\) vs model \(100, 64\)",
    ):
        load_model_state(wide, small)


# -- test-time augmentation -----------------------------------------------------------------
def test_tta_averages_mirror_and_one_pixel_shifts():
    from skiplab.train import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4))
    x, y = torch.randn(5, 3, 6, 6), torch.arange(5) % 4
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = padded[..., :6, :6], padded[..., 2:, 2:]  # one pixel each way, reflected
    with torch.no_grad():

        def mirror(v):
            return 0.5 * (model(v) + model(v.flip(3)))

        expected = 0.5 * mirror(x) + 0.25 * (mirror(shifted[0]) + mirror(shifted[1]))
        plain = model(x)
    result = evaluate(model, [(x, y)], tta_flip=True, tta_translate=True)
    assert result["loss"] == pytest.approx(torch.nn.functional.cross_entropy(expected, y).item(), rel=1e-5)
    assert evaluate(model, [(x, y)])["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(plain, y).item(), rel=1e-5
    )
