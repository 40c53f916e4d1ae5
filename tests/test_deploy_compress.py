"""Structured pruning (option A and B ResNets), pruned checkpoints that reload and export,
the Hinton KD loss against a hand computation, and `skiplab prune` / `skiplab distill`
end to end on synthetic data."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from skiplab import create_model
from skiplab.blocks import SelectionShortcut, ZeroPadShortcut
from skiplab.models import apply_structure, model_structure, use_selection_shortcuts
from skiplab.train import TrainConfig, fit, load_checkpoint, model_from_checkpoint, save_checkpoint
from skiplab.train.distill import kd_loss

tp = pytest.importorskip("torch_pruning")
from skiplab.deploy.prune import count_macs, prune_to_macs  # noqa: E402

TINY = dict(
    data="synthetic:shapes-128,test=32",
    model="cifar_resnet",
    model_kwargs={"depth": 8},
    batch_size=32,
    steps=4,
    compile="off",
    progress=False,
    tensorboard=False,
    eval_batch_size=64,
)


def test_selection_shortcut_is_exactly_the_zero_pad_shortcut():
    pad = ZeroPadShortcut(16, 32, stride=2)
    sel = SelectionShortcut.from_zero_pad(pad)
    x = torch.randn(3, 16, 8, 8)
    assert torch.equal(sel(x), pad(x))
    net = create_model("cifar_resnet20", zero_init_residual=False).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(images)
        assert use_selection_shortcuts(net) == 2
        assert not any(isinstance(m, ZeroPadShortcut) for m in net.modules())
        torch.testing.assert_close(net(images), before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_pruned_resnet_trains_reloads_and_exports(shortcut, tmp_path):
    net = create_model("cifar_resnet20", shortcut=shortcut)
    example = torch.randn(1, 3, 32, 32)
    macs0, _ = count_macs(net, example)
    report = prune_to_macs(net, example, 2.0)
    macs, params = count_macs(net, example)
    assert report["macs_after"] == macs and report["params_after"] == params
    assert 2.0 <= macs0 / macs <= 2.0 * 1.15  # the requested factor, within one step
    assert params < report["params_before"]
    widths = {s.get("out_channels") for s in report["structure"]["modules"].values()}
    assert widths - {16, 32, 64, 10, None}  # some layers really are narrower

    x = torch.randn(4, 3, 32, 32)
    net.train()
    out = net(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    if shortcut == "A":  # the selection matrix stays fixed (a buffer, not a parameter)
        assert not any("downsample" in n for n, _ in net.named_parameters())

    net.eval()
    path = save_checkpoint(
        {
            "config": {"model": "cifar_resnet20", "model_kwargs": {"shortcut": shortcut}},
            "model": net.state_dict(),
            "structure": model_structure(net),
        },
        tmp_path / "pruned.pt",
    )
    task = SimpleNamespace(create_model=lambda data, name, kw: create_model(name, num_classes=10, **kw))
    again = model_from_checkpoint(load_checkpoint(path), task, None).eval()  # weights_only load
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x))
    assert again.num_features == again.fc.in_features

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    onnx_path = tmp_path / "pruned.onnx"
    torch.onnx.export(
        again,
        (x,),
        str(onnx_path),
        input_names=["images"],
        output_names=["logits"],
        dynamo=True,
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x[:3].numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), again(x[:3]), rtol=1e-4, atol=1e-4)


def test_structure_rejects_another_architecture():
    pruned = create_model("cifar_resnet20")
    prune_to_macs(pruned, torch.randn(1, 3, 32, 32), 1.5)
    with pytest.raises(ValueError, match="has no module|records a"):
        apply_structure(create_model("cifar_fast_resnet"), model_structure(pruned))


def test_taylor_importance_needs_and_uses_gradients():
    net = create_model("cifar_resnet20", shortcut="B")
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    with pytest.raises(ValueError, match="loss_fn"):
        prune_to_macs(net, x[:1], 1.5, importance="taylor")
    report = prune_to_macs(net, x[:1], 1.5, importance="taylor", round_to=4, loss_fn=lambda m: F.cross_entropy(m(x), y))
    assert report["mac_reduction"] >= 1.5
    for spec in report["structure"]["modules"].values():
        if spec["type"] == "Conv2d" and spec["out_channels"] != 10:
            assert spec["out_channels"] % 4 == 0


def test_kd_loss_equals_hand_computed_kl_plus_ce():
    s = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    t = torch.tensor([[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]])
    y = torch.tensor([0, 2])
    T, alpha = 3.0, 0.7
    kl = 0.0
    for i in range(2):
        zs = [math.exp(v / T) for v in s[i].tolist()]
        zt = [math.exp(v / T) for v in t[i].tolist()]
        ps = [v / sum(zs) for v in zs]
        pt = [v / sum(zt) for v in zt]
        kl += sum(a * math.log(a / b) for a, b in zip(pt, ps))
    kl /= 2
    ce = -sum(math.log(math.exp(s[i, y[i]].item()) / sum(math.exp(v) for v in s[i].tolist())) for i in range(2)) / 2
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert kd_loss(s, t, y, temperature=T, alpha=alpha).item() == pytest.approx(expected, rel=1e-6)
    assert kd_loss(s, t, y, temperature=T, alpha=0.0).item() == pytest.approx(ce, rel=1e-6)
    assert kd_loss(t, t, y, temperature=T, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_config_is_checked():
    with pytest.raises(ValueError, match="kd_alpha"):
        TrainConfig.from_dict({"kd_alpha": 1.5})
    with pytest.raises(ValueError, match="classify"):
        TrainConfig.from_dict({"teacher": "t.pt", "task": "segment", "data": "synthetic:cells"})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    fit(TrainConfig.from_dict({**TINY, "out": str(out)}))
    return out / "checkpoints" / "last.pt"


@pytest.mark.slow
def test_cli_prune_then_eval_then_distill(teacher, tmp_path, capsys):
    from skiplab.cli import main

    tiny_flags = [
        "--data",
        TINY["data"],
        "--batch-size",
        "32",
        "--steps",
        "2",
        "--compile",
        "off",
        "--no-progress",
        "--no-tensorboard",
        "--model-kwargs",
        "{depth: 8}",
    ]
    assert (
        main(
            [
                "prune",
                str(teacher),
                "--target-macs",
                "1.5",
                "--finetune",
                "0.5",
                "--out",
                str(tmp_path / "pruned"),
                "--no-progress",
                "--bench-batch",
                "8",
                "--bench-rounds",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "MACs (M)" in text and "images/s" in text
    report = json.loads((tmp_path / "pruned" / "prune_report.json").read_text())
    assert report["mac_reduction"] >= 1.5 and report["after"]["images_per_s"] > 0
    low, high = report["acc_drop_interval"]
    assert low <= report["acc_drop_points"] <= high
    assert report["history"][0]["finetune_steps"] == 2  # half of 128 images / batch 32
    ft = load_checkpoint(tmp_path / "pruned" / "step1" / "finetune" / "checkpoints" / "last.pt")
    assert ft["structure"] == load_checkpoint(tmp_path / "pruned" / "step1" / "pruned.pt")["structure"]
    # the same --out with other settings is refused in one line, not read back as this run
    assert (
        main(
            [
                "prune",
                str(teacher),
                "--target-macs",
                "2",
                "--finetune",
                "0.5",
                "--out",
                str(tmp_path / "pruned"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another pruning run" in err[0] and "speedup 1.5 there, 2.0 here" in err[0]
    assert main(["eval", str(tmp_path / "pruned" / "pruned.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["acc"] == pytest.approx(report["after"]["acc"])
    # the pruned net is a source like any checkpoint: it exports with the pruned widths
    assert (
        main(
            ["export", str(tmp_path / "pruned" / "pruned.pt"), "--format", "pt2", "--out", str(tmp_path / "pruned.pt2")]
        )
        == 0
    )
    assert "parity max relative error" in capsys.readouterr().out

    # distil the (pruned) teacher into a student, beside the same student from scratch
    assert (
        main(
            [
                "distill",
                "--teacher",
                str(tmp_path / "pruned" / "pruned.pt"),
                "--student",
                "cifar_resnet",
                *tiny_flags,
                "--seeds",
                "0",
                "--compare-scratch",
                "--kd-temperature",
                "2",
                "--out",
                str(tmp_path / "kd"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "KD - scratch over 1 seeds" in text
    result = json.loads((tmp_path / "kd" / "distill_report.json").read_text())
    assert result["seeds"] == [0] and len(result["kd"]) == len(result["scratch"]) == 1
    kd_config = (tmp_path / "kd" / "kd_s0" / "config.yaml").read_text()
    assert "teacher: " + str(tmp_path / "pruned" / "pruned.pt") in kd_config
    assert "teacher: null" in (tmp_path / "kd" / "scratch_s0" / "config.yaml").read_text()
    # the runs differ only by the teacher: the scratch twin check accepts it, and a run of
    # another schedule is refused
    from skiplab.deploy.distill import check_twin

    kd = TrainConfig.from_yaml(tmp_path / "kd" / "kd_s0" / "config.yaml")
    check_twin(kd, tmp_path / "kd" / "scratch_s0")
    with pytest.raises(ValueError, match="steps"):
        check_twin(kd.replace(steps=3), tmp_path / "kd" / "scratch_s0")


def test_cli_prune_reports_bad_input_in_one_line(tmp_path, capsys):
    from skiplab.cli import main

    assert main(["prune", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_paired_drop_is_the_mean_difference_with_a_t_interval_over_the_images():
    from skiplab.deploy.prune_run import paired_drop
    from skiplab.evidence import t_quantile

    before = torch.tensor([True] * 8 + [False] * 2)  # 80 %
    after = torch.tensor([True] * 6 + [False] * 4)  # 60 %: two images lost, none gained
    low, high = paired_drop(before, after)
    d = torch.tensor([0.0] * 6 + [100.0] * 2 + [0.0] * 2)
    half = t_quantile(0.975, 9) * d.std().item() / 10**0.5
    assert (low, high) == pytest.approx((20 - half, 20 + half))
    assert paired_drop(before, before) == pytest.approx([0.0, 0.0])


def test_distill_paired_difference_is_the_seed_t_interval():
    from skiplab.deploy.distill import paired_difference
    from skiplab.evidence import seed_interval

    d = paired_difference([81.82, 81.92, 81.64], [81.96, 81.68, 81.70])
    assert d["diffs"] == pytest.approx([-0.14, 0.24, -0.06])
    assert (d["low"], d["high"]) == pytest.approx(seed_interval(d["diffs"])) and d["n"] == 3
    assert d["low"] == pytest.approx(0.0133 - 4.3027 * 0.2003 / 3**0.5, abs=1e-3)
    assert paired_difference([1.0], [0.5])["low"] is None
