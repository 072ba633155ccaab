"""The ``folder`` and ``array`` data sources: the user's own images as a data set.

:func:`source_spec` describes the data (image shape, levels, classes, a digest of the files) from a
:class:`~vaekit.config.DataConfig` without decoding a pixel; :func:`load_source` gives one split as
a :class:`~vaekit.data.Dataset` whose pixels stay uint8 (0..255) in memory, converted to [0, 1]
per batch (:func:`vaekit.data.to_unit`). Decoded folders are cached under the data cache
(``$VAEKIT_DATA`` or ``~/.cache/vaekit``) in ``decoded/``, keyed by the digest of their files and
the decoding options, so the next run on the same folder starts at once.

Splits: a folder's ``train/``, ``valid/`` and ``test/`` folders when it has them; otherwise (and
for a split the folder lacks, and for arrays) a fixed-seed shuffle cut by ``valid_fraction`` and
``test_fraction``. The digest and the number of files are saved in ``config.json``, so
``evaluate``, ``plot`` and ``--resume`` see the images training saw, and a changed folder is
refused.
"""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_write_bytes
from ..limits import check_image_memory
from .sources import (decode_images, files_digest, parse_background, read_array, resize_and_crop, scan_folder,
                      split_indices, unreadable_image)

SOURCES = ("folder", "array")
SPLIT_SEED = 0


@dataclass(frozen=True)
class Source:
    """What a source holds, found without decoding: files per split (folder) or rows per split (array)."""

    kind: str
    image_shape: tuple[int, int, int]
    levels: int
    class_names: tuple[str, ...] | None
    digest: str
    n_files: int
    splits: dict  # split -> list of files (folder) or row indices (array)
    labels: dict | None  # split -> labels
    where: str  # the folder or file, for messages
    skipped_files: int = 0  # non-image files in the folder
    array: np.ndarray | None = None  # the array source's images [N, C, H, W]
    first_image: Path | None = None  # the folder's first training image: the size the others must have
    layout: str | None = None  # the array's layout as read


_CACHE: dict[tuple, Source] = {}


def _size(dc) -> tuple[int, int] | None:
    if dc.image_size is None:
        return None
    return (dc.image_size[0], dc.image_size[-1])


def source_spec(dc) -> Source:
    """The source a data config names (``dc.name`` in :data:`SOURCES`)."""
    if dc.name == "folder":  # scanned each time (a listing and a stat per file): a changed folder is always seen
        if not dc.data_dir:
            raise DataError("--data folder needs --data-dir DIR, the folder that holds your images")
        src = _scan_folder(dc)
        _check_valid_split(dc, src)
        return src
    else:  # read once per process while the file's modification time and size stay the same
        if not dc.data_file:
            raise DataError("--data array needs --data-file FILE, a .npy or .npz file of images")
        path = Path(dc.data_file)
        key = ("array", str(path.resolve()), _size(dc), dc.channels, dc.layout, dc.valid_fraction, dc.test_fraction,
               _stamp(path))
    if key not in _CACHE:
        _CACHE.clear()  # one array held at a time
        _CACHE[key] = _scan_array(dc)
    _check_valid_split(dc, _CACHE[key])
    return _CACHE[key]


def _stamp(path: Path):
    """Changes when a file is rewritten (its modification time and size)."""
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def _scan_folder(dc) -> Source:
    root = Path(dc.data_dir)
    scan = scan_folder(root)
    files = scan.all_files()
    digest = files_digest(files, root)
    # train/ (or the whole folder) is the pool; a split without its own folder is cut from it, fixed seed
    pool_key = "train" if scan.has_splits else "all"
    pool = scan.files[pool_key]
    cut = split_indices(len(pool), 0.0 if "valid" in scan.files else dc.valid_fraction,
                        0.0 if "test" in scan.files else dc.test_fraction, SPLIT_SEED)
    splits: dict[str, list[Path]] = {}
    labels: dict[str, list[int]] | None = {} if scan.labels is not None else None
    for s in ("train", "valid", "test"):
        own = s != "train" and s in scan.files
        splits[s] = scan.files[s] if own else [pool[i] for i in cut[s]]
        if labels is not None:
            labels[s] = scan.labels[s] if own else [scan.labels[pool_key][i] for i in cut[s]]
    first, (h, w), channels = _first_image(splits["train"], dc)
    if dc.image_size is not None:
        h, w = _size(dc)
    return Source("folder", (dc.channels or channels, h, w), 256, scan.class_names, digest, len(files), splits,
                  labels, str(root), len(scan.not_images), first_image=first)


