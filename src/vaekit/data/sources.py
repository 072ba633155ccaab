"""The user's own images: a folder of image files, or an array file (``.npy`` / ``.npz``).

These are the pieces the ``folder`` and ``array`` data sources are built from, each usable on
its own: scanning a folder (its splits and classes), a digest of the file list, decoding images
into one uint8 array (orientation, alpha, resizing, channels), reading an array in any of the
usual layouts, and a fixed-seed split for data that come without one.

Folder layout (torchvision's ``ImageFolder`` convention, with optional split folders)::

    DIR/train/cat/1.png, DIR/valid/..., DIR/test/...   splits given, labels from class folders
    DIR/cat/1.png, DIR/dog/7.jpg                        one pool, split by --valid/test-fraction
    DIR/1.png, DIR/2.png                                no labels

Labels exist when every image sits in a class folder one level below the split (or the root);
class numbers follow the sorted folder names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_NAMES = ("train", "valid", "test")
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128)}


@dataclass
class FolderScan:
    """What a folder holds: image files per split (``"all"`` when it has no split folders), their labels,
    the class names, and the files that are not images."""

    root: Path
    files: dict[str, list[Path]]
    labels: dict[str, list[int]] | None
    class_names: tuple[str, ...] | None
    not_images: list[Path] = field(default_factory=list)

    @property
    def has_splits(self) -> bool:
        return "all" not in self.files

    def all_files(self) -> list[Path]:
        return [f for split in self.files for f in self.files[split]]


def _images_under(folder: Path) -> tuple[list[Path], list[Path]]:
    images, others = [], []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts):
            (images if p.suffix.lower() in IMAGE_SUFFIXES else others).append(p)
    return images, others


def scan_folder(root: str | Path) -> FolderScan:
    """The images under ``root``, split and labelled by its sub-folders (see the module's docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data-dir '{root}' is not a folder; pass the folder that holds your images")
    split_dirs = [root / s for s in SPLIT_NAMES if (root / s).is_dir()]
    groups = {d.name: d for d in split_dirs} if split_dirs else {"all": root}
    if split_dirs and "train" not in groups:
        raise DataError(f"'{root}' has split folders ({', '.join(groups)}) but no 'train/'; add one, or put all the "
                        "images in one pool and let --valid-fraction and --test-fraction split them")
    files, not_images = {}, []
    for split, folder in groups.items():
        files[split], others = _images_under(folder)
        not_images += others
    if not any(files.values()):
        what = f" ({len(not_images)} other files, such as '{not_images[0].name}')" if not_images else ""
        raise DataError(f"no images (PNG, JPEG, BMP or WebP) under '{root}'{what}; point --data-dir at the folder "
                        "that holds them")
    if not files.get("train", files.get("all")):
        raise DataError(f"'{root}/train' holds no images; the training split needs some")
    # labels: every image one folder below its split (or the root), as root/cat/1.png
    depth_one = all(len(f.relative_to(groups[s]).parts) == 2 for s in files for f in files[s])
    labels = class_names = None
    if depth_one:
        names = sorted({f.parent.name for s in files for f in files[s]})
        index = {n: i for i, n in enumerate(names)}
        labels = {s: [index[f.parent.name] for f in files[s]] for s in files}
        class_names = tuple(names)
    return FolderScan(root, files, labels, class_names, not_images)


def files_digest(files: list[Path], root: Path) -> str:
    """SHA-256 over the files' paths (relative to ``root``) and sizes: changes when a file is added, removed,
    renamed or rewritten with another size."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f"{f.relative_to(root).as_posix()}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def parse_background(name: str) -> tuple[int, int, int]:
    """A background colour by name (white, black, grey) or as ``#rrggbb``."""
    if name in BACKGROUNDS:
        return BACKGROUNDS[name]
    if len(name) == 7 and name.startswith("#"):
        try:
            return tuple(int(name[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            pass
    raise DataError(f"background '{name}' is not a colour: use white, black, grey or #rrggbb")


def resize_and_crop(img, height: int, width: int):
    """Scale a PIL image so it covers ``height x width`` (its shorter side, relative to the target's aspect,
    fits exactly), then cut the centre: no distortion, and the edges that do not fit are dropped."""
    from PIL import Image

    scale = max(height / img.height, width / img.width)
    size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def open_image(path: Path, channels: int | None, background: tuple[int, int, int]):
    """One image as a PIL image in mode L or RGB: EXIF orientation applied, transparency composited on
    ``background``; ``channels`` 1 or 3 converts, None keeps grey as grey and everything else RGB."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        im = Image.alpha_composite(base, rgba).convert("RGB")
    grey = im.mode in ("L", "1", "I", "I;16", "F")
    want = channels or (1 if grey else 3)
    if want == 1:
        if im.mode in ("I", "I;16", "F"):
            arr = np.asarray(im, dtype=np.float64)
            top = 65535.0 if arr.max() > 255 else 255.0
            im = Image.fromarray(np.clip(np.round(arr / top * 255), 0, 255).astype(np.uint8), mode="L")
        return im.convert("L")
    return im.convert("RGB")


def unreadable_image(path: Path, e: Exception) -> DataError:
    """The one error for an image file that cannot be decoded."""
    return DataError(f"cannot read image '{path}' ({e}); remove or repair it, or pass --skip-bad-images to leave "
                     "unreadable files out")


def decode_images(files: list[Path], size: tuple[int, int] | None, channels: int | None,
                  background: tuple[int, int, int] = (255, 255, 255), skip_bad: bool = False,
                  progress: bool = False, like: Path | None = None) -> tuple[np.ndarray, list[int], list[Path]]:
    """Decode ``files`` into one uint8 array ``[N, C, H, W]``.

    ``size`` (H, W): resize each image to cover it and cut the centre; without it every image must have the
    first one's size (an error names two that differ). ``like``: the file ``size`` was read from; then ``size``
    is a size every image must already have (nothing is resized), and an error names that file and the odd one. ``channels``: 1 or 3; without it the first image's
    kind decides (grey or colour) and the others are converted to it. A file that cannot be decoded stops
    with its name, unless ``skip_bad`` (then it is left out and listed). Returns the array, the indices of the
    files kept, and the files skipped.
    """
    from tqdm import tqdm

    out: np.ndarray | None = None
    kept: list[int] = []
    bad: list[Path] = []
    first: Path | None = like
    for i, path in enumerate(tqdm(files, desc="decoding images", unit="img", disable=None if progress else True)):
        try:
            img = open_image(path, channels, background)
        except (OSError, ValueError, SyntaxError) as e:  # what Pillow raises for broken or truncated files
            if not skip_bad:
                raise unreadable_image(path, e) from None
            bad.append(path)
            continue
        if out is None:
            first = first or path
            channels = channels or (1 if img.mode == "L" else 3)
            h, w = size or (img.height, img.width)
            out = np.empty((len(files), channels, h, w), dtype=np.uint8)
        elif channels == 3 and img.mode == "L":
            img = img.convert("RGB")
        elif channels == 1 and img.mode == "RGB":
            img = img.convert("L")
        if size is not None and like is None:
            img = resize_and_crop(img, *size)
        elif (img.height, img.width) != out.shape[2:]:
            raise DataError(f"images differ in size: '{first}' is {out.shape[3]}x{out.shape[2]} but '{path}' is "
                            f"{img.width}x{img.height}; pass --image-size N (or H W) to resize them all")
        arr = np.asarray(img, dtype=np.uint8)
        out[len(kept)] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        kept.append(i)
    if out is None:
        raise DataError(f"none of the {len(files)} image files could be read (the first: '{files[0]}')")
    return out[: len(kept)], kept, bad


LAYOUTS = ("NHW", "NHWC", "NCHW")


def detect_layout(shape: tuple[int, ...]) -> str:
    """The layout of an image array from its shape: ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``
    (channels are 1, 3 or 4, found on the last axis or the second)."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4:
        if shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4):
            return "NHWC"
        if shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
            return "NCHW"
        if shape[-1] in (1, 3, 4) and shape[1] in (1, 3, 4):
            raise DataError(f"an array of shape {shape} could be [N, H, W, C] or [N, C, H, W]; say which with "
                            "--layout NHWC or --layout NCHW")
    raise DataError(f"an array of shape {shape} is not images: expected [N, H, W], [N, H, W, C] or [N, C, H, W] "
                    "with 1, 3 or 4 channels")


def _check_pixels(path: Path, x: np.ndarray) -> None:
    """uint8, or floats in [0, 1] with no NaN or infinity (counted, when there are any)."""
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"'{path}' holds {x.dtype} pixels; give uint8 in 0..255 or floats in [0, 1]")
    if np.issubdtype(x.dtype, np.floating) and x.size:
        nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        if nan or inf:
            what = " and ".join(f"{n:,} {name} pixel{'s' if n > 1 else ''}" for n, name in ((nan, "NaN"), (inf, "infinite"))
                                if n)
            raise DataError(f"'{path}' holds {what}; every pixel must be a number in [0, 1] (replace them, e.g. "
                            "numpy.nan_to_num(x, nan=0.0), or drop those images)")
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"'{path}' holds float pixels outside [0, 1] (from {x.min():g} to {x.max():g}); scale "
                            "them to [0, 1] or save uint8 in 0..255")


def read_array(path: str | Path, layout: str | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Images ``[N, C, H, W]`` (uint8, or float in [0, 1]), labels ``[N]`` or None, and the layout read,
    from a ``.npy`` (images) or ``.npz`` (key ``x``, optional ``y``) file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"array file '{path}' not found; pass an existing .npy or .npz file to --data-file")
    with path.open("rb") as f:
        head = f.read(6)
    if head != b"\x93NUMPY" and not head.startswith(b"PK"):  # the .npy magic, or the zip an .npz is
        raise DataError(f"'{path}' is not a numpy array file (.npy or .npz); save your images with numpy.save or "
                        "numpy.savez")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):  # an array of Python objects: vaekit never unpickles
            raise DataError(f"'{path}' holds Python objects (a pickle), which vaekit never loads; save a numeric "
                            "array: numpy.save(path, images.astype('uint8'))") from None
        raise DataError(f"'{path}' is a damaged numpy array file ({e}); save it again with numpy.save or "
                        "numpy.savez") from None
    except (OSError, EOFError) as e:
        raise DataError(f"'{path}' is a damaged numpy array file ({e}); save it again with numpy.save or "
                        "numpy.savez") from None
    y = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if "x" not in loaded.files:
                raise DataError(f"'{path}' holds {', '.join(loaded.files) or 'nothing'} but no 'x'; save the images "
                                "as x (and labels as y): numpy.savez(path, x=images, y=labels)")
            x = loaded["x"]
            y = loaded["y"] if "y" in loaded.files else None
    else:
        x = loaded
    _check_pixels(path, x)
    layout = layout or detect_layout(x.shape)
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout '{layout}'; choose one of: {', '.join(LAYOUTS)}")
    if x.ndim != len(layout):
        raise DataError(f"--layout {layout} needs a {len(layout)}-dimensional array, '{path}' holds shape {x.shape}")
    x = {"NHW": lambda a: a[:, None], "NHWC": lambda a: a.transpose(0, 3, 1, 2), "NCHW": lambda a: a}[layout](x)
    if x.shape[1] == 4:
        raise DataError(f"'{path}' has 4 channels (RGBA); composite the alpha away or drop it: x[..., :3]")
    if x.shape[1] not in (1, 3):
        raise DataError(f"'{path}' has {x.shape[1]} channels; images need 1 (grey) or 3 (colour)")
    if len(x) == 0:
        raise DataError(f"'{path}' holds no images")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"'{path}': {len(x)} images but labels of shape {y.shape}; give one label per image")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise DataError(f"'{path}': labels must be class numbers 0, 1, 2, ...; got {y.dtype} values")
    return np.ascontiguousarray(x), y, layout


def split_indices(n: int, valid_fraction: float, test_fraction: float, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed-seed shuffle of ``range(n)`` cut into train, valid and test (each at least one image when its
    fraction is positive)."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid = max(1, round(n * valid_fraction)) if valid_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n - n_valid - n_test < 1:
        raise DataError(f"{n} images are too few to split {valid_fraction:g} valid and {test_fraction:g} test and "
                        "keep any for training; add images or lower --valid-fraction / --test-fraction")
    return {"valid": np.sort(order[:n_valid]), "test": np.sort(order[n_valid : n_valid + n_test]),
            "train": np.sort(order[n_valid + n_test :])}
