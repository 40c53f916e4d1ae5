"""The held-out ablation of the hyperprior codec's transforms: settings, run states, the
multi-variant summary on curves with a known answer, a missing variant reported as not
trained, and the one-command driver end to end (tiny models, a few steps, real scenes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from skiplab.evidence.intervals import seed_interval
from skiplab.evidence.thresholds import PLATEAU_GAIN_DB
from skiplab.sar.rate_distortion import hyperprior_ablation as ablation
from skiplab.sar.rate_distortion.hyperprior_report import figure, report
from skiplab.sar.rate_distortion.hyperprior_runs import (
    SettingError,
    parse_setting,
    parse_settings,
    parse_transforms,
    run_state,
)
from skiplab.sar.rate_distortion.hyperprior_summary import summarise

LABELS = ["vr:0", "vr:1", "vr:2", "vr:3"]
RATES = [0.05, 0.1, 0.2, 0.4]


# -- settings and run states -------------------------------------------------------------------
def test_settings_name_variable_rate_levels_and_fixed_rate_runs(tmp_path):
    vr = parse_setting("vr:2")
    assert (vr.run, vr.level, vr.step) == ("vr", 2, 1.0)
    assert vr.run_dir(tmp_path, "sf", "residual") == tmp_path / "sf-residual-vr"
    assert parse_setting("vr:1@0.5").step == 0.5
    fixed = parse_setting("0.0005@1.5")
    assert (fixed.run, fixed.level, fixed.step) == ("0.0005", None, 1.5)
    assert fixed.run_dir(tmp_path, "tsukuba", "gdn") == tmp_path / "tsukuba-gdn-0.0005"
    assert [s.text for s in parse_settings("vr:0,vr:1, 0.001")] == ["vr:0", "vr:1", "0.001"]
    for bad in ("vr:x", "vr:-1", "lambda", "0.0005@0", "-0.1", "vr:0,vr:0", " , "):
        with pytest.raises(SettingError):
            parse_settings(bad)
    assert parse_transforms("residual,gdn") == ["residual", "gdn"]
    for bad in ("gdn,cbam", "gdn,gdn", ""):
        with pytest.raises(SettingError):
            parse_transforms(bad)


def test_run_state_reads_steps_wall_clock_and_plateau(tmp_path):
    assert run_state(tmp_path / "absent").status == "not trained"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert run_state(tmp_path / "run").status == "no checkpoint"
    torch.save({"format_version": 2, "step": 40, "config": {"steps": 40}}, tmp_path / "run" / "checkpoints" / "last.pt")
    rows = ["epoch,step,epoch_time_s,val_psnr"]
    rows += [f"{e},{4 * e},10.0,{15 + min(e, 5) * 0.5}" for e in range(1, 11)]
    rows.insert(3, "2,8,10.0,16.0")  # a resume writes epoch 2's row again: counted once
    (tmp_path / "run" / "metrics.csv").write_text("\n".join(rows) + "\n")
    state = run_state(tmp_path / "run")
    assert state.finished and (state.step, state.steps) == (40, 40)
    assert state.train_seconds == pytest.approx(100.0)
    # the best of the last quarter of 10 evaluations (17.5) beats the best before (17.5) by 0
    assert state.plateau["reached"] and state.plateau["evaluations"] == 10 and 0.0 < PLATEAU_GAIN_DB
    assert "plateau reached" in state.describe() and "1 min 40 s" in state.describe()
    json.dumps(run_state(tmp_path / "absent").to_dict(), allow_nan=False)  # unknowns are null


# -- the summary on constructed inputs ------------------------------------------------------------
def _points(offset: float, rates=RATES) -> list[dict]:
    # PSNR linear in ln(rate): a cubic fit is exact, so the deltas are known in closed form
    return [{"bpp": r, "psnr": 20.0 + 3.0 * math.log(r) + offset, "ssim": 0.1 + offset / 100} for r in rates]


def _radiometry(ratio: float) -> dict:
    return {"mean_ratio": ratio, "enl": 5.0, "ratio_mean": 1.0, "ratio_median": 0.9}


def _variant_rows(offset: float) -> dict:
    rows = {}
    for label, point in zip(LABELS, _points(offset)):
        rows[label] = {
            **point,
            **_radiometry(1.0),
            "jpeg2000": {**_points(0.0)[LABELS.index(label)], **_radiometry(0.55)},
            "jpeg": _points(-1.0)[LABELS.index(label)],
        }
    return rows


def _scores(offsets: dict) -> dict:
    """Per fold, two scenes: references and, per variant, its offset over JPEG 2000 (None:
    not trained)."""
    scores = {}
    for fold, by_variant in offsets.items():
        references = {
            "input_enl": 2.0,
            "jpeg2000": _points(0.0),
            "jpeg": _points(-1.0),
            "avgpool": _points(-0.5, [0.02, 0.04, 0.08, 0.16]),
        }
        scores[fold] = {
            "references": [dict(references, scene=f"s{i}") for i in range(2)],
            "variants": {t: None if o is None else [_variant_rows(o)] * 2 for t, o in by_variant.items()},
        }
    return scores


def test_summary_of_several_variants_has_the_known_deltas_and_reports_a_missing_one(tmp_path):
    offsets = {
        "sf": {"gdn": 0.5, "residual": 1.0, "plain": -0.2},
        "tsukuba": {"gdn": 0.3, "residual": 0.4, "plain": None},
    }
    summary = summarise(_scores(offsets), LABELS, ["gdn", "residual", "plain"])
    sf, ts = summary["sites"]["sf"], summary["sites"]["tsukuba"]
    assert sf["variants"]["gdn"]["bd_psnr_vs_jpeg2000"] == pytest.approx(0.5, abs=1e-9)
    assert sf["variants"]["gdn"]["bd_rate_vs_jpeg2000"] == pytest.approx(math.exp(-0.5 / 3) - 1, abs=1e-9)
    assert sf["variants"]["gdn"]["bd_psnr_vs_jpeg"] == pytest.approx(1.5, abs=1e-9)
    assert sf["variants"]["gdn"]["psnr_minus_jpeg2000_matched"] == pytest.approx([0.5] * 4)
    assert sf["variants"]["gdn"]["radiometry"]["vr:1"]["jpeg2000"]["mean_ratio"] == pytest.approx(0.55)
    assert sf["between"]["residual-gdn"]["bd_psnr"] == pytest.approx(0.5, abs=1e-9)
    assert sf["between"]["residual-plain"]["bd_psnr"] == pytest.approx(1.2, abs=1e-9)
    assert ts["variants"]["plain"] == {"trained": False} and "residual-plain" not in ts["between"]
    # over sites: the mean and the t interval of evidence.intervals
    gdn = summary["over_sites"]["gdn"]["bd_psnr_vs_jpeg2000"]
    assert gdn["sites"] == ["sf", "tsukuba"] and gdn["mean"] == pytest.approx(0.4)
    assert gdn["interval"] == pytest.approx(list(seed_interval([0.5, 0.3])))
    pair = summary["between_over_sites"]["residual-gdn"]["bd_psnr"]
    assert pair["per_site"] == pytest.approx([0.5, 0.1])
    plain = summary["over_sites"]["plain"]["bd_psnr_vs_jpeg2000"]
    assert plain["per_site"] == pytest.approx([-0.2]) and plain["interval"] == [None, None]
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN for an interval of one site
    runs = {
        "sf": {t: {f"sf-{t}-vr": {"path": "p", "status": "finished", "step": 9, "steps": 9}} for t in offsets["sf"]},
        "tsukuba": {
            "gdn": {"tsukuba-gdn-vr": {"path": "p", "status": "training", "step": 3, "steps": 9}},
            "residual": {"tsukuba-residual-vr": {"path": "p", "status": "finished", "step": 9, "steps": 9}},
            "plain": {"tsukuba-plain-vr": {"path": "p", "status": "not trained"}},
        },
    }
    text = report(summary, {"settings": LABELS, "transforms": ["gdn", "residual", "plain"], "runs": runs})
    assert "| plain | **not trained** |" in text and "**not trained**" in text.split("## Held-out site: san")[1]
    assert "**+0.40 dB** (tsukuba +0.50, san +0.30; 95 % t [" in text
    assert "training: step 3 of 9" in text and "no interval (one site)" in text
    over = text.split("## Bjøntegaard deltas over the held-out sites")[1].split("## Held-out site")[0]
    row = next(line for line in over.splitlines() if line.startswith("| residual | gdn |"))
    assert row.endswith("| **+0.30 dB** (tsukuba +0.50, san +0.10; 95 % t [-2.24, +2.84]) |"), row
    assert over.count("| residual | plain |") == 1
    assert figure(summary, tmp_path / "rd.png").stat().st_size > 10_000


def test_speed_is_measured_once_per_trained_variant_and_reported(tmp_path, monkeypatch):
    from skiplab.sar.rate_distortion import codec_speed
    from skiplab.sar.rate_distortion.hyperprior_speed import variant_speed

    calls = []

    def measure(checkpoint, scene, size, threads):  # the real one: 4 fresh processes per call
        calls.append(checkpoint)
        ops = ("hyperprior-encode", "hyperprior-decode", "openjpeg-encode", "openjpeg-decode")
        rows = [{"op": op, "seconds_per_mp": 1.0, "peak_growth_mb_per_mp": 10.0, "bpp": 0.1} for op in ops]
        return {"size": size, "threads": threads, "rows": rows}

    monkeypatch.setattr(codec_speed, "measure", measure)
    (tmp_path / "runs" / "sf-gdn-vr" / "checkpoints").mkdir(parents=True)
    torch.save(
        {"format_version": 2, "step": 5, "config": {"steps": 5}}, tmp_path / "runs/sf-gdn-vr/checkpoints/last.pt"
    )
    args = (tmp_path / "runs", "sf", ["gdn", "plain"], tmp_path / "scene.npy", tmp_path / "speed.json", 64, 1)
    speed = variant_speed(*args)
    assert (
        speed["plain"] == {"trained": False} and len(calls) == 1 and calls[0].endswith("sf-gdn-vr/checkpoints/last.pt")
    )
    assert variant_speed(*args) == speed and len(calls) == 1  # the same checkpoint: not measured again
    assert json.loads((tmp_path / "speed.json").read_text()) == speed
    empty = {"sites": {}, "over_sites": {}, "between_over_sites": {}}
    text = report(empty, {"settings": LABELS, "transforms": ["gdn", "plain"], "runs": {}, "speed": speed})
    assert "| gdn | 1.00 | 1.00 | 10 | 10 | 0.100 | 1.00 | 1.00 | 0.100 |" in text
    assert "| plain | **not trained** |" in text.split("## Speed and memory")[1]


# -- the study and the driver on real scenes ------------------------------------------------------
CROP = 160  # two 128 px training tiles a side at the task's stride of 32


@pytest.fixture(scope="module")
def small_scenes(sar_real, tmp_path_factory):
    """Two channels of each real site cropped to 160 px (fewer pixels to code; the task's
    tiles still fit)."""
    out = tmp_path_factory.mktemp("scenes")
    for path in sorted(p for p in sar_real.glob("*.npy") if not p.stem.endswith("ch2")):
        np.save(out / path.name, np.load(path)[:CROP, :CROP])
    return out


def test_missing_variants_are_reported_as_not_trained(small_scenes, tmp_path, one_torch_thread):
    from skiplab.sar.rate_distortion.hyperprior_study import main

    ablation.build_folds(small_scenes, tmp_path / "folds", synthetic=0)
    for fold in ("sf", "tsukuba"):  # one held-out scene per fold is enough here
        for extra in sorted((tmp_path / "folds" / fold / "test").glob("*.npy"))[1:]:
            extra.unlink()
    (tmp_path / "runs" / "sf-plain-vr").mkdir(parents=True)  # started, no checkpoint yet
    args = ["--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "folds"), "--out", str(tmp_path / "out")]
    assert main([*args, "--transforms", "gdn,plain", "--settings", "vr:0,vr:1,vr:2,vr:3"]) == 0
    rd = json.loads((tmp_path / "out" / "rd.json").read_text())
    assert rd["runs"]["sf"]["plain"]["sf-plain-vr"]["status"] == "no checkpoint"
    assert rd["runs"]["tsukuba"]["gdn"]["tsukuba-gdn-vr"]["status"] == "not trained"
    assert all(v is None for fold in rd["scenes"].values() for v in fold["variants"].values())
    assert len(rd["sites"]["sf"]["curves"]["jpeg2000"]["bpp"]) >= 4  # the references are there
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| gdn | all | **not trained** | |" in text and "**no checkpoint**" in text
    json.dumps({k: rd[k] for k in ("runs", "sites", "over_sites", "between_over_sites")}, allow_nan=False)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "scenes").mkdir()
    np.save(tmp_path / "scenes" / "sanfrancisco_x.npy", np.ones((8, 8), np.float32))
    base = ["--data", str(tmp_path / "folds"), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "o")]
    assert ablation.main([*base, "--scenes", str(tmp_path / "scenes")]) == 2
    assert ablation.main([*base]) == 2
    assert ablation.main([*base, "--scenes", str(tmp_path / "scenes"), "--transforms", "gdn,cbam"]) == 2
    with pytest.raises(SystemExit) as stop:
        ablation.main([*base, "--steps", "0"])
    assert stop.value.code == 2
    (tmp_path / "folds" / "sf" / "train").mkdir(parents=True)  # a fold without test/: not overwritten
    assert ablation.main([*base, "--scenes", str(tmp_path / "scenes")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and "tsuk*.npy" in err[0] and "--scenes" in err[1] and "cbam" in err[2]
    assert "--steps must be >= 1" in err[3] and "incomplete fold" in err[4]
    assert (tmp_path / "folds" / "sf" / "train").is_dir()


def test_the_driver_builds_folds_trains_resumably_and_reports(small_scenes, tmp_path, capsys, one_torch_thread):
    folds, runs, out = tmp_path / "folds", tmp_path / "runs", tmp_path / "out"
    args = ["--data", str(folds), "--runs", str(runs), "--out", str(out), "--quick", "--transforms", "residual,gdn"]
    args += ["--scenes", str(small_scenes), "--synthetic", "1", "--steps", "2", "--threads", "1", "--device", "cpu"]
    assert ablation.main(["--plan", *args]) == 0
    assert "to be built" in capsys.readouterr().out and not folds.exists()
    assert ablation.main(args) == 0
    train = sorted(p.name for p in (folds / "sf" / "train").iterdir())
    assert [p for p in train if p.startswith("synthetic")] == ["synthetic_s0_000_L1.npy"]
    assert sorted(p.name for p in (folds / "sf" / "test").iterdir()) == sorted(
        p.name for p in (folds / "tsukuba" / "train").iterdir() if p.name.startswith("tsuk")
    )
    rd = json.loads((out / "rd.json").read_text())
    assert rd["settings"] == LABELS and rd["transforms"] == ["residual", "gdn"]
    for fold in ("sf", "tsukuba"):
        for t in ("residual", "gdn"):
            state = rd["runs"][fold][t][f"{fold}-{t}-vr"]
            assert state["status"] == "finished" and state["step"] == 2 and state["train_seconds"] > 0
            assert state["plateau"]["evaluations"] >= 1 and not state["plateau"]["reached"]
            site = rd["sites"][fold]["variants"][t]
            assert site["trained"] and len(site["curves"]["codec"]["bpp"]) == 4
            assert all(0.95 < r["codec"]["mean_ratio"] < 1.05 for r in site["radiometry"].values())
        assert "residual-gdn" in rd["sites"][fold]["between"]
    text = (out / "report.md").read_text()
    assert "SMOKE RUN" in text and "residual | gdn |" in text and (out / "rd.png").is_file()
    capsys.readouterr()
    # resumable: every run is finished, so a second pass trains nothing
    assert ablation.main(["--plan", *args]) == 0
    plan = capsys.readouterr().out
    assert plan.count("finished, step 2 of 2") == 4 and "skiplab train" not in plan
    namespace = ablation.parse_args(args)
    assert ablation.train_all(folds, runs, ["residual", "gdn"], namespace) is None
    assert capsys.readouterr().out.count("skipped") == 4
    # a trained codec's checkpoint evaluates like any other: rate and PSNR on its split
    from skiplab.cli import main as cli_main

    checkpoint = runs / "sf-gdn-vr" / "checkpoints" / "last.pt"
    assert cli_main(["eval", str(checkpoint), "--data", f"sar:{folds / 'sf'}"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "bpp (estimated from the likelihoods)" in line and "PSNR" in line and "SSIM" not in line


def test_an_interrupted_run_stops_the_driver_with_its_exit_status(tmp_path, monkeypatch, capsys):
    from skiplab.train import TrainingInterrupted

    def interrupted(config):
        raise TrainingInterrupted(2, tmp_path / "run" / "checkpoints" / "last.pt", 3, "step 3")

    monkeypatch.setattr("skiplab.train.fit", interrupted)
    monkeypatch.setattr(ablation, "eval_every_epochs", lambda *a: 1)
    args = ablation.parse_args(["--data", str(tmp_path), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)])
    assert ablation.train_all(tmp_path, tmp_path / "runs", ["gdn", "plain"], args) == 130
    assert "run the same command to continue" in capsys.readouterr().err


def test_the_recipe_is_the_shipped_models():
    config = ablation.RECIPE
    assert ablation.LMBDAS == (0.00025, 0.0005, 0.001, 0.002)
    assert (config["steps"], config["batch_size"], config["optimizer"], config["lr"]) == (6000, 8, "adamw", 3e-4)
    assert (config["schedule"], config["min_lr_factor"], config["grad_clip"]) == ("cosine", 0.1, 1.0)
