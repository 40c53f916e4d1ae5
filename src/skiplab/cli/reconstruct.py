"""``skiplab reconstruct``, ``skiplab encode`` and ``skiplab decode``: a trained SAR
autoencoder applied to whole scenes (tiled, blended, streamed in strips)."""

from __future__ import annotations

import argparse

from .reconstruct_run import run_decode, run_encode, run_reconstruct

FORMATS = """\
Formats follow the suffix: .tif/.tiff (GeoTIFF tags kept), .png (8/16-bit), .npy. The output
has the input's units (intensity or amplitude, as the checkpoint's normalisation says),
data type, no-data value and georeferencing tags. Existing files are never replaced
without --overwrite.
"""

MODEL = """\
Without --checkpoint the packaged default SAR autoencoder is used (skiplab.sar.
load_default_model(); its card, src/skiplab/sar/weights/sar_ae_default.json, records its
training and its measured figures); --checkpoint (or a checkpoint given before SCENE, the
older form) uses your own sar_ae_* checkpoint instead.
"""

RECONSTRUCT_EXAMPLE = f"""\
examples:
  skiplab reconstruct scene.tif --out scene_ae.tif               # the packaged default model
  skiplab reconstruct scene.tif --out scene_ae.tif \\
      --checkpoint runs/ablate-ae/sar_ae_all-s0/checkpoints/best.pt
  skiplab reconstruct scene.npy --out scene_ae.npy --tile 256 --overlap 64 --overwrite

{MODEL}
The scene is covered by TILE x TILE windows overlapping by OVERLAP pixels; each window's
reconstruction is weighted by a smooth window (sin^2 ramps over the overlap) and the weighted
average is taken, so no tile grid shows. Large scenes are read memory-mapped and written
row-strip by row-strip (--strip-tiles window rows at a time). A scene smaller than the tile
uses the largest smaller tile that is a multiple of the model's stride (16).

{FORMATS}"""

ENCODE_EXAMPLE = f"""\
examples:
  skiplab encode scene.tif --out scene.sarl --quality 2     # the hyperprior codec, level 2
  skiplab decode scene.sarl --out scene_dec.tif             # finds the codec from the file
  skiplab encode scene.tif --out scene.sarl --quality 0 --checkpoint runs/codec/checkpoints/last.pt
  skiplab encode scene.tif --out scene.sarl --quality 0 --checkpoint vr.pt --level 1  # variable rate
  skiplab encode scene.tif --out scene.sarl --bits 6       # the compressed scene, default model
  skiplab decode scene.sarl --out scene_ae.tif             # picks the model the file names
  skiplab encode scene.tif --out scene.sarl --checkpoint best.pt     # your own model...
  skiplab decode scene.sarl --out scene_ae.tif --checkpoint best.pt  # ...decodes its files
  skiplab encode scene.tif --out scene.latent.npz          # float32 latents, unquantised

--quality Q (1 = lowest rate ... N, the shipped levels of skiplab.sar.codec.shipped) codes
the scene with a hyperprior codec (scale hyperprior, ANS through constriction) into a .sarl
file of format version 2: the scene's normalised log-intensity in tiles of --tile px (a
multiple of 64, default 512), the codec's name and id, the scene radiometry and a gain that
keeps the scene's mean intensity, and a CRC-32 of the whole file (an empty, truncated or
altered file is refused in one line). With --checkpoint, that checkpoint of --task compress
is the codec (give --quality 0; --level L picks the rate of a variable-rate one, 0 = lowest,
default its highest; the file records it). Without --quality, the quantised-autoencoder path below.

{MODEL}
The latent file names the model that wrote it (name, architecture, SHA-256 of the weights):
decode uses the packaged model for its files, and refuses in one line, naming the model
expected, a file written by a checkpoint that is not given or does not match.

A .sarl file (any suffix but .npz) is the compressed scene: the latent of every window
quantised to --bits per value (per-channel range), entropy-coded (--coder: raw, zlib, lzma,
gaussian/laplace through constriction, or auto = the shortest), after a header with the
model id, the scene's radiometry (per-scene offset and scale by default), the quantiser,
the tile grid and what the decoded raster needs (data type, units, no-data, georeferencing
tags). Its size is the bit rate: encode prints bits per pixel of the whole file and the
empirical entropy of the symbols. A .npz holds float32 latents [N, C, T/16, T/16]; decoding
it is identical to skiplab reconstruct.

{FORMATS}"""


