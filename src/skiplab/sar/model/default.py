"""The SAR autoencoder that ships with skiplab, and which model decodes a latent file.

``skiplab reconstruct SCENE --out OUT``, ``skiplab encode SCENE --out LATENT`` and
``skiplab decode LATENT --out OUT`` need no checkpoint: they use the packaged model
``src/skiplab/sar/weights/sar_ae_default.pt`` (package data, in wheels and editable installs
alike), whose card ``sar_ae_default.json`` beside it records its radiometry, latent
quantisation, training command and data, and its figures measured on real scenes.
It is trained on scenes each normalised by its own log-intensity percentiles, the
normalisation :mod:`~skiplab.sar.raster.scene_radiometry` applies at inference by default, so it
serves any calibration (linear power, digital numbers, amplitude).

    from skiplab.sar import load_default_model, reconstruct_scene
    reconstruct_scene(load_default_model(), "scene.tif", "scene_ae.tif")

A latent file records the model that wrote it (name, architecture and the SHA-256 of its
weights, :func:`~skiplab.sar.model.checkpoint.weights_sha256`): :func:`model_for_latent` decodes a
file of the packaged model with it, and a file of a user's checkpoint only with that
checkpoint, refusing in one line that names the model expected. The packaged file is
replaced by ``benchmarks/sar_default_model.py ship CHECKPOINT`` (docs/sar.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .checkpoint import PathLike, TrainedAutoencoder, load_autoencoder

DEFAULT_NAME = "sar_ae_default"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # package data of skiplab.sar
DEFAULT_WEIGHTS = WEIGHTS_DIR / f"{DEFAULT_NAME}.pt"
DEFAULT_CARD = WEIGHTS_DIR / f"{DEFAULT_NAME}.json"
MAX_BYTES = 10 * 1000 * 1000  # the packaged model is at most 10 MB (a wheel stays small)


def default_model_card() -> dict:
    """The packaged model's card (``sar_ae_default.json``): what it is, how it was trained,
    what it saw and how it scores."""
    if not DEFAULT_CARD.is_file():
        raise FileNotFoundError(f"the packaged SAR model card {DEFAULT_CARD} is missing: reinstall skiplab")
    return json.loads(DEFAULT_CARD.read_text())


def load_default_model() -> TrainedAutoencoder:
    """The packaged SAR autoencoder (a fresh copy, in evaluation mode)."""
    if not DEFAULT_WEIGHTS.is_file():
        raise FileNotFoundError(
            f"the packaged SAR model {DEFAULT_WEIGHTS} is missing: reinstall skiplab, or pass --checkpoint"
        )
    return load_autoencoder(DEFAULT_WEIGHTS)


def resolve_autoencoder(checkpoint: Optional[PathLike] = None) -> TrainedAutoencoder:
    """``checkpoint``'s autoencoder when given, else the packaged default."""
    return load_default_model() if checkpoint is None else load_autoencoder(checkpoint)


def written_by(ae: TrainedAutoencoder) -> dict:
    """What a latent file records of the model that wrote it."""
    return dict(model_name=ae.name, weights_sha256=ae.weights_sha256)


def _writer(record: dict) -> str:
    """The model a latent file's header (or .npz meta) names, in one phrase."""
    name = record.get("model_name") or "an unnamed checkpoint"
    sha = record.get("weights_sha256") or record.get("weights") or "?"
    return f"{name} ({record.get('model', '?')}, weights sha256 {sha[:16]})"


def is_from(ae: TrainedAutoencoder, record: dict) -> bool:
    """True when the file's record names ``ae``'s weights (SHA-256, or the short fingerprint
    of files written before the SHA-256 was recorded)."""
    if record.get("weights_sha256"):
        return record["weights_sha256"] == ae.weights_sha256
    return record.get("weights") == ae.fingerprint


def model_for_latent(
    record: dict, checkpoint: Optional[PathLike | TrainedAutoencoder], source: str
) -> TrainedAutoencoder:
    """The model that decodes a latent file whose header/meta is ``record``: ``checkpoint``
    when given (the caller checks it is the one), else the packaged model when it wrote the
    file; otherwise a one-line ``ValueError`` naming the model expected."""
    if isinstance(checkpoint, TrainedAutoencoder):
        return checkpoint
    if checkpoint is not None:
        return load_autoencoder(checkpoint)
    default = load_default_model()
    if is_from(default, record):
        return default
    raise ValueError(
        f"{source} was written by {_writer(record)}, not by the packaged default "
        f"model ({default.label}): pass --checkpoint with the checkpoint that "
        f"encoded it"
    )


def mismatch_message(record: dict, ae: TrainedAutoencoder, source: str) -> str:
    """One line: the file was written by another model than ``ae``; what to pass instead."""
    default = DEFAULT_WEIGHTS.is_file() and is_from(load_default_model(), record)
    hint = (
        "omit --checkpoint (it is the packaged default model)"
        if default
        else "decode with the checkpoint that encoded it"
    )
    return f"{source} was written by {_writer(record)}; the checkpoint is {ae.label} -- {hint}"


__all__ = [
    "DEFAULT_CARD",
    "DEFAULT_NAME",
    "DEFAULT_WEIGHTS",
    "MAX_BYTES",
    "default_model_card",
    "is_from",
    "load_default_model",
    "mismatch_message",
    "model_for_latent",
    "resolve_autoencoder",
    "written_by",
]
