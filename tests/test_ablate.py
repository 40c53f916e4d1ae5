"""skiplab ablate autoencoder: the quick ablation end to end (runs, report, verdict), resume,
real-data input, the significance rule of the verdict, and option checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from skiplab.cli import main
from skiplab.sar.checkpoint import load_autoencoder
from skiplab.sar.inference import reconstruct_array
from skiplab.sar.ablate_autoencoder import run_ablation
from skiplab.sar.ablate_config import VARIANTS, AblationConfig
from skiplab.sar.ablate_report import compare, compute_verdict


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
    for variant in VARIANTS:   # one table row per variant: params, MACs, time, PSNR +- spread, ...
        row = next(line for line in md.splitlines() if line.startswith(f"| `{variant}` |"))
        assert re.search(r"\| [\d,]+ \| [\d.]+ M \| \d+ s \| [\d.]+ ± [\d.]+ \|", row), row
        assert row.endswith("| 64x (0.5 bpp) |")
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
    best = max(psnr, key=psnr.get)
    assert f"**`{best}`**, PSNR {psnr[best]:.2f} dB" in verdict[0]
    assert any("Residual connections:" in line for line in verdict)
    assert all(re.search(r"\d", line) for line in verdict)
    md = (quick / "report.md").read_text()
    assert all(line in md for line in verdict)


@pytest.mark.slow
def test_winner_checkpoint_is_usable_by_reconstruct(quick):
    ae = load_autoencoder(quick / "runs" / "sar_ae_all-s0" / "checkpoints" / "best.pt")
    assert ae.tile == 32 and ae.looks == 2.0
    out = reconstruct_array(ae, np.full((48, 64), 0.01, dtype=np.float32), tile=32)
    assert out.shape == (48, 64) and np.isfinite(out).all()


@pytest.mark.slow
def test_resume_retrains_only_unfinished_runs_on_real_scenes(sar_real, tmp_path):
    config = AblationConfig.create(quick=True, data=[str(sar_real)], variants=VARIANTS[:2],
                                   eval_data=[str(sar_real / "tsukaba_pisar_ch0.npy")], eval_tile=128)
    first = run_ablation(config, out=tmp_path / "ae", threads=1, log=lambda *_: None)
    md = first.report_md.read_text()
    assert "384 tiles of 32 px from 6 raster(s)" in md and "38 held-out test tiles" in md
    assert "## On other scenes" in md and "4 tiles of 128 px from 1 other scene(s)" in md
    assert first.extra_verdict[0].startswith("Best on the other scenes: **`")
    assert (tmp_path / "ae" / "grid_extra.png").is_file()
    state_path = tmp_path / "ae" / "ablation.json"
    state = json.loads(state_path.read_text())
    kept = tmp_path / "ae" / "runs" / "sar_ae_plain-s0" / "checkpoints" / "best.pt"
    before = kept.stat().st_mtime_ns
    del state["runs"]["sar_ae_bottleneck-s1"]
    state["complete"] = False
    state_path.write_text(json.dumps(state))
    redo = tmp_path / "ae" / "runs" / "sar_ae_bottleneck-s1"
    for path in sorted(redo.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    lines = []
    again = run_ablation(None, out=tmp_path / "ae", resume=True, threads=1, log=lines.append)
    assert [line for line in lines if line.startswith("[")] == ["[4/4] sar_ae_bottleneck, seed 1: 3 steps"]
    assert kept.stat().st_mtime_ns == before and (redo / "checkpoints" / "best.pt").is_file()
    assert json.loads(state_path.read_text())["complete"] and again.rows.keys() == first.rows.keys()
    with pytest.raises(ValueError, match="already holds an ablation"):
        run_ablation(config, out=tmp_path / "ae", threads=1)


def test_compare_calls_a_difference_only_when_the_gap_beats_the_spread():
    c = compare([20.0, 20.2], [19.0, 19.1])
    assert c["significant"] and c["gap"] == pytest.approx(1.05) and c["spread"] == pytest.approx(0.2)
    c = compare([20.0, 20.6], [19.9, 20.1])       # overlapping seeds
    assert c["significant"] is False and c["gap"] == pytest.approx(0.3) and c["spread"] == pytest.approx(0.6)
    c = compare([18.22, 18.34], [15.1, 17.6])      # disjoint, but one variant's spread covers the gap
    assert c["significant"] is False and c["gap"] == pytest.approx(1.93)
    assert compare([15.1, 17.6], [18.22, 18.34])["gap"] == pytest.approx(-1.93)


def _rows(psnr: dict) -> dict:
    return {v: dict(psnr_seeds=p, ssim_seeds=[0.5, 0.5], params=1000 + 10 * i, macs=2e6, seconds_seeds=[10, 12],
                    ratio_mean_seeds=[1.01, 0.99], enl_output_seeds=[3.0, 3.2], enl_input=2.0)
            for i, (v, p) in enumerate(psnr.items())}


def test_verdict_says_no_significant_difference_when_spread_covers_gap():
    rows = _rows({"sar_ae_plain": [20.0, 20.5], "sar_ae_bottleneck": [20.1, 20.6],
                  "sar_ae_all": [19.0, 19.2], "sar_ae_bottleneck_cbam": [20.0, 20.2]})
    verdict = compute_verdict(rows, seeds=2)
    assert "**`sar_ae_bottleneck`**, PSNR 20.35 dB (seeds 20.10-20.60)" in verdict[0]
    assert verdict[1] == ("Runner-up: `sar_ae_bottleneck` vs `sar_ae_plain`: +0.10 dB PSNR -- **no "
                          "significant difference** (the seed-to-seed spread, 0.50 dB, covers the gap; "
                          "seeds 20.10-20.60 vs 20.00-20.50).")
    assert "make no measurable difference" in verdict[2]
    assert "+1.0% vs plain" in verdict[4] and "1.00x plain's time" in verdict[4]


def test_verdict_names_a_real_win():
    rows = _rows({"sar_ae_plain": [18.0, 18.1], "sar_ae_all": [19.0, 19.3]})
    verdict = compute_verdict(rows, seeds=2)
    assert verdict[1].startswith("It wins: `sar_ae_all` vs `sar_ae_plain`: +1.10 dB PSNR, larger than")
    assert "residual connections help" in verdict[2]
    assert "`sar_ae_all` is +4.15 dB." in compute_verdict(rows, 2, baseline=15.0)[1]
    assert "no better than that" in compute_verdict(rows, 2, baseline=19.5)[1]


@pytest.mark.parametrize("options, message", [
    (dict(seeds=1), "must be >= 2"),
    (dict(tile=40), "multiple of the autoencoder's total stride 16"),
    (dict(budget="3ep"), "minutes .* or steps per run"),
    (dict(variants=("sar_ae_plain",)), "two or more"),
    (dict(looks=0.0), "looks must be"),
])
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        AblationConfig.create(**options)


def test_cli_resume_refuses_other_options(tmp_path, capsys):
    assert main(["ablate", "autoencoder", "--resume", "--latent", "8", "--out", str(tmp_path)]) == 2
    assert "--resume continues an ablation with its own options" in capsys.readouterr().err
