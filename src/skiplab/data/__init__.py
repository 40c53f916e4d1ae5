"""skiplab.data: datasets as uint8 tensors in memory, batched augmentation, and a
deterministic, sharded, resumable batch loader.

    train = load_dataset("cifar10:../shared/data/cifar10-jpg", "train", val_size=5000)
    loader = BatchLoader(train, 128, augment=Augmentation(crop_padding=4, flip=True))
"""

from .augment import Augmentation, AugmentParams, normalize
from .dihedral import DihedralAugmentation, DihedralParams, dihedral, inverse_dihedral
from .dataset import ImageDataset, RawData, channel_histogram, channel_stats, split_indices, stats_from_histogram
from .load import SPLITS, clear_memo, default_cache_dir, load_dataset, load_segmentation, load_source
from .loader import BatchLoader
from .segmentation import SegmentationDataset, cells_splits, generate_cells
from .spec import (
    DataKind,
    DataPathError,
    DataSpec,
    data_examples,
    data_kinds,
    parse_data_spec,
    register_data_kind,
    register_synthetic,
)

__all__ = [
    "Augmentation",
    "AugmentParams",
    "normalize",
    "ImageDataset",
    "RawData",
    "channel_histogram",
    "channel_stats",
    "split_indices",
    "stats_from_histogram",
    "SPLITS",
    "clear_memo",
    "default_cache_dir",
    "load_dataset",
    "load_source",
    "BatchLoader",
    "SegmentationDataset",
    "cells_splits",
    "generate_cells",
    "DataKind",
    "DataPathError",
    "DataSpec",
    "data_examples",
    "data_kinds",
    "parse_data_spec",
    "register_data_kind",
    "register_synthetic",
    "DihedralAugmentation",
    "DihedralParams",
    "dihedral",
    "inverse_dihedral",
    "load_segmentation",
]
