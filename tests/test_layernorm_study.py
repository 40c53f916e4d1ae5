"""The pre-LN / post-LN / no-skip study (Xiong et al. 2020) on the one runner: end to end on
synthetic data, resume, the import of kept results, and its rules answering both ways."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from skiplab.evidence import thresholds as T
from skiplab.models import create_model
from skiplab.studies import worker
from skiplab.studies.layernorm import LayerNormConfig, LayerNormExperiment, run_layernorm_study
from skiplab.studies.layernorm import gradients as gradients_module
from skiplab.studies.layernorm.kept import kept_training
from skiplab.studies.layernorm.verdict import gradient_verdicts, training_verdicts

REPO = Path(__file__).resolve().parents[1]
TINY = dict(variants="pre,post", depths=(1,), gradient_depths=(1, 2), inits=("xavier",), steps=3)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def finished(tmp_path_factory, one_torch_thread):
    """A tiny study, run once: (its directory, its result)."""
    out = tmp_path_factory.mktemp("layernorm") / "study"
    result = run_layernorm_study(LayerNormConfig.create(quick=True, **TINY), out=out, threads=1, log=quiet)
    return out, result


def no_training(*args, **kwargs):
    raise AssertionError("a kept or finished run was trained again")


def no_measuring(*args, **kwargs):
    raise AssertionError("a kept or finished gradient cell was measured again")


def test_the_study_runs_end_to_end_through_the_runner(finished):
    out, result = finished
    state = json.loads((out / "layernorm.json").read_text())
    assert state["experiment"].endswith("LayerNormExperiment") and state["complete"]
    assert sorted(state["runs"]) == sorted(
        f"{v}-L1-{w}-s{s}" for v in ("pre", "post") for w in ("warmup", "nowarmup") for s in (0, 1)
    )
    run = out / "runs" / "post-L1-warmup-s0"
    assert (run / "steps.csv").is_file() and (run / "train.yaml").is_file()
    assert "weight_init: xavier" in (run / "train.yaml").read_text()
    training = json.loads((out / "training.json").read_text())
    assert len(training["runs"]) == 8 and all(len(r["losses"]) == 3 for r in training["runs"])
    assert all(math.isfinite(r["final_loss"]) and 0 <= r["val_acc"] <= 1 for r in training["runs"])
    grads = json.loads((out / "gradients_at_init.json").read_text())
    assert [len(g) for g in grads["runs"]["xavier"]["gradients"]["pre"]["2"]] == [2, 2]
    for name in ("report.md", "report.html", "gradients_at_init_xavier.png", "training_loss.png", "config.yaml"):
        assert (out / name).is_file(), name
    assert len(result.verdict) == 6 and all("smoke run" in line for line in result.verdict)


def test_resume_trains_and_measures_nothing_again(finished, monkeypatch):
    out, _ = finished
    monkeypatch.setattr(worker, "train", no_training)
    monkeypatch.setattr(gradients_module, "layer_gradients", no_measuring)
    lines: list[str] = []
    result = run_layernorm_study(out=out, resume=True, threads=1, log=lines.append)
    assert any("nothing to train" in line for line in lines)
    assert result.verdict == finished[1].verdict


def test_kept_results_are_imported_not_trained(finished, tmp_path, monkeypatch):
    kept, first = finished
    monkeypatch.setattr(worker, "train", no_training)
    monkeypatch.setattr(gradients_module, "layer_gradients", no_measuring)
    lines: list[str] = []
    config = LayerNormConfig.create(quick=True, kept=str(kept), **TINY)
    result = run_layernorm_study(config, out=tmp_path / "again", threads=1, log=lines.append)
    assert any("8 run(s) of the same recipe reused" in line for line in lines)
    assert any("cell(s) reused" in line for line in lines)
    assert result.verdict == first.verdict
    assert result.results["training"]["kept"] == 8 and result.results["training"]["trained"] == 0


def test_only_the_runs_the_kept_file_lacks_are_trained(finished, tmp_path, monkeypatch):
    kept, _ = finished
    partial = tmp_path / "partial"
    partial.mkdir()
    data = json.loads((kept / "training.json").read_text())
    data["runs"] = [r for r in data["runs"] if r["seed"] == 0]
    (partial / "training.json").write_text(json.dumps(data))
    trained: list[str] = []
    real = worker.train
    monkeypatch.setattr(worker, "train", lambda e, run, *a, **k: trained.append(run.name) or real(e, run, *a, **k))
    config = LayerNormConfig.create(quick=True, kept=str(partial), measure="training", **TINY)
    run_layernorm_study(config, out=tmp_path / "out", threads=1, log=quiet)
    assert sorted(trained) == sorted(f"{v}-L1-{w}-s1" for v in ("pre", "post") for w in ("warmup", "nowarmup"))


def test_a_plan_leaves_the_kept_runs_out(finished, tmp_path):
    kept, _ = finished
    partial = tmp_path / "partial"
    partial.mkdir()
    data = json.loads((kept / "training.json").read_text())
    data["runs"] = [r for r in data["runs"] if r["seed"] == 0]
    (partial / "training.json").write_text(json.dumps(data))
    config = LayerNormConfig.create(quick=True, kept=str(partial), measure="training", **TINY)
    run_layernorm_study(config, out=tmp_path / "out", plan=True, threads=1, log=quiet)
    assert sorted(p.parent.name for p in (tmp_path / "out" / "runs").glob("*/train.yaml")) == sorted(
        f"{v}-L1-{w}-s1" for v in ("pre", "post") for w in ("warmup", "nowarmup")
    )


def test_a_kept_file_of_another_recipe_is_not_reused(finished):
    kept, _ = finished
    lines: list[str] = []
    assert kept_training(LayerNormConfig.create(quick=True, kept=str(kept), **{**TINY, "steps": 4}), lines.append) == {}
    assert "another recipe" in lines[0] and "steps" in lines[0]


def test_the_evidence_files_import_as_the_scripts_wrote_them():
    """docs/evidence/xiong2020/training.json (the benchmark script's format) matches the
    declared recipe of configs/study_xiong2020.yaml, run for run."""
    import yaml

    values = yaml.safe_load((REPO / "configs" / "study_xiong2020.yaml").read_text())
    values.pop("parts")
    values["kept"] = str(REPO / values["kept"])
    config = LayerNormConfig.create(**values)
    runs = kept_training(config, quiet)
    kept = json.loads((REPO / "docs/evidence/xiong2020/training.json").read_text())["runs"]
    assert len(runs) == len(kept) >= 12
    assert runs["post-L4-warmup-s2"]["final_loss"] == next(
        r["final_loss"] for r in kept if (r["variant"], r["depth"], r["warmup"], r["seed"]) == ("post", 4, True, 2)
    )


def record(variant, depth, warmup, seed, loss, acc=0.5):
    return dict(variant=variant, depth=depth, warmup=warmup, seed=seed, final_loss=loss, val_acc=acc)


@pytest.mark.parametrize("gap, post, pre", [(0.3, "holds", "contradicted"), (-0.2, "contradicted", "holds")])
def test_the_training_rules_answer_both_ways(gap, post, pre):
    noise = [0.0, 0.01, -0.01]
    runs = [
        record(v, 4, w, s, 2.0 + (gap + noise[s] if not w else 0.0))
        for v in ("pre", "post")
        for w in (False, True)
        for s in range(3)
    ]
    verdicts = {v["claim"]: v["verdict"] for v in training_verdicts(runs, [4], [0, 1, 2])}
    assert verdicts == {"post-LN needs the warm-up, depth 4": post, "pre-LN trains without the warm-up, depth 4": pre}


def test_the_training_rules_keep_to_the_regime():
    runs = [
        record(v, 4, w, s, 2.0 + (0.3 if not w else 0.0), acc=0.15)
        for v in ("pre", "post")
        for w in (False, True)
        for s in range(3)
    ]
    assert all("outside the regime" in v["verdict"] for v in training_verdicts(runs, [4], [0, 1, 2]))
    short = {v["claim"][:4]: v["verdict"] for v in training_verdicts(runs[:-1], [4], [0, 1, 2])}
    assert short["post"] == "incomplete (2 of 3 seeds)" and "outside the regime" in short["pre-"]
    trained = [dict(r, val_acc=0.5) for r in runs]
    assert all("smoke run" in v["verdict"] for v in training_verdicts(trained, [4], [0, 1, 2], quick=True))
    two = [r for r in trained if r["seed"] < 2]
    assert all("too few seeds" in v["verdict"] for v in training_verdicts(two, [4], [0, 1]))


def test_the_gradient_rules_answer_both_ways():
    depths = [6, 12, 24]
    wobble = [1.0, 1.02, 0.98, 1.01, 0.99]

    def last(exponent):
        return [[w * d**exponent for d in depths] for w in wobble]

    agree = gradient_verdicts(
        {"post": last(0.0), "pre": last(-0.5)},
        {"post": [(1.0, 3.0 * w) for w in wobble], "pre": [(1.0, w) for w in wobble]},
        depths,
    )
    assert [v["verdict"] for v in agree] == ["holds"] * 4
    disagree = gradient_verdicts(
        {"post": last(-0.6), "pre": last(0.1)},
        {"post": [(1.0, 0.5 * w) for w in wobble], "pre": [(1.0, 4.0 * w) for w in wobble]},
        depths,
    )
    assert [v["verdict"] for v in disagree] == ["contradicted"] * 4
    few = gradient_verdicts({"post": last(0.0)[:2]}, {"post": [(1.0, 3.0), (1.0, 3.1)]}, depths)
    assert len(few) == 2 and all(v["verdict"] == "no verdict (too few seeds)" for v in few)
    assert T.MIN_SEEDS_FOR_VERDICT > 2


def test_xavier_weight_init_is_timms_then_xavier_uniform():
    """The init Theorem 1 assumes: the same weights as building with timm's init and then
    redrawing every linear layer Xavier-uniform with zero biases (the benchmark's way)."""
    torch.manual_seed(3)
    model = create_model("cifar_vit", depth=2, embed_dim=32, num_heads=1, weight_init="xavier")
    torch.manual_seed(3)
    reference = create_model("cifar_vit", depth=2, embed_dim=32, num_heads=1)
    for m in reference.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="weight_init"):
        create_model("cifar_vit", depth=1, weight_init="kaiming")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--parts", "layernorm,degradation"], "runs alone"),
        (["--parts", "layernorm", "--models", "plain"], "--models: not an option of the layernorm part"),
    ],
)
def test_the_command_line_says_what_is_wrong_in_one_line(args, expected, tmp_path, capsys):
    from skiplab.cli import main

    assert main(["study", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_runs_trained_by_a_scheduler_are_folded_in_and_evaluated_on_the_subset(tmp_path, monkeypatch, one_torch_thread):
    """--plan writes each run's train.yaml; `skiplab train --config` trains it alone (evaluating
    on the whole test split); --resume folds it in and measures top-1 on the fixed subset."""
    from skiplab.cli import main

    config = LayerNormConfig.create(quick=True, measure="training", test_images=50, **{**TINY, "variants": "pre"})
    assert run_layernorm_study(config, out=tmp_path, plan=True, threads=1, log=quiet) is None
    plans = sorted((tmp_path / "runs").glob("*/train.yaml"))
    assert len(plans) == 4
    for path in plans:
        assert main(["train", "--config", str(path)]) == 0
    monkeypatch.setattr(worker, "train", no_training)
    result = run_layernorm_study(out=tmp_path, resume=True, threads=1, log=quiet)
    experiment = LayerNormExperiment(config)
    for run in experiment.runs():
        summary = json.loads((tmp_path / "layernorm.json").read_text())["runs"][run.name]["summary"]
        assert summary["val_acc"] == experiment.top1(tmp_path / "runs" / run.name / "checkpoints" / "last.pt")
        assert math.isfinite(summary["final_loss"])
    assert result.results["training"]["trained"] == 4


def test_a_kept_gradient_cell_is_what_the_study_measures(cifar10_jpg, one_torch_thread):
    """The kept CIFAR-10 measurement (docs/evidence/xiong2020) is the study's, cell for cell."""
    from skiplab.data import load_dataset
    from skiplab.studies.layernorm.gradients import gradient_images, layer_gradients

    config = LayerNormConfig.create(data=f"cifar10:{cifar10_jpg}")
    x, y = gradient_images(load_dataset(config.data, "train"), config.gradient_images)
    kept = json.loads((REPO / "docs/evidence/xiong2020/gradients_at_init.json").read_text())
    assert kept["images"] == config.gradient_images and kept["width"] == config.width
    for init in ("xavier", "timm"):
        measured = layer_gradients(config, "post", 6, 1, init, x, y)
        assert measured == pytest.approx(kept["runs"][init]["gradients"]["post"]["6"][1], rel=1e-5)
