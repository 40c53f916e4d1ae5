"""``run_layernorm_study``: the pre-LN / post-LN / no-skip study (Xiong et al. 2020) on the one
runner, from the configuration to the report.

    result = run_layernorm_study(LayerNormConfig.create(data="cifar10:../shared/data/cifar10-jpg"))
    print(result.directory, *result.verdict, sep="\\n")

Order: (1) kept runs of the same recipe (``kept:``) become finished run directories, (2) the
runner trains every other (variant, depth, warm-up, seed) run that is not finished (each
resumable, ``--jobs`` at a time), (3) the gradients at initialisation, cell by cell (kept
cells read, an interrupted measurement continued), (4) the verdicts, ``training.json`` and
``gradients_at_init.json`` (the kept format: this directory can be another study's
``kept:``), the figures and ``report.md`` / ``report.html``. ``resume=True`` redoes nothing
that finished.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

import yaml

from ...atomic import write_json, write_text
from ...evidence import seed_interval
from ..curves import STEPS_FILE, read_steps
from ..runner import Runner
from ..study import StudyResult as LayerNormResult  # the same fields: directory, verdict, reports
from .config import LayerNormConfig, training_setup
from .experiment import LayerNormExperiment
from .gradients import gradients_file, measure, per_seed, plot
from .kept import GRADIENTS_FILE, TRAINING_FILE, kept_gradients, reuse_kept_runs
from .verdict import gradient_verdicts, training_verdicts

PREFIX = "study-layernorm"


def open_layernorm_study(
    config: Optional[LayerNormConfig],
    out: Optional[str | Path],
    resume: bool,
    threads: int = 0,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> Runner:
    """A new study in ``out`` (default runs/study-layernorm-<timestamp>) or the one to resume."""
    return Runner.open_in(LayerNormExperiment, config, out, resume, PREFIX, threads=threads, jobs=jobs, log=log)


def run_layernorm_study(
    config: Optional[LayerNormConfig] = None,
    out: Optional[str | Path] = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    threads: int = 0,
    jobs: int = 1,
    plan: bool = False,
) -> Optional[LayerNormResult]:
    """Run (or continue) the study and write its report; see the module documentation.
    ``plan``: only fix the steps and write each run's ``train.yaml`` (for a scheduler)."""
    runner = open_layernorm_study(
        config if config is not None or resume else LayerNormConfig.create(), out, resume, threads, jobs, log
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(runner.threads)
    try:
        if plan:
            paths = plan_runs(runner, log)
            log(f"planned {len(paths)} runs of {runner.state.steps} steps in {runner.dir}/runs/")
            return None
        return _run(runner, log)
    finally:
        torch.set_num_threads(previous)


def plan_runs(runner: Runner, log: Callable[[str], None]) -> list[Path]:
    """Fix the steps and write the ``train.yaml`` of every run a scheduler has to train: not
    the kept ones (written as finished run directories first), nor those finished."""
    from ..worker import TRAINED_FILE, write_run_config

    experiment: LayerNormExperiment = runner.experiment  # type: ignore[assignment]
    if "training" in experiment.config.measure:
        reuse_kept_runs(experiment, runner, log)
    steps = runner.fix_steps()
    return [
        write_run_config(experiment, run, steps, runner.run_dir(run), runner.threads)
        for run in experiment.runs()
        if not runner.state.run_done(run.name) and not (runner.run_dir(run) / TRAINED_FILE).is_file()
    ]


def training_records(experiment: LayerNormExperiment, runner: Runner) -> list[dict]:
    """Every finished run as a ``training.json`` record (with its per-step losses)."""
    records = []
    for run in experiment.runs():
        if not runner.state.run_done(run.name):
            continue
        s = runner.summary(run)
        losses = [r["loss"] for r in read_steps(runner.run_dir(run) / STEPS_FILE)]
        records.append(
            dict(
                variant=s["variant"],
                depth=s["depth"],
                warmup=s["warmup"],
                seed=s["seed"],
                val_acc=s["val_acc"],
                final_loss=s["final_loss"],
                losses=losses,
                seconds=s["seconds"],
                diverged=s["diverged"],
                kept=s["kept"],
            )
        )
    return records


def training_table(records: list[dict], config: LayerNormConfig) -> dict:
    """Per (variant, depth, warm-up): the seeds, final losses and their interval, top-1."""
    table = {}
    for d in config.depths:
        for v in config.variants:
            for w in (False, True):
                cell = [r for r in records if (r["variant"], r["depth"], r["warmup"]) == (v, d, w)]
                if cell:
                    losses = [r["final_loss"] for r in cell]
                    table[f"{v} L={d} warm-up {'on' if w else 'off'}"] = dict(
                        variant=v,
                        depth=d,
                        warmup=w,
                        seeds=[r["seed"] for r in cell],
                        final_loss=losses,
                        mean_loss=float(np.mean(losses)),
                        loss_interval=seed_interval(losses),
                        top1=[r["val_acc"] for r in cell],
                    )
    return table


def gradient_results(norms: dict, config: LayerNormConfig) -> dict:
    """The verdicts at initialisation (Xavier init only) and the mean first / last layer norms."""
    depths, deep = list(config.gradient_depths), max(config.gradient_depths)
    means = {
        init: {
            v: {
                str(d): dict(
                    first=float(np.mean([g[0] for g in per_seed(norms, config, init, v, d)])),
                    last=float(np.mean([g[-1] for g in per_seed(norms, config, init, v, d)])),
                )
                for d in depths
            }
            for v in config.variants
        }
        for init in config.inits
    }
    verdicts: list[dict] = []
    if "xavier" in config.inits:
        judged = [v for v in ("post", "pre") if v in config.variants]
        last = {
            v: [[norms["xavier"][v][str(d)][str(s)][-1] for d in depths] for s in config.gradient_seed_list]
            for v in judged
        }
        ends = {v: [(g[0], g[-1]) for g in per_seed(norms, config, "xavier", v, deep)] for v in judged}
        verdicts = gradient_verdicts(last, ends, depths, quick=config.quick)
    return dict(means=means, verdicts=verdicts)


def verdict_lines(results: dict) -> list[str]:
    lines = []
    for v in results.get("gradients", {}).get("verdicts", []) + results.get("training", {}).get("verdicts", []):
        if "interval" not in v:
            lines.append(f"{v['claim']}: {v['verdict']}")
            continue
        lo, hi = v["interval"]
        lines.append(f"{v['claim']}: {v['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] -> {v['verdict']}")
    return lines


def _run(runner: Runner, log: Callable[[str], None]) -> LayerNormResult:
    from .report import plot_training, write_report

    experiment: LayerNormExperiment = runner.experiment  # type: ignore[assignment]
    c, state, directory = experiment.config, runner.state, runner.dir
    log(f"layernorm study in {directory}/ on {c.data}: {', '.join(c.variants)}; {' and '.join(c.measure)}")
    start = time.perf_counter()
    state.data["threads"] = runner.threads
    results: dict = {}
    if "training" in c.measure:
        reuse_kept_runs(experiment, runner, log)
        runner.train()
    torch.set_num_threads(runner.measure_threads)
    if "gradients" in c.measure:
        t0 = time.perf_counter()
        norms = measure(
            c,
            experiment.full_train(),
            directory / "results" / "gradients.json",
            {} if state.part_done("gradients") else kept_gradients(c, log),
            log,
        )
        if not state.part_done("gradients"):
            state.finish_part("gradients", time.perf_counter() - t0)
        results["gradients"] = gradient_results(norms, c)
        write_json(directory / GRADIENTS_FILE, gradients_file(norms, c, results["gradients"]["verdicts"]), indent=1)
        figures = plot(norms, c, directory)
    else:
        figures = []
    if "training" in c.measure:
        records = training_records(experiment, runner)
        verdicts = training_verdicts(records, list(c.depths), c.seed_list, experiment.num_classes, c.quick, c.variants)
        table = training_table(records, c)
        results["training"] = dict(
            table=table,
            verdicts=verdicts,
            trained=sum(1 for r in records if not r["kept"]),
            kept=sum(1 for r in records if r["kept"]),
        )
        write_json(
            directory / TRAINING_FILE,
            dict(setup=training_setup(c), runs=records, table=table, verdicts=verdicts),
            indent=1,
        )
        figures.append(plot_training(records, c, directory / "training_loss.png"))
    verdict = verdict_lines(results)
    write_text(
        directory / "config.yaml",
        yaml.safe_dump(
            dict(parts=["layernorm"], **{k: v for k, v in c.to_dict().items() if k != "quick"}), sort_keys=False
        ),
    )
    write_json(directory / "results" / "layernorm.json", json.loads(json.dumps(results)), indent=1)
    state.add_time("total", time.perf_counter() - start)
    md, html = write_report(runner, results, verdict, figures)
    state.finish()
    return LayerNormResult(directory, verdict, md, html, results, c.quick)
