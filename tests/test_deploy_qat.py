"""Quantisation-aware training (``skiplab quantize --qat``): the QAT artifact of a tiny
checkpoint is a ``.pt2`` that ``skiplab.load_trained`` and ``skiplab eval`` take like the PTQ
one, and the report puts PTQ and QAT side by side. Needs the deploy extra (torchao)."""

from __future__ import annotations

import json

import pytest
import torch

import skiplab
from skiplab.cli import main
from skiplab.deploy import load_source, quantize_checkpoint
from skiplab.deploy.extras import has
from skiplab.deploy.quantize import QATOptions, _unzero_norm_scales
from skiplab.deploy.sidecar import sidecar_path
from skiplab.train import save_checkpoint

needs_torchao = pytest.mark.skipif(
    not has("torchao"), reason="needs the deploy extra: pip install 'skiplab[deploy]' (torchao)"
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A skiplab checkpoint of a tiny BN net on synthetic shapes (untrained: for plumbing)."""
    from skiplab.data import load_dataset

    data = "synthetic:shapes-64,test=32"
    train = load_dataset(data, "train")
    torch.manual_seed(0)
    model = skiplab.create_model("cifar_fast_resnet", widths=[8, 16, 16], num_classes=10)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(
        {
            "model": model.state_dict(),
            "classes": list(train.classes),
            "mean": list(train.mean),
            "std": list(train.std),
            "config": {
                "model": "cifar_fast_resnet",
                "model_kwargs": {"widths": [8, 16, 16]},
                "data": data,
                "task": "classify",
                "val_size": 0,
            },
        },
        path,
    )
    return path


@pytest.mark.slow
@needs_torchao
def test_qat_artifact_loads_and_evaluates_like_ptq(checkpoint, tmp_path, capsys):
    source = load_source(checkpoint)
    report = quantize_checkpoint(
        source, tmp_path / "qat", calib=16, rounds=1, batch_size=2, compile=False, qat=QATOptions(steps=3, batch_size=8)
    )
    out = tmp_path / "qat.pt2"
    assert report["out"] == str(out) and out.is_file() and report["backend"] == "qat"
    assert report["backends"] == ["pt2e", "qat"]
    q = report["qat"]
    assert q["steps"] == 3 and q["lr"] == 1e-3 and "64 images" in q["description"]
    acc = report["accuracy"]
    for name in ("pt2e", "qat"):  # PTQ and QAT reported beside each other
        row = acc[name]
        assert 0 <= row["agreement"] <= 1
        assert row["delta_acc"] == pytest.approx(row["acc"] - acc["fp32"]["acc"])
    model, _ = skiplab.load_trained(out)
    with torch.no_grad():
        assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 32 and result["task"] == "classify"
    assert abs(result["acc"] - acc["qat"]["acc"]) < 1e-9  # the same file, the same numbers
    sidecar = json.loads(sidecar_path(out).read_text())
    assert "QAT" in sidecar["exporter"] and sidecar["precision"] == "int8"


def test_qat_options_are_checked(capsys, checkpoint, tmp_path):
    with pytest.raises(ValueError, match="steps"):
        QATOptions(steps=0)
    with pytest.raises(ValueError, match="batch"):
        QATOptions(batch_size=1)
    with pytest.raises(SystemExit, match="need --qat"):
        main(["quantize", str(checkpoint), "--steps", "5", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="PT2E"):
        main(["quantize", str(checkpoint), "--qat", "--backend", "onnx", "--out", str(tmp_path / "x")])


def test_zero_norm_scales_are_nudged_for_the_fake_quantiser():
    model = skiplab.create_model("cifar_resnet", depth=8)  # zero_init_residual: γ = 0
    assert _unzero_norm_scales(model) == 16 + 32 + 64
    assert all((m.weight != 0).all() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
