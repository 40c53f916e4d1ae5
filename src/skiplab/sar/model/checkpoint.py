"""A trained SAR autoencoder loaded from a checkpoint, with the radiometry it was trained with.

A checkpoint written by :func:`skiplab.train.fit` for ``task="reconstruct"`` holds the run's
``config`` (``model``, ``model_kwargs``), the weights (``model``, and ``ema`` when an EMA was
kept -- preferred, as evaluation used it) and the SAR normalisation
(:meth:`skiplab.sar.Radiometry.to_dict`). Without that normalisation the network's [0, 1]
output cannot be mapped back to physical units, so such a checkpoint is refused.

:func:`load_autoencoder` returns a :class:`TrainedAutoencoder`; its :meth:`check_raster`
refuses a raster the normalisation was not fitted for (integer digital numbers against a
float-trained model, amplitude against intensity) with a ``ValueError``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ..raster.radiometry import Radiometry

PathLike = Union[str, Path]


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 (hex) of every tensor of ``model``'s state dict -- names, shapes, dtypes and
    values, in state-dict order: the identity of the weights, whatever file they came from
    (a latent file records it, so that it is decoded with the weights that encoded it)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass
class TrainedAutoencoder:
    """A model with ``encode``/``decode`` in evaluation mode, and what inference needs.

    ``tile``: the tile size the model was trained on and ``looks`` the speckle looks of the
    training data (None where the checkpoint does not say); ``extra``: the checkpoint's
    ``compression`` figures, if any; ``name``: a packaged model's name (the checkpoint's
    ``name`` entry) or the checkpoint path; ``weights_sha256``: :func:`weights_sha256`."""

    model: nn.Module
    radiometry: Radiometry
    model_name: str
    model_kwargs: dict
    path: Optional[Path] = None
    tile: Optional[int] = None
    looks: Optional[float] = None
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)
    name: str = ""
    weights_sha256: str = ""

    @property
    def label(self) -> str:
        """Who this model is, in one phrase: its name (a packaged model's, or the checkpoint
        path), architecture and the start of its weights' SHA-256."""
        name = self.name or (str(self.path) if self.path else self.model_name)
        return f"{name} ({self.model_name}, weights sha256 {self.weights_sha256[:16]})"

    @property
    def reduction(self) -> int:
        """The encoder's total stride: tile sides must be multiples of it."""
        return int(getattr(self.model, "reduction", 1))

    @property
    def latent_channels(self) -> int:
        return int(self.model.latent_channels)

    def check_raster(self, dtype: Union[str, np.dtype], quantity: Optional[str] = None) -> None:
        """``ValueError`` when a raster of ``dtype`` (and ``quantity``, if known) does not
        fit the normalisation this model was trained with."""
        where = f" (checkpoint {self.path})" if self.path else ""
        try:
            self.radiometry.check_compatible(dtype, quantity)
        except ValueError as err:
            raise ValueError(f"{err}{where}") from None

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def load_autoencoder(path: PathLike, *, use_ema: bool = True) -> TrainedAutoencoder:
    """The checkpoint's autoencoder (:func:`skiplab.load_trained`: its recorded architecture,
    the EMA weights when present and ``use_ema``) with its radiometry; a clear ``ValueError``
    for a checkpoint of a model that has no ``encode``/``decode`` or that lacks the radiometry."""
    from ...errors import CheckpointError
    from ...trained import load_trained

    path = Path(path)
    model, meta = load_trained(path, use_ema=use_ema)
    if meta.radiometry is None:
        raise CheckpointError(
            f"{path} holds no SAR radiometry (the normalisation of the training "
            f"data), so its [0, 1] output cannot be mapped back to physical "
            f"units; train it with task 'reconstruct' on SAR data (skiplab train "
            f"--task reconstruct)"
        )
    if not (hasattr(model, "encode") and hasattr(model, "decode")):
        raise CheckpointError(
            f"{path}: {meta.model} is not an autoencoder (no encode/decode); "
            f"skiplab reconstruct needs a sar_ae_* checkpoint"
        )
    if getattr(model, "in_chans", 1) != 1:
        raise CheckpointError(
            f"{path}: {meta.model} takes {model.in_chans} input channels; SAR scenes are single-channel"
        )
    sha = weights_sha256(model)
    return TrainedAutoencoder(
        model,
        Radiometry.from_dict(meta.radiometry),
        meta.model,
        dict(meta.model_kwargs),
        path,
        meta.tile_size,
        float(meta.looks) if meta.looks is not None else None,
        sha[:16],
        {k: v for k, v in meta.extras.items() if k == "compression"},
        meta.name or str(path),
        sha,
    )
