"""The held-out ablation of the hyperprior codec's transforms in one resumable command: build
the folds, train every (fold, transform) variable-rate model, score them
(:mod:`.hyperprior_study`).

    python -m skiplab.sar.rate_distortion.hyperprior_ablation --scenes ../shared/data/sar-real \\
        --data FOLDS --runs RUNS --out OUT [--transforms gdn,residual,plain] [--device cuda]

1. **Folds** (when ``FOLDS/<fold>/{train,test}`` are not there yet, from the real scenes of
   ``--scenes``): ``FOLDS/sf/train`` = the San Francisco scenes plus ``--synthetic`` speckled
   scenes (:mod:`skiplab.sar.raster.synthetic_folder`, seed :data:`SYNTHETIC_SEED`),
   ``FOLDS/sf/test`` = the Tsukuba scenes; ``FOLDS/tsukuba`` the reverse. A site's scenes are
   the ``*.npy`` files whose name starts with its prefix (:data:`SITE_PREFIXES`).
2. **Training**: for every fold and transform, ``RUNS/<fold>-<transform>-vr`` trains
   ``sar_hyperprior_<transform>`` with the variable-rate recipe of :data:`RECIPE` (the shipped
   model's: lambdas, steps, optimiser, batch) through :func:`skiplab.train.fit` with
   ``resume`` -- a finished run is skipped, an interrupted one continues from its last.pt.
   Validation (on the held-out site, for the plateau rule only: the study scores last.pt)
   every ~:data:`EVAL_EVERY_STEPS` steps. Ctrl-C / SIGTERM: the current step finishes,
   last.pt is saved, the command exits 130 / 143; run the same command to continue.
3. **Speed** (:mod:`.hyperprior_speed`): each variant's encode and decode time and peak
   memory per megapixel beside OpenJPEG's, on a ``--speed-size`` mosaic of a held-out scene
   (``OUT/speed.json``; measured again only when a checkpoint changed).
4. **Study**: every variant at every level on its fold's held-out scenes; ``OUT/rd.json``,
   ``report.md``, ``rd.png`` (a variant not trained yet is reported so).

``--plan`` prints the folds, every run's state and its equivalent ``skiplab train`` command
without training. ``--quick`` is a smoke run (tiny models, a few steps, no synthetic scenes
unless asked): it checks that everything runs and claims nothing.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from ...errors import SkiplabError
from .hyperprior_runs import VARIABLE_RATE, RunState, parse_transforms, run_state
from .hyperprior_speed import variant_speed
from .hyperprior_study import FOLDS, OneLineParser, held_out_scenes, run_study

#: the variable-rate recipe of the shipped codec (one place; the ablation trains every variant with it)
LMBDAS = (0.00025, 0.0005, 0.001, 0.002)
RECIPE = {
    "task": "compress",
    "batch_size": 8,
    "eval_batch_size": 16,
    "optimizer": "adamw",
    "lr": 3e-4,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "steps": 6000,
    "schedule": "cosine",
    "min_lr_factor": 0.1,
    "precision": "fp32",
    "compile": "off",
    "channels_last": False,
    "eval_split": "test",
    "checkpoint_every": 100,
    "seed": 0,
}
#: validate about this often (``eval_every`` counts epochs: converted per fold)
EVAL_EVERY_STEPS = 250
#: the smoke run's models and length (``--quick``)
QUICK_MODEL = {"n": 8, "m": 12}
QUICK_STEPS = 4
SYNTHETIC_SEED, SYNTHETIC_SIZE = 0, 256
#: the side of the mosaic of a held-out scene that encode/decode time and memory are measured on
SPEED_SIZE = 1024
#: fold -> the file-name prefix of the site it trains on (it is tested on the other one)
SITE_PREFIXES = {"sf": "sanfrancisco", "tsukuba": "tsuk"}


MODULE = "skiplab.sar.rate_distortion.hyperprior_ablation"


EPILOG = f"""\
examples:
  python -m {MODULE} --scenes ../shared/data/sar-real --data FOLDS --runs RUNS --out OUT --plan
  python -m {MODULE} --scenes ../shared/data/sar-real --data FOLDS --runs RUNS --out OUT --device cuda
  python -m {MODULE} ... --quick --steps 4          # smoke run: tiny models, claims nothing

