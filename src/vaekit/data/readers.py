"""Readers for the raw file formats: IDX (LeCun's MNIST files) and ``.amat``
(Larochelle & Murray's binarized MNIST). Both read plain or gzip-compressed files,
detected by content, and raise :class:`~vaekit.errors.DataError` naming the file
and what was wrong for anything truncated, corrupt or of the wrong kind.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
# IDX type codes (third byte of the magic number) -> numpy big-endian dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed if it is gzip (whatever its name says)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file not found: {p}") from None
    except IsADirectoryError:
        raise DataError(f"expected a file but found a folder: {p}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{p}: gzip data is truncated or corrupt ({e}); delete the file and download it again") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (e.g. ``train-images-idx3-ubyte[.gz]``) into an array.

    Layout: two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension, then the values in row-major order.
    """
    p = Path(path)
    data = read_bytes(p)
    if len(data) < 4:
        raise DataError(f"{p}: too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{p}: not an IDX file (magic bytes {data[:4].hex()}; expected 0000 then a type code "
            "08/09/0b/0c/0d/0e and a dimension count)"
        )
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{p}: IDX header is truncated or has {ndim} dimensions")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize  # Python integers: a huge header cannot wrap around to match
    found = len(data) - header
    if found != expected:
        _check_dimension_count(p, data, ndim, shape, dtype.itemsize)
        what = "truncated" if found < expected else "longer than its header says"
        raise DataError(
            f"{p}: IDX file is {what}: header shape {shape} needs {expected} bytes of data, found {found}; "
            "delete the file and download it again"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _check_dimension_count(p: Path, data: bytes, ndim: int, shape: tuple[int, ...], itemsize: int) -> None:
    """Refuse a header whose dimension count is wrong (its sizes then read pixels as sizes, often 0), rather than
    calling the file too long or short for a shape that was never in it."""
    for k in range(1, 5):
        if k == ndim or len(data) < 4 + 4 * k:
            continue
        other = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=k, offset=4))
        if all(other) and math.prod(other) * itemsize == len(data) - 4 - 4 * k:
            raise DataError(f"{p}: IDX header is invalid: its dimension count says {ndim} (sizes {shape}), but the "
                            f"data fit {k} dimensions {other}; the file is damaged: delete it and download it again")
    if 0 in shape:
        raise DataError(f"{p}: IDX header is invalid: it declares a dimension of size 0 (sizes {shape}) with "
                        f"{len(data) - 4 - 4 * ndim} bytes of data after it; the file is damaged: delete it and "
                        "download it again")


def read_amat(path: str | Path, dim: int = 784) -> np.ndarray:
    """Read a binarized-MNIST ``.amat`` file: one image a line, ``dim`` values 0/1.

    Returns ``uint8 [N, dim]``. The common layout (single-character values separated
    by single spaces) is parsed in one vectorised step; anything else falls back
    to a line-by-line parse that names the first bad line.
    """
    p = Path(path)
    data = read_bytes(p)
    lines = [ln for ln in data.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{p}: no images found (the file is empty)")
    width = 2 * dim - 1
    if all(len(ln) == width for ln in lines):
        arr = np.frombuffer(b"".join(lines), dtype=np.uint8).reshape(len(lines), width)
        values, seps = arr[:, 0::2], arr[:, 1::2]
        if (seps == ord(" ")).all() and ((values == ord("0")) | (values == ord("1"))).all():
            return (values - ord("0")).astype(np.uint8)
    out = np.empty((len(lines), dim), dtype=np.uint8)
    for i, ln in enumerate(lines):
        tokens = ln.split()
        if len(tokens) != dim:
            raise DataError(f"{p}: line {i + 1} has {len(tokens)} values, expected {dim} (is the file truncated?)")
        try:
            vals = np.array([float(t) for t in tokens])
        except ValueError:
            raise DataError(f"{p}: line {i + 1} holds a value that is not a number") from None
        if not np.isin(vals, (0.0, 1.0)).all():
            bad = vals[~np.isin(vals, (0.0, 1.0))][0]
            raise DataError(f"{p}: line {i + 1} holds the value {bad:g}; binarized MNIST has only 0 and 1")
        out[i] = vals
    return out
