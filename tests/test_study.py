"""skiplab study: options are checked, the quick study writes a complete report, resume
redoes nothing that finished, and the verdict is computed from the measurements."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from skiplab.cli import main
from skiplab.evidence.document import Document
from skiplab.studies import Budget, StudyConfig, compute_verdict, run_study
from skiplab.studies.calibrate import steps_for_budget
from skiplab.studies.curves import end_of_training
from skiplab.studies.verdict import NOT_IN_REGIME, assess_degradation

ALL_PARTS = "degradation,gradients,lesion,landscape,shattered"
SECTION_HEADINGS = [
    "## Verdict",
    "## Published result and this measurement, side by side",
    "## Set-up",
    "## 1. Degradation",
    "## 2. Gradient flow",
    "## 3. Lesions",
    "## 4. Loss landscape",
    "## 5. Shattered gradients",
    "## Files",
]
FIGURES = [
    "degradation.png",
    "gradient_flow.png",
    "lesion.png",
    "landscape_1d.png",
    "landscape_plain-14-s0.png",
    "landscape_resnet-14-s0.png",
    "shattered.png",
]
RUNS = [f"{f}-{d}-s{s}" for s in (0, 1) for f in ("plain", "resnet") for d in (8, 14)]


# -- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, kind, value",
    [("6", "minutes", 6.0), ("2.5m", "minutes", 2.5), ("3ep", "epochs", 3), ("500steps", "steps", 500)],
)
def test_budget_parses_minutes_epochs_and_steps(text, kind, value):
    budget = Budget.parse(text)
    assert (budget.kind, budget.value) == (kind, value)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(depths="8,21"), "6n\\+2"),
        (dict(depths="20"), "at least two"),
        (dict(depths="8,8"), "twice"),
        (dict(models="plain,densenet"), "unknown family.*densenet"),
        (dict(parts="gradients,histogram"), "unknown part.*histogram"),
        (dict(budget="ten"), "--budget"),
        (dict(budget="0m"), "positive"),
        (dict(budget="2.5ep"), "integer"),
        (dict(without_bn="sometimes"), "--without-bn"),
        (dict(eval_images=4), "--eval-images"),
        (dict(seed=-1), "--seed"),
        (dict(seeds=0), "--seeds"),
        (dict(steps=0), "--steps"),
        (dict(steps=10, budget="5m"), "not both"),
    ],
)
def test_bad_options_are_value_errors_naming_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig.create(**options)


def test_defaults_are_the_ten_minute_synthetic_study():
    c = StudyConfig.create()
    assert c.data == "synthetic:patterns-2k" and c.depths == (8, 20) and c.models == ("plain", "resnet")
    assert c.parts == ("degradation", "gradients", "lesion") and c.budget == Budget("steps", 150)
    assert c.seeds == 5 and c.seed_list == [0, 1, 2, 3, 4]
    real = StudyConfig.create(data="cifar10:/somewhere")
    assert real.seeds == 3
    assert real.budget == Budget("minutes", 30.0) and real.eval_images == 2000
    # He 2015's recipe for every net: lr / 10 at 50 % and 75 % of the steps, no warm-up
    assert c.recipe.warmup_steps == 0 and c.recipe.milestones(400) == [200, 300]
    assert "lr / 10 at 50 % and 75 % of the steps" in c.recipe.describe() and "warm-up" not in c.recipe.describe()
    assert StudyConfig.create(steps=123).budget == Budget("steps", 123)
    # parts run in their canonical order whatever order they are given in
    assert StudyConfig.create(parts="lesion,degradation").parts == ("degradation", "lesion")
    assert StudyConfig.from_dict(c.to_dict()) == c


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["study", "--depths", "8,9", "--out", str(tmp_path / "s")]) == 2
    assert "--depths takes CIFAR depths 6n+2" in capsys.readouterr().err
    assert main(["study", "--resume", "--depths", "8,20", "--out", str(tmp_path / "s")]) == 2
    assert "not a study directory" in capsys.readouterr().err
    assert main(["study", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "not a study directory" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    out = capsys.readouterr().out
    for option in (
        "--data",
        "--depths",
        "--budget",
        "--models",
        "--parts",
        "--out",
        "--resume",
        "--seed",
        "--quick",
        "--without-bn",
        "examples:",
        "cifar10:",
    ):
        assert option in out


# -- the arithmetic of budget and verdict ------------------------------------------------
def test_minutes_budget_gives_equal_steps_that_fit():
    seconds = [0.05, 0.5, 0.05, 0.5] * 3  # four networks, three seeds
    steps = steps_for_budget(6, seconds, jobs=1, overhead=0.25)
    assert steps * sum(seconds) <= 360 * 0.75 < (steps + 1) * sum(seconds)
    assert steps_for_budget(6, seconds, jobs=2, overhead=0.25) in (2 * steps, 2 * steps + 1)


def test_runs_split_the_cores_and_measurements_take_them_all(monkeypatch):
    from skiplab.studies.runner import Runner, choose_threads

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    assert choose_threads(0, jobs=2) == 2 and choose_threads(3, jobs=2) == 3
    monkeypatch.setattr("os.getloadavg", lambda: (4.0, 0.0, 0.0))  # busy: one thread per run
    assert choose_threads(0, jobs=1) == 1
    runner = Runner.__new__(Runner)
    runner.threads, runner.jobs = 1, 2
    assert runner.measure_threads == 2


def test_end_of_training_is_the_mean_of_the_last_tenth():
    rows = [dict(step=i, loss=float(i), error=0.5) for i in range(1, 101)]
    end = end_of_training(rows)
    assert end["train_loss_end"] == pytest.approx(sum(range(91, 101)) / 10)
    assert end["train_error_end"] == pytest.approx(0.5)


def _correct(error: float, images: int = 400) -> str:
    """A correctness string with exactly ``error`` of the images wrong."""
    wrong = round(error * images)
    return "0" * wrong + "1" * (images - wrong)


def _results(errors: dict, seeds: int = 3, lesion: dict | None = None) -> dict:
    """Degradation results from constructed per-(network, seed) training errors."""
    from skiplab.studies.degradation import contrasts
    from skiplab.studies.regime import degradation_gate, enough_seeds

    correct = {k: [_correct(e + 0.01 * s) for s in range(seeds)] for k, e in errors.items()}
    deg = dict(
        plain="plain",
        residual="resnet",
        shallow=20,
        deep=56,
        steps=500,
        classes=10,
        train_contrasts=contrasts(correct, "plain", "resnet", 20, 56),
    )
    deg["regime"] = enough_seeds(seeds) + degradation_gate(errors, ["plain-20", "resnet-20"], 0.1)
    return dict(degradation=deg, **({"lesion": lesion} if lesion else {}))


def test_the_interaction_of_constructed_numbers():
    from skiplab.evidence.stats import interaction, wrong_matrix

    e = {k: wrong_matrix([_correct(v)] * 3) for k, v in dict(pd=0.30, ps=0.10, rd=0.04, rs=0.06).items()}
    ci = interaction(e, "pd", "ps", "rd", "rs")
    assert ci["estimate"] == pytest.approx((0.30 - 0.10) - (0.04 - 0.06))
    assert ci["low"] < ci["estimate"] < ci["high"] and ci["low"] > 0.15
    # the same numbers with no contrast: the interval straddles zero
    flat = {k: wrong_matrix([_correct(0.1)] * 3) for k in ("pd", "ps", "rd", "rs")}
    same = interaction(flat, "pd", "ps", "rd", "rs")
    assert same["estimate"] == 0 and same["low"] <= 0 <= same["high"]


def test_degradation_verdict_is_the_sign_of_the_interaction_interval():
    config = StudyConfig.create(parts="degradation")
    he = _results({"plain-20": 0.05, "plain-56": 0.12, "resnet-20": 0.05, "resnet-56": 0.03})
    assert [a.status for a in assess_degradation(config, he)] == ["agrees", "agrees", "agrees"]
    line = compute_verdict(config, he)[0]
    assert "interaction (plain minus residual) +9.0 points" in line and "-- agrees [" in line
    assert line.endswith("[deeper ResNets train better or no worse: agrees]")
    against = _results({"plain-20": 0.05, "plain-56": 0.03, "resnet-20": 0.05, "resnet-56": 0.12})
    assert [a.status for a in assess_degradation(config, against)] == ["disagrees"] * 3
    equal = _results({"plain-20": 0.05, "plain-56": 0.05, "resnet-20": 0.05, "resnet-56": 0.05})
    assert assess_degradation(config, equal)[0].status == "unresolved"


def test_a_regime_gate_withholds_the_verdict():
    config = StudyConfig.create(parts="degradation")
    # the shallow nets do not fit their training set: no verdict, whatever the contrast
    loose = _results({"plain-20": 0.40, "plain-56": 0.70, "resnet-20": 0.40, "resnet-56": 0.35})
    found = assess_degradation(config, loose)
    assert {a.status for a in found} == {NOT_IN_REGIME}
    assert "plain-20 40.0%" in found[0].reasons[0] and "near chance" not in found[0].reasons[0]
    line = compute_verdict(config, loose)[0]
    assert f"no verdict, {NOT_IN_REGIME}" in line and "agrees" not in line
    # a compared net at chance (90% error on 10 classes) is out of the regime too
    dead = _results({"plain-20": 0.05, "plain-56": 0.85, "resnet-20": 0.05, "resnet-56": 0.03})
    assert "plain-56 85.0%" in assess_degradation(config, dead)[0].reasons[0]
    # two seeds are too few for any verdict
    two = _results({"plain-20": 0.05, "plain-56": 0.12, "resnet-20": 0.05, "resnet-56": 0.03}, seeds=2)
    assert "2 seed(s)" in assess_degradation(config, two)[0].reasons[0]


def test_centred_correlation_of_known_gradients():
    from skiplab.analysis.shattered import gradient_autocorrelation

    rng = np.random.default_rng(0)
    t = np.linspace(-2, 2, 256)
    smooth = np.stack([np.sin(t), np.cos(0.5 * t)], axis=1)  # gradient of a smooth map along a line
    assert gradient_autocorrelation(smooth, 4, centered=True)[1] > 0.99
    noise = rng.standard_normal((256, 50))  # white noise
    assert abs(gradient_autocorrelation(noise, 4, centered=True)[1]) < 0.05
    linear = np.tile(rng.standard_normal(50), (256, 1)) + 1e-9 * t[:, None]  # a linear map: constant gradient
    assert gradient_autocorrelation(linear, 4, centered=False)[1] == pytest.approx(1.0)


def test_shattered_rates_are_fitted_from_the_depths():
    from skiplab.studies.shattered import fit_rates

    depths = [8, 14, 20]
    fit = fit_rates(depths, [2.0**-d for d in depths])
    assert fit["per_layer_log2"] == pytest.approx(1.0) and fit["better"] == "exponential"
    fit = fit_rates(depths, [d**-0.5 for d in depths])
    assert fit["power"] == pytest.approx(0.5) and fit["better"] == "power law"
    # two depths fit either law exactly: no comparison; a value at or below the floor: no rate
    assert fit_rates([8, 20], [0.5, 0.2])["better"] == "undetermined"
    assert math.isnan(fit_rates(depths, [0.5, 0.2, -0.01])["per_layer_log2"])
    floor = -0.01
    shifted = fit_rates(depths, [2.0**-d + floor for d in depths], floor)
    assert shifted["per_layer_log2"] == pytest.approx(1.0)


def _floored_values(rng, n_points=128):
    """R(1) items [5 seeds, 24 items] per (family, depth), above the white-noise floor -1/(N-1):
    the plain family's excess decays as 2^-(L/8) and is white noise (at the floor) at 110
    layers; the residual family's excess as L^-1/2."""
    from skiplab.studies.shattered import white_noise_floor

    floor = white_noise_floor(n_points)
    depths = [8, 20, 56, 110]
    truth = {("plain", d): floor + (0.0 if d == 110 else 2.0 ** (-d / 8)) for d in depths}
    truth.update({("resnet", d): floor + d**-0.5 for d in depths})
    return depths, floor, {k: v + 0.002 * rng.standard_normal((5, 24)) for k, v in truth.items()}


