"""Every bad input through the real command (a subprocess): exit status 2, exactly one line on
stderr saying what was expected and found, no traceback, and every input file unchanged.

The table holds the inputs a review found wanting (YAML errors, unknown keys, checkpoints that
are not checkpoints, architecture mismatches, eval's --skip-bad) and those that were already
right (wrong channels, too-small input, unknown model, corrupt image, empty folder, NaN scene,
multi-band raster, existing output, pickle payload), so none of them regresses.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skiplab.sar import synthetic_sar_tiles
from skiplab.models import create_model
from skiplab.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.slow  # a subprocess per case: ~3 s of CPU each, mostly importing torch

SHAPES = "synthetic:shapes-64,test=16"  # 10 classes


class Evil:
    """A pickle payload: loading it with weights_only=False would run a shell command."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    (d / "bad.yaml").write_text("lr: 0.1\nepochs: [1, 2\nmodel: cifar_resnet20\n")
    (d / "typo.yaml").write_text("lerning_rate: 0.1\n")
    (d / "notckpt.pt").write_text("hello, I am a text file\n")
    torch.save({"model": {"w": torch.ones(100)}}, d / "full.pt")
    (d / "truncated.pt").write_bytes((d / "full.pt").read_bytes()[:300])
    torch.save({"model": Evil()}, d / "evil.pt")
    # a classifier checkpoint with 2 classes, recorded as trained on 10-class data
    config = {
        "model": "cifar_resnet20",
        "data": SHAPES,
        "eval_batch_size": 16,
        "precision": "fp32",
        "channels_last": False,
    }
    save_checkpoint(
        {"config": config, "model": create_model("cifar_resnet20", num_classes=2).state_dict()}, d / "two_classes.pt"
    )
    save_checkpoint({"config": config, "model": create_model("cifar_resnet20").state_dict()}, d / "resnet20.pt")
    # an (untrained) SAR autoencoder checkpoint and scenes
    kwargs = dict(latent_channels=8, widths=(8, 16, 16, 32))
    tiles = synthetic_sar_tiles(4, tile=32, looks=2, seed=0)
    save_checkpoint(
        {
            "format": "skiplab.train/1",
            "config": {"task": "reconstruct", "model": "sar_ae_all", "model_kwargs": kwargs},
            "model": create_model("sar_ae_all", **kwargs).state_dict(),
            "radiometry": tiles.radiometry.to_dict(),
        },
        d / "ae.pt",
    )
    scene = np.random.default_rng(0).gamma(1.0, 1.0, (64, 64)).astype(np.float32)
    np.save(d / "scene.npy", scene)
    np.save(d / "nan_scene.npy", np.where(np.arange(64)[:, None] < 32, np.nan, scene).astype(np.float32))
    np.save(d / "nan_all.npy", np.full((64, 64), np.nan, np.float32))
    np.save(d / "three_bands.npy", np.stack([scene] * 3))
    np.save(d / "existing.npy", scene)
    # an image folder with one corrupt image, and an empty one
    from PIL import Image

    for c in ("a", "b"):
        (d / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(d / "imgs" / c / f"{i}.png")
    (d / "imgs" / "b" / "broken.png").write_bytes(b"not a png")
    (d / "empty" / "a").mkdir(parents=True)
    return d


# (id, arguments with {d} for the inputs folder, what stderr must say)
CASES = [
    # -- found wanting by the review -----------------------------------------------------------
    ("config-not-yaml", "train --config {d}/bad.yaml", "bad.yaml is not valid YAML at line 3, column 6"),
    (
        "model-kwargs-not-yaml",
        "train --model-kwargs {{drop_path_rate:",
        "--model-kwargs: the value is not valid YAML at line 1",
    ),
    ("loss-not-yaml", "train --task reconstruct --loss [l1", "--loss: the value is not valid YAML at line 1"),
    ("unknown-key-alias", "train --config {d}/typo.yaml", "'lerning_rate'; did you mean 'lr'?"),
    ("ckpt-text", "eval {d}/notckpt.pt", "notckpt.pt is a text file"),
    ("ckpt-truncated", "eval {d}/truncated.pt", "truncated.pt is truncated or damaged"),
    ("ckpt-pickle-payload", "eval {d}/evil.pt", "holds objects that are not tensors (a pickled posix.system)"),
    (
        "ckpt-classes",
        "eval {d}/two_classes.pt",
        "(cifar_resnet20) does not fit CifarResNet (another architecture or size?): the checkpoint "
        "has 2 classes, the model 10",
    ),
    (
        "ckpt-architecture",
        "eval {d}/resnet20.pt --model cifar_resnet32 --data " + SHAPES,
        "resnet20.pt (cifar_resnet20) does not fit CifarResNet",
    ),
    (
        "eval-says-evaluate",
        "eval {d}/resnet20.pt --data synthetic:cells",
        "task 'classify' cannot use 'synthetic:cells'",
    ),
    (
        "eval-corrupt-image",
        "eval {d}/resnet20.pt --data folder:{d}/imgs --split train",
        "or pass skip_bad=True / --skip-bad",
    ),
    # -- already right ------------------------------------------------------------------------
    (
        "wrong-channels",
        "summary resnet18 --input-size 1 64 64 --in-chans 3",
        "built for in_chans=3, got an input with 1 channels",
    ),
    ("too-small-input", "summary resnet18 --input-size 3 8 8", "inputs must be at least 32x32, got 8x8"),
    ("unknown-model", "summary resnet5O", "did you mean 'resnet50'"),
    ("corrupt-image", "data info folder:{d}/imgs", "cannot decode image"),
    ("empty-folder", "data info folder:{d}/empty", "no images"),
    (
        "nan-scene",
        "reconstruct {d}/ae.pt {d}/nan_all.npy --out {d}/out.npy --tile 32 --no-progress",
        "every pixel is no-data",
    ),
    ("multi-band", "reconstruct {d}/ae.pt {d}/three_bands.npy --out {d}/out.npy --tile 32", "band"),
    ("existing-output", "reconstruct {d}/ae.pt {d}/scene.npy --out {d}/existing.npy --tile 32", "existing.npy exists"),
]


def digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("args, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(inputs, tmp_path, args, expected):
    before = digest(inputs)
    words = args.format(d=inputs).split(" ")
    env = dict(os.environ, OMP_NUM_THREADS="1", SKIPLAB_CACHE=str(tmp_path / "cache"))
    env.pop("SKIPLAB_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "skiplab", *words], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err, proc.stdout)
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"skiplab {words[0]}: error: ") and expected in err, err
    assert digest(inputs) == before  # inputs unchanged, nothing added
    assert not (tmp_path / "PWNED").exists() and sorted(os.listdir(tmp_path)) in ([], ["cache"])
