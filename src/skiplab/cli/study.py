"""``skiplab study``: measure what skip connections do, and write the report."""

from __future__ import annotations

import argparse

EXAMPLE = """\
examples:
  skiplab study                                   # synthetic data, 5 seeds, no download, under 10 minutes
  skiplab study --steps 400                       # the same steps on any machine (no timing)
  skiplab study --seeds 5 --jobs 2                # 5 seeds, two runs at a time in worker processes
  skiplab study --data cifar10:../shared/data/cifar10-jpg --budget 30 --without-bn trained
  skiplab study --depths 20,32,44,56 --budget 3ep # He 2015 Fig. 6 depths, 3 epochs each
  skiplab study --models plain,resnet,highway --parts degradation,lesion
  skiplab study --parts landscape,shattered --depths 20,56
  skiplab study --quick                           # tiny smoke run (seconds)
  skiplab study --resume                          # continue the latest interrupted study
  skiplab study --resume --out runs/study-20250101-120000
  skiplab study --plan --steps 2000 --out runs/big  # write each run's config; train them elsewhere
  skiplab study --restate --out docs/studies/cifar10  # a finished study's numbers under the current rules
  skiplab study --config configs/study_he2015_trained.yaml   # measure runs that exist (runs:), train none
  skiplab study --parts layernorm --quick         # pre-LN vs post-LN vs no skip (Xiong 2020), smoke run
  skiplab study --config configs/study_xiong2020.yaml --out runs/xiong2020   # its CIFAR-10 evidence run

Parts: degradation (plain vs residual nets at each depth, same recipe and steps: He 2015
Fig. 6; the headline is the interaction [e(plain-deep) - e(plain-shallow)] - [e(res-deep)
- e(res-shallow)] with its t interval over seeds and images), gradients (per-element
RMS of dL/dx per block of the deepest pair at init, mid-training and trained; the fitted
log-slope, plain minus residual, over seeds and batches: He 2015 §4.1; --without-bn adds
the same nets without BatchNorm), lesion (delete blocks of the deepest trained nets, whole
test split, every seed: Veit 2016), landscape (|lmin/lmax| of the Hessian per seed, plain
minus residual, and qualitative 1-D/2-D slices: Li 2018), shattered (centred input-gradient
correlation, 8 images x 3 directions x 5 init seeds per depth, fitted decay rates beside
Balduzzi's, a deep-MLP control as gate: Balduzzi 2017). Default: degradation,gradients,lesion.
layernorm runs alone (it trains its own transformer runs): cifar_vit pre-LN vs post-LN vs no
skip -- per-layer gradient norms at initialisation against Xiong 2020's Theorem 1 and Fig. 3,
and training with and without a learning-rate warm-up (§3.3), paired over seeds; it takes
--data, --depths (trained), --seeds, --steps, --seed, --precision, --train-images, and in a
--config YAML the keys of skiplab.studies.layernorm.LayerNormConfig (kept: a directory of kept
training.json / gradients_at_init.json whose runs of the same recipe are reused, not trained).
Its defaults are the declared CIFAR-10 budget (configs/study_xiong2020.yaml) on the synthetic
shapes data (no download); --depths are its trained depths, in transformer blocks.
A verdict (agrees / disagrees / unresolved) is given only inside the paper's regime and
from an interval; otherwise the report says why not. --quick is a smoke run: no verdicts.

Budget: --steps N (default 150 on the default synthetic data: the same on every machine),
or minutes for all training together (--budget; 6 on other synthetic data, 30 on real
data), turned ONCE into one common number of steps by timing each network through
the training loop (stored in study.json; the report prints the --steps to reproduce it),
or epochs (--budget 3ep).

Scale: every (network, seed) is an independent run in runs/<network>-s<seed>/ with its own
train.yaml. --jobs N trains N at a time (threads split between them); Ctrl-C or SIGTERM
stops every run after its current step (each saves its last.pt) and prints the --resume
command (exit 130 / 143). Across machines:
`skiplab study --plan ... --out DIR`, then on any node one
`skiplab train --config DIR/runs/<network>-s<seed>/train.yaml` per run (a scheduler array
job; the same weights as the runner's; or `python -m skiplab.studies.worker DIR
<network>-s<seed>`), then `skiplab study --resume --out DIR` to measure and report.
Runs that already exist: a --config YAML's `runs:` maps run names (resnet-56-s0: family,
depth, seed) to their run directories or checkpoints; the study reuses them as finished
runs (their steps are their checkpoints') and trains only the runs it does not name.

Writes runs/study-<timestamp>/: report.html (self-contained), report.md, the PNG
figures, study.json, results/*.json and runs/<network>-s<seed>/ (each a resumable
training run). Prints the directory and the verdict lines in numbers.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..studies.config import FAMILIES, PARTS

    p = subparsers.add_parser(
        "study",
        help="the main job: measure what skip connections do, with a report",
        description="Train plain and residual networks of growing depth with one recipe and one budget, "
        "measure gradient flow, lesions, loss landscapes and shattered gradients, and write "
        "a report that sets each finding beside the published one.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        metavar="SPEC",
        help="dataset: synthetic[:NAME] (default synthetic:patterns-2k, no download), cifar10:PATH, "
        "cifar100:PATH, folder:PATH",
    )
    p.add_argument(
        "--depths",
        metavar="D,D,...",
        help="network depths 6n+2 (default 8,20; the shallowest and deepest are compared)",
    )
    p.add_argument(
        "--models", metavar="F,F,...", help=f"network families: {', '.join(FAMILIES)} (default plain,resnet)"
    )
    p.add_argument(
        "--parts",
        metavar="P,P,...",
        help=f"parts to run: {', '.join(PARTS)} (default degradation,gradients,lesion); or layernorm "
        f"alone (pre-LN vs post-LN vs no skip, Xiong 2020)",
    )
    p.add_argument(
        "--budget",
        metavar="B",
        help="training budget: minutes for all runs together (6, 6m), turned into steps once; or per "
        "network epochs (3ep) or steps (500steps). Default: 150 steps on the default synthetic "
        "data, 6 minutes on other synthetic data, 30 minutes on real data",
    )
    p.add_argument(
        "--config",
        metavar="YAML",
        help="study options from a YAML file (keys as the options: depths, models, seeds, steps, ...); "
        "options on the command line win",
    )
    p.add_argument(
        "--train-images",
        type=int,
        metavar="N",
        help="train on a declared fixed subset of N training images (default 0: all of them)",
    )
    p.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="training steps per run, fixed outright (the same on every machine; instead of --budget)",
    )
    p.add_argument(
        "--lengths",
        metavar="F,F,...",
        help="training lengths of the degradation runs as fractions of the steps (default 0.5,1 on real "
        "data: every network also trains half as long, with its own schedule; 1 on synthetic data)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="seeds per network (default 5 on synthetic data, 3 on real data; a verdict needs >= 3): each (network, seed) is one run",
    )
    p.add_argument(
        "--without-bn",
        choices=("init", "trained", "off"),
        help="the gradients part's nets without BatchNorm: measured at init only (default), also "
        "trained (two more runs of the deepest depth), or not at all",
    )
    p.add_argument(
        "--eval-images",
        type=int,
        metavar="N",
        help="fixed training images for the measurements; test measurements use the whole test "
        "split (default 1000 on synthetic data, 2000 on real data, 64 with --quick)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="training and evaluation precision (default auto: bf16 where the CPU has it)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="first seed (default 0): the runs use seeds N .. N+seeds-1; it also fixes the measurement subsets",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="runs trained at once, each in its own worker process (default 1)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="torch CPU threads per run (default 0: automatic -- the cores split between the jobs, "
        "1 when the machine is busy, where threads of several processes slow each other down)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="only fix the steps and write each run's train.yaml (for a scheduler; see above)",
    )
    p.add_argument("--out", metavar="DIR", help="study directory (default runs/study-<timestamp>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted study (--out DIR, or the latest unfinished one under runs/): "
        "finished runs and parts are not redone; it keeps its own options (options given "
        "again must be the same)",
    )
    p.add_argument(
        "--restate",
        action="store_true",
        help="recompute the summaries, intervals, verdicts and report of the finished study in --out DIR "
        "under the current rules from the measurements it kept (no training; shattered gradients, "
        "measured at init, are measured again)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke study: 500 synthetic images, depths 8,14, 2 seeds, 6 steps, batch 32; no verdicts",
    )
    p.set_defaults(run=run)
    return p


STUDY_OPTIONS = (
    "data",
    "depths",
    "models",
    "parts",
    "budget",
    "steps",
    "seeds",
    "without_bn",
    "eval_images",
    "precision",
    "seed",
    "train_images",
    "lengths",
    "runs",
    "contour_images",
)


def read_config(path: str) -> dict:
    """Study options from a YAML mapping (keys as the options, - or _), checked by name."""
    import yaml

    try:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
    except OSError as err:
        raise ValueError(f"--config {path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"--config {path} is not valid YAML{where}") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path} must hold a mapping of study options, found {type(values).__name__}")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    from . import study_layernorm

    known = study_layernorm.YAML_KEYS if study_layernorm.wanted_by(values) else STUDY_OPTIONS
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"--config {path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return values


def run(args: argparse.Namespace) -> int:
    from ..studies import StudyConfig, run_study
    from ..studies.study import STATE_FILE
    from .resume import experiment_directory, resume_hint
    from ..train.allocator import retain_freed_memory

    given = {k: getattr(args, k) for k in STUDY_OPTIONS if getattr(args, k, None) is not None}
    if args.config:
        given = {**read_config(args.config), **given}
    from . import study_layernorm

    if study_layernorm.wanted(args, given):
        return study_layernorm.run(args, given)
    if args.restate:
        if given or args.quick or args.resume or not args.out:
            raise ValueError("--restate takes only --out DIR (a finished study) and --threads")
        from ..studies.restate import restate_study

        result = restate_study(args.out)
        print(f"\nreport: {result.report_html}  (and {result.report_md.name}, figures in {result.directory}/)")
        print("verdict:")
        for line in result.verdict:
            print(f"  {line}")
        return 0
    # --resume alone keeps the study's own options; given again, they must be the same
    config = None if args.resume and not (given or args.quick) else StudyConfig.create(quick=args.quick, **given)
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    retain_freed_memory()  # a command that trains: as `skiplab train` (retain_memory)
    directory = experiment_directory(args.out, args.resume, "study", STATE_FILE, "a study")
    with resume_hint("study", directory, STATE_FILE):
        result = run_study(
            config, out=directory, resume=args.resume, threads=args.threads, jobs=args.jobs, plan=args.plan
        )
    if result is None:
        return 0
    if result.quick:
        print("\nSMOKE RUN (--quick): checks that everything runs; no claim is judged")
    print(f"\nreport: {result.report_html}  (and {result.report_md.name}, figures in {result.directory}/)")
    print("verdict:")
    for line in result.verdict:
        print(f"  {line}")
    return 0
