"""The variable-rate hyperprior codec (gain units): one model, several lambdas, each level a
codec of its own in the file; the compress task weighs each image by its level's lambda; the
synthetic scene folder."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("constriction")

from skiplab.sar.codec.hyperprior import HyperpriorCodec  # noqa: E402
from skiplab.sar.codec.sarl import decode_bytes, encode_scene, unpack  # noqa: E402
from skiplab.sar.codec.shipped import CodecNotFoundError, load_codec  # noqa: E402
from skiplab.sar.raster.speckle import gamma_speckle  # noqa: E402
from skiplab.sar.raster.synthetic_folder import write_synthetic_scenes  # noqa: E402
from skiplab.sar.training.compress_task import MSE_SCALE, CompressTask, image_terms, rate_bpp  # noqa: E402

LMBDAS = [0.0005, 0.002, 0.008]


@pytest.fixture(scope="module")
def vr_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = HyperpriorCodec(8, 12, "gdn", lmbdas=LMBDAS)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(30)  # a latent of a few quantisation steps, as a trained one has
    path = tmp_path_factory.mktemp("vr") / "vr.pt"
    kwargs = {"n": 8, "m": 12, "lmbdas": LMBDAS}
    torch.save(
        {"format_version": 2, "model": model.state_dict(), "arch": {"name": "sar_hyperprior_gdn", "kwargs": kwargs}},
        path,
    )
    return path


def _scene(size: int = 128) -> np.ndarray:
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.linspace(0, 6, size), torch.linspace(0, 4, size), indexing="ij")
    mu = 0.05 * torch.exp(torch.sin(yy) + torch.cos(xx))
    return (mu * gamma_speckle(mu.shape, 2.0, generator=g)).double().numpy()


def test_lambdas_must_be_ascending_and_exclusive_of_lmbda():
    with pytest.raises(ValueError, match="ascending"):
        HyperpriorCodec(8, 12, lmbdas=[0.002, 0.001])
    with pytest.raises(ValueError, match="not both"):
        HyperpriorCodec(8, 12, lmbda=0.001, lmbdas=[0.001, 0.002])


def test_each_level_is_its_own_codec_and_the_file_says_which(vr_checkpoint):
    scene = _scene()
    rates, idents = [], set()
    for level in range(len(LMBDAS)):
        codec = load_codec(vr_checkpoint, level=level)
        idents.add(codec.ident)
        encoded = encode_scene(codec, scene, tile=128)
        header, _, _ = unpack(encoded.data)
        assert header["level"] == level
        first, _ = decode_bytes(encoded.data, vr_checkpoint)  # the file's level is used
        again, _ = decode_bytes(encoded.data, codec=codec)
        assert np.array_equal(first, again)
        rates.append(encoded.bpp)
    assert len(idents) == len(LMBDAS)
    # the gains start at sqrt(lambda) ratios: a finer step at a higher level, more bits
    assert rates == sorted(rates) and len(set(rates)) == len(rates), rates


def test_a_level_the_model_does_not_have_is_refused(vr_checkpoint, tmp_path):
    with pytest.raises(CodecNotFoundError, match="level 3"):
        load_codec(vr_checkpoint, level=3)
    np.save(tmp_path / "s.npy", _scene(64))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["encode", str(tmp_path / "s.npy"), "--out", str(tmp_path / "s.sarl"), "--quality", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "skiplab", *args, "--checkpoint", str(vr_checkpoint), "--level", "7"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "level 7" in proc.stderr, proc.stderr
    assert not (tmp_path / "s.sarl").exists()


def test_training_draws_levels_and_evaluation_visits_every_one():
    torch.manual_seed(0)
    model = HyperpriorCodec(8, 12, lmbdas=LMBDAS)
    x = torch.rand(6, 1, 64, 64)
    out = model.train()(x)
    assert out["level"].shape == (6,) and out["lmbda"].tolist() == pytest.approx([LMBDAS[i] for i in out["level"]])
    out = model.eval()(x)
    assert out["level"].tolist() == [0, 1, 2, 0, 1, 2]


def test_the_loss_weighs_each_image_by_its_own_lambda():
    torch.manual_seed(0)
    model = HyperpriorCodec(8, 12, lmbdas=LMBDAS).eval()
    x = torch.rand(3, 1, 64, 64)
    task = CompressTask.__new__(CompressTask)
    out = task.forward(model, (x, x))
    with torch.no_grad():
        full = model(x)  # evaluation: image i at level i (deterministic)
    bpp, mse = image_terms(full, x)
    want = float((bpp + torch.tensor(LMBDAS) * MSE_SCALE * mse).mean())
    assert float(out["loss"].detach()) == pytest.approx(want, rel=1e-5)
    # one lambda: the formula of a fixed-rate model, R + lambda 255^2 MSE over the batch
    fixed = HyperpriorCodec(8, 12, lmbda=0.001).eval()
    out = task.forward(fixed, (x, x))
    again = fixed(x)
    mse = torch.mean((again["x_hat"].float() - x) ** 2)
    assert float(out["loss"].detach()) == pytest.approx(
        float(rate_bpp(again["likelihoods"], x.numel()) + 0.001 * MSE_SCALE * mse), rel=1e-5
    )


def test_synthetic_scene_folder_is_deterministic(tmp_path):
    a = write_synthetic_scenes(tmp_path / "a", 3, size=64, seed=1)
    b = write_synthetic_scenes(tmp_path / "b", 3, size=64, seed=1)
    assert [p.name for p in a] == ["synthetic_s1_000_L1.npy", "synthetic_s1_001_L2.npy", "synthetic_s1_002_L2.7.npy"]
    for p, q in zip(a, b):
        x, y = np.load(p), np.load(q)
        assert x.shape == (64, 64) and x.dtype == np.float32 and (x >= 0).all() and np.array_equal(x, y)
    c = write_synthetic_scenes(tmp_path / "c", 1, size=64, seed=2)
    assert not np.array_equal(np.load(a[0]), np.load(c[0]))


def test_shipped_levels_of_a_variable_rate_codec(vr_checkpoint, tmp_path, monkeypatch):
    from skiplab.sar.codec import shipped

    card = shipped.ship_levels(vr_checkpoint, "test_vr", {"note": "a test"}, out_dir=tmp_path)
    assert [card["levels"][q]["level"] for q in ("1", "2", "3")] == [0, 1, 2]
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(shipped, "CARD", tmp_path / "sar_hyperprior.json")
    assert shipped.quality_levels() == [1, 2, 3]
    scene = _scene()
    rates = []
    for q in (1, 2, 3):
        codec = shipped.load_quality(q)
        encoded = encode_scene(codec, scene, tile=128)
        decoded, header = decode_bytes(encoded.data)  # finds quality q's codec (and level) from the file
        assert header["codec"] == f"sar_hyperprior_q{q}" and header["level"] == q - 1 and decoded.shape == scene.shape
        rates.append(encoded.bpp)
    assert rates == sorted(rates), rates
    with pytest.raises(CodecNotFoundError, match="not a variable-rate"):
        fixed = tmp_path / "fixed.pt"
        kwargs = {"n": 8, "m": 12, "lmbda": 0.001}
        model = HyperpriorCodec(**kwargs)
        torch.save(
            {
                "format_version": 2,
                "model": model.state_dict(),
                "arch": {"name": "sar_hyperprior_gdn", "kwargs": kwargs},
            },
            fixed,
        )
        shipped.ship_levels(fixed, "x", {}, out_dir=tmp_path)