def test_shattered_depths_at_the_white_noise_floor_are_reported_and_left_out():
    from skiplab.studies.shattered import at_floor, fitted_depths, rate_intervals, white_noise_floor

    assert white_noise_floor(128) == pytest.approx(-1 / 127)
    depths, floor, values = _floored_values(np.random.default_rng(0))
    assert at_floor(values[("plain", 110)], floor)["at_floor"]
    assert not at_floor(values[("plain", 56)], floor)["at_floor"]
    assert fitted_depths(values, "plain", depths, floor) == [8, 20, 56]
    iv = rate_intervals(values, "plain", "resnet", depths, floor)
    assert iv["fitted_depths"] == {"plain": [8, 20, 56], "resnet": depths}
    assert iv["plain_per_layer_log2"]["estimate"] == pytest.approx(1 / 8, rel=0.05)
    assert iv["resnet_power"]["estimate"] == pytest.approx(0.5, rel=0.05)
    assert len(iv["difference"]["per_seed"]) == 5


def test_the_shattered_fit_does_not_move_with_the_floor_handling_constant():
    """The level of the at-the-floor decision (SHATTERED_FLOOR_CONFIDENCE) from 0.80 to 0.99
    leaves the fitted rates unchanged: no constant decides a rate (R_FLOOR = 1e-9 used to set
    the fully shattered depths' log-rate, and with it the plain net's rate)."""
    from skiplab.studies.shattered import rate_intervals

    depths, floor, values = _floored_values(np.random.default_rng(1))
    fits = [rate_intervals(values, "plain", "resnet", depths, floor, confidence=c) for c in (0.80, 0.95, 0.99)]
    for key in ("plain_per_layer_log2", "plain_power", "resnet_per_layer_log2", "resnet_power", "difference"):
        assert {round(f[key]["estimate"], 12) for f in fits} == {round(fits[0][key]["estimate"], 12)}
    assert all(f["fitted_depths"]["plain"] == [8, 20, 56] for f in fits)


