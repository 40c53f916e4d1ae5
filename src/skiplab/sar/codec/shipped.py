"""The hyperprior codecs that ship with skiplab, one per quality level, and how a ``.sarl``
file finds the codec that wrote it.

``src/skiplab/sar/weights/sar_hyperprior_q{Q}.pt.xz`` (Q = 1 ... N, low to high rate, as
CompressAI's quality levels) are stripped checkpoints (float16 weights, the z coding table
in float64; LZMA-compressed so that all levels together stay under 10 MB) of :class:`~skiplab.sar.codec.hyperprior.HyperpriorCodec` models trained for
increasing lambda -- or one variable-rate model (gain units) whose levels are the card's
``level`` per quality; ``sar_hyperprior.json`` beside them is their card (training command,
data, lambda per level). Decompressed, they are read by :func:`skiplab.load_trained` like any
checkpoint.

A codec is named in a file by its ``name`` (``sar_hyperprior_q2`` or a checkpoint path) and
its *id* (16 hex digits of a hash over its architecture and weights): decoding with another
model is refused in one line naming the one expected.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from ...atomic import write_bytes
from ...errors import SkiplabError
from .hyperprior import HyperpriorCodec

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
PREFIX = "sar_hyperprior_q"
SUFFIX = ".pt.xz"
CARD = WEIGHTS_DIR / "sar_hyperprior.json"
#: all shipped codecs together stay below this (a wheel stays small)
MAX_TOTAL_BYTES = 10 * 1000 * 1000
PathLike = Union[str, Path]


class CodecNotFoundError(SkiplabError, ValueError):
    """The codec a file or a command names is not here."""


@dataclass
class Codec:
    """A hyperprior codec ready to code: its ``model`` (eval mode, coding table computed),
    ``name`` and ``ident`` (what a ``.sarl`` header records), ``quality`` (0: not shipped) and
    the quantisation ``step`` of y it encodes with (a file records its own); the rate level of
    a variable-rate model is ``model.level``."""

    model: HyperpriorCodec
    name: str
    ident: str
    quality: int = 0
    step: float = 1.0

    @property
    def level(self) -> int:
        return self.model.level


def codec_id(model: HyperpriorCodec) -> str:
    """16 hex digits over the architecture, the rate level (variable-rate models) and every
    weight and buffer of ``model``: the same weights at another level are another codec."""
    digest = hashlib.blake2b(digest_size=8)
    arch = [model.transform, model.n, model.m, model.mean_scale]
    if model.lmbdas:
        arch += [model.lmbdas, model.level]
    digest.update(json.dumps(arch).encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def shipped_card() -> dict:
    """The card of the shipped levels (``{}`` when none is installed)."""
    return json.loads(CARD.read_text()) if CARD.is_file() else {}


def quality_levels() -> list[int]:
    """The shipped quality levels, ascending (empty when none is installed)."""
    return sorted(int(q) for q in shipped_card().get("levels", {}))


def load_codec(
    path: PathLike, name: Optional[str] = None, quality: int = 0, step: float = 1.0, level: Optional[int] = None
) -> Codec:
    """A codec from a checkpoint of the ``compress`` task (or a shipped ``.pt.xz`` file);
    ``level``: the rate level of a variable-rate model (default its highest; refused for a
    fixed-rate one)."""
    from ...trained import load_trained  # the one road from a file to a model

    if str(path).endswith(SUFFIX):
        with lzma.open(path, "rb") as f:
            checkpoint = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
        model = load_trained(checkpoint, source=str(path)).model
    else:
        model = load_trained(path).model
    if not isinstance(model, HyperpriorCodec):
        raise CodecNotFoundError(
            f"{path} holds a {type(model).__name__}, not a hyperprior "
            f"codec (sar_hyperprior_*, trained with --task compress)"
        )
    if level is not None:
        if not 0 <= level < model.levels or (level and not model.lmbdas):
            raise CodecNotFoundError(
                f"{path} codes at {model.levels} level(s) (0..{model.levels - 1}); level {level} is not one of them"
            )
        model.level = level
    model.eval().update()
    return Codec(model, name or str(path), codec_id(model), quality, step)


def load_quality(quality: int) -> Codec:
    """The shipped codec of ``quality`` (1 = lowest rate)."""
    levels = quality_levels()
    if quality not in levels:
        have = f"1..{levels[-1]}" if levels else "none installed"
        raise CodecNotFoundError(f"quality must be one of the shipped levels ({have}); got {quality}")
    entry = shipped_card()["levels"][str(quality)]
    return load_codec(
        WEIGHTS_DIR / entry["weights"], f"{PREFIX}{quality}", quality, float(entry.get("step", 1.0)), entry.get("level")
    )


def codec_for_file(
    name: str, ident: str, given: Optional[PathLike] = None, where: str = "the file", level: Optional[int] = None
) -> Codec:
    """The codec that decodes a file whose header names ``name`` and ``ident``: ``given`` (a
    checkpoint, at the file's rate ``level`` when it is variable-rate) when passed, else the
    shipped codec of that name; refused in one line when it is not the one that wrote the file."""
    if given is not None:
        codec = load_codec(given, level=level)
    elif name.startswith(PREFIX) and name[len(PREFIX) :].isdigit():
        codec = load_quality(int(name[len(PREFIX) :]))
    else:
        raise CodecNotFoundError(
            f"{where} was written by the codec {name} (id {ident}), which is not shipped: pass it with --checkpoint"
        )
    if codec.ident != ident:
        raise CodecNotFoundError(
            f"{where} was written by the codec {name} (id {ident}); "
            f"{codec.name} has id {codec.ident}: decode with the codec "
            f"that wrote it"
        )
    return codec


def ship(checkpoint: PathLike, tag: str, out_dir: PathLike = WEIGHTS_DIR) -> Path:
    """Write ``checkpoint``'s codec as ``sar_hyperprior_<tag>.pt.xz``: float16 weights (the
    coding table in float64) and the architecture; returns the path (the card's levels name
    it)."""
    from ...trained import load_trained, read_checkpoint

    source = read_checkpoint(checkpoint)
    model = load_trained(checkpoint).model
    model.update()
    state = {k: (v if k.endswith("pmf") else v.half()) for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(
        {
            "format": "skiplab.sar_codec/1",
            "format_version": 2,
            "arch": source["arch"],
            "model": state,
            "codec": source.get("codec"),
            "tile_size": source.get("tile_size"),
            "radiometry": source.get("radiometry"),
            "config": source.get("config"),
        },
        buffer,
    )
    path = Path(out_dir) / f"sar_hyperprior_{tag}{SUFFIX}"
    write_bytes(path, lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return path


def ship_levels(checkpoint: PathLike, tag: str, card: dict, out_dir: PathLike = WEIGHTS_DIR) -> dict:
    """Ship a variable-rate codec as the quality levels: its weights (:func:`ship`) and the
    card ``sar_hyperprior.json``, quality Q = level Q - 1 (1 = the lowest rate), with the
    lambda of each and ``card``'s other fields (training command, data, plateau, ...).
    Refused when the levels together would exceed :data:`MAX_TOTAL_BYTES`."""
    from ...trained import load_trained

    model = load_trained(checkpoint).model
    if not isinstance(model, HyperpriorCodec) or not model.lmbdas:
        raise CodecNotFoundError(f"{checkpoint} is not a variable-rate hyperprior codec (model kwargs lmbdas: [...])")
    path = ship(checkpoint, tag, out_dir)
    if path.stat().st_size > MAX_TOTAL_BYTES:
        raise ValueError(
            f"{path.name} is {path.stat().st_size} bytes; the shipped levels must stay under {MAX_TOTAL_BYTES}"
        )
    levels = {str(q + 1): {"weights": path.name, "level": q, "lmbda": lam} for q, lam in enumerate(model.lmbdas)}
    full = {**card, "levels": levels, "lmbdas": model.lmbdas}
    write_bytes(Path(out_dir) / CARD.name, (json.dumps(full, indent=1) + "\n").encode())
    return full


__all__ = [
    "Codec",
    "CodecNotFoundError",
    "MAX_TOTAL_BYTES",
    "codec_for_file",
    "codec_id",
    "load_codec",
    "load_quality",
    "quality_levels",
    "ship",
    "ship_levels",
    "shipped_card",
]