def _first_image(files: list[Path], dc) -> tuple[Path, tuple[int, int], int]:
    """The first readable training image, its size and channels (the others must agree, or be resized)."""
    from .sources import open_image

    for path in files:
        try:
            img = open_image(path, None, parse_background(dc.background))
            return path, (img.height, img.width), 1 if img.mode == "L" else 3
        except (OSError, ValueError, SyntaxError) as e:
            if not dc.skip_bad_images:
                raise unreadable_image(path, e) from None
    raise DataError(f"none of the {len(files)} training images could be read (the first: '{files[0]}')")


def _scan_array(dc) -> Source:
    path = Path(dc.data_file)
    x, y, layout = read_array(path, dc.layout)
    levels = 256
    if np.issubdtype(x.dtype, np.floating):
        if np.isin(x, (0.0, 1.0)).all():
            levels = 2
        else:  # stored as 8-bit levels, the pixels a discrete likelihood and the bits/dim are about
            x = np.round(x * 255).astype(np.uint8)
    if dc.channels and dc.channels != x.shape[1]:
        x = x.mean(axis=1, keepdims=True).round().astype(x.dtype) if dc.channels == 1 else np.repeat(x, 3, axis=1)
    if dc.image_size is not None and (x.shape[2], x.shape[3]) != _size(dc):
        check_image_memory(len(x), (x.shape[1], *_size(dc)), f"'{path}'")
        x = _resize_array(x, *_size(dc))
    digest = hashlib.sha256(f"{path.name}\t{path.stat().st_size}\t{layout}".encode()).hexdigest()[:16]
    cut = split_indices(len(x), dc.valid_fraction, dc.test_fraction, SPLIT_SEED)
    names = tuple(str(i) for i in range(int(y.max()) + 1)) if y is not None else None
    labels = {s: y[idx] for s, idx in cut.items()} if y is not None else None
    return Source("array", tuple(x.shape[1:]), levels, names, digest, len(x), cut, labels, str(path), array=x,
                  layout=layout)


def _resize_array(x: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(x), x.shape[1], height, width), dtype=x.dtype)
    for i, img in enumerate(x):
        if x.dtype != np.uint8:  # binary floats: resize as 8-bit, then back to 0/1
            img = (img * 255).astype(np.uint8)
        pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        arr = np.asarray(resize_and_crop(pil, height, width))
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        out[i] = arr if x.dtype == np.uint8 else (arr >= 128)
    return out


def _check_valid_split(dc, src: Source) -> None:
    """Training needs a valid split (the valid ELBO picks the best epoch); refuse a source that has none, naming
    what made it empty."""
    if len(src.splits["valid"]):
        return
    if src.kind == "folder" and (Path(src.where) / "valid").is_dir():
        raise DataError(f"'{Path(src.where) / 'valid'}' holds no images; add some, or remove the empty folder so that "
                        "--valid-fraction holds images out of train/")
    raise DataError(f"--valid-fraction 0 leaves '{src.where}' no valid split, which training needs (the valid ELBO "
                    "picks the best epoch); pass --valid-fraction 0.1 (its default)"
                    + (", or give the folder a valid/ folder" if src.kind == "folder" else ""))


def empty_split_error(dc, src: Source, split: str) -> DataError:
    """The split holds no images: say which option or folder made it empty, and what to pass instead."""
    own = src.kind == "folder" and (Path(src.where) / split).is_dir()
    if split == "train" or own:
        where = Path(src.where) / split if own else src.where
        return DataError(f"the '{split}' split of '{where}' holds no images; add some")
    flag = f"--{split}-fraction"
    return DataError(f"the run was made with {flag} 0, so '{src.where}' has no {split} split; evaluate another "
                     f"(--split {'valid' if split == 'test' else 'train'}), or train a run with {flag} 0.1"
                     + (f" (or give the folder a {split}/ folder)" if src.kind == "folder" else ""))


