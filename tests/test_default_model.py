"""The packaged default SAR autoencoder: it loads, reconstructs
a real scene, serves any calibration, and encode -> decode needs no checkpoint; a latent file
of another model is refused in one line (exit 2). Also the shipping step (strip, size,
card) on a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skiplab.cli import main
from skiplab.evidence.thresholds import ABLATION_LEARNT_DB
from skiplab.models import create_model
from skiplab.sar import default_model_card, load_default_model, reconstruct_array
from skiplab.sar.model.default import DEFAULT_CARD, DEFAULT_NAME, DEFAULT_WEIGHTS, MAX_BYTES
from skiplab.sar.codec.latent_file import decode_scene_bytes, encode_scene_bytes, unpack
from skiplab.sar.model.card import ship_model
from skiplab.sar.raster.scene_radiometry import scene_radiometry
from skiplab.sar.raster.speckle import synthetic_scene
from skiplab.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCENE = "sanfrancisco_airsar_ch0.npy"


@pytest.fixture(scope="module")
def default():
    return load_default_model()


def _psnr_normalised(out: np.ndarray, scene: np.ndarray) -> float:
    """PSNR (dB) in the scene's own normalised log domain: the measure of the model card."""
    from skiplab.sar.raster.radiometry import Radiometry

    r = scene_radiometry(Radiometry.fixed(-30.0, 10.0), scene)
    a, b = np.asarray(r.forward(out), np.float64), np.asarray(r.forward(scene), np.float64)
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_packaged_model_is_package_data_under_10_mb(default):
    card = default_model_card()
    assert DEFAULT_WEIGHTS.stat().st_size == card["size_bytes"] <= MAX_BYTES
    assert card["name"] == DEFAULT_NAME == default.name
    assert card["weights_sha256"] == default.weights_sha256 and len(default.weights_sha256) == 64
    assert card["model"] == default.model_name and default.reduction == 16
    for key in ("radiometry", "quantisation", "training", "measured"):
        assert card[key], key
    # the command that trained it: a skiplab train line, or the documented snippet that fits it
    assert "skiplab train" in card["training"]["command"] or "docs/" in card["training"]["command"]


def test_default_model_reconstructs_a_real_scene(default, sar_real):
    scene = np.load(sar_real / SCENE).astype(np.float64)
    out = reconstruct_array(default, scene)
    assert out.shape == scene.shape and np.isfinite(out).all() and (out >= 0).all()
    psnr = _psnr_normalised(out, scene)
    # the best constant image (the scene's mean normalised level): 10 log10(1 / variance);
    # the model must beat it by the project's fixed "learnt something" margin
    r = scene_radiometry(default.radiometry, scene)
    constant = float(-10 * np.log10(np.var(np.asarray(r.forward(scene), np.float64))))
    assert psnr > constant + ABLATION_LEARNT_DB, (psnr, constant)  # not a flat image
    recorded = default_model_card()["measured"]["scenes"][SCENE[:-4]]["psnr_unquantised"]
    assert psnr == pytest.approx(recorded, abs=0.05)  # the card tells the truth


@pytest.mark.parametrize("factor", [1e-4, 1e4])
def test_any_calibration(default, sar_real, factor):
    """Scaling the scene scales the reconstruction; the normalised PSNR stays the same."""
    scene = np.load(sar_real / SCENE).astype(np.float64)
    base = reconstruct_array(default, scene)
    scaled = reconstruct_array(default, scene * factor)
    np.testing.assert_allclose(scaled, base * factor, rtol=1e-3, atol=1e-12 * factor)
    assert _psnr_normalised(scaled, scene * factor) == pytest.approx(_psnr_normalised(base, scene), abs=0.01)


def test_api_encode_decode_without_checkpoint(default, sar_real):
    scene = np.load(sar_real / SCENE)
    encoded = encode_scene_bytes(None, scene, bits=6)
    header = unpack(encoded.data)[0]
    assert header["model_name"] == DEFAULT_NAME
    assert header["weights_sha256"] == default.weights_sha256
    decoded = decode_scene_bytes(None, encoded.data)
    assert decoded.shape == scene.shape and np.isfinite(decoded).all()
    assert np.array_equal(decoded, decode_scene_bytes(default, encoded.data))


