"""What ``skiplab reconstruct``, ``skiplab encode`` and ``skiplab decode`` do once their arguments
are parsed (:mod:`skiplab.cli.reconstruct`): resolve the model or codec, check --out before any
work, run the library function and print what was written."""

from __future__ import annotations

import argparse
import struct
import zlib


def _inputs(args: argparse.Namespace) -> None:
    """The checkpoint of the older form ``CHECKPOINT INPUT`` into ``args.checkpoint``."""
    if args.old_checkpoint is None:
        return
    if args.checkpoint is not None:
        raise ValueError(f"two checkpoints given ({args.old_checkpoint} and --checkpoint {args.checkpoint}); give one")
    args.checkpoint = args.old_checkpoint


def _setup(args: argparse.Namespace, load: bool = True):
    import torch

    from ..sar.model.default import resolve_autoencoder
    from ..writable import check_output_file

    _inputs(args)
    check_output_file(args.out)  # before any work: a directory, a read-only place
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; found {args.batch_size}")
    if getattr(args, "strip_tiles", 1) < 1:
        raise ValueError(f"--strip-tiles must be >= 1; found {args.strip_tiles}")
    if args.threads:
        torch.set_num_threads(args.threads)
    return resolve_autoencoder(args.checkpoint) if load else args.checkpoint


def _finish(result, what: str, ae=None) -> int:
    from ..sar.inference.scene import scene_summary

    if ae is not None:
        print(f"model: {ae.label}")
    if result.note:
        print(f"note: {result.note}")
    print(f"{what} {scene_summary(result)}")
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    from ..sar.inference.scene import reconstruct_scene

    try:
        ae = _setup(args)
        result = reconstruct_scene(
            ae,
            args.scene,
            args.out,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            strip_tiles=args.strip_tiles,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            radiometry=args.radiometry,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    return _finish(result, "wrote", ae)


def run_encode(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..sar.inference.latent import encode_scene

    if args.quality is not None:
        return _encode_hyperprior(args)
    if getattr(args, "level", None) is not None:
        raise ValueError(
            "--level is the rate of a variable-rate hyperprior codec: give it with --quality 0 --checkpoint"
        )
    if Path(args.out).suffix.lower() != ".npz":
        return _encode_compressed(args)
    try:
        ae = _setup(args)
        result = encode_scene(
            ae,
            args.scene,
            args.out,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            radiometry=args.radiometry,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    ratio = ae.model.compression_ratio(result.grid.tile)
    print(
        f"latent: {ae.latent_channels} channels per {ae.reduction}x{ae.reduction} px "
        f"({ratio:g}x smaller than float32 pixels per window)"
    )
    return _finish(result, "wrote", ae)


def _encode_hyperprior(args: argparse.Namespace) -> int:
    from ..sar.codec.sarl import CODING_TILE, encode_file
    from ..sar.codec.shipped import load_codec, load_quality

    _setup(args, load=False)
    if args.quality == 0 and args.checkpoint is None:
        raise ValueError("--quality 0 means the codec of --checkpoint; give one (or Q >= 1)")
    if args.level is not None and args.quality != 0:
        raise ValueError(
            "--level picks the rate of a variable-rate --checkpoint (with --quality 0); a shipped level is --quality Q"
        )
    codec = load_codec(args.checkpoint, level=args.level) if args.quality == 0 else load_quality(args.quality)
    encoded = encode_file(codec, args.scene, args.out, tile=args.tile or CODING_TILE, overwrite=args.overwrite)
    at = f", level {codec.level}" if codec.model.lmbdas else ""
    print(f"codec: {codec.name} (id {codec.ident}{at})")
    print(
        f"wrote {encoded.path}: {encoded.height}x{encoded.width} px, {len(encoded.data)} bytes "
        f"= {encoded.bpp:.4f} bpp (payload {encoded.payload_bpp:.4f} bpp), mean-intensity "
        f"gain {encoded.gain:.4f}"
    )
    return 0


def _encode_compressed(args: argparse.Namespace) -> int:
    from ..sar.codec.latent_file import encode_scene_file

    try:
        ae = _setup(args)
        bits = args.bits if args.bits is not None else getattr(ae.model, "eval_bits", 8)
        encoded = encode_scene_file(
            ae,
            args.scene,
            args.out,
            bits=bits,
            coder=args.coder,
            radiometry=args.radiometry,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    print(f"model: {ae.label}")
    if encoded.note:
        print(f"note: {encoded.note}")
    g = encoded.grid
    print(f"wrote {encoded.path}: {g.height}x{g.width} px from {g.count} tiles of {g.tile} px, {encoded.summary()}")
    return 0


#: first bytes of rasters (TIFF, PNG) that a user may pass to decode instead of a latent file
RASTER_MAGIC = (b"II*\x00", b"MM\x00*", b"\x89PNG")


def run_decode(args: argparse.Namespace) -> int:
    """Decode with --checkpoint, or with the model or codec the file names: a .sarl of
    version 2 (hyperprior codec), of version 1 (quantised autoencoder), or a float .npz."""
    from pathlib import Path

    from ..sar.codec.sarl import VERSION, CorruptSceneFileError, decode_file, file_version

    ae = _setup(args, load=False)
    if Path(args.latent).suffix.lower() != ".npz":
        if not Path(args.latent).is_file():
            raise FileNotFoundError(f"compressed scene {args.latent} does not exist")
        with open(args.latent, "rb") as f:
            start = f.read(9)
        if start[:6] == b"\x93NUMPY" or start[:4] in RASTER_MAGIC:
            return _decode_latent(args, ae)  # a scene given to decode: the latent reader says so
        if start[:4] != b"PK\x03\x04":  # not a .npz: a .sarl of some version
            version = file_version(start if len(start) == 9 else Path(args.latent).read_bytes(), str(args.latent))
            if version == VERSION:
                path, header = decode_file(args.latent, args.out, checkpoint=ae, overwrite=args.overwrite)
                print(f"codec: {header['codec']} (id {header['codec_id']})")
                print(f"wrote {path}: {header['height']}x{header['width']} px")
                return 0
            try:
                return _decode_legacy(args, ae)
            except (struct.error, zlib.error, EOFError, IndexError, KeyError) as err:
                raise CorruptSceneFileError(f"{args.latent} is corrupt: {err}") from None
    return _decode_latent(args, ae)


def _decode_legacy(args: argparse.Namespace, ae) -> int:
    from ..sar.codec.latent_file import decode_scene_file

    try:
        path, grid = decode_scene_file(
            ae,
            args.latent,
            args.out,
            batch_size=args.batch_size,
            strip_tiles=args.strip_tiles,
            overwrite=args.overwrite,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    print(f"wrote {path}: {grid.height}x{grid.width} px from {grid.count} tiles of {grid.tile} px")
    return 0


def _decode_latent(args: argparse.Namespace, ae) -> int:
    """A float32 .npz latent file (skiplab encode --out X.npz)."""
    from ..sar.inference.latent import decode_latent

    try:
        result = decode_latent(
            ae,
            args.latent,
            args.out,
            batch_size=args.batch_size,
            strip_tiles=args.strip_tiles,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    return _finish(result, "wrote")
