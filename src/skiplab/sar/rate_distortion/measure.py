"""Rate-distortion of SAR autoencoders against JPEG, JPEG 2000 and average pooling, measured.

For every tile, one normalisation -- the scene radiometry of :mod:`skiplab.sar.raster.scene_radiometry`
(0.5-99.5 % of the tile's log-intensity) -- gives the image ``n`` in [0, 1] that every method
codes and is scored on:

- each autoencoder at each ``bits`` (1-16 per latent value): the tile written as a latent
  file (:mod:`skiplab.sar.codec.latent_file`, header included), decoded, mapped back to ``n``;
- JPEG and JPEG 2000 of the 8-bit ``n``, rate-matched per tile to the autoencoder's
  measured bpp (within 5 %, :func:`skiplab.sar.rate_distortion.codecs.match_rate`), and on their own at
  fixed reference rates;
- average pooling to the latent's value count, quantised to the same bits, bilinear back;
- the Lee filter (7x7, looks from the ENL), uncompressed: the despeckling reference.

Which question each number answers:

- **PSNR / SSIM against the input** (data range 1): how faithfully the code stores the
  image it was given, speckle included -- the compression question.
- **PSNR / SSIM against the clean reflectivity** (synthetic tiles only, normalised with the
  speckled tile's radiometry): how close the output is to the truth; the *oracle* row
  (the speckled input itself, uncompressed) is the score of doing nothing.
- **ENL** of the output on the input's most homogeneous windows and the **ratio image**
  ``input / output`` (median; ratio of means) -- the no-reference despeckling questions on
  real scenes: how smooth the flat areas came out, and whether the mean level is kept.
PSNR is averaged per tile in dB; the PSNR of the pooled MSE is given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..training.metrics import enl, homogeneous_windows, psnr, ratio_statistics, ssim_per_image
from ..raster.io import read_raster
from ..raster.radiometry import Radiometry
from ..training.tiles import cut_tiles, list_rasters
from ..raster.speckle import synthetic_scenes
from ..model.checkpoint import PathLike, TrainedAutoencoder, load_autoencoder
from .codecs import RateMatch, avgpool_codec, avgpool_factor, jpeg2000_at, jpeg_at
from .lee import lee_filter
from ..codec.latent_file import decode_scene_bytes, encode_scene_bytes, header_radiometry, unpack
from ..raster.scene_radiometry import scene_radiometry

DEFAULT_BITS = (2, 4, 6, 8)
REFERENCE_RATES = (0.125, 0.25, 0.5, 1.0, 2.0)
REFERENCE = Radiometry.fixed(-100.0, 0.0)  # only its percentiles/quantity matter per scene


@dataclass
class RDTile:
    """One tile: ``speckled`` intensity [H, W] (the input) and its ``clean`` reflectivity."""

    name: str
    speckled: np.ndarray
    clean: Optional[np.ndarray] = None


def real_tiles(source: Union[PathLike, Sequence[PathLike]], tile: int = 256) -> list[RDTile]:
    """Non-overlapping ``tile`` px tiles of every raster in ``source`` (files or a folder)."""
    tiles = []
    for path in list_rasters(source):
        data = np.asarray(read_raster(path).values("intensity"), dtype=np.float32)
        cut = cut_tiles(data, tile, tile)
        for i, t in enumerate(cut.tiles):
            tiles.append(
                RDTile(f"{path.stem}" + (f"#{i}" if len(cut.tiles) > 1 else ""), np.asarray(t, dtype=np.float32))
            )
    if not tiles:
        raise ValueError(f"no {tile} px tile in {source}")
    return tiles


def synthetic_tiles(count: int, tile: int = 256, looks: float = 2.0, seed: int = 1) -> list[RDTile]:
    """``count`` synthetic speckled scenes with their clean reflectivity (held-out seed 1)."""
    clean, speckled = synthetic_scenes(count, tile, looks=looks, seed=seed)
    return [RDTile(f"synthetic-{i}", s.numpy(), c.numpy()) for i, (c, s) in enumerate(zip(clean, speckled))]


@dataclass
class Point:
    """One method at one rate on all tiles: per-tile measures, averaged by :meth:`row`."""

    method: str
    family: str  # "model", "jpeg", "jpeg2000", "avgpool", "oracle"
    setting: str
    values: dict = field(default_factory=dict)  # name -> list over tiles

    def add(self, **measures: float) -> None:
        for k, v in measures.items():
            self.values.setdefault(k, []).append(float(v))

    def mean(self, key: str) -> float:
        v = self.values.get(key)
        return float(np.mean(v)) if v else float("nan")

    def row(self) -> dict:
        out = dict(method=self.method, family=self.family, setting=self.setting, tiles=len(self.values.get("psnr", [])))
        for k in self.values:
            out[k] = self.mean(k)
        if "mse" in self.values:
            mse = self.mean("mse")
            out["psnr_pooled"] = float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")
        return out


def measures(
    out_n: np.ndarray, n: np.ndarray, clean_n: Optional[np.ndarray], radiometry: Radiometry, tile: RDTile, windows
) -> dict:
    """PSNR/SSIM against the input (and the clean tile), ENL and ratio statistics."""
    o = torch.from_numpy(np.asarray(out_n, dtype=np.float32))[None, None]
    x = torch.from_numpy(np.asarray(n, dtype=np.float32))[None, None]
    m = dict(
        psnr=float(psnr(o, x)[0]),
        ssim=float(ssim_per_image(o, x)[0]),
        mse=float(torch.mean((o.double() - x.double()) ** 2)),
    )
    if clean_n is not None:
        c = torch.from_numpy(np.asarray(clean_n, dtype=np.float32))[None, None]
        m.update(psnr_clean=float(psnr(o, c)[0]), ssim_clean=float(ssim_per_image(o, c)[0]))
    out_i = torch.from_numpy(np.asarray(radiometry.inverse_intensity(out_n), dtype=np.float64))
    m["enl"] = enl(out_i, windows).enl
    stats = ratio_statistics(torch.from_numpy(tile.speckled.astype(np.float64))[None, None], out_i[None, None])
    m.update(ratio_median=float(stats.median[0]), ratio_of_means=float(stats.of_means[0]))
    return m


def _add_match(point: Point, match: RateMatch, measures: dict) -> None:
    point.add(bpp=match.coded.bpp(), rate_error=abs(match.error), matched=float(match.matched), **measures)


def rate_distortion(
    checkpoints: Sequence[Union[TrainedAutoencoder, PathLike]],
    tiles: Sequence[RDTile],
    *,
    bits: Sequence[int] = DEFAULT_BITS,
    coder: str = "auto",
    reference_rates: Sequence[float] = REFERENCE_RATES,
    progress: Optional[Callable[[str], None]] = None,
) -> list[Point]:
    """Every method at every rate on ``tiles`` (see the module documentation)."""
    models = [c if isinstance(c, TrainedAutoencoder) else load_autoencoder(c) for c in checkpoints]
    if len(bits) < 1:
        raise ValueError("need at least one bits setting")
    points: dict[str, Point] = {}

    def point(method: str, family: str, setting: str) -> Point:
        return points.setdefault(method, Point(method, family, setting))

    for k, tile in enumerate(tiles):
        if progress:
            progress(f"tile {k + 1}/{len(tiles)} {tile.name}")
        r = scene_radiometry(models[0].radiometry if models else REFERENCE, tile.speckled)
        n = r.forward(tile.speckled.astype(np.float64)).astype(np.float64)
        clean_n = None if tile.clean is None else r.forward(tile.clean.astype(np.float64)).astype(np.float64)
        windows = homogeneous_windows(torch.from_numpy(tile.speckled.astype(np.float64)))
        measure = lambda out_n: measures(out_n, n, clean_n, r, tile, windows)  # noqa: E731
        point("oracle: speckled input", "oracle", "uncompressed").add(bpp=32.0, **measure(n))
        lee = r.forward(lee_filter(tile.speckled)).astype(np.float64)
        point("Lee filter 7x7 (uncompressed)", "reference", "uncompressed").add(bpp=32.0, **measure(lee))
        for rate in reference_rates:
            for family, fn in (("jpeg", jpeg_at), ("jpeg2000", jpeg2000_at)):
                match = fn(n, rate)
                _add_match(
                    point(f"{family} @ {rate:g} bpp", family, f"{rate:g} bpp"), match, measure(match.coded.image)
                )
        for ae in models:
            label = f"{ae.model_name} C={ae.latent_channels}"
            if ae.path is not None:
                label += f" ({Path(ae.path).parent.parent.name})"
            for b in bits:
                enc = encode_scene_bytes(
                    ae, tile.speckled, bits=b, coder=coder, tile=min(tile.speckled.shape) // ae.reduction * ae.reduction
                )
                rt = header_radiometry(unpack(enc.data)[0])
                out_n = rt.forward(decode_scene_bytes(ae, enc.data)).astype(np.float64)
                p = point(f"{label} b={b}", "model", f"{b} bits")
                p.add(bpp=enc.bpp, payload_bpp=enc.payload_bpp, entropy_bpp=enc.entropy_bpp, **measure(out_n))
                for family, fn in (("jpeg", jpeg_at), ("jpeg2000", jpeg2000_at)):
                    match = fn(n, enc.bpp)
                    _add_match(
                        point(f"{family} matched to {label} b={b}", family + "-matched", f"{b} bits"),
                        match,
                        measure(match.coded.image),
                    )
                pooled = avgpool_codec(n, avgpool_factor(ae.latent_channels, ae.reduction), b, coder)
                point(
                    f"avgpool+bilinear {ae.reduction / np.sqrt(ae.latent_channels):.3g}x b={b}", "avgpool", f"{b} bits"
                ).add(bpp=pooled.bpp(), **measure(pooled.image))
    return list(points.values())


__all__ = [
    "DEFAULT_BITS",
    "Point",
    "RDTile",
    "measures",
    "REFERENCE_RATES",
    "rate_distortion",
    "real_tiles",
    "synthetic_tiles",
]
