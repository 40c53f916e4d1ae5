"""Ship a trained SAR autoencoder: strip it to what inference needs, measure it, write its card.

:func:`ship_model` turns any ``sar_ae_*`` checkpoint of ``skiplab train --task reconstruct``
(or ``skiplab ablate autoencoder``) into the packaged model of
:mod:`skiplab.sar.model.default`:

1. :func:`strip_checkpoint` keeps the weights (the EMA copy when there is one; float32 or
   bfloat16), the architecture, the training radiometry, tile size and looks -- no optimiser,
   no RNG state, no history -- and refuses a result over 10 MB;
2. :func:`measure` scores the *stripped* model (bfloat16 storage rounds the weights) on real
   scenes the way a user meets it: each scene through ``encode`` to the ``.sarl`` bytes at
   several latent bit depths and back through ``decode``, the rate being the file's bits per
   pixel (header included) and the PSNR taken in the normalised log domain of the scene's own
   radiometry (the one written in the file); beside it the unquantised reconstruction and
   JPEG 2000 rate-matched to the same bpp on the same normalised image
   (:func:`skiplab.sar.rate_distortion.codecs.jpeg2000_at`) -- the codec a user would try instead;
3. the card (JSON, beside the weights) records the radiometry, the quantiser, the exact
   training configuration and command, the data seen (and which measured scenes were among
   them), the figures, sizes and SHA-256 sums.

``benchmarks/sar_default_model.py ship CHECKPOINT`` is the command line of this module.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ...atomic import write_bytes
from ...trained import checkpoint_header
from .checkpoint import PathLike, TrainedAutoencoder, load_autoencoder
from .default import DEFAULT_NAME, DEFAULT_WEIGHTS, MAX_BYTES
from ..raster.io import read_raster

FORMAT = "skiplab.sar_model/1"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def strip_checkpoint(checkpoint: PathLike, *, name: str = DEFAULT_NAME, dtype: str = "float32") -> dict:
    """The inference-only state of ``checkpoint`` (loadable by
    :func:`~skiplab.sar.model.checkpoint.load_autoencoder`), weights stored as ``dtype``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}; found {dtype!r}")
    ae = load_autoencoder(checkpoint)
    weights = {
        k: (v.detach().to(DTYPES[dtype]) if v.is_floating_point() else v.detach()).clone()
        for k, v in ae.model.state_dict().items()
    }
    return {
        "format": FORMAT,
        **checkpoint_header(ae.model),
        "name": name,
        "config": {"model": ae.model_name, "model_kwargs": ae.model_kwargs, "tile_size": ae.tile},
        "model": weights,
        "radiometry": ae.radiometry.to_dict(),
        "looks": ae.looks,
        "tile_size": ae.tile,
        **({"compression": ae.extra["compression"]} if "compression" in ae.extra else {}),
    }


def _psnr(pred: np.ndarray, target: np.ndarray) -> float:
    from ..training.metrics import psnr

    return float(
        psnr(
            torch.from_numpy(np.asarray(pred, np.float32))[None, None],
            torch.from_numpy(np.asarray(target, np.float32))[None, None],
        )
    )