def test_the_shattered_part_measures_four_depths_per_family():
    full = StudyConfig.create(parts="shattered")
    assert len(full.shattered_depths) >= 4 and {8, 20, 56, 110} <= set(full.shattered_depths)
    assert StudyConfig.create(parts="shattered", quick=True).shattered_depths == (8, 14)


def test_html_embeds_images_and_escapes_text(tmp_path):
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG fake")
    doc = Document("t <1>")
    doc.paragraph("**bold** and `code` & <tag>")
    doc.table(["a", "b"], [["x|y", 1.5]])
    doc.image(png, "a figure")
    html, md = doc.html(), doc.markdown()
    assert "data:image/png;base64,iVBORyBmYWtl" in html and "<b>bold</b>" in html and "&lt;tag&gt;" in html
    assert "![a figure](f.png)" in md and "x\\|y" in md and "|---|---:|" in md


# -- the quick study end to end ----------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "quick"
    code = main(
        [
            "study",
            "--quick",
            "--depths",
            "8,14",
            "--parts",
            ALL_PARTS,
            "--eval-images",
            "32",
            "--out",
            str(out),
            "--threads",
            "1",
        ]
    )
    assert code == 0
    return out


@pytest.mark.slow
def test_quick_study_writes_a_report_with_every_section(quick_study):
    md = (quick_study / "report.md").read_text()
    positions = [md.find(h) for h in SECTION_HEADINGS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), positions
    for fig in FIGURES:
        assert (quick_study / fig).stat().st_size > 1000, fig
        assert f"]({fig})" in md
    html = (quick_study / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES) and 'src="' + FIGURES[0] not in html
    for name in RUNS:
        run = quick_study / "runs" / name
        for f in ("checkpoints/last.pt", "steps.csv", "train.yaml", "trained.json"):
            assert (run / f).is_file(), run / f
    state = json.loads((quick_study / "study.json").read_text())
    assert state["complete"] and state["steps"] == 6 and sorted(state["runs"]) == sorted(RUNS)
    assert all(r["trained"]["steps"] == 6 for r in state["runs"].values())
    for part in ALL_PARTS.split(","):
        assert state["parts"][part] == "done" and (quick_study / "results" / f"{part}.json").is_file()
    assert "--steps 6" in md and "fixed in `skiplab.evidence.thresholds` before this run" in md
    test_images = json.loads((quick_study / "results" / "degradation.json").read_text())["test_images"]
    assert f"32 fixed training images and the whole test split ({test_images} images)" in md


