"""``skiplab quantize CHECKPOINT --backend pt2e|onnx|auto --calib N --out PATH``: static
post-training int8 with a report of what it cost; ``--qat --steps N``: quantisation-aware
training on the PT2E path, reported beside the post-training int8 of the same net."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """\
examples:
  skiplab quantize runs/r20/checkpoints/best.pt --out r20_int8          # auto: the faster backend
  skiplab quantize runs/r20/checkpoints/best.pt --backend onnx --calib 1000 --out r20_int8.onnx
  skiplab eval r20_int8.pt2 --data cifar10:PATH                       # the artifact, like a checkpoint
  skiplab bench r20_int8.pt2
  skiplab quantize runs/r20/checkpoints/last.pt --qat --steps 300 --out r20_qat --json r20_qat.json

Calibrates on N training images (random, drawn by --seed) of the checkpoint's data (or --data),
quantises -- pt2e: torchao PT2E + X86InductorQuantizer, run through torch.compile; onnx:
ONNX Runtime quantize_static, QDQ, per-channel weights, activation ranges at the 99.999th
percentile -- then prints fp32 and int8 accuracy on
the evaluation split with the change (int8 - fp32, in points, with its sign: negative is a
loss), top-1 agreement, file sizes and speed (interleaved with eager fp32, load average
recorded). auto builds both and keeps the faster. Writes PATH.pt2 or PATH.onnx plus a
.json sidecar. Needs the deploy extra: pip install 'skiplab[deploy]'.

--qat: quantisation-aware training on the PT2E path (torchao prepare_qat_pt2e, the same
X86InductorQuantizer int8 scheme, BN folded into the fake-quantised conv weights): fine-tunes
the float net with fake quantisation for --steps N (default 300) with the checkpoint's own
recipe -- its task loss, training split and augmentation, its optimiser (momentum, weight
decay) -- at batch --qat-batch-size (64) and lr --qat-lr (default: 1 % of the recipe's peak
lr) decayed by a cosine to 0, activation ranges frozen for the last 20 % of the steps, data
order and augmentation drawn by --seed (as the calibration images are); then converts
through the same int8 lowering as PTQ and writes PATH.pt2, which eval and bench take like
the PTQ file. The PTQ (pt2e) int8 of the same net is built and reported beside it: change in
top-1 (int8 - fp32) and top-1 agreement with fp32 for both, on screen and in --json. Needs a
float training checkpoint (.pt), not a file from export/quantize.
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
    p.add_argument("--steps", type=int, metavar="N", help="QAT steps, >= 1 (default: 300)")
    p.add_argument(
        "--qat-lr",
        type=float,
        metavar="LR",
        help="QAT learning rate, cosine-decayed to 0 (default: 1 %% of the recipe's peak lr)",
    )
    p.add_argument("--qat-batch-size", type=int, metavar="B", help="QAT batch size (default: 64)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="draw of the calibration images and, with --qat, the QAT data order and augmentation (default: 0)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..atomic import write_json
    from ..deploy.qat import QATOptions
    from ..deploy.quantize_report import format_report, quantize_checkpoint
    from ..deploy.source import describe, load_source

    given = {"--steps": args.steps, "--qat-lr": args.qat_lr, "--qat-batch-size": args.qat_batch_size}
    given = {flag: value for flag, value in given.items() if value is not None}
    if given and not args.qat:
        raise ValueError(f"{', '.join(given)} need --qat (quantisation-aware training)")
    if args.qat and args.backend == "onnx":
        raise ValueError("--qat runs on the PT2E path: use --backend pt2e (or auto); found --backend onnx")
    qat = None
    if args.qat:  # checked (one line) before the checkpoint is read
        qat = QATOptions(
            steps=300 if args.steps is None else args.steps,
            lr=args.qat_lr,
            batch_size=64 if args.qat_batch_size is None else args.qat_batch_size,
            seed=args.seed,
        )
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
        seed=args.seed,
        progress=lambda s: print(f"  {s} ...", file=sys.stderr, flush=True),
    )
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    return 0
