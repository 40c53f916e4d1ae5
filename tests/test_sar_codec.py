"""The SAR codec: per-scene radiometry, latent quantisation,
entropy coding and the latent file, standard codecs at matched bpp, rate-distortion.

A tiny sar_ae_all (untrained weights are enough: the tests check the codec's arithmetic,
not reconstruction quality) is saved like a reconstruct-task checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skiplab.cli import main
from skiplab.sar.raster.radiometry import Radiometry
from skiplab.sar.raster.speckle import synthetic_scenes
from skiplab.sar.model.checkpoint import load_autoencoder
from skiplab.sar.inference.scene import reconstruct_array
from skiplab.models import create_model
from skiplab.sar.rate_distortion.codecs import jpeg2000_at, jpeg_at
from skiplab.sar.codec.entropy import available_coders, decode_symbols, encode_symbols
from skiplab.sar.codec.latent_file import decode_scene_bytes, encode_scene_bytes, unpack
from skiplab.sar.codec.quantize import LatentQuantizer, UniformQuantizer, empirical_entropy
from skiplab.sar.rate_distortion.measure import RDTile, measures, rate_distortion
from skiplab.sar.raster.scene_radiometry import check_in_range, scene_radiometry
from skiplab.train.checkpoint import save_checkpoint

KWARGS = dict(latent_channels=8, widths=(8, 8, 16, 16))
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("sar_ae_all", **KWARGS).eval()
    path = tmp_path_factory.mktemp("codec") / "best.pt"
    save_checkpoint(
        {
            "format": "skiplab.train/1",
            "config": {"task": "reconstruct", "model": "sar_ae_all", "model_kwargs": KWARGS},
            "model": model.state_dict(),
            "radiometry": Radiometry.fit(synthetic_scenes(2, 64, looks=2)[1].numpy(), source_dtype="float32").to_dict(),
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def ae(ckpt):
    return load_autoencoder(ckpt)


@pytest.fixture(scope="module")
def scene():
    return synthetic_scenes(1, 64, looks=2, seed=3)[1][0].numpy()


def test_quantize_round_trip_and_bpp_of_a_known_latent():
    z = np.linspace(-2, 2, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    q = UniformQuantizer.fit(z, 4)
    s = q.quantize(z)
    assert s.dtype == np.uint8 and s.min() == 0 and s.max() == 15
    err = np.abs(q.dequantize(s) - z)
    assert (err <= q.step.max() / 2 + 1e-6).all()
    assert np.array_equal(q.quantize(q.dequantize(s)), s)  # idempotent
    coder, payload = encode_symbols(s, 4, "raw")
    assert len(payload) * 8 == s.size * 4  # 96 values x 4 bits
    # a constant symbol stream has zero empirical entropy; uniform over 16 levels has 4 bits
    assert empirical_entropy(np.zeros((1, 2, 4, 4), np.uint8)) == 0.0
    uniform = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    assert empirical_entropy(uniform) == pytest.approx(4.0)


@pytest.mark.parametrize("bits", [1, 3, 8, 12])
def test_every_coder_decodes_bit_exactly(bits):
    rng = np.random.default_rng(bits)
    z = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    s = UniformQuantizer.fit(z, bits).quantize(z)
    for coder in available_coders():
        used, payload = encode_symbols(s, bits, coder)
        back = decode_symbols(used, payload, s.shape, bits)
        assert back.dtype == s.dtype and np.array_equal(back, s), coder
    used, payload = encode_symbols(s, bits, "auto")
    assert len(payload) == min(len(encode_symbols(s, bits, c)[1]) for c in available_coders())


def test_latent_quantizer_train_and_eval():
    lq = LatentQuantizer(3, bits=4, mode="ste")
    z = torch.randn(2, 3, 4, 4, requires_grad=True)
    lq.calibrate(z)
    lq.train()
    y = lq(z)
    y.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # straight-through
    lq.eval()
    uq = lq.to_uniform()
    expect = uq.dequantize(uq.quantize(z.detach().numpy()))
    assert np.allclose(lq(z).detach().numpy(), expect, atol=1e-5)
    noisy = LatentQuantizer(3, bits=4, mode="noise")
    noisy.calibrate(z)
    noisy.train()
    out = noisy(z.detach())
    assert not torch.allclose(out, noisy.eval()(z.detach()))  # noise, not rounding
    assert (out - z.detach()).abs().max() <= noisy.step().max() / 2 + 1e-5


def test_latent_file_decodes_bit_exactly(ae, scene):
    enc = encode_scene_bytes(ae, scene, bits=6, coder="lzma")
    header, quantizer, valid, coder, payload = unpack(enc.data)
    assert header["bits"] == 6 and coder == "lzma" and valid.all()
    with torch.no_grad():
        n = scene_radiometry(ae.radiometry, scene).forward(scene.astype(np.float64))
        latent = ae.encode(torch.from_numpy(n)[None, None].float()).numpy()
    symbols = decode_symbols(coder, payload, tuple(header["shape"]), 6)
    assert np.array_equal(symbols, quantizer.quantize(latent))
    assert enc.bpp == pytest.approx(8 * len(enc.data) / scene.size)
    assert enc.payload_bpp < enc.bpp and enc.entropy_bpp <= 6 * 8 * 16 / scene.size + 1e-9
    a, b = decode_scene_bytes(ae, enc.data), decode_scene_bytes(ae, enc.data)
    assert a.shape == scene.shape and np.array_equal(a, b)


def test_per_scene_normalisation_is_invariant_to_the_unit(ae, scene):
    ref = reconstruct_array(ae, scene)
    for k in (1e-4, 1e4):
        out = reconstruct_array(ae, (scene * k).astype(np.float32))
        np.testing.assert_allclose(out / k, ref, rtol=2e-3, atol=1e-12 * k)
    # the fixed radiometry clips a 1e4-scaled scene: refused, one line, naming the fraction
    with pytest.raises(
        ValueError,
        match=r"^\d+\.\d% of the scene lies outside the model's "
        r"radiometry",
    ) as err:
        check_in_range(ae.radiometry, scene * 1e6)
    assert "\n" not in str(err.value) and "--radiometry scene" in str(err.value)


def test_cli_refuses_in_one_line_and_encodes_decodes(ckpt, scene, tmp_path, capsys):
    np.save(tmp_path / "dn.npy", (scene * 1e6).astype(np.float32))
    code = main(
        [
            "reconstruct",
            str(ckpt),
            str(tmp_path / "dn.npy"),
            "--out",
            str(tmp_path / "r.npy"),
            "--radiometry",
            "model",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "outside the model's radiometry" in err
    assert (
        main(
            [
                "encode",
                str(ckpt),
                str(tmp_path / "dn.npy"),
                "--out",
                str(tmp_path / "s.sarl"),
                "--bits",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "bpp" in capsys.readouterr().out
    assert main(["decode", str(ckpt), str(tmp_path / "s.sarl"), "--out", str(tmp_path / "d.npy"), "--no-progress"]) == 0
    out = np.load(tmp_path / "d.npy")
    assert out.shape == scene.shape and np.isfinite(out).all() and out.mean() > 1e3


@pytest.mark.parametrize("bpp", [0.25, 0.5, 1.0, 2.0])
def test_jpeg_and_jpeg2000_hit_the_requested_bpp(bpp):
    speckled = synthetic_scenes(1, 128, looks=2, seed=5)[1][0].numpy()
    n = scene_radiometry(Radiometry.fixed(-30, 0), speckled).forward(speckled.astype(np.float64))
    for fn in (jpeg_at, jpeg2000_at):
        match = fn(np.asarray(n, dtype=np.float64), bpp)
        assert abs(match.coded.bpp() / bpp - 1) <= 0.05, (fn.__name__, match.coded.bpp())
        assert match.matched


def test_psnr_against_clean_has_the_known_answer():
    clean = np.full((32, 32), 0.01, dtype=np.float32)
    speckled = clean * np.random.default_rng(0).gamma(2, 0.5, size=clean.shape).astype(np.float32)
    tile = RDTile("t", speckled, clean)
    r = scene_radiometry(Radiometry.fixed(-30, 0), speckled)
    clean_n = r.forward(clean.astype(np.float64)).astype(np.float64)
    out_n = np.clip(clean_n + 0.1, 0, 1)
    assert np.allclose(out_n - clean_n, 0.1)  # no clipping: answer exact
    m = measures(out_n, r.forward(speckled.astype(np.float64)), clean_n, r, tile, None)
    assert m["psnr_clean"] == pytest.approx(20.0, abs=1e-3)  # -20 log10(0.1)
    assert m["ssim_clean"] < 1


def test_rate_distortion_smoke(ckpt, scene):
    tiles = [RDTile("s", scene)]
    points = rate_distortion([ckpt], tiles, bits=(2, 8), reference_rates=(1.0,))
    rows = {p.method: p.row() for p in points}
    models = [r for r in rows.values() if r["family"] == "model"]
    assert len(models) == 2 and models[0]["bpp"] < models[1]["bpp"]
    for r in rows.values():
        assert r["tiles"] == 1 and np.isfinite(r["bpp"])
        assert np.isfinite(r["psnr"]) or r["family"] == "oracle"  # the input against itself
    assert rows["oracle: speckled input"]["enl"] > 1 and "Lee filter 7x7 (uncompressed)" in rows
    assert sum(r["family"] == "jpeg2000-matched" for r in rows.values()) == 2


def test_summary_prints_measured_bpp(ckpt, capsys):
    assert main(["summary", "sar_ae_all", "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "measured bpp:      2 bits" in out and "[1, 8, 16, 16]" in out


def test_lee_filter_smooths_homogeneous_speckle_and_keeps_the_mean():
    from skiplab.sar.rate_distortion.lee import lee_filter

    rng = np.random.default_rng(0)
    speckled = rng.gamma(2.0, 0.5, size=(96, 96))  # 2-look speckle on reflectivity 1
    out = lee_filter(speckled, looks=2.0)
    assert out.var() < speckled.var() / 5  # homogeneous: close to the mean
    assert out.mean() == pytest.approx(speckled.mean(), rel=0.02)
    edge = np.where(np.arange(96) < 48, 1.0, 1000.0)[None].repeat(96, 0)
    np.testing.assert_allclose(lee_filter(edge, looks=2.0)[:, :40], 1.0)  # no speckle: kept
    with pytest.raises(ValueError, match="odd"):
        lee_filter(speckled, size=4)


def test_sar_rd_cli_writes_the_report(ckpt, tmp_path, capsys):
    out = tmp_path / "rd"
    assert (
        main(
            [
                "sar-rd",
                str(ckpt),
                "--synthetic",
                "1",
                "--tile",
                "64",
                "--bits",
                "2",
                "4",
                "--rates",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert all((out / name).is_file() for name in ("rd.json", "rd.md", "rd.png"))
    md = (out / "rd.md").read_text()
    assert "oracle: speckled input" in md and "PSNR clean" in md and "compression" in md
    assert "wrote" in capsys.readouterr().out
