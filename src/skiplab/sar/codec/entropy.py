"""Entropy coding of quantised latent symbols: lossless, and measured.

Coders (one byte of the latent file names the one used):

- ``raw``: each symbol packed in exactly ``b`` bits (no entropy coding: the nominal rate);
- ``zlib``: DEFLATE (RFC 1951, raw stream, level 9) of the symbols laid out channel by
  channel (``[C, N, h, w]``), 16-bit symbols split into byte planes;
- ``lzma``: LZMA2 (raw stream, preset 9 extreme) of the same bytes;
- ``gaussian`` / ``laplace``: asymmetric numeral systems (Duda 2013) through the
  ``constriction`` package (Bamler 2022; ``pip install skiplab[codec]``) with a factorised
  prior: per channel a discretised Gaussian or Laplace on the symbol grid, its mean and scale
  stored as float16 -- the factorised entropy model of Balle et al. (ICLR 2017/2018) with
  the parameters sent instead of learnt. On small latents (a 256 px scene is a few thousand
  symbols) a general-purpose coder pays for learning the statistics inside the stream; a
  two-parameter model per channel does not.
- ``auto``: every available coder, the shortest output kept.

Each ``encode_symbols`` output decodes bit-exactly with ``decode_symbols`` (tested).
"""

from __future__ import annotations

import lzma
import zlib
from typing import Callable, Optional

import numpy as np

from .quantize import check_bits, symbol_dtype

CODER_IDS = {"raw": 0, "zlib": 1, "lzma": 2, "gaussian": 3, "laplace": 4}
CODER_NAMES = {v: k for k, v in CODER_IDS.items()}
CODERS = tuple(CODER_IDS) + ("auto",)
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def constriction_available() -> bool:
    try:
        import constriction  # noqa: F401
    except ImportError:
        return False
    return True


def available_coders() -> list[str]:
    """The coders usable here (``gaussian``/``laplace`` need ``constriction``)."""
    names = ["raw", "zlib", "lzma"]
    return names + (["gaussian", "laplace"] if constriction_available() else [])


def _planes(symbols: np.ndarray) -> bytes:
    """Channel-major bytes; 16-bit symbols as a plane of high bytes then one of low bytes."""
    s = np.ascontiguousarray(np.moveaxis(symbols, 1, 0))
    if s.dtype == np.uint8:
        return s.tobytes()
    return (s >> 8).astype(np.uint8).tobytes() + (s & 0xFF).astype(np.uint8).tobytes()


def _from_planes(data: bytes, shape: tuple, bits: int) -> np.ndarray:
    n, c = shape[0], shape[1]
    cm_shape = (c, n) + tuple(shape[2:])
    count = int(np.prod(shape))
    raw = np.frombuffer(data, dtype=np.uint8)
    if symbol_dtype(bits) == np.uint8:
        s = raw[:count].reshape(cm_shape)
    else:
        s = (raw[:count].astype(np.uint16) << 8) | raw[count : 2 * count].astype(np.uint16)
        s = s.reshape(cm_shape)
    return np.ascontiguousarray(np.moveaxis(s, 0, 1)).astype(symbol_dtype(bits))


