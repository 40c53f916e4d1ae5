"""``skiplab quantize CHECKPOINT --backend pt2e|onnx|auto --calib N --out PATH``: static
post-training int8 with a report of what it cost; ``--qat --steps N``: quantisation-aware
training on the PT2E path, reported beside the post-training int8 of the same net."""

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
  skiplab quantize runs/r20/checkpoints/last.pt --qat --steps 300 --out r20_qat --json r20_qat.json

Calibrates on N training images (random, seeded) of the checkpoint's data (or --data),
quantises -- pt2e: torchao PT2E + X86InductorQuantizer, run through torch.compile; onnx:
ONNX Runtime quantize_static, QDQ, per-channel weights, activation ranges at the 99.999th
percentile -- then prints fp32 and int8 accuracy on
the evaluation split with the change (int8 - fp32, in points, with its sign: negative is a
loss), top-1 agreement, file sizes and speed (interleaved with eager fp32, load average
recorded). auto builds both and keeps the faster. Writes PATH.pt2 or PATH.onnx plus a
.json sidecar. Needs the deploy extra: pip install 'skiplab[deploy]'.

--qat: quantisation-aware training on the PT2E path (torchao prepare_qat_pt2e, the same
X86InductorQuantizer int8 scheme): fine-tunes the net with fake quantisation on the training
split (task loss, training augmentation) for --steps N (default 300) of SGD, momentum 0.9,
no weight decay, batch --qat-batch-size (64), lr --qat-lr (1e-3) decayed by a cosine to 0,
activation ranges frozen for the last 20 % of the steps; then converts and writes PATH.pt2.
The PTQ (pt2e) int8 of the same net is built and reported beside it: change in top-1
(int8 - fp32) and top-1 agreement with fp32 for both, on screen and in --json.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "quantize",
        help="int8 quantisation: post-training (PT2E or ONNX Runtime) or --qat",
        description="Quantise a checkpoint to int8 and report the cost.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="CHECKPOINT", help="a skiplab train checkpoint (or a model name: speed only)")
    p.add_argument("--out", required=True, metavar="PATH", help="output file; its suffix is set by the backend")
    p.add_argument("--backend", default="auto", choices=("pt2e", "onnx", "auto"), help="default: auto")
    p.add_argument("--calib", type=int, default=512, metavar="N", help="calibration images (default: 512)")
    p.add_argument(
        "--onnx-calibration",
        default="percentile",
        choices=("percentile", "minmax", "entropy"),
        help="activation ranges of the onnx backend: 99.999th percentile (default), min/max or entropy (KL)",
    )
    p.add_argument("--data", metavar="SPEC", help="data spec (default: the checkpoint's)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="evaluation split (default: test)")
    p.add_argument("--eval-limit", type=int, metavar="N", help="evaluate the first N images only")
    p.add_argument("--no-eval", dest="evaluate", action="store_false", help="skip the accuracy comparison")
    p.add_argument("--batch-size", type=int, default=16, help="batch size of the speed measurement (default: 16)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default: 3)")
    p.add_argument(
        "--qat",
        action="store_true",
        help="quantisation-aware training (PT2E) instead of post-training int8; PTQ is reported beside it",
    )
    p.add_argument("--steps", type=int, default=300, metavar="N", help="QAT steps (default: 300)")
    p.add_argument(
        "--qat-lr",
        type=float,
        default=1e-3,
        metavar="LR",
        help="QAT learning rate, cosine-decayed to 0 (default: 1e-3)",
    )
    p.add_argument("--qat-batch-size", type=int, default=64, metavar="B", help="QAT batch size (default: 64)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.quantize import QATOptions
    from ..deploy.quantize_report import format_report, quantize_checkpoint
    from ..deploy.source import describe, load_source

    qat = QATOptions(steps=args.steps, lr=args.qat_lr, batch_size=args.qat_batch_size) if args.qat else None
    if not args.qat and (args.steps != 300 or args.qat_lr != 1e-3 or args.qat_batch_size != 64):
        raise SystemExit("error: --steps, --qat-lr and --qat-batch-size need --qat")
    if args.qat and args.backend == "onnx":
        raise SystemExit("error: --qat runs on the PT2E path: use --backend pt2e (or auto)")
    source = load_source(args.source)
    print(f"quantising {describe(source.meta)}", flush=True)
    report = quantize_checkpoint(
        source,
        args.out,
        backend=args.backend,
        calib=args.calib,
        data=args.data,
        split=args.split,
        eval_limit=args.eval_limit,
        batch_size=args.batch_size,
        rounds=args.rounds,
        evaluate=args.evaluate,
        onnx_calibration=args.onnx_calibration,
        qat=qat,
        progress=lambda s: print(f"  {s} ...", file=sys.stderr, flush=True),
    )
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0
