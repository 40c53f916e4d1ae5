"""The one evaluation loop (skiplab.train.evaluate): the figures train, eval, studies, lesions,
pruning and quantisation report are the same loop's, equal to a plain hand-written loop; the
per-image outputs are packed; a classifier of another number of classes than the data is
refused in one line, from a checkpoint and from an exported ONNX file alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import skiplab
from skiplab.data import BatchLoader, load_dataset
from skiplab.deploy.extras import has
from skiplab.errors import DataMismatchError
from skiplab.train import TrainConfig, evaluate, evaluate_checkpoint, fit
from skiplab.train.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DATA = "synthetic:shapes-64,test=48"
needs_onnx = pytest.mark.skipif(
    not (has("onnx") and has("onnxruntime") and has("onnxscript")),
    reason="needs the deploy extra (onnx, onnxruntime, onnxscript)",
)


@torch.no_grad()
def plain_loop(model, batches):
    """What every copy of the loop computed before there was one: summed cross-entropy,
    argmax hits, per image."""
    model.eval()
    loss, hits, predicted = 0.0, [], []
    for x, y in batches:
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        predicted.append(logits.argmax(1))
        hits.append(predicted[-1] == y)
    hits = torch.cat(hits)
    return {
        "loss": loss / len(hits),
        "acc": hits.sum().item() / len(hits),
        "correct": hits,
        "predicted": torch.cat(predicted),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny net trained for a few steps (its accuracy is neither 0 nor 1) and its checkpoint."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig.from_dict(
        dict(
            data=DATA,
            model="cifar_fast_resnet",
            model_kwargs={"widths": [8, 16, 16]},
            steps=8,
            batch_size=16,
            eval_batch_size=20,
            progress=False,
            compile="off",
            precision="fp32",
            channels_last=False,
            out=str(out / "run"),
            tensorboard=False,
            eval_split="test",
        )
    )
    result = fit(config)
    return result, out / "run" / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def test_batches():
    return list(BatchLoader(load_dataset(DATA, "test"), 20, shuffle=False, drop_last=False))


def test_the_loop_equals_a_plain_loop_and_keeps_per_image_outputs(trained, test_batches):
    model = trained[0].model
    reference = plain_loop(model, test_batches)
    model.train()
    result = evaluate(model, test_batches, per_image=True)
    assert result["loss"] == reference["loss"] and result["acc"] == reference["acc"]
    assert result["correct"].dtype == torch.bool and torch.equal(result["correct"], reference["correct"])
    assert result["predicted"].dtype == torch.int32
    assert torch.equal(result["predicted"].long(), reference["predicted"])
    assert model.training and all(m.training for m in model.modules())  # its mode restored
    assert "correct" not in evaluate(model, test_batches)  # only on request


def test_train_eval_studies_lesions_and_pruning_report_the_same_figures(trained, test_batches):
    from skiplab.analysis import evaluate as lesion_evaluate
    from skiplab.deploy.prune_run import _correct
    from skiplab.evidence.stats import unpack_correct, wrong_matrix
    from skiplab.studies.runs import measure_fit
    from skiplab.train.tasks import make_task

    result, path = trained
    reference = plain_loop(result.model, test_batches)
    # train: the last epoch's val_acc; eval: the checkpoint, as the run evaluated it
    assert result.metrics["val_acc"] == reference["acc"]
    shown = evaluate_checkpoint(path)
    assert (shown["acc"], shown["loss"], shown["images"]) == (reference["acc"], reference["loss"], 48)
    # studies: the error and the packed per-image correctness (old '1'/'0' strings still read)
    fit_ = measure_fit(result.model, test_batches, test_batches)
    assert fit_["test_error"] == 1 - reference["acc"]
    old_string = "".join("1" if c else "0" for c in reference["correct"].tolist())
    assert np.array_equal(unpack_correct(fit_["test_correct"]), reference["correct"].numpy())
    assert np.array_equal(wrong_matrix([fit_["test_correct"]]), wrong_matrix([old_string]))
    assert len(json.dumps(fit_["test_correct"])) < len(old_string) + 40
    # lesions (mean loss per batch weighted by its size) and pruning (per-image correctness)
    lesioned = lesion_evaluate(result.model, test_batches)
    assert lesioned["accuracy"] == reference["acc"]
    assert lesioned["loss"] == pytest.approx(reference["loss"], rel=1e-6)
    task = make_task(TrainConfig.from_dict({"data": DATA, "model": "cifar_fast_resnet", "channels_last": False}))
    pruned = _correct(result.model, task, load_dataset(DATA, "test"), "fp32", 20)
    assert torch.equal(pruned, reference["correct"])


def test_the_loop_refuses_a_model_of_other_classes(trained, test_batches):
    from skiplab.train.meters import ClassificationMeter

    model = trained[0].model
    with pytest.raises(DataMismatchError, match="num_classes=10, the data 2"):
        evaluate(model, test_batches, meter=ClassificationMeter(2, data="two classes"))
    wide = [(x, y + 10) for x, y in test_batches]  # labels beyond the model's 10 outputs
    with pytest.raises(DataMismatchError, match="labels up to 1[0-9]"):
        evaluate(model, wide)


def image_folder(root: Path, classes: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(classes)
    for split in ("train", "test"):
        for c in range(classes):
            d = root / split / f"c{c:03d}"
            d.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / "0.png")
    return root


def skiplab_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "skiplab", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.slow
@needs_onnx
def test_eval_refuses_other_classes_in_one_line_for_checkpoints_and_onnx_files(tmp_path):
    from skiplab.deploy import load_source
    from skiplab.deploy.export import export_onnx
    from skiplab.deploy.calibration import calibration_data
    from skiplab.deploy.quantize_onnx import quantize_onnx
    from skiplab.deploy.sidecar import write_sidecar

    train = load_dataset(DATA, "train")
    model = skiplab.create_model("cifar_fast_resnet", widths=[8, 16, 16], num_classes=10)
    checkpoint = tmp_path / "last.pt"
    save_checkpoint(
        {
            "model": model.state_dict(),
            "classes": list(train.classes),
            "mean": list(train.mean),
            "std": list(train.std),
            "config": {
                "model": "cifar_fast_resnet",
                "model_kwargs": {"widths": [8, 16, 16]},
                "data": DATA,
                "task": "classify",
                "val_size": 0,
            },
        },
        checkpoint,
    )
    source = load_source(checkpoint)
    fp32 = export_onnx(source, tmp_path / "fp32.onnx").path
    int8 = quantize_onnx(fp32, tmp_path / "int8.onnx", calibration_data(source, 8))
    write_sidecar(int8, source.meta, format="onnx", precision="int8")
    two, hundred = image_folder(tmp_path / "two", 2), image_folder(tmp_path / "hundred", 100)
    for target, folder, classes in ((checkpoint, two, 2), (int8, two, 2), (int8, hundred, 100)):
        done = skiplab_cli("eval", str(target), "--data", f"folder:{folder}")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"num_classes=10, the data {classes}" in lines[0] and "accuracy" not in done.stdout


def test_export_refuses_an_out_of_another_format(tmp_path, capsys):
    from skiplab.cli import main

    assert main(["export", "cifar_resnet20", "--format", "pt2", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "must end in .pt2" in err and "x.pt2" in err
    assert not list(tmp_path.iterdir())
