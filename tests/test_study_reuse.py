"""A study pointed at runs that already exist (``runs:``) measures them and trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiplab.cli.study import read_config
from skiplab.studies import StudyConfig, run_study
from skiplab.studies import calibrate as calibrate_module
from skiplab.studies import runner as runner_module
from skiplab.studies import worker
from skiplab.studies.experiment import Run
from skiplab.studies.study import StudyExperiment

PARTS = "gradients,lesion"


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs trained before, outside any study directory (synthetic data, 2 steps)."""
    root = tmp_path_factory.mktemp("elsewhere")
    config = StudyConfig.create(quick=True, parts=PARTS, steps=2, seeds=1)
    out = {}
    for key in ("plain-14", "resnet-14"):
        trained = worker.train(StudyExperiment(config), Run(key, 0), 2, root / key, threads=1)
        assert trained["steps"] == 2
        out[key] = root / key
    return out


def snapshot(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def test_a_study_of_existing_runs_trains_nothing(elsewhere, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a study of existing runs must not train")

    monkeypatch.setattr(worker, "train", no_training)
    monkeypatch.setattr(worker, "train_from_state", no_training)
    monkeypatch.setattr(runner_module, "calibrate", no_training)
    monkeypatch.setattr(calibrate_module, "calibrate", no_training)
    before = {k: snapshot(v) for k, v in elsewhere.items()}
    # one run named by its directory, the other by its checkpoint file
    runs = {
        "plain-14-s0": str(elsewhere["plain-14"]),
        "resnet-14-s0": str(elsewhere["resnet-14"] / "checkpoints" / "last.pt"),
    }
    config = StudyConfig.create(quick=True, parts=PARTS, seeds=1, runs=runs)
    lines: list[str] = []
    out = tmp_path / "study"
    result = run_study(config, out=out, threads=1, log=lines.append)
    assert result is not None and result.verdict
    assert not (out / "runs").exists()  # no new run directory
    log = "\n".join(lines)
    assert "plain-14-s0: reused" in log and "resnet-14-s0: reused" in log
    state = json.loads((out / "study.json").read_text())
    assert state["steps"] == 2 and state["calibration"]["reused_runs"]  # the runs' own steps
    assert {r["trained"]["trained_by"].split(":")[0] for r in state["runs"].values()} == {"reused"}
    assert state["runs"]["resnet-14-s0"]["summary"]["reused"] == runs["resnet-14-s0"]
    assert (out / "results" / "lesion-resnet-14-s0.evaluations.jsonl").is_file()
    lesion = json.loads((out / "results" / "lesion.json").read_text())
    assert {m["model"] for m in lesion["per_seed"]} == {"plain-14-s0", "resnet-14-s0"}
    grads = json.loads((out / "results" / "gradients.json").read_text())
    assert {"init", "trained"} <= {r["stage"] for r in grads["results"]}
    assert {k: snapshot(v) for k, v in elsewhere.items()} == before  # the reused runs are untouched
    # resuming reuses them again, still without training
    assert run_study(None, out=out, resume=True, threads=1, log=lines.append) is not None


def test_only_the_runs_not_given_are_trained(elsewhere, tmp_path, monkeypatch):
    trained: list[str] = []
    real = worker.train

    def counting(experiment, run, steps, run_dir, threads=0):
        trained.append(run.name)
        return real(experiment, run, steps, run_dir, threads)

    monkeypatch.setattr(worker, "train", counting)
    config = StudyConfig.create(
        quick=True, parts="lesion", steps=2, seeds=1, runs={"resnet-14-s0": str(elsewhere["resnet-14"])}
    )
    out = tmp_path / "study"
    assert run_study(config, out=out, threads=1, log=lambda *_: None) is not None
    assert trained == ["plain-14-s0"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["plain-14-s0"]


def test_runs_are_checked_up_front(elsewhere, tmp_path):
    with pytest.raises(ValueError, match="not a run name"):
        StudyConfig.create(quick=True, runs={"resnet56": str(elsewhere["resnet-14"])})
    with pytest.raises(ValueError, match="neither a checkpoint file nor a run directory"):
        StudyConfig.create(quick=True, runs={"resnet-14-s0": str(tmp_path / "missing")})
    config = StudyConfig.create(quick=True, runs={"resnet-14-s0": str(elsewhere["resnet-14"])})
    assert StudyConfig.from_dict(config.to_dict()) == config


def test_the_yaml_config_takes_runs(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("runs:\n  resnet-56-s0: a/b\ncontour_images: 1000\n")
    assert read_config(str(path)) == {"runs": {"resnet-56-s0": "a/b"}, "contour_images": 1000}
    shipped = read_config(str(Path(__file__).parents[1] / "configs" / "study_he2015_trained.yaml"))
    assert set(shipped["runs"]) == {"resnet-20-s0", "resnet-56-s0", "plain-20-s0", "plain-56-s0"}


def test_lesion_evaluations_are_kept_and_not_measured_twice(tmp_path, monkeypatch):
    """Each lesioned evaluation is appended as it is measured; an interrupted part reads them back."""
    import torch
    from skiplab.analysis.lesion import lesion_random, lesion_units
    from skiplab.models import create_model
    from skiplab.studies import lesions

    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=14, num_classes=4, in_chans=3).eval()
    data = [(torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,)))]
    units = lesion_units(model, data)
    calls = []
    real = lesions.evaluate
    monkeypatch.setattr(lesions, "evaluate", lambda m, d: calls.append(1) or real(m, d))
    path = tmp_path / "evaluations.jsonl"
    first = lesion_random(
        model, data, [1, 2], draws=3, seed=5, units=units, measure=lesions.Evaluations(path, model, data)
    )
    measured = len(calls)
    assert 1 <= measured <= 6 and len(path.read_text().splitlines()) == measured
    with open(path, "a") as f:
        f.write('{"key": "cut sh')  # a line cut short by a kill
    again = lesion_random(
        model, data, [1, 2], draws=3, seed=5, units=units, measure=lesions.Evaluations(path, model, data)
    )
    assert again == first and len(calls) == measured  # nothing measured again
    assert lesion_random(model, data, [1, 2], draws=3, seed=5, units=units) == first