Every run trains the recipe of the shipped variable-rate codec (lambdas {list(LMBDAS)}, {RECIPE["steps"]} steps,
batch {RECIPE["batch_size"]}, AdamW {RECIPE["lr"]:g} cosine) into RUNS/<fold>-<transform>-vr with --resume: run the
same command again after an interruption (Ctrl-C saves last.pt) and finished runs are skipped.
"""


class AblationInputError(SkiplabError, ValueError):
    """Scenes, folds or options the ablation cannot run with."""


def site_scenes(scenes: Path) -> dict[str, list[Path]]:
    """The real scenes of each fold's training site (one line if a site has none)."""
    found = sorted(Path(scenes).glob("*.npy")) if Path(scenes).is_dir() else []
    by_fold = {fold: [p for p in found if p.name.lower().startswith(prefix)] for fold, prefix in SITE_PREFIXES.items()}
    empty = [f"{SITE_PREFIXES[f]}*.npy" for f, paths in by_fold.items() if not paths]
    if empty:
        raise AblationInputError(
            f"expected real scenes {' and '.join(empty)} in {scenes}; found {len(found)} .npy files"
        )
    return by_fold


def folds_ready(data: Path) -> bool:
    return all((Path(data) / f / s).is_dir() for f in FOLDS for s in ("train", "test"))


def build_folds(scenes: Optional[Path], data: Path, synthetic: int, log=print) -> None:
    """Write ``DATA/<fold>/{train,test}`` for every fold not there yet (see the module)."""
    from ..raster.synthetic_folder import write_synthetic_scenes

    missing = [f for f in FOLDS if not all((Path(data) / f / s).is_dir() for s in ("train", "test"))]
    if not missing:
        return
    if scenes is None:
        raise AblationInputError(f"expected folds {', '.join(missing)} in {data}, or --scenes DIR to build them from")
    partial = [str(Path(data) / f) for f in missing if (Path(data) / f).exists()]
    if partial:
        raise AblationInputError(
            f"expected {' and '.join(partial)} with train/ and test/ folders or not there at all; "
            "found an incomplete fold (remove it to have it built again)"
        )
    by_fold = site_scenes(scenes)
    for fold in missing:
        other = [f for f in FOLDS if f != fold]
        work = Path(data) / f".{fold}.partial"
        shutil.rmtree(work, ignore_errors=True)
        for split, paths in (("train", by_fold[fold]), ("test", [p for f in other for p in by_fold[f]])):
            (work / split).mkdir(parents=True)
            for p in paths:
                shutil.copy2(p, work / split / p.name)
        if synthetic:
            write_synthetic_scenes(work / "train", synthetic, SYNTHETIC_SIZE, SYNTHETIC_SEED)
        work.rename(Path(data) / fold)
        log(
            f"fold {fold}: built {Path(data) / fold} ({len(by_fold[fold])} real + {synthetic} synthetic scenes to train on)"
        )


