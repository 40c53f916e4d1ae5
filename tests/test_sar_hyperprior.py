"""The hyperprior SAR codec: exact round trips through the .sarl file, the entropy coder
against the entropy of a known source, the radiometric gain, Bjøntegaard deltas on curves
with a known answer, damaged files refused in one line, and the shipped quality levels."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("constriction")

from skiplab.sar.codec.ans import decode_tiles, encode_tiles  # noqa: E402
from skiplab.sar.codec.factorized_density import Z_RANGE  # noqa: E402
from skiplab.sar.codec.gaussian_conditional import scale_table  # noqa: E402
from skiplab.sar.codec.hyperprior import HyperpriorCodec, Symbols  # noqa: E402
from skiplab.sar.codec.sarl import (
    CorruptSceneFileError,
    coding_tiles,
    decode_bytes,  # noqa: E402
    encode_scene,
    unpack,
    z_shapes,
)
from skiplab.sar.codec.shipped import load_codec, load_quality, quality_levels  # noqa: E402
from skiplab.sar.rate_distortion.bjontegaard import bd_psnr, bd_rate  # noqa: E402
from skiplab.sar.raster.radiometry import Radiometry  # noqa: E402
from skiplab.sar.raster.speckle import gamma_speckle  # noqa: E402


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A small untrained GDN hyperprior codec saved as a checkpoint (seeded weights)."""
    torch.manual_seed(0)
    model = HyperpriorCodec(8, 12, "gdn", lmbda=0.001)
    path = tmp_path_factory.mktemp("codec") / "tiny.pt"
    torch.save(
        {
            "format_version": 2,
            "model": model.state_dict(),
            "arch": {"name": "sar_hyperprior_gdn", "kwargs": {"n": 8, "m": 12, "lmbda": 0.001}},
        },
        path,
    )
    return path


def _scene(seed: int = 0, size: tuple[int, int] = (200, 136), looks: float = 1.0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 6, size[0]), torch.linspace(0, 4, size[1]), indexing="ij")
    reflectivity = 0.05 * torch.exp(torch.sin(yy) + torch.cos(xx))
    return (reflectivity * gamma_speckle(reflectivity.shape, looks, generator=g)).double().numpy()


@pytest.mark.parametrize("step", [1.0, 0.625])
def test_round_trip_through_the_file_is_bit_exact(tiny_checkpoint, step):
    codec = load_codec(tiny_checkpoint)
    codec.step = step  # 1: the trained quantiser; else step scaling
    scene = _scene()
    encoded = encode_scene(codec, scene, tile=128)
    header, valid, words = unpack(encoded.data)
    assert valid.all() and encoded.bpp == 8 * len(encoded.data) / scene.size
    boxes = coding_tiles(*scene.shape, 128)
    tiles = decode_tiles(
        words,
        codec.model.z_density.pmf_table(),
        z_shapes(boxes),
        codec.model.m,
        lambda z: codec.model.scale_index(z, step)[0],
    )
    assert header["step"] == step
    low, high, eps = header["radiometry"]
    n = Radiometry(low, high, "intensity", eps, True).forward(scene).astype(np.float32)
    n = np.pad(n, ((0, 56), (0, 56)), mode="edge")  # 200x136 -> 256x192, as encoded
    for got, (ty, tx, th, tw) in zip(tiles, boxes):
        want = codec.model.compress(torch.from_numpy(n[ty : ty + th, tx : tx + tw].copy())[None, None], step)
        assert torch.equal(got.y, want.y) and torch.equal(got.z, want.z)
        assert torch.equal(got.index, want.index)
    first, _ = decode_bytes(encoded.data, tiny_checkpoint)
    second, _ = decode_bytes(encoded.data, tiny_checkpoint)
    assert first.shape == scene.shape and np.array_equal(first, second)


def test_coded_size_of_a_gaussian_source_is_within_1_percent_of_its_entropy():
    g = torch.Generator().manual_seed(1)
    index = torch.randint(8, 40, (1, 16, 64, 64), generator=g)  # scales 0.3 ... 8
    scales = scale_table()[index]
    y = torch.round(torch.randn(index.shape, generator=g, dtype=torch.float64) * scales)
    pmf = torch.zeros(4, 2 * Z_RANGE + 1, dtype=torch.float64)
    pmf[:, Z_RANGE] = 1.0  # z = 0 costs ~nothing
    symbols = Symbols(y.to(torch.int32), torch.zeros(1, 4, 16, 16, dtype=torch.int32), index)
    words = encode_tiles([symbols], pmf)
    normal = torch.distributions.Normal(0.0, 1.0)
    mass = normal.cdf((y + 0.5) / scales) - normal.cdf((y - 0.5) / scales)
    information = float(-torch.log2(mass).sum())
    assert abs(32 * len(words) / information - 1) < 0.01
    back = decode_tiles(words, pmf, [(16, 16)], 16, lambda z: index)[0]
    assert torch.equal(back.y, symbols.y)


