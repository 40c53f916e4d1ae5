"""``skiplab distill --teacher CHECKPOINT --student MODEL``: train a student with Hinton et al.
2015 knowledge distillation under any recipe, optionally beside the same student trained from
scratch with the same schedule and seeds, and report the paired difference."""

from __future__ import annotations

import argparse
import sys

from .train import add_config_arguments, resolve_config

EXAMPLE = """\
examples:
  skiplab distill --teacher runs/r56/checkpoints/last.pt --student cifar_resnet20 \\
      --config configs/he2015_cifar.yaml --data cifar10:PATH --out runs/r20_kd
  skiplab distill --teacher runs/r56/checkpoints/last.pt --student cifar_resnet20 \\
      --config configs/he2015_cifar.yaml --seeds 0 1 2 --compare-scratch --out runs/kd_vs_scratch
  skiplab distill --teacher T.pt --student cifar_resnet20 --config RECIPE.yaml --seeds 0 1 2 \\
      --scratch runs/r20_s0 runs/r20_s1 runs/r20_s2 --out runs/kd   # pair existing scratch runs

The loss is alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE
(--kd-alpha, --kd-temperature; defaults 0.9 and 4). The teacher runs in eval mode without
gradients on the same augmented batch. Every 'skiplab train' flag sets the recipe. One seed
without comparison: OUT is a normal run directory. Otherwise OUT/kd_s{seed}/,
OUT/scratch_s{seed}/ and OUT/distill_report.json (final val_acc per seed; KD - scratch: mean
and 95% t-interval over seeds). --resume continues every run.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "distill",
        help="train a student with knowledge distillation (vs scratch, paired seeds)",
        description="Knowledge distillation (Hinton et al. 2015) from a trained teacher "
        "checkpoint into a registered student model, with any training recipe.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--teacher", required=True, metavar="CHECKPOINT", help="trained teacher checkpoint")
    p.add_argument(
        "--student", dest="model", required=True, metavar="MODEL", help="registered student model (e.g. cifar_resnet20)"
    )
    p.add_argument("--seeds", type=int, nargs="+", metavar="S", help="seeds to train (default: the recipe's seed)")
    p.add_argument(
        "--compare-scratch",
        action="store_true",
        help="also train the student without the teacher (same config and seeds)",
    )
    p.add_argument(
        "--scratch",
        nargs="+",
        metavar="RUN_DIR",
        help="existing scratch runs to pair with, one per seed (checked: same config)",
    )
    add_config_arguments(p, skip=("teacher", "model"))
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.distill import distill_compare, format_comparison

    config = resolve_config(args, {"teacher": args.teacher, "model": args.model})
    if config.out is None:
        print("skiplab distill: error: --out DIR is required (where the runs go)", file=sys.stderr)
        return 2
    seeds = getattr(args, "seeds", None) or [config.seed]
    report = distill_compare(
        config,
        seeds,
        config.out,
        compare_scratch=getattr(args, "compare_scratch", False),
        scratch_dirs=getattr(args, "scratch", None) or (),
    )
    print(format_comparison(report))
    print(f"outputs in {config.out}/")
    return 0