def eval_every_epochs(train_dir: Path, batch_size: int) -> int:
    """Epochs between validations so that they come every ~:data:`EVAL_EVERY_STEPS` steps."""
    from ..training.compress_task import STRIDE, TILE, scene_tiles

    steps_per_epoch = max(1, len(scene_tiles(train_dir, TILE, STRIDE, "train")) // batch_size)
    return max(1, round(EVAL_EVERY_STEPS / steps_per_epoch))


def run_config(data: Path, runs: Path, fold: str, transform: str, args: argparse.Namespace) -> dict:
    """The TrainConfig fields of one (fold, transform) run."""
    model_kwargs = {"lmbdas": list(LMBDAS), **(QUICK_MODEL if args.quick else {})}
    fold_dir = Path(data) / fold
    eval_every = 1 if args.quick else eval_every_epochs(fold_dir / "train", RECIPE["batch_size"])
    return {
        **RECIPE,
        "model": f"sar_hyperprior_{transform}",
        "model_kwargs": model_kwargs,
        "data": f"sar:{fold_dir}",
        "steps": args.steps,
        "eval_every": eval_every,
        "num_threads": args.threads,
        "device": args.device,
        "out": str(Path(runs) / f"{fold}-{transform}-{VARIABLE_RATE}"),
        "resume": True,
        "progress": False,
        "retain_memory": True,
    }


def train_command(config: dict) -> str:
    """The ``skiplab train`` command line of a run config (what --plan prints)."""
    words = ["skiplab", "train"]
    for key, value in config.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, dict):
            words += [flag, "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def train_all(data: Path, runs: Path, transforms: Sequence[str], args, log=print) -> Optional[int]:
    """Train every unfinished run in turn; an exit status when one stops early, else None."""
    from ...train import NonFiniteLossError, TrainingInterrupted, fit

    for fold in FOLDS:
        for t in transforms:
            config = run_config(data, runs, fold, t, args)
            state = run_state(Path(config["out"]))
            if state.finished and state.steps >= args.steps:
                log(f"{Path(config['out']).name}: finished ({state.describe()}); skipped")
                continue
            log(f"{Path(config['out']).name}: training ({state.describe()}) with {train_command(config)}")
            try:
                fit(config)
            except TrainingInterrupted as stop:
                print(f"{stop.summary}; run the same command to continue", file=sys.stderr, flush=True)
                return stop.exit_code
            except NonFiniteLossError as err:
                print(f"{Path(config['out']).name}: stopped: {err}", file=sys.stderr, flush=True)
                return 3
    return None


def plan(data: Path, runs: Path, transforms: Sequence[str], args) -> str:
    """The folds, every run's state and its command (nothing is trained)."""
    lines = [f"folds in {data}: " + ("ready" if folds_ready(data) else f"to be built from {args.scenes}")]
    for fold in FOLDS:
        for t in transforms:
            config = run_config(data, runs, fold, t, args) if folds_ready(data) else None
            out = Path(runs) / f"{fold}-{t}-{VARIABLE_RATE}"
            state: RunState = run_state(out)
            lines.append(f"{out}: {state.describe()}")
            if config is not None and not (state.finished and state.steps >= args.steps):
                lines.append(f"    {train_command(config)}")
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = OneLineParser(
        prog=f"python -m {MODULE}",
        description="The held-out ablation of the hyperprior codec's transforms in one resumable command: "
        "build the folds, train every (fold, transform) variable-rate model, score them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, required=True, help="folder of the folds, FOLDS/<fold>/{train,test}")
    p.add_argument("--runs", type=Path, required=True, help="folder of the training runs")
    p.add_argument("--out", type=Path, required=True, help="where rd.json, report.md, rd.png go")
    p.add_argument("--scenes", type=Path, help="folder of the real scenes to build missing folds from")
    p.add_argument("--transforms", default="gdn,residual,plain", help="comma-separated, out of gdn,residual,plain")
    p.add_argument(
        "--steps", type=int, help=f"training steps per run (default {RECIPE['steps']}; --quick {QUICK_STEPS})"
    )
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="training device (default auto)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--synthetic", type=int, help="synthetic scenes added to each fold's training (default 6; --quick 0)"
    )
    p.add_argument(
        "--speed-size",
        type=int,
        help="side of the mosaic each variant's encode/decode time and memory are measured on beside "
        f"OpenJPEG (default {SPEED_SIZE}; --quick 0; 0: not measured)",
    )
    p.add_argument("--plan", action="store_true", help="print the runs and their state; train nothing")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny models, a few steps; claims nothing")
    args = p.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else RECIPE["steps"])
    args.synthetic = args.synthetic if args.synthetic is not None else (0 if args.quick else 6)
    args.speed_size = args.speed_size if args.speed_size is not None else (0 if args.quick else SPEED_SIZE)
    for name, low in (("steps", 1), ("threads", 1), ("synthetic", 0), ("speed_size", 0)):
        if getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}; found {getattr(args, name)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    prog = "hyperprior_ablation"
    try:
        transforms = parse_transforms(args.transforms)
        if args.plan:
            print(plan(args.data, args.runs, transforms, args))
            return 0
        build_folds(args.scenes, args.data, args.synthetic)
        stopped = train_all(args.data, args.runs, transforms, args)
        if stopped is not None:
            return stopped
        words = list(argv) if argv is not None else sys.argv[1:]
        note = f"Command: `{shlex.join(['python', '-m', MODULE, *words])}`"
        if args.quick:
            note = "**SMOKE RUN (--quick)**: tiny models for a few steps; it checks that everything runs.\n\n" + note
        speed = None
        if args.speed_size:
            args.out.mkdir(parents=True, exist_ok=True)
            scene = held_out_scenes(args.data, FOLDS[0])[0]
            speed = variant_speed(
                args.runs, FOLDS[0], transforms, scene, args.out / "speed.json", args.speed_size, args.threads
            )
        levels = [f"vr:{i}" for i in range(len(LMBDAS))]
        run_study(args.runs, args.data, args.out, levels, transforms, note=note, speed=speed)
    except (SkiplabError, ValueError) as err:  # ValueError: e.g. a run that cannot be resumed with this recipe
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which saves and returns its own status)
        print(f"{prog}: interrupted; run the same command to continue", file=sys.stderr)
        return 130
    print(f"outputs in {args.out}: rd.json, report.md, rd.png" + (", speed.json" if args.speed_size else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "AblationInputError",
    "EVAL_EVERY_STEPS",
    "LMBDAS",
    "RECIPE",
    "build_folds",
    "main",
    "plan",
    "run_config",
    "train_all",
    "train_command",
]
