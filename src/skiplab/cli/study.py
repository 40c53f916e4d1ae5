"""``skiplab study``: measure what skip connections do, and write the report."""

from __future__ import annotations

import argparse

EXAMPLE = """\
examples:
  skiplab study                                   # synthetic data, no download, under 10 minutes
  skiplab study --data cifar10:../shared/data/cifar10-jpg --budget 30 --without-bn trained
  skiplab study --depths 20,32,44,56 --budget 3ep # He 2015 Fig. 6 depths, 3 epochs each
  skiplab study --models plain,resnet,highway --parts degradation,lesion
  skiplab study --parts landscape,shattered --depths 20,56
  skiplab study --quick                           # tiny smoke run (seconds)
  skiplab study --resume                          # continue the latest interrupted study
  skiplab study --resume --out runs/study-20250101-120000

Parts: degradation (plain vs residual nets at each depth, same recipe and steps: He 2015
Fig. 6), gradients (per-layer gradient norms of the deepest pair at init and trained;
--without-bn adds the same nets without BatchNorm), lesion (delete blocks of the deepest
trained pair: Veit 2016), landscape (1-D/2-D loss slices: Li 2018), shattered (input-
gradient autocorrelation: Balduzzi 2017). Default: degradation,gradients,lesion.

Budget: minutes for all training together (the default, 6 on synthetic data, 30 on
real data), turned into one common number of steps by timing each network; or epochs
(3ep) or steps (500steps) per network. Every network gets the same steps and recipe.

Writes runs/study-<timestamp>/: report.html (self-contained), report.md, the PNG
figures, study.json, results/*.json and runs/<network>/ (each a resumable training
run). Prints the directory and a three-line verdict in numbers.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..studies.config import FAMILIES, PARTS
    p = subparsers.add_parser(
        "study", help="the main job: measure what skip connections do, with a report",
        description="Train plain and residual networks of growing depth with one recipe and one budget, "
                    "measure gradient flow, lesions, loss landscapes and shattered gradients, and write "
                    "a report that sets each finding beside the published one.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="SPEC",
                   help="dataset: synthetic[:NAME] (default synthetic:patterns, no download), cifar10:PATH, "
                        "cifar100:PATH, folder:PATH")
    p.add_argument("--depths", metavar="D,D,...", help="network depths 6n+2 (default 8,20,56)")
    p.add_argument("--models", metavar="F,F,...",
                   help=f"network families: {', '.join(FAMILIES)} (default plain,resnet)")
    p.add_argument("--parts", metavar="P,P,...",
                   help=f"parts to run: {', '.join(PARTS)} (default degradation,gradients,lesion)")
    p.add_argument("--budget", metavar="B",
                   help="training budget: minutes for all runs (6, 6m; default 6 on synthetic data, 30 on real "
                        "data), or per network epochs (3ep) or steps (500steps)")
    p.add_argument("--without-bn", choices=("init", "trained", "off"),
                   help="the gradients part's nets without BatchNorm: measured at init only (default), also "
                        "trained (two more runs of the deepest depth), or not at all")
    p.add_argument("--eval-images", type=int, metavar="N",
                   help="fixed training and test images for the measurements (default 256 synthetic, "
                        "1000 real, 64 quick)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                   help="training and evaluation precision (default auto: bf16 where the CPU has it)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of initialisation, data order, subsets (default 0)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads (default 0: automatic -- 1 when the machine is busy, where threads of "
                        "several processes slow each other down, else torch's default)")
    p.add_argument("--out", metavar="DIR", help="study directory (default runs/study-<timestamp>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted study (--out DIR, or the latest unfinished one under runs/): "
                        "finished runs and parts are not redone; it keeps its own options")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke study: 500 synthetic images, depths 8,14,20, 6 steps, batch 32")
    p.set_defaults(run=run)
    return p


STUDY_OPTIONS = ("data", "depths", "models", "parts", "budget", "without_bn", "eval_images", "precision", "seed")


def run(args: argparse.Namespace) -> int:
    from ..studies import StudyConfig, run_study
    from ..train.allocator import retain_freed_memory
    given = {k: getattr(args, k) for k in STUDY_OPTIONS if getattr(args, k) is not None}
    if args.resume:
        if given or args.quick:
            names = ", ".join("--" + k.replace("_", "-") for k in given) + (" --quick" if args.quick else "")
            raise ValueError(f"--resume continues a study with its own options; drop {names.strip(', ')}")
        config = None
    else:
        config = StudyConfig.create(quick=args.quick, **given)
    retain_freed_memory()    # a command that trains: as `skiplab train` (retain_memory)
    result = run_study(config, out=args.out, resume=args.resume, threads=args.threads)
    print(f"\nreport: {result.report_html}  (and {result.report_md.name}, figures in {result.directory}/)")
    print("verdict:")
    for line in result.verdict:
        print(f"  {line}")
    return 0
