"""``skiplab eval CHECKPOINT``: a trained checkpoint's metrics on a dataset split -- loss and
accuracy (classify), Dice/IoU (segment), PSNR/SSIM (reconstruct): the task is the checkpoint's."""

from __future__ import annotations

import argparse
import json

EXAMPLE = """\
examples:
  skiplab eval runs/resnet20/checkpoints/best.pt                 # the data it was trained on, test split
  skiplab eval runs/resnet20/checkpoints/last.pt --data cifar10:../shared/data/cifar10-jpg --tta-flip
  skiplab eval weights.pt --model cifar_resnet56 --data cifar10:PATH   # a plain state dict
  skiplab eval runs/unet/checkpoints/best.pt --split val      # Dice, IoU, pixel accuracy
  skiplab eval r20_int8.pt2 --data cifar10:PATH               # a file from skiplab quantize/export
  skiplab eval runs/ae/checkpoints/best.pt --data sar:other_scenes/  # PSNR, SSIM; its radiometry

The task, model and its options, and the tile size come from the checkpoint's recorded
config (a reconstruct checkpoint also normalises the data with the radiometry it was
trained with); --split val takes the same held-out samples as training did. A checkpoint of
another architecture than --model fails with the list of mismatched tensors.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint (accuracy, Dice/IoU or PSNR/SSIM) on a dataset split",
        description="Evaluate a checkpoint written by 'skiplab train' (or a plain state dict "
                    "with --model) on a split of a dataset.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="path to a .pt checkpoint, or an .onnx/.pt2 file from skiplab export/quantize")
    p.add_argument("--data", metavar="SPEC",
                   help="cifar10:PATH, folder:PATH, synthetic[:NAME], synthetic:cells, "
                        "synthetic-sar, sar:PATH (default: the checkpoint's training data; "
                        "see skiplab train --help)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split to evaluate (default: test)")
    p.add_argument("--model", help="model name for a plain state dict (default: from the checkpoint)")
    p.add_argument("--batch-size", type=int, default=512, help="evaluation batch size (default: 512)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                   help="autocast precision (default: auto)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-ema", dest="use_ema", action="store_false",
                   help="evaluate the raw weights even if the checkpoint has an EMA copy")
    p.add_argument("--tta-flip", action="store_true",
                   help="average the outputs of image and mirror image")
    p.add_argument("--tta-translate", action="store_true",
                   help="classifiers: also average over 1-pixel shifts up-left and down-right")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.runtime import evaluate_artifact, is_artifact
    from ..train import evaluate_checkpoint
    if is_artifact(args.checkpoint):
        result = evaluate_artifact(args.checkpoint, args.data, args.split, batch_size=args.batch_size,
                                   tta_flip=args.tta_flip, tta_translate=args.tta_translate)
    else:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, model=args.model,
                                     batch_size=args.batch_size, precision=args.precision,
                                     device=args.device, use_ema=args.use_ema,
                                     tta_flip=args.tta_flip, tta_translate=args.tta_translate)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        scores = [f"loss {result['loss']:.4f}"]
        scores += [f"accuracy {100 * result['acc']:.2f}%"] if "acc" in result else []
        scores += [f"{k} {result[k]:.4f}" for k in ("dice", "iou") if k in result]
        scores += [f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f}"] if "psnr" in result else []
        print(f"{result['model']} on {result['data']} ({result['images']} images): "
              f"{', '.join(scores)}")
    return 0