@pytest.mark.slow
def test_quick_report_is_a_smoke_run_without_verdicts(quick_study):
    md = (quick_study / "report.md").read_text()
    assert "SMOKE RUN (--quick)" in md
    assert not re.search(r"\*\*(Agrees|Disagrees|Partly agrees|Unresolved)", md)
    table = md.split("## Published result")[1].split("## Set-up")[0]
    assert "**agrees**" not in table and "**disagrees**" not in table and "**partly**" not in table
    verdict = md.split("## Verdict")[1].split("##")[0].strip().splitlines()
    assert verdict and all(re.search(r"\d+\.\d", line) for line in verdict)
    assert len(verdict) == 5 and all("no verdict (smoke run)" in line for line in verdict)
    deg = json.loads((quick_study / "results" / "degradation.json").read_text())
    c = deg["train_contrasts"]["interaction"]
    assert f"interaction (plain minus residual) {100 * c['estimate']:+.1f} points" in verdict[0]


@pytest.mark.slow
def test_resume_skips_finished_runs_and_parts(quick_study, capsys):
    capsys.readouterr()
    state_path = quick_study / "study.json"
    state = json.loads(state_path.read_text())
    # pretend the study was killed during the last run and before the lesion part
    del state["runs"]["resnet-14-s1"]
    (quick_study / "runs" / "resnet-14-s1" / "trained.json").unlink()
    (quick_study / "runs" / "resnet-14-s1" / "checkpoints" / "last.pt").unlink()  # killed before its checkpoint
    state["parts"].pop("lesion")
    state["complete"] = False
    state_path.write_text(json.dumps(state))
    kept = quick_study / "runs" / "plain-14-s0" / "checkpoints" / "last.pt"
    before = kept.stat().st_mtime_ns
    assert main(["study", "--resume", "--out", str(quick_study)]) == 0
    out = capsys.readouterr().out
    assert "7 finished earlier or reused, skipped" in out
    assert "[8/8] resnet-14-s1: 6 steps" in out  # the unfinished run was completed
    for part in ("degradation", "gradients", "landscape", "shattered"):
        assert f"{part}: finished earlier, skipped" in out
    assert "lesion: done" in out
    assert kept.stat().st_mtime_ns == before
    assert json.loads(state_path.read_text())["complete"]


