"""``skiplab ablate autoencoder``: are residual blocks worth it in a SAR autoencoder, and where?

The four variants of :mod:`skiplab.models.autoencoder` -- ``sar_ae_plain`` (no residual
connection), ``sar_ae_bottleneck`` (residual blocks at the coarsest level only),
``sar_ae_all`` (everywhere) and ``sar_ae_bottleneck_cbam`` (bottleneck + CBAM) -- are
trained on the same tiles with the same recipe, the same number of steps and the same
seeds (3 by default: the verdicts are intervals over seeds and tiles), each run a
(variant, seed) run of the experiment runner (:mod:`skiplab.studies.runner`; task
``reconstruct``) in its own directory
``<out>/runs/<variant>-s<seed>/`` (config.yaml, metrics.csv, steps.csv,
checkpoints/best.pt -- usable directly by ``skiplab reconstruct``). Then every variant's
best checkpoint is evaluated in fp32 on held-out tiles (:mod:`skiplab.sar.ablation.evaluation`)
and the report is written (:mod:`skiplab.sar.ablation.report`).

**Data.** Without ``data``: synthetic speckled scenes (:func:`skiplab.sar.synthetic_sar_tiles`)
-- training tiles from seed 0, held-out test tiles from seed 1, and the tiles that pick
``best.pt`` (validation) from seed 2, all with the radiometry fitted on the training tiles.
With ``data`` (rasters or directories): tiles cut without overlap, 10% held out for test
and 5% for validation (at least one tile each; a deterministic split). ``eval_data``
evaluates on other scenes (e.g. real ones) through the training radiometry, as
``skiplab reconstruct`` would.

**Budget.** Minutes for all training runs together, turned into one common number of steps
by the runner (each variant timed through the training loop, once, into ``ablation.json``);
or steps per run (``300steps``), the same on every machine. Equal steps, not equal time, is
the fair comparison. ``resume`` trains exactly what the interrupted run would have:
finished runs are skipped, an unfinished one continues from its ``last.pt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .config import STATE_FILE, VARIANTS, AblationConfig, AblationData, load_data
from ...studies.experiment import Experiment, Run
from ...studies.runner import Runner, latest_unfinished, new_directory
from .evaluation import constant_baseline, evaluate_run, model_cost, reference_rows


# ---- runs -------------------------------------------------------------------------------------
def run_name(variant: str, seed: int) -> str:
    return Run(variant, seed).name


def fold_key(variant: str, fold: int) -> str:
    """The run key of ``variant`` trained on fold ``fold`` (held-out evaluation)."""
    return f"{variant}-f{fold}"


def split_key(key: str) -> tuple[str, Optional[int]]:
    """(variant, fold or None) of a run key."""
    head, _, tail = key.rpartition("-f")
    return (head, int(tail)) if head and tail.isdigit() else (key, None)


def train_config(config: AblationConfig, variant: str, seed: int, steps: int, run_dir: Optional[Path], threads: int):
    """The trainer's configuration of one run: the common recipe (AdamW, cosine with a 10%
    warm-up, the 8 dihedral transforms), ``steps`` steps, this seed."""
    from ...train import TrainConfig

    c = config
    return TrainConfig.from_dict(
        dict(
            task="reconstruct",
            out=str(run_dir) if run_dir else None,
            seed=seed,
            model=variant,
            model_kwargs=c.kwargs_for(variant),
            data=c.data_spec,
            tile_size=c.tile,
            eval_split="test",
            batch_size=c.batch_size,
            eval_batch_size=32,
            optimizer="adamw",
            lr=c.lr,
            weight_decay=c.weight_decay,
            schedule="cosine",
            warmup_steps=max(1, steps // 10),
            steps=steps,
            loss=c.loss_for(variant),
            precision=c.precision,
            compile="off",
            flip=True,
            progress=False,
            checkpoint_every=max(steps // 5, 10),
            log_every=max(steps // 50, 1),
            num_threads=threads,
            tensorboard=not c.quick,
        )
    )


class AutoencoderAblation(Experiment):
    """The ablation as an experiment of the runner: every variant at every seed, trained on
    the same tiles in memory (rebuilt deterministically in each worker process)."""

    state_file = STATE_FILE
    what = "an ablation"

    def __init__(self, config: AblationConfig) -> None:
        self.config = config
        self._data: Optional[AblationData] = None
        self._folds: Optional[list] = None

    def to_dict(self) -> dict:
        return self.config.to_dict()

    @classmethod
    def from_dict(cls, config: dict) -> "AutoencoderAblation":
        return cls(AblationConfig.from_dict(config))

    @property
    def data(self) -> AblationData:
        if self._data is None:
            self._data = load_data(self.config)
        return self._data

    @property
    def folds(self) -> list:
        """The held-out folds (``holdout``), see :mod:`skiplab.sar.ablation.holdout`."""
        if self._folds is None:
            from .holdout import make_folds

            c = self.config
            self._folds = make_folds(c.data, tile=c.tile, synthetic=c.synthetic, looks=c.looks)
        return self._folds

    def validate(self) -> None:
        if self.config.holdout:
            self.folds
        else:
            self.data  # loads the rasters: a bad path or too few tiles fails before any state is written

    def runs(self) -> list[Run]:
        c = self.config
        if c.holdout:
            return [Run(fold_key(v, f.index), s) for s in range(c.seeds) for f in self.folds for v in c.variants]
        return [Run(v, s) for s in range(c.seeds) for v in c.variants]

    @property
    def budget(self):
        return self.config.parsed_budget

    def steps_per_epoch(self) -> int:
        train = self.folds[0].train if self.config.holdout else self.data.train
        return max(1, len(train) // self.config.batch_size)

    def train_config(self, run: Run, steps: int, run_dir: Optional[Path], threads: int):
        return train_config(self.config, split_key(run.key)[0], run.seed, steps, run_dir, threads)

    def datasets(self, run: Run):
        if self.config.holdout:
            fold = self.folds[split_key(run.key)[1]]
            return fold.train, fold.val
        return self.data.train, self.data.val

    def summarise(self, run: Run, run_dir: Path, trained: dict) -> dict:
        """The training time (the epochs' time in the trainer, without set-up, validation and
        checkpoints, from metrics.csv), steps and last metrics."""
        from .report import read_metrics

        seconds = sum(float(r.get("epoch_time_s") or 0.0) for r in read_metrics(run_dir / "metrics.csv"))
        return dict(
            seconds=round(seconds, 1),
            wall_seconds=trained["seconds"],
            steps=trained["steps"],
            final=trained["metrics"],
            diverged=trained.get("diverged"),
        )


# ---- the whole ablation -------------------------------------------------------------------------
@dataclass
class AblationResult:
    """Where the report is, the verdict lines and every variant's numbers."""

    directory: Path
    report_md: Path
    report_html: Path
    verdict: list[str]
    rows: dict
    extra_verdict: Optional[list[str]] = None  # on eval_data, when given


