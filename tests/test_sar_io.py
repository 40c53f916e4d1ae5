"""Reading and writing single-channel SAR rasters: TIFF/GeoTIFF, PNG, .npy."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from skiplab.errors import ConversionWarning
from skiplab.sar.raster.io import GDAL_NODATA, read_raster, write_raster

GEO = {
    33550: (12, 3, (10.0, 10.0, 0.0)),
    33922: (12, 6, (0.0, 0.0, 0.0, 500000.0, 4_000_000.0, 0.0)),
    34735: (3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)),
    34737: (2, 23, "WGS 84 / UTM zone 33N|"),
}


def test_real_scenes_read_as_float32_intensity(sar_real):
    files = sorted(sar_real.glob("*.npy"))
    assert len(files) == 6
    for path in files:
        raster = read_raster(path)
        assert raster.shape == (256, 256) and raster.dtype == np.float32
        assert raster.format == "npy" and raster.nodata is None and not raster.tags
        np.testing.assert_array_equal(raster.data, np.load(path))
    zeros = sum(int((read_raster(p).data == 0).sum()) for p in files if "pisar" in p.name)
    assert zeros == 2  # the README's exact zeros (one each in PiSAR HH and VV)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_geotiff_round_trip_keeps_dtype_and_georeferencing(tmp_path, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((40, 56)) * 200).astype(dtype)
    src = write_raster(tmp_path / "in.tif", data, tags=GEO, nodata=0)
    raster = read_raster(src)
    assert raster.dtype == dtype and raster.georeferenced and raster.nodata == 0.0
    np.testing.assert_array_equal(raster.data, data)
    out = write_raster(tmp_path / "out.tif", raster.data.astype(np.float64) * 1.0, like=raster)
    again = read_raster(out)
    assert again.dtype == dtype and again.tags == raster.tags
    for code in GEO:  # verbatim values, and tifffile still decodes the GeoKeys
        assert again.tags[code][2] == GEO[code][2]
    with tifffile.TiffFile(out) as tif:
        geo = tif.pages[0].geotiff_tags
    assert geo["ModelPixelScale"] == [10.0, 10.0, 0.0] and int(geo["ProjectedCSTypeGeoKey"]) == 32633


def test_integer_output_is_rounded_and_clipped(tmp_path):
    like = read_raster(write_raster(tmp_path / "a.tif", np.zeros((4, 4), np.uint8)))
    values = np.array([[-3.0, 0.4, 0.6, 300.0]] * 4)
    out = read_raster(write_raster(tmp_path / "b.tif", values, like=like)).data
    np.testing.assert_array_equal(out[0], [0, 0, 1, 255])


def test_complex_slc_is_read_as_amplitude(tmp_path):
    slc = np.tile(np.array([[3 + 4j, 0], [1j, -2]], np.complex64), (4, 4))
    tifffile.imwrite(tmp_path / "slc.tif", slc)
    np.save(tmp_path / "slc.npy", slc)
    for name in ("slc.tif", "slc.npy"):
        with pytest.warns(ConversionWarning, match="complex SLC .* read as amplitude"):  # said
            raster = read_raster(tmp_path / name)
        assert raster.quantity == "amplitude" and raster.dtype == np.complex64
        assert raster.data.dtype == np.float32
        np.testing.assert_allclose(raster.data, np.abs(slc), rtol=1e-6)


def test_png_8_and_16_bit(tmp_path):
    for dtype in (np.uint8, np.uint16):
        data = (np.arange(64 * 64).reshape(64, 64) % np.iinfo(dtype).max).astype(dtype)
        raster = read_raster(write_raster(tmp_path / f"{dtype.__name__}.png", data))
        assert raster.dtype == dtype
        np.testing.assert_array_equal(raster.data, data)
    with pytest.raises(ValueError, match="PNG holds only uint8 or uint16"):
        write_raster(tmp_path / "f.png", np.zeros((4, 4), np.float32))


def test_npy_singleton_axes_are_squeezed(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((1, 9, 7), np.float32))
    assert read_raster(tmp_path / "a.npy").shape == (9, 7)


def test_multi_band_rasters_are_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 8, 8), np.float32))
    np.save(tmp_path / "iq.npy", np.zeros((2, 8, 8), np.int16))
    for name in ("rgb.png", "rgb.tif", "stack.tif"):
        with pytest.raises(ValueError, match="single-band"):
            read_raster(tmp_path / name)
    with pytest.raises(ValueError, match=r"I/Q.*I \+ 1j\*Q|single-band.*I/Q"):
        read_raster(tmp_path / "iq.npy")


def test_nothing_is_overwritten_without_overwrite(tmp_path):
    path = write_raster(tmp_path / "x.npy", np.ones((3, 3), np.float32))
    with pytest.raises(FileExistsError, match="overwrite"):
        write_raster(path, np.zeros((3, 3), np.float32))
    np.testing.assert_array_equal(np.load(path), 1)
    write_raster(path, np.zeros((3, 3), np.float32), overwrite=True)
    np.testing.assert_array_equal(np.load(path), 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no partial files left


def test_bad_paths_and_formats(tmp_path):
    with pytest.raises(ValueError, match="unsupported raster format"):
        read_raster(tmp_path / "scene.jpg")
    with pytest.raises(FileNotFoundError):
        read_raster(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match=r"single-band \[H, W\]"):
        write_raster(tmp_path / "a.npy", np.zeros((2, 3, 3)))


def test_nan_nodata_tag_and_valid_mask(tmp_path):
    data = np.ones((6, 6), np.float32)
    data[0, :] = np.nan
    data[1, :] = -9999
    raster = read_raster(write_raster(tmp_path / "n.tif", data, nodata=-9999))
    assert raster.tags[GDAL_NODATA][2] == "-9999"
    assert raster.valid_mask().sum() == 24
    assert raster.valid_mask(nodata=1.0).sum() == 6  # -9999 now counts as data, 1.0 does not


def test_memory_mapped_reading_and_values(tmp_path):
    data = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    for name in ("m.tif", "m.npy"):
        raster = read_raster(write_raster(tmp_path / name, data), mmap=True)
        assert isinstance(raster.data, np.memmap) or isinstance(raster.data.base, np.memmap)
        np.testing.assert_array_equal(raster.data[10:20], data[10:20])
        assert raster.values("intensity") is raster.data  # unknown quantity: as stored
    slc = read_raster(_save(tmp_path / "c.npy", np.full((4, 4), 3 + 4j, np.complex64)))
    np.testing.assert_allclose(slc.values("intensity"), 25.0)
    np.testing.assert_allclose(slc.values("amplitude"), 5.0)


def _save(path, array):
    np.save(path, array)
    return path
