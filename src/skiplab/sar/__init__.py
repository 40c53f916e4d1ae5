"""skiplab.sar: everything SAR (single-channel synthetic aperture radar intensity), in one
package that plugs into the core through its registries. Its sub-packages, one idea each,
from the bottom up (one exception: the ``.sarl`` file codes whole scenes through inference):

* :mod:`~skiplab.sar.raster` -- a scene on disk and in physical units: rasters (GeoTIFF/TIFF,
  PNG, .npy; tags and no-data kept; written strip by strip), radiometry (intensity/amplitude/dB,
  the normalised log-intensity a model sees and its inverse; per scene), speckle and
  synthetic scenes;
* :mod:`~skiplab.sar.codec` -- the codecs: the hyperprior codec ``sar_hyperprior_*`` (its
  entropy models, ANS coding via constriction, the ``.sarl`` file version 2 and the shipped
  quality levels of ``skiplab encode --quality``) and the older quantised autoencoders
  ``sar_codec_*`` (latent quantiser, factorised Laplace prior, ``.sarl`` version 1);
* :mod:`~skiplab.sar.training` -- tiles, augmentation and loaders, the data specs ``sar:PATH``
  and ``synthetic:sar`` / ``synthetic-sar`` (registered on import), losses (L1, MSE, SSIM,
  MS-SSIM, Gamma NLL, rate), metrics (PSNR, SSIM, ENL, ratio image, compression), the
  ``reconstruct`` task and the ``compress`` task of the hyperprior codec (registered on import);
* :mod:`~skiplab.sar.model` -- a trained autoencoder loaded from its checkpoint, the packaged
  default model (``load_default_model()``, its card ``default_model_card()``) and shipping
  another;
* :mod:`~skiplab.sar.inference` -- whole scenes: the tile grid and its blending,
  reconstruction streamed in strips, the float latent file (``encode_scene``, ``decode_latent``);
* :mod:`~skiplab.sar.rate_distortion` -- JPEG, JPEG 2000, average pooling and the Lee filter
  against the autoencoders at measured bit rates (``skiplab sar-rd``), Bjøntegaard deltas,
  the hyperprior codec's held-out study by site and its speed beside OpenJPEG;
* :mod:`~skiplab.sar.ablation` -- the residual-placement ablation and its held-out codec
  evidence (``skiplab ablate autoencoder``; not imported here:
  ``from skiplab.sar.ablation.experiment import run_ablation``).

The architectures (``sar_ae_*``, U-Nets) are in :mod:`skiplab.models`. The core finds this
package by itself when a task, data kind or model is missing (:mod:`skiplab.plugins`), so
``fit(TrainConfig(task="reconstruct", data="sar:PATH"))`` works without importing it first.
The sub-packages' ``__init__`` modules import nothing; the names below are the public API.

    from skiplab.sar import load_autoencoder, load_default_model, reconstruct_scene
    reconstruct_scene(load_default_model(), "scene.tif", "scene_ae.tif")    # packaged model
    ae = load_autoencoder("runs/ae/checkpoints/best.pt")                      # your own
    reconstruct_scene(ae, "scene.tif", "scene_ae.tif")
"""

from .codec.hyperprior import HyperpriorCodec
from .codec.model import QuantizedAutoencoder
from .inference.grid import TileGrid, make_grid
from .inference.latent import decode_latent, encode_scene, read_latent
from .inference.scene import InferenceResult, reconstruct_array, reconstruct_scene
from .model.checkpoint import TrainedAutoencoder, load_autoencoder
from .model.default import default_model_card, load_default_model
from .raster.io import Raster, read_raster, write_raster
from .raster.radiometry import Radiometry, amplitude_to_intensity, intensity_to_amplitude
from .raster.speckle import add_speckle, gamma_speckle, synthetic_scene, synthetic_scenes
from .training.load import load_sar, renormalise
from .training.losses import build_loss
from .training.metrics import (
    ENLResult,
    RatioStats,
    bits_per_pixel,
    compression_ratio,
    enl,
    enl_per_image,
    homogeneous_windows,
    psnr,
    ratio_statistics,
    reconstruction_metrics,
    ssim_per_image,
)
from .training.compress_task import CompressTask
from .training.task import ReconstructionMeter, ReconstructTask
from .training.tiles import (
    SARAugmentation,
    SARTileDataset,
    SARTileLoader,
    cut_tiles,
    load_sar_tiles,
    synthetic_sar_tiles,
    tile_positions,
)

__all__ = [
    "TrainedAutoencoder",
    "load_autoencoder",
    "default_model_card",
    "load_default_model",
    "QuantizedAutoencoder",
    "HyperpriorCodec",
    "CompressTask",
    "InferenceResult",
    "TileGrid",
    "make_grid",
    "reconstruct_array",
    "reconstruct_scene",
    "Raster",
    "read_raster",
    "write_raster",
    "decode_latent",
    "encode_scene",
    "read_latent",
    "load_sar",
    "renormalise",
    "build_loss",
    "ENLResult",
    "RatioStats",
    "bits_per_pixel",
    "compression_ratio",
    "enl",
    "enl_per_image",
    "homogeneous_windows",
    "psnr",
    "ratio_statistics",
    "reconstruction_metrics",
    "ssim_per_image",
    "Radiometry",
    "amplitude_to_intensity",
    "intensity_to_amplitude",
    "add_speckle",
    "gamma_speckle",
    "synthetic_scene",
    "synthetic_scenes",
    "ReconstructionMeter",
    "ReconstructTask",
    "SARAugmentation",
    "SARTileDataset",
    "SARTileLoader",
    "cut_tiles",
    "load_sar_tiles",
    "synthetic_sar_tiles",
    "tile_positions",
]
