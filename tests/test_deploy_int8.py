"""int8 (skiplab.deploy.quantize): a calibrated int8 model of a tiny trained net agrees with
fp32 on >= 97 % of held-out images (PT2E and ONNX Runtime); a quantised artifact is accepted
by ``skiplab eval`` and ``skiplab bench``; bench writes valid JSON. Needs the deploy extra."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import skiplab
from skiplab.cli import main
from skiplab.deploy import bench, load_source, quantize_checkpoint
from skiplab.deploy.extras import has
from skiplab.deploy.calibration import Calibration
from skiplab.deploy.quantize import quantize_pt2e
from skiplab.deploy.quantize_onnx import quantize_onnx
from skiplab.deploy.source import ModelSource, SourceMeta
from skiplab.train import save_checkpoint

HAS_ONNX = all(has(m) for m in ("onnx", "onnxruntime", "onnxscript"))
HAS_TORCHAO = has("torchao")
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="needs the deploy extra: pip install 'skiplab[deploy]' (onnx, onnxruntime, onnxscript)"
)
needs_torchao = pytest.mark.skipif(
    not HAS_TORCHAO, reason="needs the deploy extra: pip install 'skiplab[deploy]' (torchao)"
)


def blob_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 classes of noisy 16x16 images: a bright blob in the red, green or blue channel, or a
    dark blob in all three, anywhere in the image."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.5
    corners = torch.randint(0, 12, (n, 2), generator=g).tolist()
    for i, label in enumerate(y.tolist()):
        top, left = corners[i]
        if label < 3:
            x[i, label, top : top + 4, left : left + 4] += 2.0
        else:
            x[i, :, top : top + 4, left : left + 4] -= 2.0
    return x, y


@pytest.fixture(scope="module")
def trained() -> ModelSource:
    torch.manual_seed(0)
    model = skiplab.create_model("cifar_resnet", depth=8, num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = blob_task(512, 0)
    model.train()
    for step in range(80):
        idx = torch.randint(0, 512, (32,), generator=torch.Generator().manual_seed(step))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    meta = SourceMeta(
        model="cifar_resnet",
        input_size=(3, 16, 16),
        num_classes=4,
        model_kwargs={"depth": 8, "num_classes": 4},
        weights="trained in the test",
    )
    return ModelSource(model, meta)


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


@pytest.mark.slow
@needs_torchao
def test_pt2e_int8_agrees_with_fp32(trained):
    x, y = blob_task(256, 1)
    with torch.no_grad():
        ref = trained.model(x)
    assert float((ref.argmax(1) == y).float().mean()) > 0.9  # the net did learn the task
    calib = Calibration(list(blob_task(128, 2)[0].split(32)), "128 task images")
    int8 = quantize_pt2e(trained, calib)
    with torch.no_grad():
        assert agreement(int8(x), ref) >= 0.97


@pytest.mark.slow
@needs_onnx
def test_onnx_int8_agrees_with_fp32(trained, tmp_path):
    from skiplab.deploy import export_onnx
    from skiplab.deploy.runtime import OrtModule

    x, _ = blob_task(256, 1)
    calib = Calibration(list(blob_task(128, 2)[0].split(32)), "128 task images")
    fp32 = export_onnx(trained, tmp_path / "fp32.onnx")
    for method in ("percentile", "minmax"):
        path = quantize_onnx(fp32.path, tmp_path / f"int8-{method}.onnx", calib, method=method)
        with torch.no_grad():
            assert agreement(OrtModule(path)(x), trained.model(x)) >= 0.97, method
        assert path.stat().st_size < fp32.path.stat().st_size
    with pytest.raises(ValueError, match="percentile, minmax, entropy; found 'kl'"):
        quantize_onnx(fp32.path, tmp_path / "bad.onnx", calib, method="kl")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A skiplab checkpoint of a tiny net on synthetic shapes (untrained: for plumbing)."""
    from skiplab.data import load_dataset

    data = "synthetic:shapes-64,test=32"
    train = load_dataset(data, "train")
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
@needs_onnx
def test_quantized_artifact_is_accepted_by_eval_and_bench(checkpoint, tmp_path, capsys):
    source = load_source(checkpoint)
    report = quantize_checkpoint(
        source, tmp_path / "int8", backend="onnx", calib=16, rounds=1, batch_size=4, compile=False
    )
    out = tmp_path / "int8.onnx"
    assert report["out"] == str(out) and out.is_file()
    acc = report["accuracy"]
    assert acc["images"] == 32 and 0 <= acc["onnx"]["agreement"] <= 1
    assert main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 32 and result["task"] == "classify"
    assert abs(result["acc"] - acc["onnx"]["acc"]) < 1e-9  # the same file, the same numbers
    json_path = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                str(out),
                "--variants",
                "eager_fp32,artifact",
                "--rounds",
                "1",
                "--seconds",
                "0.01",
                "--batch-size",
                "2",
                "--json",
                str(json_path),
            ]
        )
        == 0
    )
    rows = {r["variant"] for r in json.loads(json_path.read_text())["variants"]}
    assert rows == {"eager_fp32", "artifact"}


