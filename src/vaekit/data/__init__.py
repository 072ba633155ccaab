"""Data: named data sets, file readers, checksummed downloads."""

from .datasets import DATASETS, SPLITS, Dataset, DatasetSpec, binarize, load_dataset, prepare
from .download import Resource, default_cache_dir, fetch
from .readers import read_amat, read_idx

__all__ = [
    "DATASETS", "SPLITS", "Dataset", "DatasetSpec", "Resource", "binarize", "default_cache_dir",
    "fetch", "load_dataset", "prepare", "read_amat", "read_idx",
]
