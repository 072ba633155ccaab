"""Data: named data sets, file readers, checksummed downloads."""

from .datasets import DATASETS, SPLITS, Dataset, DatasetSpec, binarize, dequantize, load_dataset, prepare
from .download import Resource, default_cache_dir, fetch
from .readers import read_amat, read_idx

__all__ = [
    "DATASETS", "SPLITS", "Dataset", "DatasetSpec", "Resource", "binarize", "default_cache_dir", "dequantize",
    "fetch", "load_dataset", "prepare", "read_amat", "read_idx",
]