def command_line(config: AblationConfig, directory: Path) -> str:
    c = config
    args = ["skiplab ablate autoencoder"] + (["--quick"] if c.quick else [])
    if c.data:
        args.append("--data " + " ".join(c.data))
    else:
        args.append(f"--looks {c.looks:g}")
    if c.eval_data:
        args.append("--eval-data " + " ".join(c.eval_data))
    if c.holdout:
        args.append(f"--holdout {c.holdout} --synthetic {c.synthetic}")
    if tuple(c.variants) != VARIANTS:
        args.append("--variants " + ",".join(c.variants))
    if any(c.is_codec(v) for v in c.variants):
        args.append(
            f"--train-bits {c.train_bits[0]},{c.train_bits[1]} --eval-bits {c.eval_bits} "
            f"--rd-bits {','.join(map(str, c.rd_bits))} --rate-weight {c.rate_weight:g}"
        )
    if c.loss:
        import json

        args.append(f"--loss '{json.dumps(c.loss)}'")
    args += [
        f"--latent {c.latent}",
        f"--widths {','.join(map(str, c.widths))}",
        f"--tile {c.tile}",
        f"--lr {c.lr:g}",
        f"--batch-size {c.batch_size}",
    ]
    if c.eval_tile:
        args.append(f"--eval-tile {c.eval_tile}")
    args += [f"--budget {c.budget}", f"--seeds {c.seeds}", f"--out {directory}"]
    return " ".join(args)


def curve(run_dir: Path) -> dict:
    """A run's training loss per step and validation PSNR per epoch (for the figure)."""
    from .report import read_metrics
    from ...studies.curves import STEPS_FILE, read_steps

    val = [(int(r["step"]), float(r["val_psnr"])) for r in read_metrics(run_dir / "metrics.csv") if r.get("val_psnr")]
    return {"steps": [(r["step"], r["loss"]) for r in read_steps(run_dir / STEPS_FILE)], "val": val}


