"""``skiplab quantize CHECKPOINT --backend pt2e|onnx|auto --calib N --out PATH``: static
post-training int8 with a report of what it cost."""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLE = """\
examples:
  skiplab quantize runs/r20/checkpoints/best.pt --out r20_int8          # auto: the faster backend
  skiplab quantize runs/r20/checkpoints/best.pt --backend onnx --calib 1000 --out r20_int8.onnx
  skiplab eval r20_int8.pt2 --data cifar10:PATH                       # the artifact, like a checkpoint
  skiplab bench r20_int8.pt2

Calibrates on N training images (random, seeded) of the checkpoint's data (or --data),
quantises -- pt2e: torchao PT2E + X86InductorQuantizer, run through torch.compile; onnx:
ONNX Runtime quantize_static, QDQ, per-channel weights, activation ranges at the 99.999th
percentile -- then prints fp32 and int8 accuracy on
the evaluation split with the change (int8 - fp32, in points, with its sign: negative is a
loss), top-1 agreement, file sizes and speed (interleaved with eager fp32, load average
recorded). auto builds both and keeps the faster. Writes PATH.pt2 or PATH.onnx plus a
.json sidecar. Needs the deploy extra: pip install 'skiplab[deploy]'.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("quantize", help="int8 post-training quantisation (PT2E or ONNX Runtime)",
                              description="Quantise a checkpoint to int8 and report the cost.",
                              epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="CHECKPOINT", help="a skiplab train checkpoint (or a model name: speed only)")
    p.add_argument("--out", required=True, metavar="PATH", help="output file; its suffix is set by the backend")
    p.add_argument("--backend", default="auto", choices=("pt2e", "onnx", "auto"), help="default: auto")
    p.add_argument("--calib", type=int, default=512, metavar="N", help="calibration images (default: 512)")
    p.add_argument("--onnx-calibration", default="percentile", choices=("percentile", "minmax", "entropy"),
                   help="activation ranges of the onnx backend: 99.999th percentile (default), "
                        "min/max or entropy (KL)")
    p.add_argument("--data", metavar="SPEC", help="data spec (default: the checkpoint's)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="evaluation split (default: test)")
    p.add_argument("--eval-limit", type=int, metavar="N", help="evaluate the first N images only")
    p.add_argument("--no-eval", dest="evaluate", action="store_false", help="skip the accuracy comparison")
    p.add_argument("--batch-size", type=int, default=16, help="batch size of the speed measurement (default: 16)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default: 3)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.quantize_report import format_report, quantize_checkpoint
    from ..deploy.source import describe, load_source
    source = load_source(args.source)
    print(f"quantising {describe(source.meta)}", flush=True)
    report = quantize_checkpoint(source, args.out, backend=args.backend, calib=args.calib,
                                 data=args.data, split=args.split, eval_limit=args.eval_limit,
                                 batch_size=args.batch_size, rounds=args.rounds,
                                 evaluate=args.evaluate, onnx_calibration=args.onnx_calibration,
                                 progress=lambda s: print(f"  {s} ...", file=sys.stderr, flush=True))
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0
