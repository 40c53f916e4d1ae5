"""He 2015's CIFAR-10 protocol: the recipe, the device-resident trainer, the Table 6 command
on CPU, and the kept full-length checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import skiplab
from skiplab.studies.he2015 import HE2015_TABLE6, recipe_deviations
from skiplab.train.config import TrainConfig
from skiplab.train.resident import ResidentEpochs, fit_resident, load_resident_data

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "evidence" / "he2015"
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpg"
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_recipe_is_he2015_section_4_2_field_by_field():
    c = TrainConfig.from_yaml(ROOT / "configs" / "he2015_cifar.yaml")
    # the numbers as the paper states them, not as skiplab's table does
    assert (c.batch_size, c.optimizer, c.lr, c.momentum, c.nesterov) == (128, "sgd", 0.1, 0.9, False)
    assert (c.weight_decay, c.decay_norm_and_bias, c.steps) == (1e-4, True, 64000)
    assert (c.schedule, c.milestones, c.milestone_unit, c.gamma) == ("multistep", [32000, 48000], "step", 0.1)
    assert (c.crop_padding, c.pad_mode, c.flip, c.cutout, c.label_smoothing) == (4, "zeros", True, 0, 0.0)
    assert (c.warmup_epochs, c.ema_decay, c.val_size, c.eval_split) == (0, 0.0, 0, "test")
    assert c.model_kwargs == {"zero_init_residual": False}
    assert recipe_deviations(c.to_dict()) == []
    assert recipe_deviations(c.replace(lr=0.2).to_dict()) == ["lr=0.2 (He: 0.1)"]
    assert HE2015_TABLE6["resnet20"] == 8.75 and HE2015_TABLE6["resnet56"] == 6.97


def _config(**kw) -> TrainConfig:
    base = dict(
        model="cifar_resnet20",
        data="synthetic:shapes-500",
        batch_size=64,
        steps=12,
        milestones=[6, 9],
        milestone_unit="step",
        schedule="multistep",
        lr=0.05,
        device="cpu",
        compile="off",
        precision="fp32",
        eval_split="test",
        model_kwargs={"zero_init_residual": False},
    )
    return TrainConfig.from_dict({**base, **kw})


def test_resident_epochs_are_a_function_of_seed_and_epoch():
    config = _config()
    train, _ = load_resident_data(config)
    a, b = ResidentEpochs(train, config, torch.device("cpu")), ResidentEpochs(train, config, torch.device("cpu"))
    xa, ya = a.epoch(3)
    xb, yb = b.epoch(3)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a.epoch(4)[1], ya)  # another epoch, another order
    assert sorted(ya.tolist()) == sorted(train.labels.tolist())  # a permutation of the split


def test_resident_run_resumes_to_the_same_weights(tmp_path):
    config = _config()  # 500 images of batch 64: 7 steps an epoch
    train, test = load_resident_data(config)
    whole = fit_resident(config, train, test, out=tmp_path / "whole", log=lambda m: None)
    assert whole.finished and whole.step == 12
    partial = fit_resident(config, train, test, out=tmp_path / "split", pause_at=5, log=lambda m: None)
    assert not partial.finished and partial.step == 5  # inside the first epoch
    ckpt = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["step"], ckpt["batch_in_epoch"]) == (5, 5) and ckpt["format_version"] >= 2
    resumed = fit_resident(config, train, test, out=tmp_path / "split", log=lambda m: None)
    assert resumed.finished and resumed.step == 12
    expected = whole.model.state_dict()
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, expected[k]), k
    rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and rows[1].startswith("1,7,") and rows[2].startswith("2,12,")


def test_table6_command_runs_on_cpu_and_reports(tmp_path, monkeypatch):
    import he2015_table6

    monkeypatch.chdir(ROOT)
    out = tmp_path / "t6"
    rc = he2015_table6.main(
        [
            "--device",
            "cpu",
            "--steps",
            "8",
            "--nets",
            "resnet20",
            "plain20",
            "--data",
            "synthetic:shapes-500",
            "--out",
            str(out),
            "--keep",
            str(tmp_path / "kept"),
        ]
    )
    assert rc == 0
    results = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert sorted(r["net"] for r in results["runs"]) == ["plain20", "resnet20"]
    assert all(r["step"] == 8 and r["test"]["images"] == 100 for r in results["runs"])
    assert all(r["deviations"] for r in results["runs"])  # 8 steps is not He's 64k
    assert (tmp_path / "kept" / "fig6.png").stat().st_size > 10_000
    kept = tmp_path / "kept" / "resnet20" / "checkpoints" / "last.pt"
    state = torch.load(kept, weights_only=True)
    assert state["stripped"] and "optimizer" not in state and state["config"]["device"] == "auto"
    # a second call finds every run finished and trains nothing
    before = (out / "resnet20_s0" / "metrics.csv").read_text()
    assert (
        he2015_table6.main(
            [
                "--device",
                "cpu",
                "--steps",
                "8",
                "--nets",
                "resnet20",
                "--data",
                "synthetic:shapes-500",
                "--out",
                str(out),
                "--no-report",
            ]
        )
        == 0
    )
    assert (out / "resnet20_s0" / "metrics.csv").read_text() == before


@pytest.mark.parametrize("net", ["resnet20", "resnet56", "plain20", "plain56"])
def test_kept_full_length_checkpoints_load(net):
    path = KEPT / net / "checkpoints" / "last.pt"
    model, meta = skiplab.load_trained(path)
    assert meta.model == f"cifar_{net}" and meta.num_classes == 10
    assert meta.config["steps"] == 64000 and recipe_deviations(meta.config) == []
    state = torch.load(path, weights_only=True)
    assert state["stripped"] and state["step"] == 64000 and meta.config["device"] == "auto"
    assert (KEPT / net / "metrics.csv").read_text().splitlines()[-1].startswith("165,64000,")


@pytest.mark.skipif(not CIFAR.is_dir(), reason="needs ../shared/data/cifar10-jpg")
def test_skiplab_eval_reads_a_kept_checkpoint_as_it_is(capsys):
    from skiplab.cli import main

    results = json.loads((KEPT / "results.json").read_text())
    recorded = next(r for r in results["runs"] if r["net"] == "resnet20")
    assert main(["eval", str(KEPT / "resnet20" / "checkpoints" / "last.pt"), "--precision", "fp32", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["acc"] == pytest.approx(1 - recorded["test"]["error"], abs=2e-4)
