"""The training engine's tasks: segment (U-Net on synthetic cells: Dice + CE, Dice/IoU) and
reconstruct (SAR autoencoder on synthetic speckle: PSNR/SSIM, radiometry in the checkpoint),
their data specs and splits, evaluation from checkpoints, exact resume, and the errors for
task/data/model combinations that do not fit."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from skiplab.cli import main
from skiplab.data import DihedralAugmentation, SegmentationDataset, parse_data_spec
from skiplab.data.load import load_dataset, load_segmentation
from skiplab.sar import Radiometry, load_sar, synthetic_scenes
from skiplab.train import TrainConfig, evaluate_checkpoint, fit, load_checkpoint
from skiplab.train.tasks import SegmentationLoader
from test_train_loop import Crash, CrashAt  # the classification resume test's crash

# one thread: tiny models on a busy 2-core machine run fastest that way
FAST = dict(
    progress=False,
    compile="off",
    precision="fp32",
    channels_last=False,
    tensorboard=False,
    optimizer="adamw",
    weight_decay=0.0,
    warmup_epochs=0.0,
    num_threads=1,
)
CELLS = "synthetic:cells-64,test=16"
SEGMENT = dict(
    FAST,
    task="segment",
    model="unet",
    model_kwargs={"base_width": 8, "depth": 2},
    data=CELLS,
    val_size=16,
    batch_size=8,
    eval_batch_size=16,
    epochs=2,
    lr=3e-3,
)
SAR = "synthetic-sar-20,looks=4"
AE = {"widths": [4, 8, 8, 8], "latent_channels": 4}
RECONSTRUCT = dict(
    FAST,
    task="reconstruct",
    model="sar_ae_all",
    model_kwargs=AE,
    data=SAR,
    tile_size=32,
    val_size=4,
    batch_size=4,
    eval_batch_size=8,
    epochs=3,
    lr=3e-3,
)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def config(tmp_path=None, base=RECONSTRUCT, **overrides) -> TrainConfig:
    out = {"out": str(tmp_path / "run")} if tmp_path is not None else {"save": False}
    return TrainConfig.from_dict({**base, **out, **overrides})


def read_metrics(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---- data specs and splits -------------------------------------------------------------------
def test_data_specs_name_their_task_and_the_sar_alias(tmp_path):
    assert parse_data_spec("synthetic-sar").text == "synthetic:sar"
    alias = parse_data_spec("synthetic-sar-64,looks=4")
    assert (alias.name, alias.options, alias.task) == ("sar-64", {"looks": "4"}, "reconstruct")
    assert parse_data_spec("synthetic-sar:looks=2").options == {"looks": "2"}
    assert parse_data_spec("synthetic:cells-2k,boundary=1").task == "segment"
    assert parse_data_spec("synthetic:shapes-128").task == "classify"
    assert parse_data_spec(f"sar:{tmp_path}").task == "reconstruct"  # a path kind: it must exist


def test_sar_split_is_deterministic_and_radiometry_fitted_on_the_train_part():
    train = load_sar(SAR, "train", val_size=4, tile=32)
    val = load_sar(SAR, "val", val_size=4, tile=32)
    test = load_sar(SAR, "test", val_size=4, tile=32)
    assert (len(train), len(val), len(test)) == (16, 4, 4)
    assert train.radiometry == val.radiometry == test.radiometry
    _, speckled = synthetic_scenes(20, 32, looks=4, seed=0)  # what synthetic-sar-20 holds
    held_out = torch.randperm(20, generator=torch.Generator().manual_seed(0))[:4].sort().values
    kept = torch.ones(20, dtype=torch.bool)
    kept[held_out] = False
    expected = Radiometry.fit(speckled[kept], (0.5, 99.5))
    assert train.radiometry.low_db == pytest.approx(expected.low_db, abs=1e-4)
    assert train.radiometry.high_db == pytest.approx(expected.high_db, abs=1e-4)
    assert torch.allclose(val.tiles[:, 0], expected.forward(speckled[held_out]), atol=1e-5)
    everything = load_sar(SAR, "train", tile=32)  # no hold-out: another fit
    assert everything.radiometry != train.radiometry and len(everything) == 20
    assert not any(torch.equal(v, t) for v in val.tiles for t in train.tiles)
    assert torch.equal(load_sar(SAR, "val", val_size=4, tile=32).tiles, val.tiles)
    assert train.clean is not None and 0 <= float(train.tiles.min()) <= float(train.tiles.max()) <= 1


def test_sar_directory_split_and_a_given_radiometry(tmp_path):
    import numpy as np
    from skiplab.sar import synthetic_scene

    for split, seeds in (("train", (1, 2)), ("test", (3,))):
        (tmp_path / split).mkdir()
        for seed in seeds:
            np.save(tmp_path / split / f"s{seed}.npy", synthetic_scene(64, seed=seed).speckled.numpy())
    spec = f"sar:{tmp_path}"
    train = load_sar(spec, "train", val_size=2, tile=32)
    test = load_sar(spec, "test", val_size=2, tile=32)
    assert (len(train), len(test)) == (6, 4) and test.radiometry == train.radiometry
    fixed = Radiometry.fixed(-30.0, 20.0)
    assert load_sar(spec, "test", tile=32, radiometry=fixed).radiometry == fixed
    with pytest.raises(ValueError, match="has no test split"):
        load_sar(f"sar:{tmp_path / 'train'}", "test", tile=32)
    (tmp_path / "dn").mkdir()
    np.save(tmp_path / "dn" / "counts.npy", np.full((32, 32), 700, dtype=np.uint16))
    with pytest.raises(ValueError, match="fitted on float32 intensity rasters; this raster is uint16"):
        load_sar(f"sar:{tmp_path / 'dn'}", tile=32, radiometry=train.radiometry)


def test_segmentation_loader_moves_masks_with_images():
    images, masks = torch.zeros(8, 1, 16, 16, dtype=torch.uint8), torch.zeros(8, 16, 16, dtype=torch.long)
    masks[:, 2:6, 3:12] = 1  # an asymmetric block
    images[masks.unsqueeze(1).bool()] = 200
    data = SegmentationDataset(images, masks, ["background", "cell"], (0.0,), (1.0,), "block")
    loader = SegmentationLoader(data, 8, augment=DihedralAugmentation(dihedral=True), seed=3)
    x, y = next(iter(loader))
    assert y.dtype == torch.int64 and y.shape == (8, 16, 16)
    assert torch.equal((x[:, 0] > 0.5).long(), y)  # still aligned
    assert len({tuple(m.nonzero()[0].tolist()) for m in y}) > 1  # and really transformed


# ---- segment -----------------------------------------------------------------------------------
def test_segment_trains_reports_dice_and_eval_reproduces_val(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--task",
                "segment",
                "--model",
                "unet",
                "--data",
                CELLS,
                "--model-kwargs",
                "{base_width: 8, depth: 2}",
                "--val-size",
                "16",
                "--batch-size",
                "8",
                "--epochs",
                "2",
                "--lr",
                "0.003",
                "--optimizer",
                "adamw",
                "--weight-decay",
                "0",
                "--warmup-epochs",
                "0",
                "--precision",
                "fp32",
                "--no-channels-last",
                "--compile",
                "off",
                "--no-progress",
                "--no-tensorboard",
                "--num-threads",
                "1",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    rows = read_metrics(tmp_path / "run")
    for key in ("train_loss", "train_dice", "train_iou", "train_acc", "val_loss", "val_dice", "val_iou", "val_acc"):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[-1]["val_dice"]) > 0.5  # cells are found
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["best"]["metric"] == "val_dice"
    assert best["best"]["value"] == pytest.approx(max(float(r["val_dice"]) for r in rows), rel=1e-5)
    assert best["classes"] == ["background", "cell"]
    capsys.readouterr()
    assert (
        main(["eval", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--split", "val", "--precision", "fp32"]) == 0
    )
    assert "dice" in capsys.readouterr().out
    scores = evaluate_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.pt", split="val", precision="fp32", channels_last=False
    )
    for key in ("loss", "dice", "iou", "acc"):
        assert scores[key] == pytest.approx(float(rows[-1][f"val_{key}"]), rel=1e-5), key


# ---- reconstruct -------------------------------------------------------------------------------
def test_reconstruct_trains_and_the_checkpoint_carries_radiometry_and_compression(tmp_path):
    result = fit(config(tmp_path))
    rows = read_metrics(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    for key in ("train_loss", "train_psnr", "val_loss", "val_psnr", "val_ssim"):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[-1]["train_psnr"]) > float(rows[0]["train_psnr"])
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert state["best"]["metric"] == "val_loss"
    assert state["best"]["value"] == pytest.approx(min(float(r["val_loss"]) for r in rows), rel=1e-5)
    radiometry = Radiometry.from_dict(state["radiometry"])
    train = load_sar(SAR, "train", val_size=4, tile=32)
    assert radiometry == train.radiometry and state["looks"] == 4.0 and state["tile_size"] == 32
    physical = train.intensity()  # back to intensity and again
    assert torch.allclose(radiometry.forward(physical), train.tiles, atol=1e-6)
    assert state["compression"] == {"latent_shape": [4, 2, 2], "compression_ratio": 64.0, "bits_per_pixel": 0.5}
    scores = evaluate_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.pt", split="val", precision="fp32", channels_last=False
    )
    for key in ("loss", "psnr", "ssim"):
        assert scores[key] == pytest.approx(result.metrics[f"val_{key}"], rel=1e-5), key


def test_reconstruct_on_tiles_in_memory():
    train, val = load_sar(SAR, "train", tile=32).split(4, seed=1)
    result = fit(config(data="synthetic", epochs=1, val_size=0), train_set=train, eval_set=val)
    assert result.metrics["step"] == 4 and math.isfinite(result.metrics["val_psnr"])


@pytest.mark.parametrize("name", ["unet_cells", "sar_ae"])
def test_task_recipes_are_valid_and_every_field_is_commented(name):
    from pathlib import Path
    import yaml
    from skiplab.train.tasks import make_task

    path = Path(__file__).parent.parent / "configs" / f"{name}.yaml"
    task = make_task(TrainConfig.from_yaml(path))
    assert task.name == {"unet_cells": "segment", "sar_ae": "reconstruct"}[name]
    keys = yaml.safe_load(path.read_text())
    for line in path.read_text().splitlines():
        if line.split(":")[0].strip() in keys:
            assert "#" in line, f"{name}.yaml: field {line.split(':')[0]!r} has no comment"


def test_reconstruct_resume_mid_epoch_is_bit_identical(tmp_path):
    common = dict(deterministic=True, checkpoint_every=3, epochs=2, val_size=0, eval_split="none")
    reference = fit(config(tmp_path / "a", **common))
    with pytest.raises(Crash):
        fit(config(tmp_path / "b", **common), callbacks=[CrashAt(5)])
    state = load_checkpoint(tmp_path / "b" / "run" / "checkpoints" / "last.pt")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 0, 3)
    resumed = fit(config(tmp_path / "b", resume=True, **common))
    for (name, a), b in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in read_metrics(tmp_path / "a" / "run")] == [
        r["train_loss"] for r in read_metrics(tmp_path / "b" / "run")
    ]


# ---- what does not fit -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(base=SEGMENT, data="synthetic:shapes-128"), r"task 'segment' cannot use .*classify data"),
        (dict(base=SEGMENT, task="classify"), r"task 'classify' cannot use .*segment data"),
        (dict(data=CELLS), r"task 'reconstruct' cannot use .*segment data"),
        (dict(model="unet", model_kwargs={}), r"task 'reconstruct' needs an autoencoder .* UNet"),
        (dict(base=SEGMENT, model="sar_ae_all", model_kwargs=AE), r"segmentation model .*ResidualAutoencoder"),
        (dict(loss={"l2": 1.0}), r"unknown loss 'l2'"),
        (dict(loss={"ms_ssim": 1.0}), r"on 32 px tiles: MS-SSIM with 5 scales needs .*'scales': 2"),
        (dict(base=SEGMENT, loss={"focal": 1.0}), r"segment loss terms must be among"),
        (dict(label_smoothing=0.1), r"label_smoothing: classification options"),
        (dict(best_metric="val_acc"), r"best_metric 'val_acc' is not a reconstruct metric"),
        (dict(tile_size=40), r"multiples of 16"),
    ],
)
def test_combinations_that_do_not_fit_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        fit(config(**overrides))


def test_loaders_refuse_data_of_another_task():
    with pytest.raises(ValueError, match=r"is segment data, not classify data"):
        load_dataset(CELLS)
    with pytest.raises(ValueError, match=r"is classify data, not segment data"):
        load_segmentation("synthetic:shapes")
    with pytest.raises(ValueError, match=r"expected cells\[-N\[k\]\] with options"):
        load_segmentation("synthetic:cells,colour=1")
    with pytest.raises(ValueError, match="classification uses cross-entropy"):
        fit(TrainConfig.from_dict({**FAST, "loss": {"l1": 1.0}}))
