"""``skiplab sar-rd``: rate-distortion of SAR autoencoders against JPEG, JPEG 2000 and
average pooling, on the same tiles, at measured bit rates (:mod:`skiplab.sar.rate_distortion.measure`)."""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """\
examples:
  skiplab sar-rd runs/ae/checkpoints/best.pt --data ../shared/data/sar-real --out runs/rd-real
  skiplab sar-rd a/best.pt b/best.pt --synthetic 8 --bits 2 4 6 8 --out runs/rd-synth

Every tile is normalised by its own 0.5-99.5 % log-intensity; each model codes it at each
--bits (a real latent file: bpp = its size x 8 / pixels), JPEG and JPEG 2000 are rate-matched
per tile to the model's bpp (within 5 %) and also run at --rates; average pooling to the
latent's value count is quantised to the same bits. Synthetic tiles are also scored against
their clean reflectivity (with the speckled input as the oracle row); every tile gets ENL
and ratio-image statistics, and a 7x7 Lee filter is the uncompressed despeckling reference. Writes OUT/rd.json, rd.md (table + what each number answers)
and rd.png (PSNR vs bpp).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sar-rd",
        help="rate-distortion of SAR autoencoders vs JPEG / JPEG 2000",
        description="Rate-distortion of SAR autoencoder checkpoints against "
        "JPEG, JPEG 2000 and average pooling at matched, measured bpp.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT", help="sar_ae_* checkpoints (none: the codecs only)")
    p.add_argument("--data", nargs="+", metavar="PATH", help="real scenes (files or folders)")
    p.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="N synthetic speckled tiles with clean references (held-out seed)",
    )
    p.add_argument("--looks", type=float, default=2.0, help="looks of the synthetic speckle (default 2)")
    p.add_argument("--tile", type=int, default=256, metavar="T", help="tile side in px (default 256)")
    p.add_argument(
        "--bits",
        type=int,
        nargs="+",
        default=[2, 4, 6, 8],
        metavar="B",
        help="bits per latent value, one rate per value (default 2 4 6 8)",
    )
    p.add_argument(
        "--coder",
        default="auto",
        choices=("auto", "raw", "zlib", "lzma", "gaussian", "laplace"),
        help="entropy coder of the latents (default auto: the shortest)",
    )
    p.add_argument(
        "--rates",
        type=float,
        nargs="*",
        default=[0.125, 0.25, 0.5, 1.0, 2.0],
        metavar="BPP",
        help="reference rates for JPEG / JPEG 2000 alone",
    )
    p.add_argument("--out", required=True, help="output folder (rd.json, rd.md, rd.png)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch CPU threads")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..sar.codec.quantize import check_bits
    from ..sar.rate_distortion.measure import rate_distortion, real_tiles, synthetic_tiles
    from ..sar.rate_distortion.report import write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.data and args.synthetic < 1:
        raise ValueError("no tiles: give --data PATH and/or --synthetic N")
    for b in args.bits:
        check_bits(b)
    tiles = (real_tiles(args.data, args.tile) if args.data else []) + (
        synthetic_tiles(args.synthetic, args.tile, args.looks) if args.synthetic > 0 else []
    )
    points = rate_distortion(
        args.checkpoints,
        tiles,
        bits=args.bits,
        coder=args.coder,
        reference_rates=args.rates,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    command = "skiplab " + " ".join(sys.argv[1:]) if sys.argv and "skiplab" in sys.argv[0] else ""
    paths = write_report(points, args.out, command=command, tiles=[t.name for t in tiles])
    for r in (p.row() for p in points):
        extra = f", vs clean {r['psnr_clean']:.2f} dB" if "psnr_clean" in r else ""
        print(f"{r['method']:<58} {r['bpp']:7.3f} bpp  PSNR {r['psnr']:6.2f} dB  SSIM {r['ssim']:.3f}{extra}")
    print(f"wrote {paths['md']}, {paths['json']}, {paths['png']}")
    return 0