def measure_scene(
    ae: TrainedAutoencoder,
    scene: Union[np.ndarray, PathLike],
    bits: Sequence[int] = (4, 6, 8),
    *,
    jpeg2000: bool = True,
) -> dict:
    """One scene's figures: for each bit depth the ``.sarl`` file's bpp, the PSNR (dB, scene
    radiometry's normalised log domain, data range 1) of its decoded scene and of JPEG 2000
    at the same bpp; the PSNR of the unquantised reconstruction and of the best constant
    image (the scene's mean normalised level)."""
    from ..rate_distortion.codecs import jpeg2000_at
    from ..inference.scene import reconstruct_array
    from ..codec.latent_file import decode_scene_bytes, encode_scene_bytes, header_radiometry, unpack

    data = scene if isinstance(scene, np.ndarray) else read_raster(scene).data
    data = np.asarray(data, dtype=np.float64)
    rows = []
    for b in bits:
        encoded = encode_scene_bytes(ae, data, bits=int(b))
        radiometry = header_radiometry(unpack(encoded.data)[0])
        target = np.asarray(radiometry.forward(data))
        decoded = decode_scene_bytes(ae, encoded.data)
        row = dict(
            bits=int(b),
            bpp=round(encoded.bpp, 4),
            coder=encoded.coder,
            entropy_bpp=round(encoded.entropy_bpp, 4),
            psnr=round(_psnr(radiometry.forward(decoded), target), 3),
        )
        if jpeg2000:
            match = jpeg2000_at(target, encoded.bpp)
            row.update(
                jpeg2000_bpp=round(match.coded.bpp(), 4), jpeg2000_psnr=round(_psnr(match.coded.image, target), 3)
            )
        rows.append(row)
    from ..raster.scene_radiometry import scene_radiometry

    radiometry = scene_radiometry(ae.radiometry, data)
    target = np.asarray(radiometry.forward(data), np.float64)
    unquantised = reconstruct_array(ae, data)
    return dict(
        rates=rows,
        psnr_unquantised=round(_psnr(radiometry.forward(unquantised), target), 3),
        psnr_constant=round(_psnr(np.full_like(target, target.mean()), target), 3),
    )


def measure(
    ae: TrainedAutoencoder, scenes: Sequence[PathLike], bits: Sequence[int] = (4, 6, 8), seen: Sequence[str] = ()
) -> dict:
    """:func:`measure_scene` on each scene, and the means over scenes per bit depth;
    ``seen``: names (file stems) of scenes the model was trained on, flagged in the table."""
    per_scene = {}
    for path in scenes:
        path = Path(path)
        per_scene[path.stem] = dict(measure_scene(ae, path, bits), seen_in_training=path.stem in seen)
    summary = []
    for i, b in enumerate(bits):
        rows = [s["rates"][i] for s in per_scene.values()]
        mean = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0] if k not in ("bits", "coder")}
        summary.append(dict(bits=int(b), **mean))
    means = {
        k: round(float(np.mean([s[k] for s in per_scene.values()])), 3) for k in ("psnr_unquantised", "psnr_constant")
    }
    return dict(
        scenes=per_scene,
        summary=dict(rates=summary, **means),
        domain="PSNR in dB on normalised log-intensity (the scene's own 0.5-99.5 % "
        "dB bounds mapped to 0 and 1), data range 1, against the input scene; "
        "bpp = bits of the whole .sarl file / scene pixels",
    )


def _training_record(
    checkpoint: Path, train_command: Optional[str], train_data: Optional[str]
) -> tuple[dict, list[str]]:
    """What the checkpoint says of its training, and the real scenes it saw (by stem)."""
    from ...train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    config = dict(state.get("config") or {})
    resolved = checkpoint.parent.parent / "config.yaml"  # runs/<name>/checkpoints/best.pt
    if train_command is None and resolved.is_file():
        train_command = f"skiplab train --config {resolved}"
    if not train_command:
        raise ValueError(
            f"no training command for {checkpoint} (no {resolved}): pass "
            f"--train-command with the exact command that trained it"
        )
    record = dict(
        checkpoint=str(checkpoint),
        command=train_command,
        data=train_data,
        config=json.loads(json.dumps(config, default=str)),
        step=state.get("step"),
        epoch=state.get("epoch"),
        best=state.get("best"),
    )
    seen: list[str] = []
    spec = str(config.get("data", ""))
    if spec.startswith("sar:"):
        info = Path(spec[4:]) / "data.json"
        if info.is_file():
            record["data_manifest"] = json.loads(info.read_text())
            seen = list(record["data_manifest"].get("real", []))
    return json.loads(json.dumps(record, default=str)), seen


