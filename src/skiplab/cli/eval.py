"""``skiplab eval CHECKPOINT``: a trained checkpoint's metrics on a dataset split -- loss and
accuracy (classify), Dice/IoU (segment), PSNR/SSIM (reconstruct): the task is the checkpoint's."""

from __future__ import annotations

import argparse
import json

EXAMPLE = """\
examples:
  skiplab eval runs/resnet20/checkpoints/last.pt        # as the run's own final evaluation
  skiplab eval runs/resnet20/checkpoints/best.pt --split test --no-tta
  skiplab eval runs/resnet20/checkpoints/last.pt --data cifar10:../shared/data/cifar10-jpg
  skiplab eval weights.pt --model cifar_resnet56 --data cifar10:PATH   # a plain state dict
  skiplab eval runs/unet/checkpoints/best.pt --split val      # Dice, IoU, pixel accuracy
  skiplab eval r20_int8.pt2 --data cifar10:PATH               # a file from skiplab quantize/export
  skiplab eval runs/ae/checkpoints/best.pt --data sar:other_scenes/  # PSNR, SSIM; its radiometry

By default a checkpoint is evaluated exactly as its run evaluated at the end of training:
the same split (val when the run held out --val-size images, else test), batch size,
precision and test-time augmentation (the recipe's tta_flip / tta_translate: fast_cifar uses
both), so the figure matches the last row of its metrics.csv; --no-tta turns the
augmentation off, --tta-flip / --tta-translate set each. The task, model and its options,
and the tile size come from the checkpoint's recorded config (a reconstruct checkpoint also
normalises the data with the radiometry it was trained with); --split val takes the same
held-out samples as training did. A checkpoint of another architecture than --model, or
with another number of classes than --data, fails naming what differs.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint (accuracy, Dice/IoU or PSNR/SSIM) on a dataset split",
        description="Evaluate a checkpoint written by 'skiplab train' (or a plain state dict "
        "with --model) on a split of a dataset, by default as the run's own final "
        "evaluation did.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="path to a .pt checkpoint, or an .onnx/.pt2 file from skiplab export/quantize",
    )
    p.add_argument(
        "--data",
        metavar="SPEC",
        help="cifar10:PATH, folder:PATH, synthetic[:NAME], synthetic:cells, "
        "synthetic-sar, sar:PATH (default: the checkpoint's training data; "
        "see skiplab train --help)",
    )
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="split to evaluate (default: the one the run evaluated -- val if it "
        "held out a validation part, else test)",
    )
    p.add_argument("--model", help="model name for a plain state dict (default: from the checkpoint)")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (default: the run's)")
    p.add_argument(
        "--precision", choices=("auto", "bf16", "fp16", "fp32"), help="autocast precision (default: the run's)"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--no-ema",
        dest="use_ema",
        action="store_false",
        help="evaluate the raw weights even if the checkpoint has an EMA copy",
    )
    p.add_argument(
        "--tta-flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the outputs of image and mirror image (default: the run's)",
    )
    p.add_argument(
        "--tta-translate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="classifiers: also average over 1-pixel shifts up-left and down-right (default: the run's)",
    )
    p.add_argument(
        "--no-tta", action="store_true", help="no test-time augmentation (same as --no-tta-flip --no-tta-translate)"
    )
    p.add_argument(
        "--skip-bad", action="store_true", help="skip (and count) images that cannot be decoded instead of failing"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.runtime import evaluate_artifact, is_artifact
    from ..train import evaluate_checkpoint

    if args.no_tta:
        if args.tta_flip or args.tta_translate:
            raise ValueError(
                "--no-tta turns test-time augmentation off: drop --tta-flip / --tta-translate, or --no-tta"
            )
        args.tta_flip = args.tta_translate = False
    if is_artifact(args.checkpoint):
        result = evaluate_artifact(
            args.checkpoint,
            args.data,
            args.split,
            batch_size=args.batch_size,
            tta_flip=args.tta_flip,
            tta_translate=args.tta_translate,
            skip_bad=args.skip_bad,
        )
    else:
        result = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            args.split,
            model=args.model,
            batch_size=args.batch_size,
            precision=args.precision,
            device=args.device,
            use_ema=args.use_ema,
            tta_flip=args.tta_flip,
            tta_translate=args.tta_translate,
            skip_bad=args.skip_bad,
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        scores = [f"loss {result['loss']:.4f}"]
        scores += [f"accuracy {100 * result['acc']:.2f}%"] if "acc" in result else []
        scores += [f"{k} {result[k]:.4f}" for k in ("dice", "iou") if k in result]
        scores += [f"{result['bpp']:.4f} bpp (estimated from the likelihoods)"] if "bpp" in result else []
        scores += [f"PSNR {result['psnr']:.2f} dB"] if "psnr" in result else []
        scores += [f"SSIM {result['ssim']:.4f}"] if "ssim" in result else []
        tta = [n for n in ("flip", "translate") if result[f"tta_{n}"]]
        print(
            f"{result['model']} on {result['data']} ({result['split']} split, {result['images']} "
            f"images, {result['precision']}, test-time augmentation: {' + '.join(tta) or 'none'}): "
            f"{', '.join(scores)}"
        )
    return 0