def evaluate_all(config: AblationConfig, runner: Runner, tiles, key: str) -> tuple[dict, dict]:
    """Every run's best.pt on ``tiles``: the per-variant rows of the report (costs, per-seed
    metrics) and seed 0's first three reconstructions (the grid); stored under ``key``."""
    c = config
    rows, recons = {}, {}
    for variant in c.variants:
        row = dict(model_cost(c, variant), test_tiles=len(tiles), tile=tiles.tile_size)
        for seed in range(c.seeds):
            run = runner.state.data["runs"][run_name(variant, seed)]
            metrics, pred = evaluate_run(runner.dir / "runs" / run_name(variant, seed), tiles)
            run[key] = metrics
            row.setdefault("psnr_per_image_seeds", []).append(metrics["psnr_per_image"])
            for name in ("psnr", "ssim", "enl_output", "ratio_mean", "ratio_median", "bpp"):
                row.setdefault(f"{name}_seeds", []).append(metrics[name])
            row.setdefault("seconds_seeds", []).append(run["summary"]["seconds"])
            row["enl_input"] = metrics["enl_input"]
            if seed == 0:
                recons[variant] = pred[:3]
        rows[variant] = row
    runner.state.save()
    return rows, recons


def run_ablation(
    config: Optional[AblationConfig] = None,
    *,
    out=None,
    resume: bool = False,
    threads: int = 0,
    jobs: int = 1,
    log=print,
) -> AblationResult:
    """Train (on the runner), evaluate and report (see the module documentation)."""
    from .report import compute_verdict, write_report

    if resume:
        directory = Path(out) if out else latest_unfinished("ablate-ae", STATE_FILE, "an ablation")
    else:
        directory = Path(out) if out else new_directory("ablate-ae")
    experiment = (
        AutoencoderAblation(config)
        if config is not None
        else (None if resume else AutoencoderAblation(AblationConfig.create()))
    )
    runner = Runner.open(
        experiment, directory, resume, threads=threads, jobs=jobs, log=log, experiment_type=AutoencoderAblation
    )
    ablation: AutoencoderAblation = runner.experiment  # type: ignore[assignment]
    c, state = ablation.config, runner.state
    torch.set_num_threads(runner.threads)
    if c.holdout:
        from .codec_eval import run_holdout

        return run_holdout(runner, ablation, command_line(c, directory), log=log)
    start = time.perf_counter()
    data = ablation.data
    log(f"ablation in {directory}: {data.description}")
    runner.train()
    torch.set_num_threads(runner.measure_threads)
    steps = state.steps
    curves = {v: {s: curve(directory / "runs" / run_name(v, s)) for s in range(c.seeds)} for v in c.variants}
    t0 = time.perf_counter()
    rows, recons = evaluate_all(c, runner, data.test, "test")
    gate = dict(quick=c.quick)
    extra = None
    if data.extra is not None:
        extra_rows, extra_recons = evaluate_all(c, runner, data.extra, "extra")
        extra = dict(
            rows=extra_rows,
            verdict=compute_verdict(
                extra_rows, c.seeds, "the other scenes", constant_baseline(data.train, data.extra), **gate
            ),
            description=data.extra_description,
            grid_inputs=data.extra.tiles[:3],
            grid_recons=extra_recons,
        )
    factor = 2 ** len(c.widths)
    references = reference_rows(data.train, data.test, factor)
    if extra is not None:
        extra["references"] = reference_rows(data.train, data.extra, factor)
    verdict = compute_verdict(rows, c.seeds, baseline=constant_baseline(data.train, data.test), **gate)
    state.data["results"] = {
        "rows": rows,
        "verdict": verdict,
        "references": references,
        "extra": None if extra is None else {k: extra[k] for k in ("rows", "verdict")},
    }
    state.data["timings"]["evaluation"] = round(time.perf_counter() - t0, 1)
    md, html = write_report(
        dict(
            config=c,
            rows=rows,
            verdict=verdict,
            description=data.description,
            steps=steps,
            timings=dict(state.data["timings"]),
            calibration=state.data["calibration"].get("step_seconds", {}),
            directory=directory,
            command=command_line(c, directory),
            curves=curves,
            references=references,
            grid_inputs=data.test.tiles[:3],
            grid_recons=recons,
            threads=runner.threads,
            extra=extra,
        )
    )
    state.add_time("total", time.perf_counter() - start)
    state.finish()
    return AblationResult(directory, md, html, verdict, rows, extra and extra["verdict"])