def _common(p: argparse.ArgumentParser, tiling: bool = True) -> None:
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="a sar_ae_* checkpoint written by skiplab train / skiplab ablate autoencoder "
        "(checkpoints/best.pt); default: the packaged SAR autoencoder",
    )
    if tiling:
        p.add_argument("--tile", type=int, metavar="T", help="window side in pixels, a multiple of 16 (default 256)")
        p.add_argument(
            "--overlap", type=int, metavar="O", help="pixels shared by neighbouring windows, at most T/2 (default T/4)"
        )
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="windows per forward (default 8)")
    if tiling:
        p.add_argument(
            "--radiometry",
            choices=("scene", "model"),
            default="scene",
            help="normalise by the scene's own 0.5-99.5%% log-intensity (scene, default: "
            "any calibration) or by the checkpoint's fixed bounds (model: refused "
            "when >10%% of the scene lies outside them)",
        )
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch CPU threads (default: torch's)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


SCENE = ("scene", "SCENE", "the input raster (.tif/.tiff, .png, .npy)")
RASTER_OUT = ("OUT", "the output raster (format by suffix)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    commands = [  # name, help, description, epilog, input, --out, writes a raster
        (
            "reconstruct",
            "reconstruct a whole SAR scene with a trained autoencoder",
            "Encode and decode a whole scene window by window with a trained SAR autoencoder, blend the "
            "windows, and write the result like the input.",
            RECONSTRUCT_EXAMPLE,
            SCENE,
            RASTER_OUT,
            True,
        ),
        (
            "encode",
            "compress a whole SAR scene into a latent file (.sarl, or float32 .npz)",
            "Encode every window of a scene with a trained SAR autoencoder into a latent file that "
            "skiplab decode turns back into the reconstruction: a .sarl (any suffix but .npz) holds the "
            "latents quantised to --bits and entropy-coded, and its size is the bit rate; a .npz holds "
            "float32 latents.",
            ENCODE_EXAMPLE,
            SCENE,
            ("LATENT", "the latent file to write (.sarl compressed; .npz float32)"),
            False,
        ),
        (
            "decode",
            "decode a latent file (skiplab encode) into a SAR scene",
            "Decode a latent file written by skiplab encode with the model that wrote it (the packaged "
            "default model, or --checkpoint), blending the windows exactly as skiplab reconstruct does.",
            ENCODE_EXAMPLE,
            ("latent", "LATENT", "a latent file written by skiplab encode (.sarl or .npz)"),
            RASTER_OUT,
            True,
        ),
    ]
    runs = {"reconstruct": run_reconstruct, "encode": run_encode, "decode": run_decode}
    for name, short, description, epilog, (dest, metavar, what), (out_metavar, out_help), raster in commands:
        p = subparsers.add_parser(
            name,
            help=short,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common(p, tiling=name != "decode")
        p.add_argument(
            "old_checkpoint",
            nargs="?",
            metavar="CHECKPOINT",
            help="the older form of --checkpoint (a checkpoint before the input)",
        )
        p.add_argument(dest, metavar=metavar, help=what)
        p.add_argument("--out", required=True, metavar=out_metavar, help=out_help)
        if name == "encode":
            p.add_argument(
                "--quality",
                type=int,
                default=None,
                metavar="Q",
                help="code with the shipped hyperprior codec of level Q (1 = lowest "
                "rate), or with --checkpoint's codec when Q is 0; a .sarl of "
                "format version 2 (--tile: coding tile, default 512)",
            )
            p.add_argument(
                "--level",
                type=int,
                default=None,
                metavar="L",
                help="with --quality 0: the rate level of a variable-rate --checkpoint (0 = lowest; default its highest)",
            )
            p.add_argument(
                "--bits",
                type=int,
                default=None,
                metavar="B",
                help="bits per latent value, 1-16 (default: the depth a sar_codec_* "
                "model was validated at, 8 for other models; ignored for .npz)",
            )
            p.add_argument(
                "--coder",
                default="auto",
                choices=("auto", "raw", "zlib", "lzma", "gaussian", "laplace"),
                help="entropy coder of the symbols (default auto: the shortest)",
            )
        if raster:
            p.add_argument(
                "--strip-tiles",
                type=int,
                default=1,
                metavar="N",
                help="window rows held in memory before finished rows are written (default 1)",
            )
        p.set_defaults(run=_writing(runs[name]))


def _writing(run):
    """``run`` with a failed write of --out (a full disk) said in one line, naming it."""

    def run_writing(args: argparse.Namespace) -> int:
        from ..writable import output_errors

        with output_errors(args.out):
            return run(args)

    return run_writing
