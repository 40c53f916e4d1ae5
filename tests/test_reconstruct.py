"""Whole-scene inference with a SAR autoencoder: skiplab reconstruct / encode / decode.

A tiny sar_ae_all is trained for a few steps in the session fixture and saved like a
reconstruct-task checkpoint (weights, config, radiometry); the tests check what users rely
on: units, dtype and GeoTIFF tags of the output, seamless blending, strips equal to the
whole scene, decode(encode(x)) == reconstruct(x), errors and the --overwrite guard.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skiplab.cli import main
from skiplab.sar import read_raster, synthetic_sar_tiles
from skiplab.sar.raster.sink import RasterSink
from skiplab.sar.model.checkpoint import load_autoencoder
from skiplab.sar.inference.grid import Blender, TileGrid, blend_window, make_grid
from skiplab.sar.inference.scene import reconstruct_array, reconstruct_scene
from skiplab.sar.inference.latent import decode_latent, encode_scene, read_latent
from skiplab.models import create_model
from skiplab.train.checkpoint import save_checkpoint

KWARGS = dict(latent_channels=8, widths=(8, 16, 16, 32))
GEO = {
    33550: (12, 3, (10.0, 10.0, 0.0)),
    33922: (12, 6, (0.0, 0.0, 0.0, 500000.0, 4200000.0, 0.0)),
    34735: (3, 8, (1, 1, 0, 1, 1024, 0, 1, 1)),
}


def _save(path, model, radiometry, **extra):
    save_checkpoint(
        {
            "format": "skiplab.train/1",
            "config": {"task": "reconstruct", "model": "sar_ae_all", "model_kwargs": KWARGS},
            "model": model.state_dict(),
            "radiometry": radiometry,
            **extra,
        },
        path,
    )
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A sar_ae_all trained 12 Adam steps on 8 synthetic 32 px tiles; (checkpoint, model, data)."""
    torch.manual_seed(0)
    data = synthetic_sar_tiles(8, tile=32, looks=2, seed=0)
    model = create_model("sar_ae_all", **KWARGS)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(12):
        loss = (model(data.tiles) - data.tiles).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    _save(path, model.eval(), data.radiometry.to_dict(), looks=2.0, tile_size=32)
    return path, model, data


@pytest.fixture(scope="module")
def ae(trained):
    return load_autoencoder(trained[0])


def test_load_autoencoder_restores_model_and_radiometry(trained, ae):
    path, model, data = trained
    assert ae.model_name == "sar_ae_all" and ae.reduction == 16 and ae.latent_channels == 8
    assert ae.radiometry == data.radiometry and ae.tile == 32 and ae.looks == 2.0
    x = data.tiles[:2]
    with torch.no_grad():
        assert torch.equal(ae.model(x), model(x))


def test_real_scene_round_trip_units_and_dtype(ae, sar_real, tmp_path):
    scene = sar_real / "tsukaba_pisar_ch0.npy"  # 256x256 float32 intensity, exact zeros
    x = np.load(scene)
    result = reconstruct_scene(ae, scene, tmp_path / "rec.npy", tile=64, overlap=16, progress=False)
    out = np.load(tmp_path / "rec.npy")
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and (out >= 0).all()
    assert result.grid.count == 25 and result.nodata_pixels == 0  # origins 0, 48, ..., 192
    # the output is intensity within the normalisation's bounds (not [0, 1] network units)
    low, high = (10 ** (b / 10) for b in (ae.radiometry.low_db, ae.radiometry.high_db))
    assert out.min() >= low * 0.999 and out.max() <= high * 1.001
    assert abs(np.log10(np.median(out)) - np.log10(np.median(x))) < 1.5  # same decade-ish level


def test_encode_decode_equals_reconstruct(ae, sar_real, tmp_path):
    scene = sar_real / "sanfrancisco_airsar_ch1.npy"
    reconstruct_scene(ae, scene, tmp_path / "rec.npy", tile=64, overlap=16, progress=False)
    encode_scene(ae, scene, tmp_path / "z.npz", tile=64, overlap=16, progress=False)
    latent, meta, valid = read_latent(tmp_path / "z.npz")
    assert latent.shape == (25, 8, 4, 4) and latent.dtype == np.float32 and valid.all()
    assert meta["grid"] == dict(height=256, width=256, tile=64, overlap=16)
    assert meta["model"] == "sar_ae_all" and meta["weights"] == ae.fingerprint
    decode_latent(ae, tmp_path / "z.npz", tmp_path / "dec.npy", progress=False)
    assert np.array_equal(np.load(tmp_path / "dec.npy"), np.load(tmp_path / "rec.npy"))


def test_decode_refuses_other_weights(trained, ae, sar_real, tmp_path):
    path, model, data = trained
    other = create_model("sar_ae_all", **KWARGS).eval()
    other_path = _save(tmp_path / "other.pt", other, data.radiometry.to_dict())
    encode_scene(ae, sar_real / "tsukaba_pisar_ch1.npy", tmp_path / "z.npz", tile=64, progress=False)
    with pytest.raises(ValueError, match="differs in weights"):
        decode_latent(other_path, tmp_path / "z.npz", tmp_path / "dec.npy", progress=False)


