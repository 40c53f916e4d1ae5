"""skiplab ablate autoencoder: the quick ablation end to end (runs, report, verdict), resume,
real-data input, the significance rule of the verdict, and option checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from skiplab.cli import main
from skiplab.sar.model.checkpoint import load_autoencoder
from skiplab.sar.inference.scene import reconstruct_array
from skiplab.sar.ablation.experiment import run_ablation
from skiplab.sar.ablation.config import VARIANTS, AblationConfig
from skiplab.sar.ablation.report import compare, compute_verdict


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """``skiplab ablate autoencoder --quick`` through the command line (seconds)."""
    out = tmp_path_factory.mktemp("ablate") / "ae"
    assert main(["ablate", "autoencoder", "--quick", "--out", str(out), "--threads", "1"]) == 0
    return out


@pytest.mark.slow
def test_quick_ablation_writes_runs_and_report(quick):
    state = json.loads((quick / "ablation.json").read_text())
    assert state["complete"] and state["steps"] == 3
    for variant in VARIANTS:
        for seed in (0, 1):
            run = quick / "runs" / f"{variant}-s{seed}"
            for name in ("config.yaml", "metrics.csv", "steps.csv", "checkpoints/best.pt"):
                assert (run / name).is_file(), run / name
            assert len((run / "steps.csv").read_text().splitlines()) == 1 + 3
            test = state["runs"][f"{variant}-s{seed}"]["test"]
            assert np.isfinite(test["psnr"]) and len(test["psnr_per_image"]) == 4
    md = (quick / "report.md").read_text()
    for variant in VARIANTS:  # one table row per variant: params, MACs, time, PSNR +- spread, ...
        row = next(line for line in md.splitlines() if line.startswith(f"| `{variant}` |"))
        assert re.search(r"\| [\d,]+ \| [\d.]+ M \| \d+ s \| [\d.]+ ± [\d.]+ \|", row), row
        assert re.search(r"\| 0\.\d+ ± 0\.\d+ \| 64x \(0.5 bpp\) \|$", row), row  # measured bpp
    assert "![training loss" in md and "(curves.png)" in md and "(grid.png)" in md
    for png in ("curves.png", "grid.png"):
        assert (quick / png).read_bytes()[:4] == b"\x89PNG"
    html = (quick / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html


@pytest.mark.slow
def test_quick_verdict_is_computed_from_the_runs(quick):
    state = json.loads((quick / "ablation.json").read_text())
    verdict = state["results"]["verdict"]
    psnr = {v: np.mean([state["runs"][f"{v}-s{s}"]["test"]["psnr"] for s in (0, 1)]) for v in VARIANTS}
    # 3 steps: every variant is within 0.5 dB of the constant image -> "did not train", none ranked
    for v in VARIANTS:
        assert any(line.startswith(f"`{v}` **did not train**") for line in verdict)
    assert verdict[-1] == "0 variant(s) trained: nothing to rank or compare -- raise --budget."
    assert all(re.search(r"\d", line) for line in verdict)
    assert not any("real difference" in line or "no significant difference" in line for line in verdict)
    for v in VARIANTS:  # the measured bpp of the coded test tiles is in every row
        row = state["runs"][f"{v}-s0"]["test"]
        assert 0 < row["bpp"] < 16 * 6 / 256 * 1.5 and np.isfinite(psnr[v])
    md = (quick / "report.md").read_text()
    assert all(line in md for line in verdict) and "SMOKE RUN (--quick)" in md


@pytest.mark.slow
def test_winner_checkpoint_is_usable_by_reconstruct(quick):
    ae = load_autoencoder(quick / "runs" / "sar_codec_all-s0" / "checkpoints" / "best.pt")
    assert ae.tile == 32 and ae.looks == 2.0
    out = reconstruct_array(ae, np.full((48, 64), 0.01, dtype=np.float32), tile=32)
    assert out.shape == (48, 64) and np.isfinite(out).all()


@pytest.mark.slow
def test_resume_retrains_only_unfinished_runs_on_real_scenes(sar_real, tmp_path):
    config = AblationConfig.create(
        quick=True,
        data=[str(sar_real)],
        variants=VARIANTS[:2],
        eval_data=[str(sar_real / "tsukaba_pisar_ch0.npy")],
        eval_tile=128,
    )
    first = run_ablation(config, out=tmp_path / "ae", threads=1, log=lambda *_: None)
    md = first.report_md.read_text()
    assert "384 tiles of 32 px from 6 raster(s)" in md and "38 held-out test tiles" in md
    assert "## On other scenes" in md and "4 tiles of 128 px from 1 other scene(s)" in md
    assert first.extra_verdict[0].startswith(("Best on the other scenes: **`", "`sar_codec_"))
    assert (tmp_path / "ae" / "grid_extra.png").is_file()
    state_path = tmp_path / "ae" / "ablation.json"
    state = json.loads(state_path.read_text())
    kept = tmp_path / "ae" / "runs" / "sar_codec_plain-s0" / "checkpoints" / "best.pt"
    before = kept.stat().st_mtime_ns
    del state["runs"]["sar_codec_bottleneck-s1"]
    state["complete"] = False
    state_path.write_text(json.dumps(state))
    redo = tmp_path / "ae" / "runs" / "sar_codec_bottleneck-s1"
    for path in sorted(redo.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    lines = []
    again = run_ablation(None, out=tmp_path / "ae", resume=True, threads=1, log=lines.append)
    assert [line.split(",")[0] for line in lines if line.startswith("[")] == ["[4/4] sar_codec_bottleneck-s1: 3 steps"]
    assert kept.stat().st_mtime_ns == before and (redo / "checkpoints" / "best.pt").is_file()
    assert json.loads(state_path.read_text())["complete"] and again.rows.keys() == first.rows.keys()
    with pytest.raises(ValueError, match="already holds an ablation"):
        run_ablation(config, out=tmp_path / "ae", threads=1)


def _tiles(mean: float, seeds: int = 3, tiles: int = 16) -> list[list[float]]:
    """Per-seed, per-tile PSNR around ``mean`` (a fixed pattern of tile noise, +-0.05 dB per seed)."""
    noise = np.random.default_rng(0).normal(0, 0.3, tiles)
    noise -= noise.mean()
    return [list(mean + 0.05 * (s - 1) + noise) for s in range(seeds)]


def test_compare_is_a_paired_interval_over_seeds_and_tiles():
    c = compare(_tiles(20.0), _tiles(19.0))
    assert c["significant"] and c["gap"] == pytest.approx(1.0) and c["low"] > 0.9 and c["high"] < 1.1
    c = compare(_tiles(20.0), _tiles(20.0))
    assert not c["significant"] and c["gap"] == pytest.approx(0.0)
    assert compare(_tiles(19.0), _tiles(20.0))["gap"] == pytest.approx(-1.0)


def _rows(psnr: dict, seeds: int = 3) -> dict:
    return {
        v: dict(
            psnr_per_image_seeds=_tiles(p, seeds),
            psnr_seeds=[float(np.mean(t)) for t in _tiles(p, seeds)],
            ssim_seeds=[0.5] * seeds,
            params=1000 + 10 * i,
            macs=2e6,
            seconds_seeds=[10, 12, 11][:seeds],
            ratio_mean_seeds=[1.01, 0.99, 1.0][:seeds],
            enl_output_seeds=[3.0, 3.2, 3.1][:seeds],
            enl_input=2.0,
        )
        for i, (v, p) in enumerate(psnr.items())
    }


def test_verdict_says_no_significant_difference_when_the_interval_contains_zero():
    rows = _rows({"sar_ae_plain": 20.3, "sar_ae_bottleneck": 20.3, "sar_ae_all": 19.1, "sar_ae_bottleneck_cbam": 20.1})
    verdict = compute_verdict(rows, seeds=3, baseline=15.0)
    assert verdict[2].startswith(
        "Runner-up: `sar_ae_plain` vs `sar_ae_bottleneck`: +0.00 dB PSNR -- **no significant difference** (95 % CI"
    )
    assert verdict[3].startswith("Residual connections: `sar_ae_bottleneck` vs `sar_ae_plain`")
    assert verdict[3].endswith("residual connections make no measurable difference at this budget.")


def test_verdict_names_a_real_win_with_its_interval():
    rows = _rows({"sar_ae_plain": 18.0, "sar_ae_all": 19.1})
    verdict = compute_verdict(rows, seeds=3, baseline=15.0)
    assert verdict[2].startswith("It wins: `sar_ae_all` vs `sar_ae_plain`: +1.10 dB PSNR (95 % CI +1.")
    assert "residual connections help" in verdict[3]
    assert "`sar_ae_all` is +4.10 dB." in verdict[1]


def test_the_ablation_gates_withhold_the_verdict():
    rows = _rows({"sar_ae_plain": 18.0, "sar_ae_all": 18.3})
    near_constant = compute_verdict(rows, seeds=3, baseline=17.45)
    assert near_constant[2].startswith("No verdict on the variants: the best variant is only +0.85 dB")
    assert not any("wins" in line or "help" in line for line in near_constant)
    smoke = compute_verdict(
        _rows({"sar_ae_plain": 18.0, "sar_ae_all": 19.1}, seeds=2), seeds=2, quick=True, baseline=15.0
    )
    assert "smoke run" in smoke[2] and "2 seed(s)" in smoke[2]
    assert not any("real difference" in line or "no significant" in line for line in smoke)


def test_a_variant_near_the_constant_image_did_not_train_and_is_not_ranked():
    rows = _rows({"sar_codec_plain": 15.3, "sar_codec_bottleneck": 18.9, "sar_codec_all": 19.1})
    verdict = compute_verdict(rows, seeds=3, baseline=15.0)
    assert verdict[0].startswith("`sar_codec_plain` **did not train**: +0.30 dB above a constant image")
    assert verdict[1].startswith("Best on the held-out tiles: **`sar_codec_all`**")
    assert not any("Residual connections" in line or "`sar_codec_plain` vs" in line for line in verdict[1:])
    just_above = compute_verdict(_rows({"sar_codec_plain": 15.6, "sar_codec_all": 19.1}), seeds=3, baseline=15.0)
    assert not any("did not train" in line for line in just_above)
    assert any(line.startswith("Residual connections: `sar_codec_all` vs `sar_codec_plain`") for line in just_above)
    alone = compute_verdict(_rows({"sar_codec_plain": 15.1, "sar_codec_all": 19.1}), seeds=3, baseline=15.0)
    assert alone[-1] == "1 variant(s) trained: nothing to rank or compare -- raise --budget."


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(seeds=1), "must be >= 2"),
        (dict(tile=40), "multiple of the autoencoder's total stride 16"),
        (dict(budget="3ep"), "minutes .* or steps per run"),
        (dict(variants=("sar_ae_plain",)), "two or more"),
        (dict(holdout="site"), "needs --data"),
        (dict(holdout="site", data=["x"], variants=("sar_ae_plain", "sar_codec_all")), "sar_codec_"),
        (dict(train_bits=(6, 2)), "bits must be"),
        (dict(rate_weight=-1.0), "rate-weight"),
        (dict(looks=0.0), "looks must be"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        AblationConfig.create(**options)


def test_cli_resume_checks_the_options_given_again(tmp_path, capsys):
    """--resume with the options given again (the same command plus --resume) is checked
    against the stored ones: other options are refused in one line naming them."""
    from skiplab.sar.ablation.experiment import AutoencoderAblation
    from skiplab.studies.runner import Runner

    Runner.open(AutoencoderAblation(AblationConfig.create(quick=True)), tmp_path, resume=False)
    assert main(["ablate", "autoencoder", "--resume", "--quick", "--latent", "8", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "with other options: latent" in err, err


def test_bad_data_leaves_no_state(tmp_path, capsys):
    """Inputs are validated before the runner writes anything: --out stays free."""
    out = tmp_path / "ae"
    assert main(["ablate", "autoencoder", "--quick", "--data", str(tmp_path / "missing.npy"), "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (out / "ablation.json").exists()


def test_state_files_naming_the_module_before_the_split_still_resolve():
    """``ablation.json`` files written before skiplab.sar had sub-packages (such as
    docs/studies/sar/ablation.json) name ``skiplab.sar.ablate_autoencoder``: they still resume."""
    import json
    from pathlib import Path

    from skiplab.sar.ablation.experiment import AutoencoderAblation
    from skiplab.studies.experiment import experiment_class

    stored = json.loads((Path(__file__).resolve().parents[1] / "docs/studies/sar/ablation.json").read_text())
    assert experiment_class(stored["experiment"]) is AutoencoderAblation
    assert AutoencoderAblation.dotted() == "skiplab.sar.ablation.experiment:AutoencoderAblation"
