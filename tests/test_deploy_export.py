"""Export (skiplab.deploy.export): one model of every family to ONNX with ONNX Runtime parity
<= 1e-5, dynamic batch and (image-to-image) dynamic H/W, a sidecar, torch.export programs, the
CLI. Needs the deploy extra (onnx, onnxruntime, onnxscript); skipped with the reason without."""

from __future__ import annotations

import json

import pytest
import torch

from skiplab.cli import main
from skiplab.deploy import export_onnx, export_pt2, load_artifact, load_source
from skiplab.deploy.extras import has

pytestmark = pytest.mark.skipif(
    not all(has(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="needs the deploy extra: pip install 'skiplab[deploy]' (onnx, onnxruntime, onnxscript)",
)

# one per family, small configurations (name, model keywords, example image side)
FAMILIES = [
    ("cifar_resnet20", {}, None),
    ("resnet18", {"num_classes": 10}, 64),
    ("cifar_densenet_bc", {"depth": 10, "growth_rate": 6}, None),
    ("unet", {"base_width": 8, "depth": 2}, 32),
    ("sar_ae", {"widths": (8, 8, 16, 16), "latent_channels": 4}, 32),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,side", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_onnx_export_parity(tmp_path, name, kwargs, side):
    source = load_source(name, model_kwargs=kwargs, image_size=side)
    result = export_onnx(source, tmp_path / f"{name}.onnx")
    assert result.exporter in ("dynamo", "torchscript")
    assert result.parity <= 1e-5, result.summary()
    sidecar = json.loads(result.sidecar.read_text())
    c, h, w = source.meta.input_size
    assert sidecar["input"]["shape"][0] == "batch" and sidecar["input"]["shape"][1] == c
    assert sidecar["task"] == source.meta.task and sidecar["format"] == "onnx"
    # the file runs at another batch size (and image-to-image: another image size)
    artifact = load_artifact(result.path)
    size = (h + 2 * 16, w + 16) if source.meta.dynamic_hw else (h, w)
    x = torch.randn(5, c, *size)
    with torch.no_grad():
        torch.testing.assert_close(artifact.model(x), source.model(x), rtol=1e-4, atol=1e-4)
    assert sidecar["input"]["shape"][2] == ("height" if source.meta.dynamic_hw else h)


def test_pt2_export_round_trip(tmp_path):
    source = load_source("cifar_resnet20")
    result = export_pt2(source, tmp_path / "r20.pt2")
    assert result.parity <= 1e-5
    artifact = load_artifact(result.path)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(artifact.model(x), source.model(x), rtol=1e-4, atol=1e-5)
    assert artifact.meta.model == "cifar_resnet20"


def test_sidecar_records_sar_radiometry(tmp_path):
    from skiplab.deploy.sidecar import read_sidecar, write_sidecar

    source = load_source("sar_ae", model_kwargs={"widths": (8, 8, 16, 16), "latent_channels": 4})
    source.meta.radiometry = {"transform": "log", "low": -30.0, "high": 10.0}
    (tmp_path / "ae.onnx").write_bytes(b"")
    write_sidecar(tmp_path / "ae.onnx", source.meta, format="onnx")
    assert read_sidecar(tmp_path / "ae.onnx")["radiometry"]["high"] == 10.0


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "r20.onnx"
    assert main(["export", "cifar_resnet20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "parity max relative error" in text and "exporter" in text
    assert out.is_file() and (tmp_path / "r20.onnx.json").is_file()


def test_cli_export_bad_input_is_one_line(tmp_path, capsys):
    assert main(["export", "no_such_model", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "neither a checkpoint" in err
