"""Quantisation-aware training (``skiplab quantize --qat``, :mod:`skiplab.deploy.qat`): the QAT
artifact of a tiny checkpoint is the same kind of ``.pt2`` as the PTQ one and goes through the
same road (``skiplab.load_trained``, ``skiplab eval``, ``skiplab bench``); bad input is one line,
exit 2. Needs the deploy extra (torchao).

The net has no BatchNorm: torchao's conv-BN QAT rewrite exports ~100 pattern graphs (about 40 s
of CPU whatever the net's size), which the evidence runs on real ResNets exercise instead
(docs/evidence/int8-qat)."""

from __future__ import annotations

import json

import pytest
import torch

import skiplab
from skiplab.cli import main
from skiplab.deploy import QATOptions, load_source
from skiplab.deploy.extras import has
from skiplab.deploy.qat import _unzero_norm_scales
from skiplab.deploy.quantize import calibration_data, quantize_to
from skiplab.deploy.sidecar import sidecar_path
from skiplab.train import save_checkpoint

needs_torchao = pytest.mark.skipif(
    not has("torchao"), reason="needs the deploy extra: pip install 'skiplab[deploy]' (torchao)"
)
DATA = "synthetic:shapes-32,test=16"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A skiplab checkpoint of a tiny BN-free ResNet on synthetic shapes (recipe: SGD, lr 0.1)."""
    from skiplab.data import load_dataset

    train = load_dataset(DATA, "train")
    kwargs = {"depth": 8, "norm": "none"}
    torch.manual_seed(0)
    model = skiplab.create_model("cifar_resnet", num_classes=10, **kwargs)
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(
        {
            "model": model.state_dict(),
            "classes": list(train.classes),
            "mean": list(train.mean),
            "std": list(train.std),
            "config": {
                "model": "cifar_resnet",
                "model_kwargs": kwargs,
                "data": DATA,
                "task": "classify",
                "val_size": 0,
                "lr": 0.1,
                "weight_decay": 1e-4,
                "eval_batch_size": 8,
            },
        },
        path,
    )
    return path


@pytest.mark.slow
@needs_torchao
def test_qat_artifact_runs_through_the_ptq_path(checkpoint, tmp_path, capsys):
    source = load_source(checkpoint)
    before = {k: v.clone() for k, v in source.model.state_dict().items()}
    calibration = calibration_data(source, 8)
    ptq = quantize_to(source, "pt2e", tmp_path / "ptq.pt2", calibration, compile=False)
    qat = quantize_to(
        source, "qat", tmp_path / "qat.pt2", calibration, compile=False, qat=QATOptions(steps=3, batch_size=8, seed=1)
    )
    assert all(torch.equal(v, source.model.state_dict()[k]) for k, v in before.items())  # a copy trained
    result = qat.qat
    assert len(result.losses) == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    assert result.settings["lr"] == pytest.approx(1e-3)  # 1 % of the recipe's 0.1
    assert result.settings["weight_decay"] == 1e-4 and result.settings["optimizer"] == "sgd"
    assert "32 images" in result.description and "seed 1" in result.description
    scores = {}
    for name, artifact in (("ptq", ptq), ("qat", qat)):
        sidecar = json.loads(sidecar_path(artifact.path).read_text())
        assert sidecar["format"] == "pt2" and sidecar["precision"] == "int8"
        model, meta = skiplab.load_trained(artifact.path)  # the one road from a file
        assert meta.classes == source.meta.classes
        x = torch.randn(3, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(model(x), artifact.reference(x), atol=1e-5)
        assert main(["eval", str(artifact.path), "--json"]) == 0
        scores[name] = json.loads(capsys.readouterr().out)
        assert scores[name]["images"] == 16 and scores[name]["task"] == "classify"
    assert "QAT" in json.loads(sidecar_path(qat.path).read_text())["exporter"]
    # bench compiles an int8 .pt2 with inductor freezing (oneDNN int8 kernels), as quantize does
    assert (
        main(
            [
                "bench",
                str(qat.path),
                "--variants",
                "eager_fp32,artifact",
                "--rounds",
                "1",
                "--seconds",
                "0.01",
                "--batch-size",
                "2",
                "--json",
                str(tmp_path / "bench.json"),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "bench.json").read_text())["variants"]
    assert {r["variant"] for r in rows} == {"eager_fp32", "artifact"}


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--qat", "--steps", "0"], "--steps must be a whole number >= 1; found 0"),
        (["--qat", "--steps", "-5"], "found -5"),
        (["--qat", "--qat-batch-size", "1"], "--qat-batch-size must be >= 2"),
        (["--steps", "5"], "--steps need --qat"),
        (["--qat", "--backend", "onnx"], "--qat runs on the PT2E path"),
    ],
)
def test_bad_qat_options_are_one_line(argv, expected, checkpoint, tmp_path, capsys):
    assert main(["quantize", str(checkpoint), "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@needs_torchao
def test_qat_of_an_int8_artifact_is_refused(checkpoint, tmp_path, capsys):
    source = load_source(checkpoint)
    artifact = quantize_to(source, "pt2e", tmp_path / "ptq.pt2", calibration_data(source, 8), compile=False)
    assert main(["quantize", str(artifact.path), "--qat", "--steps", "3", "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert "needs the float model of a skiplab training checkpoint (.pt)" in err and "ptq.pt2" in err
    assert err.count("\n") == 1 and not (tmp_path / "q.pt2").exists()


def test_zero_norm_scales_are_nudged_for_the_fake_quantiser():
    model = skiplab.create_model("cifar_resnet", depth=8)  # zero_init_residual: γ = 0
    assert _unzero_norm_scales(model) == 16 + 32 + 64
    assert all((m.weight != 0).all() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
