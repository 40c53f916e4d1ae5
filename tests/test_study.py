"""skiplab study: options are checked, the quick study writes a complete report, resume
redoes nothing that finished, and the verdict is computed from the measurements."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from skiplab.cli import main
from skiplab.studies import Budget, StudyConfig, compute_verdict, run_study
from skiplab.studies.document import Document
from skiplab.studies.runs import end_of_training, steps_for_budget
from skiplab.studies.verdict import assess_degradation, assess_lesion

ALL_PARTS = "degradation,gradients,lesion,landscape,shattered"
SECTION_HEADINGS = ["## Verdict", "## Published result and this measurement, side by side", "## Set-up",
                    "## 1. Degradation", "## 2. Gradient flow", "## 3. Lesions", "## 4. Loss landscape",
                    "## 5. Shattered gradients", "## Files"]
FIGURES = ["degradation.png", "gradient_flow.png", "lesion.png", "landscape_1d.png", "landscape_plain-14.png",
           "landscape_resnet-14.png", "shattered.png"]


# -- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, value", [("6", "minutes", 6.0), ("2.5m", "minutes", 2.5),
                                               ("3ep", "epochs", 3), ("500steps", "steps", 500)])
def test_budget_parses_minutes_epochs_and_steps(text, kind, value):
    budget = Budget.parse(text)
    assert (budget.kind, budget.value) == (kind, value)


@pytest.mark.parametrize("options, message", [
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
])
def test_bad_options_are_value_errors_naming_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig.create(**options)


def test_defaults_are_the_ten_minute_synthetic_study():
    c = StudyConfig.create()
    assert c.data == "synthetic:patterns" and c.depths == (8, 20, 56) and c.models == ("plain", "resnet")
    assert c.parts == ("degradation", "gradients", "lesion") and c.budget == Budget("minutes", 6.0)
    real = StudyConfig.create(data="cifar10:/somewhere")
    assert real.budget == Budget("minutes", 30.0) and real.eval_images == 1000
    # only the short default synthetic study warms up (and says so in the report's recipe)
    assert c.recipe.warmup_steps == 50 and "warm-up from lr 0.01 over the first 50 steps" in c.recipe.describe()
    assert real.recipe.warmup_steps == 0 and "warm-up" not in real.recipe.describe()
    # parts run in their canonical order whatever order they are given in
    assert StudyConfig.create(parts="lesion,degradation").parts == ("degradation", "lesion")


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["study", "--depths", "8,9", "--out", str(tmp_path / "s")]) == 2
    assert "--depths takes CIFAR depths 6n+2" in capsys.readouterr().err
    assert main(["study", "--resume", "--depths", "8,20", "--out", str(tmp_path / "s")]) == 2
    assert "drop --depths" in capsys.readouterr().err
    assert main(["study", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "not a study directory" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    out = capsys.readouterr().out
    for option in ("--data", "--depths", "--budget", "--models", "--parts", "--out", "--resume", "--seed",
                   "--quick", "--without-bn", "examples:", "cifar10:"):
        assert option in out


# -- the arithmetic of budget and verdict ------------------------------------------------
def test_minutes_budget_gives_equal_steps_that_fit():
    config = StudyConfig.create(budget="6m")
    seconds = {"plain-8": 0.05, "plain-56": 0.5, "resnet-8": 0.05, "resnet-56": 0.5}
    steps = steps_for_budget(config, seconds, steps_per_epoch=78, eval_images_per_epoch=2400)
    total = steps * sum(seconds.values())
    epochs = -(-steps // 78)
    evals = epochs * 2400 / 128 / 3 * sum(seconds.values())
    assert total + evals <= 360 and total + evals > 330


def test_end_of_training_is_the_mean_of_the_last_tenth():
    rows = [dict(step=i, loss=float(i), acc=0.5) for i in range(1, 101)]
    end = end_of_training(rows)
    assert end["train_loss_end"] == pytest.approx(sum(range(91, 101)) / 10)
    assert end["train_error_end"] == pytest.approx(0.5)


def _degradation(losses: dict) -> dict:
    rows = {}
    for (family, depth), loss in losses.items():
        rows.setdefault(family, []).append(dict(name=f"{family}-{depth}", depth=depth, train_loss_end=loss,
                                                train_error_end=loss / 10, diverged=None))
    from skiplab.studies.degradation import compare
    comparisons = {}
    for family, runs in rows.items():
        runs.sort(key=lambda r: r["depth"])
        comparisons[family] = dict(compare(runs[-1], runs[-2]), losses={r["depth"]: r["train_loss_end"] for r in runs})
    return dict(comparisons=comparisons, steps=500)


def test_verdict_is_computed_from_the_numbers():
    config = StudyConfig.create(parts="degradation,lesion")
    lesion = dict(models=[
        dict(model="plain-56", shortcut="none", mean_drop=0.61, max_drop=0.8, chance=0.1, mean_lesioned_accuracy=0.12,
             baseline=dict(accuracy=0.73)),
        dict(model="resnet-56", shortcut="identity", mean_drop=0.004, max_drop=0.02, chance=0.1,
             mean_lesioned_accuracy=0.9, baseline=dict(accuracy=0.904))])
    results = dict(degradation=_degradation({("plain", 20): 0.4, ("plain", 56): 0.92,
                                             ("resnet", 20): 0.3, ("resnet", 56): 0.25}), lesion=lesion)
    lines = compute_verdict(config, results)
    assert len(lines) == 3
    assert lines[0].startswith("plain-56 ends with 2.30x the training loss of plain-20")
    assert lines[1].startswith("resnet-56 ends with 0.83x the training loss of resnet-20")
    assert "resnet-56 costs 0.4 points" in lines[2] and "plain-56 costs 61.0" in lines[2]
    assert [a.status for a in assess_degradation(config, results)] == ["agrees", "agrees"]
    assert assess_lesion(results).status == "agrees"
    # a net barely above chance has nothing to lose: the lesion study says nothing about it
    lesion["models"][0]["baseline"]["accuracy"] = 0.19
    weak = assess_lesion(results)
    assert weak.status == "inconclusive" and "plain-56 (19.0%)" in weak.reasons[0]
    # the opposite measurement gives the opposite verdict, with reasons
    results["degradation"] = _degradation({("plain", 20): 0.9, ("plain", 56): 0.5,
                                           ("resnet", 20): 0.2, ("resnet", 56): 0.3})
    lines = compute_verdict(config, results)
    assert "0.56x" in lines[0] and "1.50x" in lines[1]
    plain, residual = assess_degradation(config, results)
    assert plain.status == residual.status == "disagrees"
    assert any("500 steps" in r for r in residual.reasons)


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
    code = main(["study", "--quick", "--depths", "8,14", "--parts", ALL_PARTS, "--eval-images", "32",
                 "--out", str(out)])
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
    assert html.count("data:image/png;base64,") == len(FIGURES) and "src=\"" + FIGURES[0] not in html
    for name in ("plain-8", "plain-14", "resnet-8", "resnet-14"):
        run = quick_study / "runs" / name
        assert (run / "checkpoints" / "last.pt").is_file() and (run / "steps.csv").is_file()
    state = json.loads((quick_study / "study.json").read_text())
    assert state["complete"] and state["steps"] == 6
    assert all(r["summary"]["steps"] == 6 for r in state["runs"].values())
    for part in ALL_PARTS.split(","):
        assert state["parts"][part] == "done" and (quick_study / "results" / f"{part}.json").is_file()


@pytest.mark.slow
def test_quick_study_verdict_has_numbers_from_the_results(quick_study, capsys):
    md = (quick_study / "report.md").read_text()
    verdict = md.split("## Verdict")[1].split("##")[0].strip().splitlines()
    assert len(verdict) == 3
    assert all(re.search(r"\d+\.\d", line) for line in verdict)
    deg = json.loads((quick_study / "results" / "degradation.json").read_text())
    c = deg["comparisons"]["plain"]
    assert f"{c['ratio']:.2f}x the training loss of plain-8" in verdict[0]
    lesion = json.loads((quick_study / "results" / "lesion.json").read_text())
    resnet = next(m for m in lesion["models"] if m["model"] == "resnet-14")
    assert f"costs {100 * resnet['mean_drop']:.1f} points" in verdict[2]


@pytest.mark.slow
def test_resume_skips_finished_runs_and_parts(quick_study, capsys):
    capsys.readouterr()
    state_path = quick_study / "study.json"
    state = json.loads(state_path.read_text())
    # pretend the study was killed during the last run and before the lesion part
    del state["runs"]["resnet-14"]
    state["parts"].pop("lesion")
    state["complete"] = False
    state_path.write_text(json.dumps(state))
    kept = quick_study / "runs" / "plain-14" / "checkpoints" / "last.pt"
    before = kept.stat().st_mtime_ns
    assert main(["study", "--resume", "--out", str(quick_study)]) == 0
    out = capsys.readouterr().out
    for name in ("plain-8", "plain-14", "resnet-8"):
        assert f"{name}: finished earlier, skipped" in out
    assert "resnet-14: training loss" in out            # the unfinished run was completed
    for part in ("degradation", "gradients", "landscape", "shattered"):
        assert f"{part}: finished earlier, skipped" in out
    assert "lesion: done" in out
    assert kept.stat().st_mtime_ns == before
    assert json.loads(state_path.read_text())["complete"]


@pytest.mark.slow
def test_a_new_study_refuses_an_existing_directory(quick_study, capsys):
    assert main(["study", "--quick", "--out", str(quick_study)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_without_a_study_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no unfinished study"):
        run_study(resume=True)
    assert not os.path.exists(tmp_path / "runs")


def test_landscape_verdict_needs_fewer_minima_to_agree():
    from skiplab.studies.verdict import assess_landscape

    def land(res_minima, plain_minima, res_rise, plain_rise):
        return {"landscape": {"points_2d": 9, "models": [
            dict(model="resnet-56", shortcut="identity", local_minima=res_minima, border_rise=res_rise),
            dict(model="plain-56", shortcut="none", local_minima=plain_minima, border_rise=plain_rise)]}}

    assert assess_landscape(land(1, 6, 300.0, 2e5)).status == "agrees"
    same = assess_landscape(land(1, 1, 360.0, 2e5))       # the CIFAR-10 study's case
    assert same.status == "partly" and "9x9 grid cannot resolve" in same.reasons[0]
    assert assess_landscape(land(5, 1, 2e5, 300.0)).status == "disagrees"