@pytest.mark.slow
@needs_torchao
def test_pt2e_artifact_is_accepted_by_eval(checkpoint, tmp_path):
    from skiplab.deploy import evaluate_artifact

    source = load_source(checkpoint)
    report = quantize_checkpoint(
        source, tmp_path / "int8", backend="pt2e", calib=16, rounds=1, batch_size=4, compile=False
    )
    result = evaluate_artifact(report["out"])
    assert result["images"] == 32
    assert abs(result["acc"] - report["accuracy"]["pt2e"]["acc"]) < 1e-9


def test_bench_writes_valid_json(tmp_path):
    result = bench(
        "cifar_resnet20", variants=["eager_fp32", "channels_last", "bn_folded"], batch_size=2, rounds=2, seconds=0.01
    )
    text = json.dumps(result)
    back = json.loads(text)
    names = [r["variant"] for r in back["variants"]]
    assert names == ["eager_fp32", "channels_last", "bn_folded"]
    for row in back["variants"]:
        assert row["images_per_s"] > 0 and row["p90_ms"] >= row["p50_ms"] > 0
        assert row["rel_diff"] < 1e-4 and row["size_mb"] > 0
    assert back["variants"][0]["ratio"] == 1.0
    assert {"start", "end"} <= set(back["load_average"]) and isinstance(back["overloaded"], bool)


def test_bench_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant"):
        bench("cifar_resnet20", variants=["warp_drive"], rounds=1)


def test_missing_extra_is_one_line(monkeypatch, capsys, tmp_path):
    import skiplab.deploy.extras as extras

    real = extras.importlib.import_module

    def fake(name, *a, **k):
        if name.split(".")[0] in ("onnx", "onnxruntime", "onnxscript"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(extras.importlib, "import_module", fake)
    assert main(["export", "cifar_resnet20", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "skiplab[deploy]" in err


def test_report_prints_the_change_with_its_sign():
    """The accuracy line gives int8 − fp32 with its sign (a loss is negative), never a 'drop'."""
    from skiplab.deploy.quantize_report import format_report

    base = dict(
        model="cifar_resnet20",
        weights="checkpoint",
        calibration="512 images",
        backend="onnx",
        backends=["pt2e", "onnx"],
        speed={"fp32": dict(images_per_s=100.0, ratio=1.0)},
        batch_size=16,
        load_average=dict(start=1.0, end=1.0),
        cores=2,
        size_mb={"fp32": 1.1, "onnx": 0.35},
        out="x.onnx",
        accuracy=dict(
            data="cifar10:test",
            split="test",
            images=5000,
            fp32=dict(acc=0.8200),
            pt2e=dict(acc=0.8182, agreement=0.9884),
            onnx=dict(acc=0.8228, agreement=0.99),
        ),
    )
    text = format_report(base)
    assert "change (int8 − fp32) -0.18 points" in text and "change (int8 − fp32) +0.28 points" in text
    assert "drop" not in text.lower()
