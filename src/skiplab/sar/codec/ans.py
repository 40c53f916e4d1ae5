"""Entropy coding of a hyperprior codec's symbols with asymmetric numeral systems (Duda 2013)
through ``constriction`` (Bamler 2022; ``pip install skiplab[codec]``).

One ANS stream holds, for each coding tile in order, the hyper-latent z (channel by channel,
each channel's values under its categorical table from the learned factorised density,
:meth:`~skiplab.sar.codec.factorized_density.FactorizedDensity.pmf_table`) and then the
latent y (each value under a quantised Gaussian of zero mean and the table scale of its
index, :mod:`~skiplab.sar.codec.gaussian_conditional`). ANS is a stack, so the encoder pushes
the tiles in reverse and the decoder pops z of a tile, computes that tile's scale indexes
from it (the model's hyper-synthesis, exactly as the encoder did) and pops its y.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .factorized_density import Z_RANGE
from .gaussian_conditional import Y_RANGE, scale_table
from .hyperprior import Symbols


def _constriction():
    try:
        import constriction
    except ImportError:
        raise ValueError(
            "the hyperprior codec needs constriction: pip install 'skiplab[codec]' (or constriction>=0.4)"
        ) from None
    return constriction


def _gaussian_model():
    return _constriction().stream.model.QuantizedGaussian(-Y_RANGE, Y_RANGE)


def _z_models(pmf: torch.Tensor) -> list:
    categorical = _constriction().stream.model.Categorical
    return [categorical(np.asarray(p, dtype=np.float64), perfect=False) for p in pmf.numpy()]


def _y_arrays(index: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    stds = scale_table().numpy()[index.reshape(-1).numpy()]
    return np.zeros_like(stds), stds


def encode_tiles(tiles: Sequence[Symbols], pmf: torch.Tensor) -> np.ndarray:
    """The ANS words (uint32) of every tile's z and y (decode with :func:`decode_tiles`)."""
    coder = _constriction().stream.stack.AnsCoder()
    z_models, gaussian = _z_models(pmf), _gaussian_model()
    for sym in reversed(tiles):
        means, stds = _y_arrays(sym.index)
        coder.encode_reverse(sym.y.reshape(-1).numpy().astype(np.int32), gaussian, means, stds)
        z = sym.z[0].reshape(sym.z.shape[1], -1).numpy().astype(np.int32) + Z_RANGE
        for c in reversed(range(len(z_models))):
            coder.encode_reverse(z[c], z_models[c])
    return coder.get_compressed()


def decode_tiles(
    words: np.ndarray,
    pmf: torch.Tensor,
    z_shapes: Sequence[tuple[int, int]],
    y_channels: int,
    index_of: Callable[[torch.Tensor], torch.Tensor],
) -> list[Symbols]:
    """The symbols of every tile from :func:`encode_tiles`' words; ``z_shapes`` the (h, w) of
    each tile's z, ``index_of(z [1, N, h, w]) -> index [1, M, 4h, 4w]`` the model's scale
    indexes (y is 4x z's resolution)."""
    coder = _constriction().stream.stack.AnsCoder(np.asarray(words, dtype=np.uint32))
    z_models, gaussian = _z_models(pmf), _gaussian_model()
    out = []
    for h, w in z_shapes:
        z = np.stack([coder.decode(model, h * w) for model in z_models]) - Z_RANGE
        z = torch.from_numpy(z.astype(np.int32)).reshape(1, len(z_models), h, w)
        index = index_of(z)
        means, stds = _y_arrays(index)
        y = coder.decode(gaussian, means, stds)
        y = torch.from_numpy(np.asarray(y, dtype=np.int32)).reshape(1, y_channels, 4 * h, 4 * w)
        out.append(Symbols(y, z, index))
    return out


__all__ = ["decode_tiles", "encode_tiles"]
