"""Data: named data sets, file readers, checksummed downloads."""

from .datasets import (DATASETS, SOURCES, SPLITS, Dataset, DatasetSpec, binarize, dequantize, load_data, load_dataset,
                       prepare, to_unit)
from .dataset import Batch, batch, batches
from .download import Resource, default_cache_dir, fetch
from .readers import read_amat, read_idx

__all__ = [
    "Batch", "DATASETS", "SOURCES", "SPLITS", "Dataset", "DatasetSpec", "Resource", "batch", "batches", "binarize", "default_cache_dir",
    "dequantize", "fetch", "load_data", "load_dataset", "prepare", "read_amat", "read_idx", "to_unit",
]
