"""The SAR codec trained as learnt codecs are: the quantiser in the loop,
the factorised prior's rate term, the held-out folds, the plateau and "did not train" gates,
measured bpp in the evidence table, and resume of the held-out ablation. Tiny models and
scenes: seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skiplab.models import create_model
from skiplab.sar.ablation.codec_eval import plateau
from skiplab.sar.codec.model import QuantizedAutoencoder
from skiplab.sar.ablation.codec_report import summarise, verdict_lines
from skiplab.sar.ablation.holdout import make_folds, site_of
from skiplab.sar.training.losses import build_loss
from skiplab.sar.codec.rate_model import LaplacePrior

KW = dict(in_chans=1, latent_channels=4, widths=[8, 8], train_bits=(2, 6), eval_bits=3)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_quantiser_is_in_the_loop_noise_in_training_rounding_in_eval():
    torch.manual_seed(0)
    model = create_model("sar_codec_plain", **KW)
    assert isinstance(model, QuantizedAutoencoder) and model.variant == "plain"
    x = torch.rand(2, 1, 16, 16)
    z = model.eval().encode(x)
    assert z.abs().max() < model.bound  # the bounded latent
    model.train()
    z1, _ = model.quantize(z, 3)
    z2, _ = model.quantize(z, 3)
    step = 2.0 / (2**3 - 1)
    assert not torch.equal(z1, z2) and (z1 - z).abs().max() <= step / 2 + 1e-6  # additive noise
    model.eval()
    hard, rate = model.quantize(z, 3)
    grid = (hard + 1) / step
    assert torch.allclose(grid, grid.round(), atol=1e-4) and rate.shape == (2,)  # on the 3-bit grid
    y, rate = model(x, with_rate=True)
    assert torch.allclose(y, model.decode(hard), atol=1e-6) and rate.shape == (2,)
    assert torch.equal(model(x), y)  # the rate only when asked for


def test_training_draws_bit_depths_from_the_range():
    torch.manual_seed(0)
    model = create_model("sar_codec_all", **KW).train()
    drawn = {model.draw_bits() for _ in range(200)}
    assert drawn == {2, 3, 4, 5, 6}
    assert model.eval().draw_bits() == 3


def test_laplace_prior_rate_has_the_closed_form():
    prior = LaplacePrior(1, init_scale=0.5)
    z = torch.zeros(1, 1, 2, 2)
    bits = prior.bits(z, torch.tensor(1.0)).detach()
    # mass of [-0.5, 0.5] under Laplace(0, 0.5) = 1 - exp(-1)
    assert float(bits) == pytest.approx(-4 * np.log2(1 - np.exp(-1.0)), rel=1e-5)
    far = prior.bits(torch.full((1, 1, 1, 1), 1e3), torch.tensor(1.0)).detach()
    assert float(far) == pytest.approx(-np.log2(1e-9), rel=1e-6)  # the likelihood bound


def test_rate_term_adds_lambda_times_bits_and_trains_the_prior():
    torch.manual_seed(0)
    model = create_model("sar_codec_all", **KW).train()
    loss = build_loss({"mse": 1.0, "rate": 0.01})
    x = torch.rand(2, 1, 16, 16)
    y, rate = model(x, with_rate=True)
    terms = loss.unweighted(y, x, rate)
    total = loss.total(terms)
    assert terms["rate"] > 0 and torch.equal(total, terms["mse"] + 0.01 * terms["rate"])
    total.backward()
    assert model.prior.log_scale.grad is not None and model.prior.log_scale.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="the rate term needs the codec's rate"):
        loss(y.detach(), x)  # no rate given: refused, never 0


def test_reconstruct_task_refuses_a_rate_term_without_a_prior(tmp_path):
    from skiplab.train import TrainConfig, fit
    from skiplab.sar import synthetic_sar_tiles

    tiles = synthetic_sar_tiles(4, tile=16, looks=2, seed=0)
    config = TrainConfig.from_dict(
        dict(
            task="reconstruct",
            model="sar_ae_all",
            data="synthetic-sar",
            model_kwargs=dict(latent_channels=4, widths=[8, 8]),
            steps=1,
            batch_size=2,
            loss={"mse": 1.0, "rate": 0.1},
            out=str(tmp_path / "r"),
            progress=False,
            compile="off",
            precision="fp32",
        )
    )
    with pytest.raises(ValueError, match="loss term 'rate' needs a codec model"):
        fit(config, train_set=tiles, eval_set=tiles)


def test_a_codec_trains_and_its_checkpoint_encodes_a_scene(tmp_path):
    from skiplab.train import TrainConfig, fit
    from skiplab.sar import load_autoencoder, synthetic_sar_tiles
    from skiplab.sar.codec.latent_file import decode_scene_bytes, encode_scene_bytes

    tiles = synthetic_sar_tiles(8, tile=16, looks=2, seed=0)
    config = TrainConfig.from_dict(
        dict(
            task="reconstruct",
            model="sar_codec_all",
            data="synthetic-sar",
            steps=4,
            batch_size=4,
            lr=1e-3,
            model_kwargs=dict(latent_channels=4, widths=[8, 8], train_bits=[2, 4], eval_bits=3),
            loss={"mse": 1.0, "rate": 0.01},
            out=str(tmp_path / "r"),
            progress=False,
            compile="off",
            precision="fp32",
            tensorboard=False,
        )
    )
    fit(config, train_set=tiles, eval_set=tiles)
    ae = load_autoencoder(tmp_path / "r" / "checkpoints" / "best.pt")
    assert isinstance(ae.model, QuantizedAutoencoder) and ae.extra["compression"]["latent_bits"] == 3
    scene = tiles.intensity()[0, 0].numpy() + 1e-3
    enc = encode_scene_bytes(ae, np.tile(scene, (2, 2)), bits=3, tile=32)
    out = decode_scene_bytes(ae, enc.data)
    assert out.shape == (32, 32) and np.isfinite(out).all() and 0 < enc.bpp < 8


# ---- held-out folds, gates, the evidence table and resume ----------------------------------
def _scenes(root, size=64):
    from skiplab.sar.raster.speckle import synthetic_scenes

    root.mkdir()
    _, speckled = synthetic_scenes(4, size, looks=2, seed=7)
    for i, name in enumerate(("alpha_ch0", "alpha_ch1", "beta_hh", "beta_vv")):
        np.save(root / f"{name}.npy", speckled[i].numpy())
    return root


def test_folds_hold_out_whole_sites(tmp_path):
    assert site_of("x/sanfrancisco_airsar_ch2.npy") == "sanfrancisco_airsar" and site_of("a_HV.tif") == "a"
    folds = make_folds([str(_scenes(tmp_path / "s"))], tile=16, synthetic=1)
    assert [f.test_site for f in folds] == ["alpha", "beta"]
    assert [t.name for t in folds[0].test] == ["alpha_ch0", "alpha_ch1"] and folds[0].train_sites == ["beta"]
    # 2 scenes x (5 rows x 7 columns of 16 px tiles at stride 8 in the 48 rows above the last 16)
    # + 1 synthetic 64 px scene (7 x 7); validation: the last 16 rows, 4 tiles per scene
    assert len(folds[0].train) == 2 * 35 + 49 and len(folds[0].val) == 2 * 4
    assert 0 <= float(folds[0].train.tiles.min()) and float(folds[0].train.tiles.max()) <= 1
    from skiplab.sar.ablation.holdout import all_scenes

    train, val = all_scenes([str(tmp_path / "s")], tile=16, synthetic=0)
    assert len(train) == 4 * 35 and len(val) == 4 * 4  # every site, no test scene
    with pytest.raises(ValueError, match="at least two sites"):
        make_folds([str(tmp_path / "s" / "alpha_ch0.npy")], tile=16)


def test_plateau_criterion():
    assert plateau([10, 14, 15, 15.5, 15.6, 15.62, 15.63, 15.64])["reached"]
    assert not plateau([10, 11, 12, 13, 14, 15, 16, 17])["reached"]
    assert not plateau([10, 11, 12])["reached"]  # too few evaluations to tell


def _evaluation(model_db: float, jp2_db: float, scenes: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    noise = list(rng.normal(0, 0.05, scenes))
    fam = lambda db, bpp: dict(psnr=[db + n for n in noise], ssim=[0.3] * scenes, bpp=[bpp] * scenes)  # noqa: E731
    return dict(
        scenes=[f"s{i}" for i in range(scenes)],
        constant=[15.0] * scenes,
        plateau=dict(reached=True, gain=0.01, evaluations=10),
        bits={
            b: {
                "model": fam(model_db + int(b) / 10, 0.1 * int(b)),
                "jpeg2000-matched": fam(jp2_db + int(b) / 10, 0.1 * int(b)),
                "jpeg-matched": fam(jp2_db - 1, 0.1 * int(b)),
                "avgpool": fam(model_db - 0.5, 0.08 * int(b)),
            }
            for b in ("2", "4", "6")
        },
    )


def test_the_evidence_gates_rank_only_trained_variants_and_count_wins():
    from skiplab.sar.ablation.codec_report import collect

    evaluations = {}
    for f in (0, 1):
        for s in range(3):
            evaluations[f"sar_codec_plain-f{f}-s{s}"] = _evaluation(14.8, 18.0, seed=s)
            evaluations[f"sar_codec_all-f{f}-s{s}"] = _evaluation(18.5 + 0.01 * s, 18.0, seed=s)
    data = collect(evaluations, ("sar_codec_plain", "sar_codec_all"), 3)
    assert np.asarray(data["sar_codec_all"]["bits"]["2"]["model"]["psnr"]).shape == (3, 6)
    rows = summarise(data)
    assert not rows["sar_codec_plain"]["trained"] and rows["sar_codec_all"]["trained"]
    lines = verdict_lines(rows, data, 3, False, {n: e["plateau"] for n, e in evaluations.items()})
    assert lines[0].startswith("`sar_codec_plain` **did not train**")
    best = next(line for line in lines if line.startswith("Best variant"))
    assert "**`sar_codec_all`**, beating it at 3 of 3 rates" in best and "Target met" in best
    assert not any("Residual connections" in line for line in lines)  # plain is not ranked
    smoke = verdict_lines(rows, data, 3, True, {})
    assert smoke[-1].startswith("No verdict: a --quick smoke run")


@pytest.mark.slow
def test_holdout_ablation_reports_measured_bpp_and_resumes(tmp_path):
    from skiplab.sar.ablation.experiment import run_ablation
    from skiplab.sar.ablation.config import AblationConfig

    config = AblationConfig.create(
        quick=True,
        data=[str(_scenes(tmp_path / "s"))],
        holdout="site",
        synthetic=1,
        variants=("sar_codec_plain", "sar_codec_all"),
        widths=(8, 8),
        tile=16,
        rd_bits=(2, 4),
        budget="2steps",
    )
    first = run_ablation(config, out=tmp_path / "ev", threads=1, log=lambda *_: None)
    md = first.report_md.read_text()
    assert "| bpp (measured) |" in md and (tmp_path / "ev" / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert {r["bits"] for r in first.rows} == {2, 4} and all(0 < r["bpp"] < 8 for r in first.rows)
    state_path = tmp_path / "ev" / "ablation.json"
    state = json.loads(state_path.read_text())
    assert len(state["holdout"]) == 2 * 2 * 2
    del state["holdout"]["sar_codec_all-f1-s1"]
    state["complete"] = False
    state_path.write_text(json.dumps(state))
    kept = tmp_path / "ev" / "runs" / "sar_codec_plain-f0-s0" / "checkpoints" / "best.pt"
    before = kept.stat().st_mtime_ns
    lines: list[str] = []
    again = run_ablation(None, out=tmp_path / "ev", resume=True, threads=1, log=lines.append)
    assert [line for line in lines if line.startswith("evaluated")] == ["evaluated sar_codec_all-f1-s1 on beta"]
    assert not any(line.startswith("[") for line in lines)  # nothing retrained
    assert kept.stat().st_mtime_ns == before and json.loads(state_path.read_text())["complete"]
    assert [r["psnr"] for r in again.rows] == pytest.approx([r["psnr"] for r in first.rows])


def _old_formula(model, x, lmbda, seed):
    """The codec's loss as it was computed before the task returned its rate: the tiles
    through encode, the quantiser at a drawn depth, decode; MSE + lambda * mean bits/pixel."""
    torch.manual_seed(seed)
    z = model.encode(x)
    bits = model.draw_bits()
    z_hat = model.quantizer(z, bits)
    rate = model.prior.bits(z_hat, model.quantizer.step(bits)) / (z.shape[-2] * z.shape[-1] * model.reduction**2)
    x_hat = model.decode(z_hat)
    return torch.nn.functional.mse_loss(x_hat.float(), x) + lmbda * rate.float().mean(), rate


def test_the_task_owns_the_rate_and_its_loss_is_the_old_formula():
    from skiplab.sar import synthetic_sar_tiles
    from skiplab.sar.training.task import ReconstructTask
    from skiplab.train import TrainConfig, evaluate

    tiles = synthetic_sar_tiles(4, tile=16, looks=2, seed=0)
    config = TrainConfig.from_dict(
        dict(
            task="reconstruct",
            model="sar_codec_all",
            data="synthetic-sar",
            model_kwargs={k: v for k, v in KW.items() if k != "in_chans"},
            loss={"mse": 1.0, "rate": 0.05},
            tile_size=16,
        )
    )
    task = ReconstructTask(config)
    torch.manual_seed(0)
    model = task.create_model(tiles).train()
    task.train_criterion = task.criterion(tiles)
    x = tiles.tiles[:4]
    torch.manual_seed(7)
    out = task.forward(model, (x, x))
    expected, rate = _old_formula(model, x, 0.05, seed=7)
    assert torch.equal(out["loss"], expected)  # bit for bit: the maths is unchanged
    assert set(out["terms"]) == {"mse", "rate"} and torch.equal(out["terms"]["rate"], rate.mean())
    out["loss"].backward()
    assert model.prior.log_scale.grad.abs().sum() > 0  # the rate reaches the prior
    # evaluation: the meter asks the codec for its rate (eval mode: rounding at eval_bits)
    scores = evaluate(model, [(x, x)], meter=task.meter(tiles))
    model.eval()
    with torch.no_grad():
        expected, _ = _old_formula(model, x, 0.05, seed=0)
    assert scores["loss"] == pytest.approx(float(expected), rel=1e-6)
