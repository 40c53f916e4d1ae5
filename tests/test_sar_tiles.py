"""Tiling, the SAR tile dataset and loader, and speckle-preserving augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skiplab.data.dihedral import batched_crop, batched_dihedral, dihedral, inverse_dihedral
from skiplab.sar.raster.io import write_raster
from skiplab.sar.raster.radiometry import Radiometry
from skiplab.sar.training.tiles import (
    SARAugmentation,
    SARTileLoader,
    cut_tiles,
    load_sar_tiles,
    synthetic_sar_tiles,
    tile_positions,
)


# ---- tiling ----------------------------------------------------------------------------------
def test_tile_positions_cover_the_scene_flush_with_the_border():
    assert tile_positions(256, 256) == [(0, 0)]
    assert tile_positions(600, 300, tile=256, stride=256) == [(0, 0), (0, 44), (256, 0), (256, 44), (344, 0), (344, 44)]
    pos = tile_positions(700, 513, tile=256, stride=128)
    cover = np.zeros((700, 513), int)
    for y, x in pos:
        cover[y : y + 256, x : x + 256] += 1
    assert cover.min() >= 1 and max(y for y, _ in pos) == 700 - 256
    with pytest.raises(ValueError, match="smaller than the 256 px tile"):
        tile_positions(255, 1000)


def test_cut_tiles_drops_mostly_nodata_tiles_and_counts_them():
    scene = np.ones((512, 512), np.float32)
    scene[:, :200] = np.nan  # left tiles 200/256 = 78% no-data
    kept = cut_tiles(scene, 256, max_nodata_fraction=0.5)
    assert kept.positions == [(0, 256), (256, 256)] and kept.dropped == 2
    assert kept.tiles.shape == (2, 256, 256) and kept.valid.all()
    everything = cut_tiles(scene, 256, max_nodata_fraction=0.8)
    assert len(everything.positions) == 4 and everything.valid[0].mean() == pytest.approx(56 / 256)
    with pytest.raises(ValueError, match="all 4 tiles are more than 50% no-data"):
        cut_tiles(
            np.where(np.arange(512) < 400, np.nan, 1.0)[None].repeat(512, 0), 256, max_nodata_fraction=0.5, stride=256
        )
    with pytest.raises(ValueError, match="every pixel is no-data"):
        cut_tiles(np.full((300, 300), np.nan), 256)


def test_real_scenes_tile_and_round_trip(sar_real):
    ds = load_sar_tiles(sar_real, tile=128, stride=64)
    assert len(ds) == 6 * 9 and ds.tiles.shape == (54, 1, 128, 128) and ds.valid is None
    assert ds.tiles.min() == 0 and ds.tiles.max() == 1 and ds.tiles.dtype == torch.float32
    assert ds.radiometry.method == "percentile" and ds.radiometry.source_dtype == "float32"
    assert ds.sources[9].endswith("sanfrancisco_airsar_ch1.npy") and ds.positions[9] == (0, 0)
    # tile (64, 128) of PiSAR HH maps back to the scene's pixels where not clipped
    exact = load_sar_tiles(sar_real / "tsukaba_pisar_ch0.npy", tile=128, stride=64, percentiles=(0, 100))
    scene = np.load(sar_real / "tsukaba_pisar_ch0.npy")
    index = exact.positions.index((64, 128))
    back = exact.intensity()[index, 0].numpy()
    np.testing.assert_allclose(back, scene[64:192, 128:256], rtol=2e-6)
    zero = np.argwhere(scene == 0)[0]
    full = load_sar_tiles(sar_real / "tsukaba_pisar_ch0.npy", percentiles=(0, 100))
    assert full.tiles[0, 0, zero[0], zero[1]] == 0 and full.intensity()[0, 0].min() == 0


def test_held_out_set_reuses_the_training_radiometry(sar_real, tmp_path):
    train = load_sar_tiles(sorted(sar_real.glob("sanfrancisco*.npy")))
    test = load_sar_tiles(sar_real / "tsukaba_pisar_ch1.npy", radiometry=train.radiometry)
    assert test.radiometry is train.radiometry and len(test) == 1
    png = write_raster(tmp_path / "dn.png", np.full((256, 256), 7, np.uint8))
    with pytest.raises(ValueError, match="fitted on float32 intensity.*uint8"):
        load_sar_tiles(png, radiometry=train.radiometry)


def test_bad_rasters_raise_or_are_skipped_and_listed(tmp_path):
    good = write_raster(tmp_path / "a_good.npy", np.full((256, 256), 0.5, np.float32))
    negative = np.full((256, 256), 0.5, np.float32)
    negative[3, 4] = -1
    write_raster(tmp_path / "b_negative.npy", negative)
    write_raster(tmp_path / "c_nodata.npy", np.full((256, 256), np.nan, np.float32))
    np.save(tmp_path / "d_bands.npy", np.ones((3, 256, 256), np.float32))
    write_raster(tmp_path / "e_small.npy", np.ones((100, 300), np.float32))
    for name, message in [
        ("b_negative.npy", "1 negative value"),
        ("c_nodata.npy", "every pixel"),
        ("d_bands.npy", "single-band"),
        ("e_small.npy", "smaller than the 256"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_sar_tiles(tmp_path / name)
    ds = load_sar_tiles(tmp_path, skip_bad=True)
    assert len(ds) == 1 and ds.sources == [str(good)]
    assert [p.rsplit("/", 1)[1] for p in ds.skipped_files] == [
        "b_negative.npy",
        "c_nodata.npy",
        "d_bands.npy",
        "e_small.npy",
    ]


def test_nodata_pixels_of_kept_tiles_are_zero_and_flagged(tmp_path):
    scene = np.full((256, 256), 0.1, np.float32)
    scene[:, :64] = -9999
    path = write_raster(tmp_path / "s.tif", scene, nodata=-9999)
    ds = load_sar_tiles(path, radiometry=Radiometry.fixed(-20, 0))
    assert ds.valid is not None and ds.valid[0, 0, :, :64].any().item() is False
    assert (ds.tiles[0, 0, :, :64] == 0).all() and ds.tiles[0, 0, 0, 64] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="negative"):
        load_sar_tiles(path, nodata=0.0, radiometry=Radiometry.fixed(-20, 0))


def test_complex_slc_tiles_as_intensity(tmp_path):
    rng = np.random.default_rng(0)
    slc = (rng.normal(size=(256, 256)) + 1j * rng.normal(size=(256, 256))).astype(np.complex64)
    np.save(tmp_path / "slc.npy", slc)
    ds = load_sar_tiles(tmp_path / "slc.npy", percentiles=(0, 100))
    np.testing.assert_allclose(ds.intensity()[0, 0].numpy(), np.abs(slc) ** 2, rtol=5e-6)


# ---- synthetic dataset and loader ---------------------------------------------------------
def test_synthetic_tiles_and_loader_targets():
    ds = synthetic_sar_tiles(6, tile=64, looks=2, seed=0)
    assert ds.tiles.shape == ds.clean.shape == (6, 1, 64, 64) and ds.looks == 2.0
    train, val = ds.split(2, seed=0)
    assert len(train) == 4 and len(val) == 2 and train.radiometry == ds.radiometry
    loader = SARTileLoader(train, 2, seed=3, augment=SARAugmentation(crop=48))
    batches = list(loader)
    assert len(batches) == 2 and all(x is y and x.shape == (2, 1, 48, 48) for x, y in batches)
    again = [x for x, _ in SARTileLoader(train, 2, seed=3, augment=SARAugmentation(crop=48))]
    assert all(torch.equal(a, b[0]) for a, b in zip(again, batches))
    clean = SARTileLoader(train, 4, target="clean", augment=SARAugmentation(), shuffle=False)
    x, y = next(iter(clean))
    # the same dihedral transform applied to input and clean target
    for b in range(4):
        k = [k for k in range(8) if torch.equal(dihedral(train.tiles[b], k), x[b])]
        assert k and torch.equal(dihedral(train.clean[b], k[0]), y[b])
    with pytest.raises(ValueError, match="needs clean tiles"):
        SARTileLoader(load_sar_tiles_stub(), 1, target="clean")
    with pytest.raises(ValueError, match="smaller than the model's 96x96"):
        SARTileLoader(train, 2, augment=SARAugmentation(crop=96))


def load_sar_tiles_stub():
    ds = synthetic_sar_tiles(2, tile=32, seed=1)
    ds.clean = None
    return ds


def test_loader_shards_ranks_like_batch_loader():
    ds = synthetic_sar_tiles(8, tile=32, seed=2)
    aug = SARAugmentation()
    whole = next(iter(SARTileLoader(ds, 4, seed=1, augment=aug)))[0]
    parts = [next(iter(SARTileLoader(ds, 2, seed=1, augment=aug, rank=r, world_size=2)))[0] for r in range(2)]
    assert torch.equal(torch.stack(parts, 1).flatten(0, 1), whole)


# ---- augmentation ------------------------------------------------------------------------
def test_dihedral_group_is_eight_distinct_pixel_permutations():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    images = [dihedral(x, k) for k in range(8)]
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    for k, im in enumerate(images):
        assert torch.equal(inverse_dihedral(im, k), x)
        assert torch.equal(im.flatten().sort().values, x.flatten())  # pixels only move
    assert torch.equal(dihedral(x, 1), torch.rot90(x, 1, (-2, -1)))
    assert torch.equal(dihedral(x, 4), x.transpose(-2, -1))


def test_batched_transforms_match_per_sample_ones():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 2, 8, 8, generator=g)
    ks = torch.arange(9) % 8
    out = batched_dihedral(x, ks)
    for b in range(9):
        assert torch.equal(out[b], dihedral(x[b], int(ks[b])))
    top, left = torch.tensor([0, 3, 1] * 3), torch.tensor([2, 0, 3] * 3)
    crops = batched_crop(x, top, left, 5)
    for b in range(9):
        assert torch.equal(crops[b], x[b, :, top[b] : top[b] + 5, left[b] : left[b] + 5])
    with pytest.raises(ValueError, match="square batch"):
        batched_dihedral(torch.zeros(1, 1, 4, 5), torch.zeros(1, dtype=torch.long))


def test_augmentation_preserves_speckle_statistics():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 32, 32, generator=g)
    out = SARAugmentation(crop=32)(x, torch.Generator().manual_seed(4))
    # every output is a pixel permutation of its input: identical value multisets
    assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    assert SARAugmentation(crop=None, dihedral=False).is_identity
    with pytest.raises(ValueError, match="crop must be"):
        SARAugmentation(crop=0)
