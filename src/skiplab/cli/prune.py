"""``skiplab prune CHECKPOINT``: channel pruning to a MAC target (Torch-Pruning DepGraph,
residual groups pruned together, option-A shortcuts included), fine-tuning with the
checkpoint's recipe, and a before/after report of MACs, parameters, accuracy and measured speed."""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLE = """\
examples:
  skiplab prune runs/r56/checkpoints/last.pt --target-macs 2 --finetune 10 --out runs/r56_pruned
  skiplab prune runs/r56/checkpoints/last.pt --target-macs 2 --importance taylor --round-to 8 \\
      --steps 2 --finetune 20 --lr 0.01 --out runs/r56_taylor
  skiplab eval runs/r56_pruned/pruned.pt          # the pruned model loads like any checkpoint

--target-macs X removes channels until the net needs 1/X of its multiply-accumulates.
Every layer joined through a residual addition loses the same channels; option-A
(zero-padding) shortcuts become an equivalent fixed 0/1 1x1 convolution so both stages
around them prune independently. Fine-tuning runs 'skiplab train' with the checkpoint's
recorded recipe (data, optimiser, augmentation), a cosine schedule from --lr, for
--finetune epochs (fractions allowed). Re-running the same command continues where it
stopped; other settings on the same OUT are refused. Outputs: OUT/pruned.pt,
OUT/prune_report.json, OUT/prune_run.json, OUT/step*/ (pruned.pt, finetune/).
Needs the deploy extra: pip install 'skiplab[deploy]'.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "prune",
        help="channel-prune a checkpoint to a MAC target, fine-tune, report speed",
        description="Structured (channel) pruning of a trained classifier on Torch-Pruning's "
        "DepGraph, to a target MAC reduction, with fine-tuning and a measured "
        "before/after report.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint written by skiplab train")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--target-macs",
        type=float,
        default=2.0,
        metavar="X",
        help="MAC reduction to reach, e.g. 2.0 = half the MACs (default: 2.0)",
    )
    p.add_argument(
        "--finetune",
        type=float,
        default=0.0,
        metavar="EPOCHS",
        help="fine-tuning budget in epochs over all steps (default: 0, none)",
    )
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning peak lr, cosine (default: 0.01)")
    p.add_argument(
        "--steps", type=int, default=1, help="iterative pruning: reach the target in this many prune+fine-tune steps"
    )
    p.add_argument(
        "--importance",
        default="l2",
        choices=("l2", "taylor"),
        help="channel importance: L2 weight norm or first-order Taylor (default: l2)",
    )
    p.add_argument(
        "--round-to",
        type=int,
        default=None,
        metavar="N",
        help="keep pruned widths multiples of N (faster kernels; default: off)",
    )
    p.add_argument(
        "--global-pruning",
        action="store_true",
        help="rank channels of all groups together (default: the same fraction per group)",
    )
    p.add_argument("--data", metavar="SPEC", help="dataset (default: the checkpoint's training data)")
    p.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch size (default: recipe's)")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed (default: 0)")
    p.add_argument("--bench-batch", type=int, default=256, help="batch of the speed measurement (default: 256)")
    p.add_argument("--bench-rounds", type=int, default=5, help="interleaved timing rounds (default: 5)")
    p.add_argument(
        "--bench-precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="precision of the speed measurement (default: fp32)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run, resume_advice="run the same command again to continue")  # no --resume
    return p


def run(args: argparse.Namespace) -> int:
    try:
        from ..deploy.prune_run import format_report, prune_checkpoint
        import torch_pruning  # noqa: F401
    except ImportError as err:
        print(f"skiplab prune: error: {err} (install the deploy extra: pip install 'skiplab[deploy]')", file=sys.stderr)
        return 2
    report = prune_checkpoint(
        args.checkpoint,
        args.out,
        speedup=args.target_macs,
        finetune_epochs=args.finetune,
        lr=args.lr,
        steps=args.steps,
        importance=args.importance,
        round_to=args.round_to,
        global_pruning=args.global_pruning,
        data=args.data,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=args.progress,
        bench_batch=args.bench_batch,
        bench_rounds=args.bench_rounds,
        bench_precision=args.bench_precision,
    )
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "bench"}, indent=2))
    else:
        print(format_report(report))
    print(f"outputs in {args.out}/: pruned.pt, prune_report.json, step*/")
    return 0