def test_gain_keeps_the_mean_of_synthetic_speckle_of_known_mean(tiny_checkpoint):
    codec = load_codec(tiny_checkpoint)
    g = torch.Generator().manual_seed(3)
    true_mean = 2.5
    scene = (true_mean * gamma_speckle((256, 256), 1.0, generator=g)).double().numpy()
    encoded = encode_scene(codec, scene, tile=256)
    decoded, header = decode_bytes(encoded.data, tiny_checkpoint)
    assert abs(decoded.mean() / true_mean - 1) < 0.02  # the sample mean: +-0.4 % (1 look)
    assert abs(decoded.mean() / scene.mean() - 1) < 1e-4
    # without the gain, a log-domain output sits far below the mean: the gain is doing work
    assert header["gain"] > 1.2 or header["gain"] < 0.8


def test_bjontegaard_deltas_on_curves_with_a_known_answer():
    rate = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    psnr = 15 + 2 * np.log(rate) + 0.1 * np.log(rate) ** 2
    assert bd_rate(rate, psnr, 0.8 * rate, psnr) == pytest.approx(-0.2, abs=1e-9)
    assert bd_rate(rate, psnr, 1.5 * rate, psnr) == pytest.approx(0.5, abs=1e-9)
    assert bd_psnr(rate, psnr, rate, psnr + 0.5) == pytest.approx(0.5, abs=1e-9)
    # same curve sampled at other points: no difference
    other = np.array([0.07, 0.13, 0.3, 0.6])
    assert bd_psnr(rate, psnr, other, 15 + 2 * np.log(other) + 0.1 * np.log(other) ** 2) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match=">= 4"):
        bd_rate(rate[:3], psnr[:3], rate, psnr)


def _cli(*words: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SKIPLAB_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "skiplab", *words], capture_output=True, text=True, timeout=120, env=env
    )


def test_damaged_files_are_refused_in_one_line(tiny_checkpoint, tmp_path):
    data = encode_scene(load_codec(tiny_checkpoint), _scene(size=(64, 64)), tile=64).data
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    cases = {
        "empty": (b"", "is empty"),
        "truncated": (data[:-7], "checksum"),
        "flipped": (bytes(flipped), "checksum"),
        "header": (data[:4], "truncated"),
        "foreign": (b"GIF89a" + data[6:], "not a .sarl"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / f"{name}.sarl"
        path.write_bytes(content)
        with pytest.raises(CorruptSceneFileError, match=expected):
            decode_bytes(content, tiny_checkpoint)
        if name not in ("empty", "truncated", "flipped"):
            continue
        proc = _cli("decode", str(path), "--out", str(tmp_path / f"{name}.npy"), "--checkpoint", str(tiny_checkpoint))
        assert proc.returncode == 2, (name, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert expected in proc.stderr and not (tmp_path / f"{name}.npy").exists()


@pytest.fixture(scope="module")
def shipped():
    levels = quality_levels()
    if len(levels) < 2:
        pytest.skip("no shipped quality levels installed")
    return levels


def test_shipped_levels_load_code_a_real_scene_and_rise_in_rate(shipped, sar_real, tmp_path):
    scene = np.load(sar_real / "sanfrancisco_airsar_ch0.npy").astype(np.float64)
    rates = []
    for q in shipped:
        encoded = encode_scene(load_quality(q), scene)
        decoded, header = decode_bytes(encoded.data)  # finds the codec from the file
        assert header["codec"] == f"sar_hyperprior_q{q}" and decoded.shape == scene.shape
        assert abs(decoded.mean() / scene.mean() - 1) < 0.01
        log_err = np.mean((np.log(decoded + 1e-12) - np.log(scene + 1e-12)) ** 2)
        assert math.isfinite(log_err)
        rates.append(encoded.bpp)
    assert rates == sorted(rates) and len(set(rates)) == len(rates), rates
    out = tmp_path / "scene.sarl"
    proc = _cli("encode", str(sar_real / "tsukaba_pisar_ch1.npy"), "--out", str(out), "--quality", str(shipped[0]))
    assert proc.returncode == 0, proc.stderr
    proc = _cli("decode", str(out), "--out", str(tmp_path / "back.npy"))
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "back.npy").shape == (256, 256)
