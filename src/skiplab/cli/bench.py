"""``skiplab bench MODEL|CHECKPOINT|FILE``: throughput and latency of every deployable variant,
as ratios to eager fp32 measured in the same interleaved rounds."""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLE = """\
examples:
  skiplab bench resnet50 --batch-size 16                         # random weights, every variant
  skiplab bench runs/r20/checkpoints/best.pt --variants eager_fp32,ort_int8,pt2e_int8
  skiplab bench r20_int8.pt2 --json bench.json                   # a file from export/quantize

Variants: eager_fp32 (the baseline), channels_last, bf16 (autocast), compiled_bf16,
bn_folded, ort_fp32, ort_int8, pt2e_int8, and artifact (the given .onnx/.pt2 file). Each
reports images/s, p50/p90 latency per batch, the ratio to eager fp32 (median over rounds,
with its range), the max relative output difference to eager fp32 and the size on disk. The
load average is printed and flagged when above the core count. Variants that cannot be
built (a missing extra) are listed with the reason.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="inference speed of every deployable variant",
        description="Benchmark a model, checkpoint or exported file.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="MODEL|CHECKPOINT|FILE")
    p.add_argument("--variants", help="comma-separated subset (default: all)")
    p.add_argument("--batch-size", type=int, default=16, help="default: 16")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    p.add_argument("--seconds", type=float, default=1.0, help="time per variant per round (default: 1)")
    p.add_argument("--image-size", type=int, help="input side (default: the model's)")
    p.add_argument("--calib", type=int, default=64, help="calibration images of int8 variants (default: 64)")
    p.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.bench import bench, format_table

    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    if args.batch_size < 1 or args.rounds < 1:
        raise ValueError(f"--batch-size and --rounds must be >= 1; found {args.batch_size}, {args.rounds}")
    result = bench(
        args.target,
        variants=variants,
        batch_size=args.batch_size,
        rounds=args.rounds,
        seconds=args.seconds,
        image_size=args.image_size,
        calib_images=args.calib,
        progress=lambda s: print(f"  {s} ...", file=sys.stderr, flush=True),
    )
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0