def _pack(symbols: np.ndarray, bits: int) -> bytes:
    s = np.moveaxis(symbols, 1, 0).astype(np.uint16).ravel()
    bitplanes = ((s[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(bitplanes.ravel()).tobytes()


def _unpack(data: bytes, shape: tuple, bits: int) -> np.ndarray:
    count = int(np.prod(shape))
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint32)
    s = (flat.reshape(count, bits).astype(np.uint32) * weights).sum(1)
    cm_shape = (shape[1], shape[0]) + tuple(shape[2:])
    return np.ascontiguousarray(np.moveaxis(s.reshape(cm_shape), 0, 1)).astype(symbol_dtype(bits))


# ---- factorised parametric prior through constriction (ANS) -------------------------------
def _channel_params(symbols: np.ndarray, family: str) -> np.ndarray:
    """Per-channel (location, scale) as float16 [C, 2]: mean and std (Gaussian) or median and
    mean absolute deviation (Laplace), the scale floored at 0.1 symbol."""
    per_c = np.moveaxis(symbols, 1, 0).reshape(symbols.shape[1], -1).astype(np.float64)
    if family == "gaussian":
        loc, scale = per_c.mean(1), per_c.std(1)
    else:
        loc = np.median(per_c, axis=1)
        scale = np.abs(per_c - loc[:, None]).mean(1)
    return np.stack([loc, np.maximum(scale, 0.1)], 1).astype("<f2")


def _ans_model(family: str, bits: int):
    import constriction

    cls = (
        constriction.stream.model.QuantizedGaussian
        if family == "gaussian"
        else constriction.stream.model.QuantizedLaplace
    )
    return cls(0, (1 << bits) - 1)


def _ans_arrays(params: np.ndarray, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    per = int(np.prod(shape)) // shape[1]
    p = params.astype(np.float64)
    return np.repeat(p[:, 0], per), np.repeat(np.maximum(p[:, 1], 0.1), per)


def _ans_encode(symbols: np.ndarray, bits: int, family: str) -> bytes:
    import constriction

    params = _channel_params(symbols, family)
    loc, scale = _ans_arrays(params, symbols.shape)
    message = np.moveaxis(symbols, 1, 0).astype(np.int32).ravel()
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(message, _ans_model(family, bits), loc, scale)
    return params.tobytes() + coder.get_compressed().astype("<u4").tobytes()


def _ans_decode(data: bytes, shape: tuple, bits: int, family: str) -> np.ndarray:
    import constriction

    c = shape[1]
    params = np.frombuffer(data[: 4 * c], dtype="<f2").reshape(c, 2)
    loc, scale = _ans_arrays(params, shape)
    words = np.frombuffer(data[4 * c :], dtype="<u4").astype(np.uint32)
    coder = constriction.stream.stack.AnsCoder(words)
    flat = np.asarray(coder.decode(_ans_model(family, bits), loc, scale))
    cm_shape = (c, shape[0]) + tuple(shape[2:])
    return np.ascontiguousarray(np.moveaxis(flat.reshape(cm_shape), 0, 1)).astype(symbol_dtype(bits))


_ENCODERS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "raw": _pack,
    "zlib": lambda s, b: zlib.compress(_planes(s), 9, wbits=-15),
    "lzma": lambda s, b: lzma.compress(_planes(s), format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS),
    "gaussian": lambda s, b: _ans_encode(s, b, "gaussian"),
    "laplace": lambda s, b: _ans_encode(s, b, "laplace"),
}
_DECODERS: dict[str, Callable[[bytes, tuple, int], np.ndarray]] = {
    "raw": _unpack,
    "zlib": lambda d, shape, b: _from_planes(zlib.decompress(d, wbits=-15), shape, b),
    "lzma": lambda d, shape, b: _from_planes(
        lzma.decompress(d, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), shape, b
    ),
    "gaussian": lambda d, shape, b: _ans_decode(d, shape, b, "gaussian"),
    "laplace": lambda d, shape, b: _ans_decode(d, shape, b, "laplace"),
}


def encode_symbols(
    symbols: np.ndarray, bits: int, coder: str = "auto", candidates: Optional[list[str]] = None
) -> tuple[str, bytes]:
    """``(coder used, payload)`` of integer symbols [N, C, h, w] of ``bits`` bits each."""
    bits = check_bits(bits)
    symbols = np.asarray(symbols)
    if symbols.ndim != 4:
        raise ValueError(f"expected symbols [N, C, h, w]; found shape {symbols.shape}")
    if symbols.size and int(symbols.max()) >= 1 << bits:
        raise ValueError(f"a symbol {int(symbols.max())} does not fit in {bits} bits")
    if coder == "auto":
        names = candidates or available_coders()
        results = [(name, _ENCODERS[name](symbols, bits)) for name in names]
        return min(results, key=lambda r: len(r[1]))
    if coder not in CODER_IDS:
        raise ValueError(f"unknown entropy coder {coder!r}; expected one of {', '.join(CODERS)}")
    if coder in ("gaussian", "laplace") and not constriction_available():
        raise ValueError(
            f"the {coder!r} coder needs the constriction package: pip install 'skiplab[codec]' (or use --coder lzma)"
        )
    return coder, _ENCODERS[coder](symbols, bits)


def decode_symbols(coder: str, payload: bytes, shape: tuple, bits: int) -> np.ndarray:
    """Inverse of :func:`encode_symbols`: symbols of ``shape`` [N, C, h, w]."""
    if coder not in _DECODERS:
        raise ValueError(f"unknown entropy coder {coder!r}")
    if coder in ("gaussian", "laplace") and not constriction_available():
        raise ValueError(
            f"this latent file was coded with {coder!r}, which needs the "
            f"constriction package: pip install 'skiplab[codec]'"
        )
    return _DECODERS[coder](payload, tuple(int(s) for s in shape), check_bits(bits))


__all__ = [
    "CODERS",
    "CODER_IDS",
    "CODER_NAMES",
    "available_coders",
    "constriction_available",
    "decode_symbols",
    "encode_symbols",
]