@pytest.fixture(scope="module")
def user_checkpoint(tmp_path_factory, default):
    """A user's own checkpoint: the default architecture, other (random) weights."""
    torch.manual_seed(1)
    model = create_model(default.model_name, **default.model_kwargs).eval()
    path = tmp_path_factory.mktemp("user") / "best.pt"
    save_checkpoint(
        {
            "config": {"task": "reconstruct", "model": default.model_name, "model_kwargs": default.model_kwargs},
            "model": model.state_dict(),
            "radiometry": default.radiometry.to_dict(),
            "tile_size": 64,
        },
        path,
    )
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_round_trip_and_model_mismatch(sar_real, user_checkpoint, tmp_path, capsys):
    scene = str(sar_real / SCENE)
    quiet = ["--no-progress"]
    assert main(["reconstruct", scene, "--out", str(tmp_path / "r.npy"), *quiet]) == 0
    assert main(["encode", scene, "--out", str(tmp_path / "d.sarl"), "--bits", "6", *quiet]) == 0
    assert DEFAULT_NAME in capsys.readouterr().out
    assert main(["decode", str(tmp_path / "d.sarl"), "--out", str(tmp_path / "d.npy")]) == 0
    # without --bits: the depth the packaged codec was validated at (its eval_bits, 4)
    assert main(["encode", scene, "--out", str(tmp_path / "e.sarl"), *quiet]) == 0
    assert "(4-bit symbols" in capsys.readouterr().out
    assert np.isfinite(np.load(tmp_path / "d.npy")).all()
    # a file of the packaged model given a user's checkpoint: refused, pointing at the default
    assert (
        main(
            ["decode", str(tmp_path / "d.sarl"), "--out", str(tmp_path / "x.npy"), "--checkpoint", str(user_checkpoint)]
        )
        == 2
    )
    assert "omit --checkpoint" in _one_line_error(capsys)
    # a user's file decoded without its checkpoint: one line naming the model expected
    user = ["--checkpoint", str(user_checkpoint)]
    for latent in ("u.sarl", "u.npz"):
        assert main(["encode", scene, "--out", str(tmp_path / latent), *user, *quiet]) == 0
        assert main(["decode", str(tmp_path / latent), "--out", str(tmp_path / "y.npy")]) == 2
        err = _one_line_error(capsys)
        assert str(user_checkpoint) in err and "--checkpoint" in err
        assert main(["decode", str(tmp_path / latent), "--out", str(tmp_path / "y.npy"), *user, *quiet]) == 0
        (tmp_path / "y.npy").unlink()
    # the older form, the checkpoint before the scene, still works; two checkpoints do not
    assert main(["reconstruct", str(user_checkpoint), scene, "--out", str(tmp_path / "o.npy"), *quiet]) == 0
    assert main(["reconstruct", str(user_checkpoint), scene, "--out", str(tmp_path / "o2.npy"), *user]) == 2
    assert "two checkpoints" in _one_line_error(capsys)


def test_ship_model_strips_measures_and_writes_a_card(tmp_path):
    """The shipping step on a tiny checkpoint: bf16 weights, loadable, measured, carded."""
    kwargs = dict(latent_channels=4, widths=(8, 8, 16, 16))
    model = create_model("sar_ae_all", **kwargs)
    from skiplab.sar import Radiometry

    source = tmp_path / "run" / "checkpoints" / "best.pt"
    source.parent.mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("task: reconstruct\n")
    save_checkpoint(
        {
            "config": {"task": "reconstruct", "model": "sar_ae_all", "model_kwargs": kwargs},
            "model": model.state_dict(),
            "optimizer": {"junk": torch.zeros(1000)},
            "radiometry": Radiometry.fixed(-40.0, 0.0).to_dict(),
            "tile_size": 64,
        },
        source,
    )
    scene = tmp_path / "scenes" / "s.npy"
    scene.parent.mkdir()
    np.save(scene, synthetic_scene(64, looks=2, seed=3).speckled.numpy())
    out = tmp_path / "ship" / "m.pt"
    card = ship_model(source, out=out, scenes=scene.parent, dtype="bfloat16", bits=(4,), name="tiny")
    saved = torch.load(out, weights_only=True)
    assert "optimizer" not in saved and saved["name"] == "tiny"
    assert all(v.dtype == torch.bfloat16 for v in saved["model"].values() if v.is_floating_point())
    assert json.loads(out.with_suffix(".json").read_text()) == card
    assert card["training"]["command"] == f"skiplab train --config {tmp_path / 'run' / 'config.yaml'}"
    rate = card["measured"]["scenes"]["s"]["rates"][0]
    assert rate["bits"] == 4 and rate["bpp"] > 0 and rate["psnr"] > 0
    assert card["size_bytes"] == out.stat().st_size


def test_card_file_is_valid_json():
    assert json.loads(DEFAULT_CARD.read_text())["format"] == "skiplab.sar_model_card/1"