def ship_model(
    checkpoint: PathLike,
    *,
    out: Optional[PathLike] = None,
    scenes: Union[PathLike, Sequence[PathLike], None] = None,
    dtype: str = "float32",
    bits: Sequence[int] = (4, 6, 8),
    train_command: Optional[str] = None,
    train_data: Optional[str] = None,
    name: str = DEFAULT_NAME,
) -> dict:
    """Strip ``checkpoint``, check it fits in 10 MB, measure it on ``scenes`` (a directory of
    ``.npy``/``.tif`` rasters or a list), and write ``out`` (default: the packaged model) and
    its card ``out.with_suffix('.json')``; returns the card."""
    import io

    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else DEFAULT_WEIGHTS
    training, seen = _training_record(checkpoint, train_command, train_data)
    buffer = io.BytesIO()
    torch.save(strip_checkpoint(checkpoint, name=name, dtype=dtype), buffer)
    blob = buffer.getvalue()
    if len(blob) > MAX_BYTES:
        raise ValueError(
            f"the stripped model is {len(blob) / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:g} "
            f"MB a packaged model may take; try --dtype bfloat16 or a narrower model"
        )
    with tempfile.TemporaryDirectory() as tmp:  # measure what ships, not the source weights
        (Path(tmp) / out.name).write_bytes(blob)
        ae = load_autoencoder(Path(tmp) / out.name)
    if scenes is None:
        paths: list[Path] = []
    elif isinstance(scenes, (str, os.PathLike)) and Path(scenes).is_dir():
        paths = sorted(p for p in Path(scenes).iterdir() if p.suffix.lower() in (".npy", ".tif", ".tiff"))
    else:
        paths = [Path(scenes)] if isinstance(scenes, (str, os.PathLike)) else [Path(p) for p in scenes]
    card = dict(
        format="skiplab.sar_model_card/1",
        name=name,
        file=out.name,
        size_bytes=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        weights_sha256=ae.weights_sha256,
        weights_dtype=dtype,
        model=ae.model_name,
        model_kwargs=ae.model_kwargs,
        parameters=sum(p.numel() for p in ae.model.parameters()),
        latent=dict(
            channels=ae.latent_channels, reduction=ae.reduction, values_per_pixel=ae.latent_channels / ae.reduction**2
        ),
        radiometry=dict(
            default="scene",
            scene=(
                "per scene: the scene's own 0.5 and 99.5 % of 10 log10(I) over valid positive pixels "
                "are mapped to 0 and 1 (skiplab.sar.raster.scene_radiometry), written into the latent "
                "file; any calibration or unit"
            ),
            model=ae.radiometry.to_dict(),
            model_note="the fixed bounds of --radiometry model (the training scenes' common range)",
        ),
        quantisation=dict(
            method="uniform, per latent channel, range = the scene's latent min/max rounded "
            "outwards to float16 and stored in the file (skiplab.sar.codec.quantize.UniformQuantizer)",
            default_bits=8,
            measured_bits=[int(b) for b in bits],
            trained=(
                dict((k, v) for k, v in ae.extra.get("compression", {}).items() if k in ("latent_bits", "train_bits"))
                or None
            ),
            coder="auto: the shortest of raw, zlib, lzma and constriction's gaussian/laplace ANS "
            "when installed (skiplab.sar.codec.entropy)",
        ),
        training=training,
        tile=ae.tile,
        looks=ae.looks,
        measured=measure(ae, paths, bits, seen) if paths else None,
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        shipped_by="benchmarks/sar_default_model.py ship (skiplab.sar.model.card.ship_model)",
    )
    text = json.dumps(card, indent=1, default=str) + "\n"
    write_bytes(out, blob)  # both files only once everything is measured
    write_bytes(out.with_suffix(".json"), text.encode())
    return json.loads(text)


__all__ = ["FORMAT", "measure", "measure_scene", "ship_model", "strip_checkpoint"]