def test_geotiff_tags_dtype_and_nodata_preserved(ae, tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    scene = (rng.gamma(2.0, 0.05, size=(96, 80))).astype(np.float32)
    scene[:5, :7] = -9999.0  # no-data corner
    src = tmp_path / "scene.tif"
    tags = [(code, dt, count, value, True) for code, (dt, count, value) in GEO.items()]
    tifffile.imwrite(src, scene, photometric="minisblack", extratags=tags + [(42113, "s", 0, "-9999", True)])
    result = reconstruct_scene(ae, src, tmp_path / "out.tif", tile=64, overlap=16, progress=False)
    back = read_raster(tmp_path / "out.tif")
    assert back.dtype == np.float32 and back.shape == (96, 80)
    for code, (_, _, value) in GEO.items():
        assert tuple(np.ravel(back.tags[code][2])) == pytest.approx(value)
    assert back.nodata == -9999.0 and result.nodata_pixels == 35
    assert (back.data[:5, :7] == -9999.0).all() and (back.data[5:] > 0).all()


def test_integer_dtype_kept_and_normalisation_mismatch_refused(trained, ae, tmp_path):
    path, model, data = trained
    scene = np.random.default_rng(1).integers(1, 4000, size=(64, 64)).astype(np.uint16)
    np.save(tmp_path / "dn.npy", scene)
    with pytest.raises(ValueError, match="fitted on float32 intensity rasters; this raster is uint16"):
        reconstruct_scene(ae, tmp_path / "dn.npy", tmp_path / "out.npy", progress=False, radiometry="model")
    assert not (tmp_path / "out.npy").exists()
    # the per-scene normalisation (the default) serves digital numbers with a float-trained model
    reconstruct_scene(ae, tmp_path / "dn.npy", tmp_path / "out.npy", progress=False)
    assert read_raster(tmp_path / "out.npy").dtype == np.uint16
    radiometry = dict(data.radiometry.to_dict(), source_dtype="uint16", low_db=0.0, high_db=40.0)
    dn_ckpt = _save(tmp_path / "dn.pt", model, radiometry)
    reconstruct_scene(dn_ckpt, tmp_path / "dn.npy", tmp_path / "out.png", progress=False)
    back = read_raster(tmp_path / "out.png")
    assert back.dtype == np.uint16 and back.shape == (64, 64) and back.data.max() <= 10**4


def test_blend_window_is_partition_of_unity_and_positive():
    w = blend_window(64, 16)
    assert w.min() > 0 and w[16:48].min() == 1.0
    # neighbours 48 px apart (overlap 16): their weights sum to 1 over the shared 16 px
    assert np.allclose(w[48:] + w[:16], 1.0)


def test_blending_hides_tile_edges_exactly():
    """Tiles whose reconstructions disagree by a constant (worst case for a seam): the
    blended scene changes by at most (range) * pi / (2 * overlap) between neighbours."""
    grid = TileGrid(112, 112, 64, 16)
    rows = []
    blender = Blender(grid, lambda values, valid: rows.append(values), strip_tiles=1)
    levels = np.random.default_rng(0).uniform(0.2, 0.8, size=(len(grid.ys), len(grid.xs)))
    for i, y in enumerate(grid.ys):
        tiles = np.stack([np.full((64, 64), levels[i, j]) for j in range(len(grid.xs))])
        blender.add_row(y, tiles, np.ones((64, 112), dtype=bool))
    out = np.concatenate(rows)
    spread = levels.max() - levels.min()
    jump = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert out.shape == (112, 112) and jump <= spread * np.pi / (2 * 16) * 1.05
    hard = np.abs(np.diff(levels, axis=1)).max()  # what stitching without blending would show
    assert jump < hard / 4


def _seam_excess(ae, overlap: int) -> float:
    """How much larger the mean |jump| (dB) between neighbouring columns is across a tile
    edge than across the same phase of the model's own 16 px latent blocks elsewhere, for
    the reconstruction of a constant scene (the largest ratio over the tile edges)."""
    scene = np.full((112, 208), 0.05, dtype=np.float32)
    out = 10 * np.log10(reconstruct_array(ae, scene, tile=64, overlap=overlap))
    grid, _ = make_grid(*scene.shape, 16, 64, overlap)
    jumps = np.abs(np.diff(out, axis=1)).mean(0)  # column c -> c + 1
    edges = sorted({x - 1 for x in grid.xs if x} | {x + 63 for x in grid.xs if x + 64 < 208})
    phase = [np.median(jumps[p::16]) for p in range(16)]  # the model's periodic texture
    return max(jumps[e] / phase[e % 16] for e in edges)


def test_no_seams_on_a_constant_scene(ae):
    # The blended reconstruction has no tile grid beyond the model's own 16 px texture. (How
    # much plain stitching shows depends on how far the tiny model has trained; the test above,
    # with tiles that disagree by known levels, is the control that blending is what removes it.)
    assert _seam_excess(ae, overlap=16) <= 1.1


def test_strips_equal_whole_scene(ae, tmp_path):
    scene = np.random.default_rng(2).gamma(1.0, 0.1, size=(200, 150)).astype(np.float32)
    np.save(tmp_path / "s.npy", scene)
    for strip, name in ((1, "strips.tif"), (None, "whole.tif"), (2, "strips2.npy")):
        reconstruct_scene(
            ae, tmp_path / "s.npy", tmp_path / name, tile=64, overlap=16, strip_tiles=strip, progress=False
        )
    whole = read_raster(tmp_path / "whole.tif").data
    assert make_grid(200, 150, 16, 64, 16)[0].ys == [0, 48, 96, 136]  # 4 window rows
    assert np.array_equal(read_raster(tmp_path / "strips.tif").data, whole)
    assert np.array_equal(np.load(tmp_path / "strips2.npy"), whole)


def test_raster_sink_writes_rows_incrementally(tmp_path):
    like = read_raster_like(tmp_path)
    with RasterSink(tmp_path / "o.tif", 10, 4, like) as sink:
        assert not (tmp_path / "o.tif").exists()
        sink.write(np.full((3, 4), 1.6))
        sink.write(np.full((7, 4), 70000.0))
        sink.close()
    back = read_raster(tmp_path / "o.tif")
    assert back.dtype == np.uint16 and back.data[0, 0] == 2 and back.data[9, 3] == 65535
    with pytest.raises(ValueError, match="3 of 10 rows"):
        with RasterSink(tmp_path / "p.npy", 10, 4, like) as sink:
            sink.write(np.zeros((3, 4)))
            sink.close()
    assert not list(tmp_path.glob(".p.npy*")) and not (tmp_path / "p.npy").exists()


def read_raster_like(tmp_path):
    np.save(tmp_path / "like.npy", np.zeros((2, 2), dtype=np.uint16))
    return read_raster(tmp_path / "like.npy")


def test_small_scene_shrinks_tile_and_tiny_scene_refused(ae):
    grid, note = make_grid(40, 300, 16, 256)
    assert grid.tile == 32 and "using 32 px tiles" in note
    with pytest.raises(ValueError, match="smaller than the model's minimum input 16x16"):
        make_grid(10, 300, 16)
    with pytest.raises(ValueError, match="multiple of the model's total stride 16"):
        make_grid(300, 300, 16, tile=100)


def test_bad_scenes_are_clear_errors(ae, tmp_path):
    scene = np.full((64, 64), 0.1, dtype=np.float32)
    scene[3, 4] = -1.0
    with pytest.raises(ValueError, match="1 negative value"):
        reconstruct_array(ae, scene, tile=64)
    with pytest.raises(ValueError, match="every pixel is no-data"):
        reconstruct_array(ae, np.full((64, 64), np.nan, dtype=np.float32), tile=64)
    np.save(tmp_path / "rgb.npy", np.ones((3, 64, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="single-band"):
        reconstruct_scene(ae, tmp_path / "rgb.npy", tmp_path / "o.npy", progress=False)


def test_checkpoint_without_radiometry_refused(trained, tmp_path):
    save_checkpoint(
        {"config": {"model": "sar_ae_all", "model_kwargs": KWARGS}, "model": trained[1].state_dict()}, tmp_path / "c.pt"
    )
    with pytest.raises(ValueError, match="holds no SAR radiometry"):
        load_autoencoder(tmp_path / "c.pt")


def test_cli_reconstruct_encode_decode_and_overwrite_guard(trained, sar_real, tmp_path, capsys):
    ckpt, scene = str(trained[0]), str(sar_real / "sanfrancisco_airsar_ch2.npy")
    out, z, dec = tmp_path / "r.npy", tmp_path / "z.npz", tmp_path / "d.npy"
    opts = ["--tile", "128", "--no-progress"]
    assert main(["reconstruct", ckpt, scene, "--out", str(out), *opts]) == 0
    assert "from 9 tiles of 128 px (overlap 32)" in capsys.readouterr().out
    first = np.load(out)
    out.write_bytes(b"user data")
    assert main(["reconstruct", ckpt, scene, "--out", str(out), *opts]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"user data"
    assert main(["reconstruct", ckpt, scene, "--out", str(out), "--overwrite", *opts]) == 0
    assert np.array_equal(np.load(out), first)
    assert main(["encode", ckpt, scene, "--out", str(z), *opts]) == 0
    assert main(["decode", ckpt, str(z), "--out", str(dec), "--no-progress"]) == 0
    assert np.array_equal(np.load(dec), first)
    assert main(["encode", ckpt, scene, "--out", str(z), *opts]) == 2  # latent exists
    assert main(["reconstruct", ckpt, scene, "--out", scene, "--overwrite", *opts]) == 2
    assert "is the input file" in capsys.readouterr().err
