"""skiplab.data: datasets as uint8 tensors in memory, batched augmentation, and a
deterministic, sharded, resumable batch loader.

    train = load_dataset("cifar10:../shared/data/cifar10-jpg", "train", val_size=5000)
    loader = BatchLoader(train, 128, augment=Augmentation(crop_padding=4, flip=True))
"""

from .augment import Augmentation, AugmentParams, normalize
from .dataset import (ImageDataset, RawData, channel_histogram, channel_stats, split_indices,
                      stats_from_histogram)
from .load import SPLITS, clear_memo, default_cache_dir, load_dataset, load_source
from .loader import BatchLoader
from .segmentation import SegmentationDataset, cells_splits, generate_cells
from .sar_augment import SARAugmentation, dihedral, inverse_dihedral
from .sar_io import Raster, read_raster, write_raster
from .sar_radiometry import Radiometry, amplitude_to_intensity, intensity_to_amplitude
from .sar_tiles import (SARTileDataset, SARTileLoader, cut_tiles, load_sar_tiles,
                        synthetic_sar_tiles, tile_positions)
from .spec import KINDS, DataPathError, DataSpec, parse_data_spec
from .speckle import add_speckle, gamma_speckle, synthetic_scene, synthetic_scenes

__all__ = [
    "Augmentation", "AugmentParams", "normalize",
    "ImageDataset", "RawData", "channel_histogram", "channel_stats", "split_indices",
    "stats_from_histogram",
    "SPLITS", "clear_memo", "default_cache_dir", "load_dataset", "load_source",
    "BatchLoader",
    "SegmentationDataset", "cells_splits", "generate_cells",
    "KINDS", "DataPathError", "DataSpec", "parse_data_spec",
    "SARAugmentation", "dihedral", "inverse_dihedral", "Raster", "read_raster", "write_raster",
    "Radiometry", "amplitude_to_intensity", "intensity_to_amplitude", "SARTileDataset",
    "SARTileLoader", "cut_tiles", "load_sar_tiles", "synthetic_sar_tiles", "tile_positions",
    "add_speckle", "gamma_speckle", "synthetic_scene", "synthetic_scenes",
]
