"""``skiplab summary MODEL``: the shape-flow table, parameters, MACs and memory of a model."""

from __future__ import annotations

import argparse
import json

EXAMPLE = """\
examples:
  skiplab summary resnet50                       # 25,557,032 parameters, 4.09 GMACs at 224x224
  skiplab summary cifar_resnet56 --batch 128     # activation memory of a CIFAR training step
  skiplab summary resnet18 --in-chans 1 --input-size 1 256 256 --num-classes 2   # SAR tiles
  skiplab summary resnet50 --json > resnet50.json
  skiplab summary sar_ae_all --checkpoint runs/ae/checkpoints/best.pt   # + measured bpp of its latent file

The table has one row per part (input, stem, each stage of feature_info, pool, logits)
with its output shape, parameters, MACs and the activation bytes it saves for backward.
MACs count convolutions and matrix products only (FLOPs = 2 x MACs).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "summary",
        help="shape-flow table, parameters, MACs and memory of a model",
        description="Print a model's per-stage shape-flow table, its parameter count (beside the "
        "published one where known), the MACs of one forward and the activation memory "
        "of one training step.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="registered model name (see 'skiplab models')")
    p.add_argument(
        "--input-size",
        nargs=3,
        type=int,
        metavar=("C", "H", "W"),
        help="input size (default: the model's, 3 224 224 for ImageNet models, 3 32 32 "
        "for CIFAR); the model is built with C input channels",
    )
    p.add_argument(
        "--batch", type=int, default=1, metavar="N", help="batch of the measured forward and training step (default: 1)"
    )
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier outputs (default: the model's)")
    p.add_argument(
        "--in-chans", type=int, metavar="N", help="input channels of the model (default: C of --input-size, else 3)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="a trained SAR autoencoder checkpoint of MODEL: also print the measured bits "
        "per pixel of its latent file at 2, 4 and 8 bits per value on a synthetic "
        "256 px speckled tile",
    )
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..summary import summarize

    kwargs = {}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.in_chans is not None:
        kwargs["in_chans"] = args.in_chans
    ae = _load(args.model, args.checkpoint) if args.checkpoint else None
    if ae is not None:
        kwargs.update(ae.model_kwargs)
    summary = summarize(args.model, input_size=args.input_size or (ae and (1, 256, 256)), batch=args.batch, **kwargs)
    measured = _measured_bpp(ae) if ae is not None else None
    if args.json:
        print(json.dumps(dict(summary.to_dict(), **({"measured_bpp": measured} if measured else {})), indent=2))
    else:
        print(summary.to_text())
        if measured:
            print(
                "measured bpp:      "
                + ", ".join(f"{b} bits {v:.4f}" for b, v in measured.items())
                + " (latent file incl. header, one synthetic 256 px tile, skiplab encode's coder)"
            )
    return 0


def _load(model: str, checkpoint: str):
    from ..sar.model.checkpoint import load_autoencoder

    ae = load_autoencoder(checkpoint)
    if ae.model_name != model:
        raise ValueError(f"{checkpoint} holds a {ae.model_name}, not a {model}")
    return ae


def _measured_bpp(ae) -> dict:
    """Bits per pixel of the latent file a checkpoint writes for one held-out synthetic tile."""
    from ..sar.raster.speckle import synthetic_scenes
    from ..sar.codec.latent_file import encode_scene_bytes

    tile = synthetic_scenes(1, 256, looks=2.0, seed=1)[1][0].numpy()
    return {b: encode_scene_bytes(ae, tile, bits=b).bpp for b in (2, 4, 8)}