def check_unchanged(dc, src: Source) -> None:
    """Refuse data that differ from what a saved run recorded (``dc.digest``, ``dc.n_files``)."""
    if dc.digest and dc.digest != src.digest:
        then = f"{dc.n_files:,} images" if dc.n_files else "other files"
        raise DataError(f"'{src.where}' has changed since the run: {then} then, {src.n_files:,} now (file list digest "
                        f"{dc.digest} then, {src.digest} now); restore the data, or train a new run on it")


def _cache_path(files: list[Path], dc, shape) -> Path:
    from .download import default_cache_dir

    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.resolve()}\t{f.stat().st_size}\t{f.stat().st_mtime_ns}\n".encode())
    # "v2": entries written before mixed sizes were refused may hold silently resized images
    h.update(f"v2|{shape}|{dc.background}|{dc.skip_bad_images}|{_size(dc) is not None}".encode())
    return default_cache_dir() / "decoded" / f"{h.hexdigest()[:24]}.npz"


def load_source(dc, split: str, progress: bool | None = None, log=print):
    """One split of a folder or array source as a :class:`~vaekit.data.Dataset` (uint8 pixels, or 0/1 floats
    for a binary array)."""
    import torch

    from .dataset import Dataset

    src = source_spec(dc)
    check_unchanged(dc, src)
    labels = src.labels[split] if src.labels is not None else None
    if src.kind == "array":
        idx = src.splits[split]
        x = src.array[idx]
        sources = tuple(f"row {i}" for i in np.asarray(idx).tolist())
    else:
        files = src.splits[split]
        if split == "train" and src.skipped_files:
            log(f"note: {src.skipped_files} file{'s are' if src.skipped_files > 1 else ' is'} not an image (PNG, "
                f"JPEG, BMP, WebP) and {'were' if src.skipped_files > 1 else 'was'} left out")
        if not files:
            raise empty_split_error(dc, src, split)
        x, kept = _decode_cached(files, dc, src, split, progress, log)
        labels = [labels[i] for i in kept] if labels is not None else None
        sources = tuple(_relative(files[i], src.where) for i in kept)
    if len(x) == 0:
        raise empty_split_error(dc, src, split)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.as_tensor(np.asarray(labels, dtype=np.int64)) if labels is not None else None
    return Dataset(xt, yt, src.image_shape, dc.name, split, src.levels, class_names=src.class_names, sources=sources)


def _relative(path: Path, root) -> str:
    """A file's name relative to its data folder (the whole path when it lies elsewhere)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _decode_cached(files: list[Path], dc, src: Source, split: str, progress, log):
    c, h, w = src.image_shape
    check_image_memory(len(files), src.image_shape, f"'{src.where}' ({split})")
    path = _cache_path(files, dc, src.image_shape)
    if path.is_file():
        try:
            with np.load(path) as z:
                return z["x"], z["kept"].tolist()
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache entry: decode again
    # without --image-size every image must have the first training image's size: nothing is resized
    x, kept, bad = decode_images(files, _size(dc) or (h, w), c, parse_background(dc.background), dc.skip_bad_images,
                                 progress=progress if progress is not None else True,
                                 like=None if _size(dc) else src.first_image)
    if bad:
        log(f"skipped {len(bad)} unreadable image file{'s' if len(bad) > 1 else ''} in the '{split}' split: "
            + ", ".join(str(b) for b in bad[:5]) + (" ..." if len(bad) > 5 else ""))
    _write_cache(path, x, kept)
    return x, kept


def _write_cache(path: Path, x: np.ndarray, kept: list[int]) -> None:

    try:
        buf = io.BytesIO()
        np.savez(buf, x=x, kept=np.asarray(kept, dtype=np.int64))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:  # a cache that cannot be written costs time, not correctness
        print(f"note: could not cache the decoded images in {path.parent} ({e}); set VAEKIT_DATA to a writable "
              "folder to start faster next time", file=sys.stderr, flush=True)