@pytest.mark.slow
def test_a_new_study_refuses_an_existing_directory(quick_study, capsys):
    assert main(["study", "--quick", "--out", str(quick_study)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_bad_data_leaves_no_state(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["study", "--quick", "--data", f"cifar10:{tmp_path / 'missing'}", "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (out / "study.json").exists()


def test_resume_without_a_study_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no unfinished study"):
        run_study(resume=True)
    assert not os.path.exists(tmp_path / "runs")


def _landscape(plain_ratios, res_ratios, regime=()):
    curv = [
        dict(model=m, shortcut=sc, ratio=(float(np.mean(r)), float(np.std(r))), seeds=[dict(ratio=x) for x in r])
        for m, sc, r in (("plain-56", "none", plain_ratios), ("resnet-56", "identity", res_ratios))
    ]
    from skiplab.studies.landscape import curvature_contrast

    models = [dict(model=f"{c['model']}-s0", shortcut=c["shortcut"], local_minima=1, border_rise=2.0) for c in curv]
    return {
        "landscape": dict(
            curvature=curv,
            contrast=curvature_contrast(curv),
            regime=list(regime),
            margin=0.01,
            images=2000,
            models=models,
        )
    }


def test_landscape_verdict_is_the_paired_hessian_ratio_interval():
    from skiplab.studies.verdict import assess_landscape

    config = StudyConfig.create(parts="landscape")
    he = _landscape([0.30, 0.35, 0.28], [0.02, 0.03, 0.01])
    c = he["landscape"]["contrast"]
    assert c["estimate"] == pytest.approx(np.mean([0.28, 0.32, 0.27])) and c["low"] > 0.01
    assert assess_landscape(config, he).status == "agrees"
    assert assess_landscape(config, _landscape([0.02, 0.03, 0.01], [0.30, 0.35, 0.28])).status == "disagrees"
    assert assess_landscape(config, _landscape([0.05, 0.02, 0.03], [0.03, 0.04, 0.02])).status == "unresolved"
    gated = assess_landscape(config, _landscape([0.30, 0.35, 0.28], [0.02, 0.03, 0.01], ["still falling"]))
    assert gated.status == NOT_IN_REGIME and gated.reasons == ["still falling"]


def _gradients(plain_slope, res_slope, regime=(), seeds=3, batches=4):
    """Gradient results from constructed per-(seed, batch) slopes at two stages."""
    from skiplab.studies.gradients import contrasts

    rng = np.random.default_rng(0)
    rows = [
        dict(key=k, seed=s, batch=b, stage=st, slope=m + 0.005 * rng.standard_normal())
        for st in ("init", "trained")
        for k, m in (("plain-56", plain_slope), ("resnet-56", res_slope))
        for s in range(seeds)
        for b in range(batches)
    ]
    verdicts = [
        dict(
            contrasts(rows, "plain-56", "resnet-56", st), norm=True, plain_model="plain-56", residual_model="resnet-56"
        )
        for st in ("init", "trained")
    ]
    return {"gradients": dict(verdicts=verdicts, regime=list(regime), slope_band=0.05)}


def test_gradient_verdict_is_the_paired_slope_difference_against_the_band():
    from skiplab.studies.verdict import assess_gradients

    config = StudyConfig.create(parts="gradients")
    healthy = _gradients(-0.02, -0.01)
    v = healthy["gradients"]["verdicts"][0]
    assert v["difference"]["estimate"] == pytest.approx(-0.01, abs=0.003)
    assert v["difference"]["seeds"] == 3 and v["difference"]["images"] == 4
    assert assess_gradients(config, healthy).status == "agrees"
    vanishing = assess_gradients(config, _gradients(0.20, 0.0))
    assert vanishing.status == "disagrees" and "vanishing-gradient account" in vanishing.reasons[0]
    assert assess_gradients(config, _gradients(0.05, 0.0)).status == "unresolved"  # on the band
    exploding = assess_gradients(config, _gradients(-0.2, 0.0))
    assert exploding.status == "disagrees" and "exploding at init, trained" in exploding.reasons[0]
    # the plain net's own gradient outside the band disagrees even when the residual net's does too
    both = assess_gradients(config, _gradients(-0.2, -0.2))
    assert both.status == "disagrees" and "grows towards the input" in both.reasons[0]
    gated = assess_gradients(config, _gradients(0.20, 0.0, regime=["a --quick smoke run"]))
    assert gated.status == NOT_IN_REGIME


def _profile_rows(key: str, profile, seeds=3, batches=4, rng=None):
    """Per-(seed, batch) rows whose slope is fitted, as :func:`measure` fits it, from a
    per-block gradient RMS profile (block 0 at the input)."""
    from skiplab.evidence.stats import loglinear_slope

    rng = rng or np.random.default_rng(0)
    rows = []
    for st in ("init", "trained"):
        for s in range(seeds):
            for b in range(batches):
                noisy = np.asarray(profile) * np.exp(0.02 * rng.standard_normal(len(profile)))
                rows.append(dict(key=key, seed=s, batch=b, stage=st, slope=loglinear_slope(range(len(profile)), noisy)))
    return rows


def test_an_exploding_gradient_profile_gets_a_disagreeing_verdict():
    """A plain net whose per-block gradient RMS grows 4000x towards the input (27 blocks, as in
    a 56-layer CIFAR net) against a residual net with a flat profile: He's "healthy norms" does
    not hold and the rule says so, in the other direction from vanishing."""
    from skiplab.studies.gradients import classify, contrasts
    from skiplab.studies.verdict import assess_gradients, gradient_stage

    blocks = 27
    exploding = 4000.0 ** ((blocks - 1 - np.arange(blocks)) / (blocks - 1))  # 4000 at the input, 1 at the output
    flat = np.ones(blocks)
    rows = _profile_rows("plain-56", exploding) + _profile_rows("resnet-56", flat)
    verdicts = [
        dict(
            contrasts(rows, "plain-56", "resnet-56", st), norm=True, plain_model="plain-56", residual_model="resnet-56"
        )
        for st in ("init", "trained")
    ]
    slope = verdicts[0]["plain"]["estimate"]
    assert slope == pytest.approx(-math.log10(4000) / (blocks - 1), abs=0.01) and classify(slope) == "exploding"
    assert gradient_stage(verdicts[0], 0.05) == "exploding"
    found = assess_gradients(
        StudyConfig.create(parts="gradients"), {"gradients": dict(verdicts=verdicts, regime=[], slope_band=0.05)}
    )
    assert found.status == "disagrees" and "exploding" in found.reasons[0]
    # the same profile the other way round (shrinking 4000x towards the input) is vanishing
    rows = _profile_rows("plain-56", exploding[::-1]) + _profile_rows("resnet-56", flat)
    verdicts = [
        dict(
            contrasts(rows, "plain-56", "resnet-56", st), norm=True, plain_model="plain-56", residual_model="resnet-56"
        )
        for st in ("init", "trained")
    ]
    found = assess_gradients(
        StudyConfig.create(parts="gradients"), {"gradients": dict(verdicts=verdicts, regime=[], slope_band=0.05)}
    )
    assert found.status == "disagrees" and "vanishing" in found.reasons[0]


def test_shattered_verdict_is_the_paired_rate_difference_with_the_control_as_gate():
    from skiplab.studies.shattered import control_gate, rate_intervals
    from skiplab.studies.verdict import assess_shattered

    rng = np.random.default_rng(0)
    depths = [8, 14, 20]
    # Balduzzi's rates: plain R(1) = 2^-(L/8), residual L^-1/2, measured with noise over 5 seeds x 24 items
    values = {
        (f, d): np.clip(r + 0.01 * rng.standard_normal((5, 24)), 1e-3, None)
        for f, fn in (("plain", lambda d: 2.0 ** (-d / 8)), ("resnet", lambda d: d**-0.5))
        for d in depths
        for r in [fn(d)]
    }
    iv = rate_intervals(values, "plain", "resnet", depths)
    assert iv["plain_per_layer_log2"]["estimate"] == pytest.approx(1 / 8, rel=0.05)
    assert iv["resnet_power"]["estimate"] == pytest.approx(0.5, rel=0.05)
    assert iv["difference"]["low"] > 0
    control = [dict(model="mlp_plain-24", lag1=(0.06, 0.01)), dict(model="mlp_residual-24", lag1=(0.83, 0.02))]
    assert control_gate(control, quick=False, seeds=5) == []
    sh = dict(intervals=iv, plain="plain", residual="resnet", regime=[])
    config = StudyConfig.create(parts="shattered")
    assert assess_shattered(config, {"shattered": sh}).status == "agrees"
    swapped = {"plain": "resnet", "resnet": "plain"}
    against = rate_intervals({(swapped[f], d): v for (f, d), v in values.items()}, "plain", "resnet", depths)
    assert assess_shattered(config, {"shattered": dict(sh, intervals=against)}).status == "disagrees"
    # a failed positive control withholds the verdict
    broken = [dict(model="mlp_plain-24", lag1=(0.7, 0.01)), dict(model="mlp_residual-24", lag1=(0.83, 0.02))]
    reasons = control_gate(broken, quick=False, seeds=5)
    assert reasons and "positive control failed" in reasons[0]
    assert assess_shattered(config, {"shattered": dict(sh, regime=reasons)}).status == NOT_IN_REGIME
    assert control_gate(control, quick=True, seeds=2)  # a smoke run, too few seeds


def test_the_convergence_gate_withholds_the_residual_row_only():
    from skiplab.studies.regime import convergence_gate

    config = StudyConfig.create(parts="degradation")
    errors = {"plain-20": 0.05, "plain-56": 0.40, "resnet-20": 0.05, "resnet-56": 0.25}
    res = _results(errors)
    deg = res["degradation"]
    deg["residual_regime"] = deg["regime"] + convergence_gate(
        {"resnet-20": 0.05, "resnet-56": 0.25}, {"resnet-20": 0.01, "resnet-56": 0.35}
    )
    found = {a.key: a for a in assess_degradation(config, res)}
    assert found["degradation"].status == "agrees" and found["degradation_plain"].status == "agrees"
    residual = found["degradation_residual"]
    assert residual.status == NOT_IN_REGIME
    assert "resnet-56 25.0%" in residual.reasons[0] and "resnet-56 35%" in residual.reasons[1]
    assert convergence_gate({"resnet-56": 0.02}, {"resnet-56": 0.05}) == []
    assert convergence_gate({}, {"resnet-56": float("nan")}) == []  # no curve: the error level decides


def test_plateau_drop_is_how_much_the_loss_still_falls_at_the_end():
    from skiplab.studies.curves import plateau_drop

    flat = [dict(step=i, loss=0.1, error=0.0) for i in range(1, 201)]
    assert plateau_drop(flat)["loss_plateau_drop"] == pytest.approx(0.0)
    falling = [dict(step=i, loss=1.0 / i, error=0.0) for i in range(1, 201)]
    drop = plateau_drop(falling)["loss_plateau_drop"]
    expected = 1 - np.mean(1 / np.arange(181, 201)) / np.mean(1 / np.arange(161, 181))
    assert drop == pytest.approx(expected)


def test_centred_correlation_through_a_model_of_known_gradient():
    import torch
    from skiplab.analysis.shattered import shattered_gradients

    class Quadratic(torch.nn.Module):  # f(x) = |x|^2 / 2: its gradient x is a linear map of x
        def forward(self, x):
            return 0.5 * x.flatten(1).pow(2).sum(1)

    class Noise(torch.nn.Module):  # f(x) = <x, G(x)> with G a fixed random field per point: white noise
        def forward(self, x):
            g = torch.Generator().manual_seed(0)
            field = torch.randn(x.shape, generator=g)
            return (x * field).flatten(1).sum(1)

    x0 = torch.randn(3, 8, 8)
    smooth = shattered_gradients(Quadratic(), x0, n_points=64, radius=2.0, centered=True, max_lag=2)
    assert smooth.summary()["lag1"] > 0.95
    white = shattered_gradients(Noise(), x0, n_points=64, radius=2.0, centered=True, max_lag=2)
    assert abs(white.summary()["lag1"]) < 0.1
    linear = shattered_gradients(
        torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(192, 1)).eval(),
        x0,
        n_points=64,
        centered=False,
        max_lag=2,
        output_index=0,
    )
    assert linear.summary()["lag1"] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_planned_study_trains_in_workers_and_on_a_scheduler(tmp_path):
    """--plan writes every run's train.yaml; one run is trained the way a scheduler would
    (python -m skiplab.studies.worker), the rest by two worker processes; the runner folds
    both in and every run trains the planned steps."""
    import subprocess
    import sys
    import yaml
    import torch
    from skiplab.studies.study import StudyExperiment
    from skiplab.studies.experiment import Run
    from skiplab.studies import worker

    out = tmp_path / "s"
    config = StudyConfig.create(quick=True, parts="degradation", steps=4, seeds=1, train_images=96)
    assert run_study(config, out=out, plan=True, threads=1, log=lambda *_: None) is None
    plan = yaml.safe_load((out / "runs" / "plain-8-s0" / "train.yaml").read_text())
    assert plan["steps"] == 4 and plan["seed"] == 0 and plan["model"] == "cifar_plain"
    assert plan["milestones"] == [2, 3] and plan["schedule"] == "multistep"
    assert plan["train_subset"] == 96 and plan["step_log"] and plan["keep_steps"] == [2]
    # one run is `skiplab train --config <its train.yaml>` (a scheduler's job on another machine) ...
    assert main(["train", "--config", str(out / "runs" / "resnet-8-s0" / "train.yaml")]) == 0
    by_train = out / "runs" / "resnet-8-s0"
    assert (by_train / "steps.csv").is_file() and (by_train / "checkpoints" / "step-2.pt").is_file()
    # ... and it is the same run the runner's worker trains: the same weights
    again = worker.train(StudyExperiment(config), Run("resnet-8", 0), 4, tmp_path / "again", threads=1)
    assert again["steps"] == 4
    a = torch.load(by_train / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "again" / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    done = subprocess.run(
        [sys.executable, "-m", "skiplab.studies.worker", str(out), "plain-8-s0", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plain-8-s0: 4 steps")
    bad = subprocess.run(
        [sys.executable, "-m", "skiplab.studies.worker", str(out), "plain-99-s0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2 and "no run 'plain-99-s0'" in bad.stderr and "Traceback" not in bad.stderr
    lines: list[str] = []
    result = run_study(None, out=out, resume=True, jobs=2, threads=1, log=lines.append)
    assert "plain-8-s0: trained elsewhere, 4 steps" in "\n".join(lines)
    assert "resnet-8-s0: trained elsewhere, 4 steps" in "\n".join(lines)
    assert "2 at a time" in "\n".join(lines)
    state = json.loads((out / "study.json").read_text())
    assert state["complete"] and len(state["runs"]) == 4
    assert all(r["trained"]["steps"] == 4 for r in state["runs"].values())
    assert result is not None and result.verdict


def test_a_shorter_length_is_its_own_run_with_its_own_schedule():
    from skiplab.studies.experiment import Run
    from skiplab.studies.runs import RunSpec, study_runs, train_config

    config = StudyConfig.create(lengths="1,0.5", parts="degradation", seeds=3)
    assert config.lengths == (0.5, 1.0)
    names = [s.name for s in study_runs(config)]
    assert len(names) == 2 * 2 * 2 * 3 and "plain-20-L50-s2" in names and "plain-20-s2" in names
    spec = RunSpec.from_run(Run("resnet-8-L50", 1))
    assert (spec.family.label, spec.depth, spec.norm, spec.length, spec.seed) == ("resnet", 8, True, 0.5, 1)
    short = train_config(spec, config, 400, None)
    assert short.steps == 200 and short.milestones == [100, 150]
    assert RunSpec.from_run(Run("plain-56-nobn", 0)).norm is False
    with pytest.raises(ValueError, match="include 1"):
        StudyConfig.create(lengths="0.5")


def test_only_resnet_110_gets_hes_error_gated_warm_up():
    from skiplab.studies.runs import RunSpec, train_config
    from skiplab.studies.config import FAMILIES

    config = StudyConfig.create(depths="20,110", parts="degradation")
    warm = train_config(RunSpec(FAMILIES["resnet"], 110), config, 400, None)
    assert warm.error_warmup_lr == 0.01 and warm.error_warmup_until == 0.8 and warm.lr == 0.1
    for spec in (RunSpec(FAMILIES["plain"], 110), RunSpec(FAMILIES["resnet"], 20)):
        assert train_config(spec, config, 400, None).error_warmup_lr == 0.0


@pytest.mark.slow
def test_restate_recomputes_a_finished_study_from_its_kept_measurements(quick_study, tmp_path, capsys):
    """A copy without the runs (no checkpoint to load): the parts computed from kept
    measurements come out as they were under the same rules, and the report says it was restated."""
    import shutil

    copy = tmp_path / "restated"
    shutil.copytree(quick_study, copy, ignore=shutil.ignore_patterns("runs"))
    before = {p: json.loads((quick_study / "results" / f"{p}.json").read_text()) for p in ("degradation", "lesion")}
    grads = json.loads((quick_study / "results" / "gradients.json").read_text())
    assert main(["study", "--restate", "--out", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "degradation: restated" in out and "landscape: needs the trained weights" in out
    after = {p: json.loads((copy / "results" / f"{p}.json").read_text()) for p in ("degradation", "lesion")}
    assert after["degradation"]["train_contrasts"] == before["degradation"]["train_contrasts"]
    assert after["degradation"]["networks"] == before["degradation"]["networks"]
    assert [m["retained_single"] for m in after["lesion"]["models"]] == [
        m["retained_single"] for m in before["lesion"]["models"]
    ]
    restated_grads = json.loads((copy / "results" / "gradients.json").read_text())
    assert restated_grads["verdicts"] == grads["verdicts"] and restated_grads["regime"] == grads["regime"]
    assert not (copy / "runs").exists()
    assert "| restated |" in (copy / "report.md").read_text()


def test_restate_refuses_an_unfinished_study(quick_study, tmp_path, capsys):
    import shutil

    copy = tmp_path / "unfinished"
    shutil.copytree(quick_study, copy, ignore=shutil.ignore_patterns("runs"))
    state = json.loads((copy / "study.json").read_text())
    state["complete"] = False
    (copy / "study.json").write_text(json.dumps(state))
    assert main(["study", "--restate", "--out", str(copy)]) == 2
    assert "not a finished study" in capsys.readouterr().err
