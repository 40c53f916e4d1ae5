"""``skiplab summary MODEL``: the shape-flow table, parameters, MACs and memory of a model."""

from __future__ import annotations

import argparse
import json

from ..summary import summarize

EXAMPLE = """\
examples:
  skiplab summary resnet50                       # 25,557,032 parameters, 4.09 GMACs at 224x224
  skiplab summary cifar_resnet56 --batch 128     # activation memory of a CIFAR training step
  skiplab summary resnet18 --in-chans 1 --input-size 1 256 256 --num-classes 2   # SAR tiles
  skiplab summary resnet50 --json > resnet50.json

The table has one row per part (input, stem, each stage of feature_info, pool, logits)
with its output shape, parameters, MACs and the activation bytes it saves for backward.
MACs count convolutions and matrix products only (FLOPs = 2 x MACs).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "summary", help="shape-flow table, parameters, MACs and memory of a model",
        description="Print a model's per-stage shape-flow table, its parameter count (beside the "
                    "published one where known), the MACs of one forward and the activation memory "
                    "of one training step.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="registered model name (see 'skiplab models')")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"),
                   help="input size (default: the model's, 3 224 224 for ImageNet models, 3 32 32 "
                        "for CIFAR); the model is built with C input channels")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="batch of the measured forward and training step (default: 1)")
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier outputs (default: the model's)")
    p.add_argument("--in-chans", type=int, metavar="N",
                   help="input channels of the model (default: C of --input-size, else 3)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    kwargs = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.in_chans is not None:
        kwargs["in_chans"] = args.in_chans
    summary = summarize(args.model, input_size=args.input_size, batch=args.batch, **kwargs)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.to_text())
    return 0
