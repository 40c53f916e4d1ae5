"""skiplab.sar: everything SAR (single-channel synthetic aperture radar intensity), in one
package that plugs into the core through its registries.

* rasters -- :mod:`~skiplab.sar.io` (GeoTIFF/TIFF, PNG, .npy; tags and no-data kept),
  :mod:`~skiplab.sar.raster_sink` (rasters written strip by strip);
* radiometry -- :mod:`~skiplab.sar.radiometry` (intensity/amplitude/dB, the normalised
  log-intensity a model sees and its inverse);
* speckle and synthetic scenes -- :mod:`~skiplab.sar.speckle`;
* tiles, augmentation, loaders and data specs -- :mod:`~skiplab.sar.tiles`,
  :mod:`~skiplab.sar.load` (registers ``sar:PATH`` and ``synthetic:sar`` / ``synthetic-sar``);
* losses -- :mod:`~skiplab.sar.losses` (L1, MSE, SSIM, MS-SSIM, Gamma NLL);
* the ``reconstruct`` task -- :mod:`~skiplab.sar.task` (registered on import);
* metrics -- :mod:`~skiplab.sar.metrics` (PSNR, SSIM, ENL, ratio image, compression);
* whole-scene inference and latent files -- :mod:`~skiplab.sar.checkpoint`,
  :mod:`~skiplab.sar.inference`, :mod:`~skiplab.sar.latent`;
* the packaged default autoencoder -- :mod:`~skiplab.sar.default_model`
  (``load_default_model()``, its card ``default_model_card()``), shipped by
  :mod:`~skiplab.sar.model_card`;
* radiometry that follows the scene -- :mod:`~skiplab.sar.scene_radiometry`;
* the codec (imported on demand) -- :mod:`~skiplab.sar.quantize` (uniform latent quantiser,
  ``LatentQuantizer``), :mod:`~skiplab.sar.entropy` (zlib, lzma, ANS via constriction),
  :mod:`~skiplab.sar.latent_file` (the ``.sarl`` compressed scene), :mod:`~skiplab.sar.codecs`
  (JPEG, JPEG 2000, average pooling at matched bpp), :mod:`~skiplab.sar.rate_distortion`
  and :mod:`~skiplab.sar.rd_report` (``skiplab sar-rd``);
* the residual-placement ablation -- :mod:`~skiplab.sar.ablate_autoencoder` (not imported
  here: ``from skiplab.sar.ablate_autoencoder import run_ablation``).

The architectures (``sar_ae_*``, U-Nets) are in :mod:`skiplab.models`. The core finds this
package by itself when a task or data kind is missing (:mod:`skiplab.plugins`), so
``fit(TrainConfig(task="reconstruct", data="sar:PATH"))`` works without importing it first.

    from skiplab.sar import load_autoencoder, load_default_model, reconstruct_scene
    reconstruct_scene(load_default_model(), "scene.tif", "scene_ae.tif")    # packaged model
    ae = load_autoencoder("runs/ae/checkpoints/best.pt")                      # your own
    reconstruct_scene(ae, "scene.tif", "scene_ae.tif")
"""

from .checkpoint import TrainedAutoencoder, load_autoencoder
from .default_model import default_model_card, load_default_model
from .inference import InferenceResult, TileGrid, make_grid, reconstruct_array, reconstruct_scene
from .io import Raster, read_raster, write_raster
from .latent import decode_latent, encode_scene, read_latent
from .load import load_sar, renormalise
from .losses import build_loss
from .metrics import (ENLResult, RatioStats, bits_per_pixel, compression_ratio, enl, enl_per_image,
                      homogeneous_windows, psnr, ratio_statistics, reconstruction_metrics,
                      ssim_per_image)
from .radiometry import Radiometry, amplitude_to_intensity, intensity_to_amplitude
from .speckle import add_speckle, gamma_speckle, synthetic_scene, synthetic_scenes
from .task import ReconstructionMeter, ReconstructTask
from .tiles import (SARAugmentation, SARTileDataset, SARTileLoader, cut_tiles, load_sar_tiles,
                    synthetic_sar_tiles, tile_positions)

__all__ = [
    "TrainedAutoencoder", "load_autoencoder", "default_model_card", "load_default_model",
    "InferenceResult", "TileGrid", "make_grid", "reconstruct_array", "reconstruct_scene",
    "Raster", "read_raster", "write_raster",
    "decode_latent", "encode_scene", "read_latent",
    "load_sar", "renormalise", "build_loss",
    "ENLResult", "RatioStats", "bits_per_pixel", "compression_ratio", "enl", "enl_per_image",
    "homogeneous_windows", "psnr", "ratio_statistics", "reconstruction_metrics", "ssim_per_image",
    "Radiometry", "amplitude_to_intensity", "intensity_to_amplitude",
    "add_speckle", "gamma_speckle", "synthetic_scene", "synthetic_scenes",
    "ReconstructionMeter", "ReconstructTask",
    "SARAugmentation", "SARTileDataset", "SARTileLoader", "cut_tiles", "load_sar_tiles",
    "synthetic_sar_tiles", "tile_positions",
]
