"""``skiplab ablate autoencoder``: are residual blocks worth it in a SAR autoencoder, and where?

The four variants of :mod:`skiplab.models.autoencoder` -- ``sar_ae_plain`` (no residual
connection), ``sar_ae_bottleneck`` (residual blocks at the coarsest level only),
``sar_ae_all`` (everywhere) and ``sar_ae_bottleneck_cbam`` (bottleneck + CBAM) -- are
trained on the same tiles with the same recipe, the same number of steps and the same
seeds (>= 2: the seed-to-seed spread is what tells a difference from noise), each run by
:func:`skiplab.train.fit` (task ``reconstruct``) in its own directory
``<out>/runs/<variant>-s<seed>/`` (config.yaml, metrics.csv, steps.csv,
checkpoints/best.pt -- usable directly by ``skiplab reconstruct``). Then every variant's
best checkpoint is evaluated in fp32 on held-out tiles and the report is written
(:mod:`skiplab.sar.ablate_report`).

**Data.** Without ``data``: synthetic speckled scenes (:func:`skiplab.sar.synthetic_sar_tiles`)
-- training tiles from seed 0, held-out test tiles from seed 1, and the tiles that pick
``best.pt`` (validation) from seed 2, all with the radiometry fitted on the training tiles.
With ``data`` (rasters or directories): tiles cut without overlap, 10% held out for test
and 5% for validation (at least one tile each; a deterministic split). ``eval_data``
evaluates on other scenes (e.g. real ones) through the training radiometry, as
``skiplab reconstruct`` would.

**Budget.** Minutes for all training runs together, turned into one common number of steps
by timing a training step of each variant on this machine (the fastest of a few after a
warm-up); or steps per run (``300steps``). Equal steps, not equal time, is the fair
comparison. The state (``ablation.json``) fixes the steps once, so ``resume`` trains
exactly what the interrupted run would have: finished runs are skipped, an unfinished one
continues from its ``last.pt``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..train import Callback
from .ablate_config import STATE_FILE, AblationConfig, AblationData, AblationState, load_data

# ---- runs -------------------------------------------------------------------------------------
def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def train_config(config: AblationConfig, variant: str, seed: int, steps: int, run_dir: Path,
                 threads: int):
    """The trainer's configuration of one run: the common recipe (AdamW, cosine with a 10%
    warm-up, the 8 dihedral transforms), ``steps`` steps, this seed."""
    from ..train import TrainConfig
    c = config
    return TrainConfig.from_dict(dict(
        task="reconstruct", out=str(run_dir), seed=seed,
        resume=(run_dir / "checkpoints" / "last.pt").exists(), model=variant,
        model_kwargs=c.model_kwargs, data=c.data_spec, tile_size=c.tile, eval_split="test",
        batch_size=c.batch_size, eval_batch_size=32, optimizer="adamw", lr=c.lr,
        weight_decay=c.weight_decay, schedule="cosine", warmup_steps=max(1, steps // 10), steps=steps,
        loss=c.loss, precision=c.precision, compile="off", flip=True, progress=not c.quick,
        checkpoint_every=max(steps // 5, 10), log_every=max(steps // 50, 1), num_threads=threads,
        tensorboard=not c.quick))


def time_training_step(config: AblationConfig, variant: str, train, repeats: int = 4) -> float:
    """Seconds of one training step of ``variant`` as the runs take it (the loader with its
    augmentation, the precision, loss and memory format of the runs): the median of
    ``repeats`` steps after a warm-up step."""
    from ..models import create_model
    from ..train.precision import Precision, resolve_precision
    from .task import ReconstructTask
    torch.manual_seed(0)
    cfg = train_config(config, variant, 0, 10, Path("unused"), 0).replace(out=None, resume=False)
    task = ReconstructTask(cfg)
    cpu = torch.device("cpu")
    loader = iter(task.loader(train, config.batch_size, train=True, device=cpu))
    model = create_model(variant, in_chans=1, **config.model_kwargs).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = task.criterion(train)
    precision = Precision(resolve_precision(config.precision, cpu), cpu)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        x, y = next(loader)
        with precision.autocast():
            out = model(x)
        loss = criterion(out.float(), y)
        task.batch_sums(out.float(), y, loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(sorted(times[1:])[len(times[1:]) // 2])


def steps_for_budget(minutes: float, step_seconds: dict, seeds: int, overhead: float = 0.2) -> int:
    """One common number of steps so that every variant at every seed trains in ``minutes``
    (``overhead``: the share kept for the per-epoch validation, checkpoints, and the drift of
    a shared machine's speed between the timing and the runs)."""
    per_step = seeds * sum(step_seconds.values())
    return max(1, int(minutes * 60 * (1 - overhead) / per_step))


class StepCurve(Callback):
    """Records each step's training loss into the run's ``steps.csv`` (the report's curves);
    keeps the rows of an interrupted run that a resume continues."""

    def on_fit_start(self, trainer) -> None:
        self.path = Path(trainer.run_dir) / "steps.csv"
        self.rows = [r for r in read_curve(self.path) if r[0] <= trainer.step]

    def on_step_end(self, trainer) -> None:
        self.rows.append((trainer.step, trainer.loss))

    def on_epoch_end(self, trainer, metrics) -> None:
        self.save()

    def on_fit_end(self, trainer) -> None:
        self.save()

    def save(self) -> None:
        self.path.write_text("step,loss\n" + "".join(f"{s},{v:.6g}\n" for s, v in self.rows))


def read_curve(path: Path) -> list[tuple[int, float]]:
    if not Path(path).is_file():
        return []
    lines = Path(path).read_text().splitlines()[1:]
    return [(int(a), float(b)) for a, b in (line.split(",") for line in lines if line)]


def train_run(config: AblationConfig, variant: str, seed: int, steps: int, run_dir: Path,
              data: AblationData, threads: int) -> dict:
    """Train (or finish) one run: its training time (the epochs' time in the trainer, without
    set-up, validation and checkpoints), wall-clock, steps and last metrics."""
    from ..train import fit
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = fit(train_config(config, variant, seed, steps, run_dir, threads), [StepCurve()],
                 train_set=data.train, eval_set=data.val)
    train_seconds = sum(float(r.get("epoch_time_s") or 0.0) for r in result.history)
    return dict(seconds=round(train_seconds, 1), wall_seconds=round(time.perf_counter() - start, 1),
                steps=result.metrics.get("step"),
                final={k: v for k, v in result.metrics.items() if isinstance(v, float)})


# ---- evaluation -------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_run(run_dir: Path, test, batch_size: int = 16) -> tuple[dict, torch.Tensor]:
    """PSNR, SSIM (normalised domain), ENL of input and output on the input's homogeneous
    windows, ratio-image mean/variance, of ``checkpoints/best.pt`` on the test tiles in fp32;
    and the reconstructions."""
    from .metrics import reconstruction_metrics
    from .checkpoint import load_autoencoder
    ae = load_autoencoder(run_dir / "checkpoints" / "best.pt")
    x = test.tiles
    pred = torch.cat([ae.model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    metrics = reconstruction_metrics(pred, x, test.radiometry,
                                     enl_size=min(16, x.shape[-1] // 4))
    per_image = metrics.pop("per_image")
    metrics["psnr_per_image"] = per_image["psnr"]
    return metrics, pred


def model_cost(config: AblationConfig, variant: str) -> dict:
    """Parameters, MACs of one forward of a training tile, and the compression figures."""
    from ..models import create_model
    from ..summary import summarize
    model = create_model(variant, in_chans=1, **config.model_kwargs)
    size = (1, config.tile, config.tile)
    return dict(params=sum(p.numel() for p in model.parameters()),
                macs=summarize(model, size).macs,
                compression=model.compression_ratio(config.tile),
                bits_per_pixel=model.bits_per_pixel(config.tile))


# ---- the whole ablation -------------------------------------------------------------------------
@dataclass
class AblationResult:
    """Where the report is, the verdict lines and every variant's numbers."""

    directory: Path
    report_md: Path
    report_html: Path
    verdict: list[str]
    rows: dict
    extra_verdict: Optional[list[str]] = None   # on eval_data, when given


def latest_unfinished(root: Path = Path("runs")) -> Path:
    """The newest ``runs/ablate-ae-*`` whose ablation is not complete (for --resume)."""
    for path in sorted(root.glob("ablate-ae-*"), reverse=True):
        state = path / STATE_FILE
        if state.is_file() and not json.loads(state.read_text()).get("complete"):
            return path
    raise FileNotFoundError(f"no unfinished ablation under {root}/ to resume; pass --out DIR")


def command_line(config: AblationConfig, directory: Path) -> str:
    c = config
    args = ["skiplab ablate autoencoder"] + (["--quick"] if c.quick else [])
    if c.data:
        args.append("--data " + " ".join(c.data))
    else:
        args.append(f"--looks {c.looks:g}")
    if c.eval_data:
        args.append("--eval-data " + " ".join(c.eval_data))
    args += [f"--latent {c.latent}", f"--widths {','.join(map(str, c.widths))}", f"--tile {c.tile}"]
    if c.eval_tile:
        args.append(f"--eval-tile {c.eval_tile}")
    args += [f"--budget {c.budget}", f"--seeds {c.seeds}", f"--out {directory}"]
    return " ".join(args)


def _open_state(config: Optional[AblationConfig], out, resume: bool) -> AblationState:
    if resume:
        directory = Path(out) if out else latest_unfinished()
        state = AblationState.load(directory)
        if config is not None and config.to_dict() != state.config.to_dict():
            raise ValueError(f"--resume continues {directory} with its own options; drop the others")
        return state
    directory = Path(out) if out else Path("runs") / f"ablate-ae-{time.strftime('%Y%m%d-%H%M%S')}"
    if (directory / STATE_FILE).exists():
        raise ValueError(f"{directory} already holds an ablation; pass --resume to continue it or "
                         f"choose another --out")
    state = AblationState(directory, config or AblationConfig.create())
    state.save()
    return state


def _timed(state: AblationState, what: str):
    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            if exc[0] is None:
                state.add_time(what, time.perf_counter() - self.start)
    return Timer()


def curve(run_dir: Path) -> dict:
    """A run's training loss per step and validation PSNR per epoch (for the figure)."""
    from .ablate_report import read_metrics
    val = [(int(r["step"]), float(r["val_psnr"])) for r in read_metrics(run_dir / "metrics.csv")
           if r.get("val_psnr")]
    return {"steps": read_curve(run_dir / "steps.csv"), "val": val}


def evaluate_all(config: AblationConfig, state: AblationState, tiles, key: str
                 ) -> tuple[dict, dict]:
    """Every run's best.pt on ``tiles``: the per-variant rows of the report (costs, per-seed
    metrics) and seed 0's first three reconstructions (the grid); stored under ``key``."""
    c = config
    rows, recons = {}, {}
    for variant in c.variants:
        row = dict(model_cost(c, variant), test_tiles=len(tiles), tile=tiles.tile_size)
        for seed in range(c.seeds):
            run = state.data["runs"][run_name(variant, seed)]
            metrics, pred = evaluate_run(state.dir / "runs" / run_name(variant, seed), tiles)
            run[key] = metrics
            for name in ("psnr", "ssim", "enl_output", "ratio_mean", "ratio_median"):
                row.setdefault(f"{name}_seeds", []).append(metrics[name])
            row.setdefault("seconds_seeds", []).append(run["seconds"])
            row["enl_input"] = metrics["enl_input"]
            if seed == 0:
                recons[variant] = pred[:3]
        rows[variant] = row
    state.save()
    return rows, recons


def constant_baseline(train, tiles) -> float:
    """PSNR of a constant image at the training tiles' mean (normalised) level on ``tiles``:
    what a model that learnt only the mean level would score."""
    from .metrics import psnr
    return float(psnr(torch.full_like(tiles.tiles, float(train.tiles.mean())), tiles.tiles).mean())


def reference_rows(train, tiles, factor: int) -> dict[str, dict]:
    """PSNR and SSIM of three references on ``tiles`` that make the variants' numbers
    readable: a constant image at the training mean level (what learning only the level
    scores), a 3x3 box filter (a simple despeckler, no compression: the input's own pixels),
    and ``factor``-fold average pooling upsampled bilinearly (a linear code of one value per
    ``factor``² pixels, ``factor`` = the autoencoder's stride)."""
    import torch.nn.functional as F
    from .metrics import psnr, ssim_per_image
    x = tiles.tiles
    guesses = {
        "constant image (training mean level)": torch.full_like(x, float(train.tiles.mean())),
        "3x3 box filter (despeckle, uncompressed)": F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, 1),
        f"{factor}x average pool + bilinear ({factor * factor}x fewer values)":
            F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="bilinear", align_corners=False),
    }
    return {name: dict(psnr=float(psnr(g, x).mean()), ssim=float(ssim_per_image(g, x).mean()))
            for name, g in guesses.items()}


def run_ablation(config: Optional[AblationConfig] = None, *, out=None, resume: bool = False,
                 threads: int = 0, log=print) -> AblationResult:
    """Train, evaluate and report (see the module documentation)."""
    from .ablate_report import compute_verdict, write_report
    from ..studies.runs import choose_threads
    state = _open_state(config, out, resume)
    c, directory = state.config, state.dir
    threads = choose_threads(threads)
    if threads:
        torch.set_num_threads(threads)
    with _timed(state, "data"):
        data = load_data(c)
    log(f"ablation in {directory}: {data.description}")
    if state.data["steps"] is None:
        budget = c.parsed_budget
        if budget.kind == "steps":
            state.data["steps"] = int(budget.value)
        else:
            with _timed(state, "calibration"):
                seconds = {v: time_training_step(c, v, data.train) for v in c.variants}
            state.data["calibration"] = seconds
            state.data["steps"] = steps_for_budget(budget.value, seconds, c.seeds)
        state.save()
    steps = state.data["steps"]
    names = [(v, s) for s in range(c.seeds) for v in c.variants]
    for i, (variant, seed) in enumerate(names, 1):
        name = run_name(variant, seed)
        if state.data["runs"].get(name, {}).get("status") == "done":
            continue
        log(f"[{i}/{len(names)}] {variant}, seed {seed}: {steps} steps")
        summary = train_run(c, variant, seed, steps, directory / "runs" / name, data, threads)
        state.data["runs"][name] = {"status": "done", **summary}
        state.add_time("training", summary["wall_seconds"])
    curves = {v: {s: curve(directory / "runs" / run_name(v, s)) for s in range(c.seeds)} for v in c.variants}
    with _timed(state, "evaluation"):
        rows, recons = evaluate_all(c, state, data.test, "test")
        extra = None
        if data.extra is not None:
            extra_rows, extra_recons = evaluate_all(c, state, data.extra, "extra")
            extra = dict(rows=extra_rows, verdict=compute_verdict(extra_rows, c.seeds, "the other scenes",
                                                                  constant_baseline(data.train, data.extra)),
                         description=data.extra_description, grid_inputs=data.extra.tiles[:3],
                         grid_recons=extra_recons)
    factor = 2 ** len(c.widths)
    references = reference_rows(data.train, data.test, factor)
    if extra is not None:
        extra["references"] = reference_rows(data.train, data.extra, factor)
    verdict = compute_verdict(rows, c.seeds, baseline=constant_baseline(data.train, data.test))
    state.data["results"] = {"rows": rows, "verdict": verdict, "references": references,
                             "extra": None if extra is None else {k: extra[k] for k in ("rows", "verdict")}}
    with _timed(state, "report"):
        md, html = write_report(dict(
            config=c, rows=rows, verdict=verdict, description=data.description, steps=steps,
            timings=dict(state.data["timings"]), calibration=state.data["calibration"],
            directory=directory, command=command_line(c, directory), curves=curves, references=references,
            grid_inputs=data.test.tiles[:3], grid_recons=recons, threads=threads, extra=extra))
    state.data["complete"] = True
    state.save()
    return AblationResult(directory, md, html, verdict, rows, extra and extra["verdict"])
