"""``skiplab export CHECKPOINT|MODEL --format onnx|pt2 --out FILE``: an ONNX file or a
torch.export program, with a JSON sidecar and a parity check against eager fp32."""

from __future__ import annotations

import argparse

EXAMPLE = """\
examples:
  skiplab export runs/r20/checkpoints/best.pt --out r20.onnx      # ONNX, dynamo exporter
  skiplab export runs/ae/checkpoints/best.pt --format pt2 --out ae.pt2   # dynamic H and W
  skiplab export resnet50 --out resnet50.onnx                      # random weights

Writes FILE and FILE.json (input shape, channels, normalisation, classes, task, SAR
radiometry); batch is dynamic, and so are height and width (multiples of the stride) for
image-to-image models. BatchNorm is folded into the convolutions first (--no-fold keeps it).
Prints the exporter used (dynamo, or the TorchScript fallback) and the parity against eager
fp32 (max relative error; ONNX files are run in ONNX Runtime and checked by onnx.checker).
Needs the deploy extra: pip install 'skiplab[deploy]'.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export to ONNX or torch.export (.pt2) with a parity check",
        description="Export a checkpoint or a registered model.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="CHECKPOINT|MODEL", help="a skiplab train checkpoint or a model name")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.onnx or .pt2)")
    p.add_argument("--format", choices=("onnx", "pt2"), help="default: from the suffix of --out")
    p.add_argument(
        "--exporter",
        default="auto",
        choices=("auto", "dynamo", "torchscript"),
        help="ONNX exporter (default auto: dynamo, TorchScript if that fails)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--image-size", type=int, help="example input side (default: the model's)")
    p.add_argument("--num-classes", type=int, help="model name only: number of classes")
    p.add_argument("--in-chans", type=int, help="model name only: input channels")
    p.add_argument("--no-fold", dest="fold", action="store_false", help="keep BatchNorm layers")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.export import export, export_format
    from ..deploy.source import describe, load_source

    fmt = export_format(args.out, args.format)
    source = load_source(args.source, image_size=args.image_size, num_classes=args.num_classes, in_chans=args.in_chans)
    print(f"exporting {describe(source.meta)}")
    kwargs = dict(fold=args.fold)
    if fmt == "onnx":
        kwargs.update(exporter=args.exporter, opset=args.opset)
    result = export(source, args.out, fmt, **kwargs)
    for note in result.notes:
        print(f"note: {note}")
    if result.fold is not None:
        print(result.fold)
    print(result.summary())
    print(f"wrote {result.path} and {result.sidecar}")
    return 0 if result.ok else 1
