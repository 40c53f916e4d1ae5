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
from .spec import KINDS, DataPathError, DataSpec, parse_data_spec

__all__ = [
    "Augmentation", "AugmentParams", "normalize",
    "ImageDataset", "RawData", "channel_histogram", "channel_stats", "split_indices",
    "stats_from_histogram",
    "SPLITS", "clear_memo", "default_cache_dir", "load_dataset", "load_source",
    "BatchLoader",
    "SegmentationDataset", "cells_splits", "generate_cells",
    "KINDS", "DataPathError", "DataSpec", "parse_data_spec",
]
