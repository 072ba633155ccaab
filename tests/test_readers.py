"""File readers and downloads, on small files each test writes itself."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from vaekit.data import Resource, fetch, load_dataset, read_amat, read_idx
from vaekit.errors import DataError


def idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    arr = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    data = idx_bytes(arr)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_read_idx_labels(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "l").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), labels)


@pytest.mark.parametrize("case,match", [
    ("truncated", "truncated"),
    ("too_long", "longer than its header"),
    ("wrong_magic", "not an IDX file"),
    ("tiny", "too short"),
    ("bad_gzip", "gzip data is truncated or corrupt"),
    ("header_only", "truncated"),
])
def test_read_idx_rejects_broken_files(tmp_path, case, match):
    good = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))
    content = {
        "truncated": good[:-5],
        "too_long": good + b"\0",
        "wrong_magic": b"\x08\x03\x00\x00" + good[4:],
        "tiny": b"\0\0",
        "bad_gzip": gzip.compress(good)[:-12],
        "header_only": good[:10],
    }[case]
    path = tmp_path / "f.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as e:
        read_idx(path)
    assert str(path) in str(e.value)


def amat_text(arr: np.ndarray) -> str:
    return "".join(" ".join(str(int(v)) for v in row) + "\n" for row in arr)


@pytest.mark.parametrize("compress", [False, True])
def test_read_amat_round_trip(tmp_path, compress):
    arr = np.random.default_rng(0).integers(0, 2, (6, 784), dtype=np.uint8)
    data = amat_text(arr).encode()
    path = tmp_path / "x.amat"
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_amat(path), arr)


def test_read_amat_accepts_other_spacing(tmp_path):
    arr = np.random.default_rng(1).integers(0, 2, (3, 16), dtype=np.uint8)
    text = "".join("\t".join(f"{v}.0" for v in row) + "  \r\n" for row in arr)
    (tmp_path / "x.amat").write_text(text)
    np.testing.assert_array_equal(read_amat(tmp_path / "x.amat", dim=16), arr)


@pytest.mark.parametrize("case,match", [
    ("short_line", "line 2 has 783 values"),
    ("non_binary", "line 1 holds the value 2"),
    ("not_number", "not a number"),
    ("empty", "empty"),
])
def test_read_amat_rejects_broken_files(tmp_path, case, match):
    rows = np.zeros((3, 784), dtype=np.uint8)
    text = amat_text(rows)
    lines = text.splitlines(keepends=True)
    if case == "short_line":
        lines[1] = " ".join(["0"] * 783) + "\n"
    elif case == "non_binary":
        lines[0] = "2 " + lines[0][2:]
    elif case == "not_number":
        lines[0] = "x " + lines[0][2:]
    elif case == "empty":
        lines = []
    (tmp_path / "b.amat").write_text("".join(lines))
    with pytest.raises(DataError, match=match):
        read_amat(tmp_path / "b.amat")


def test_fetch_downloads_verifies_and_reuses(tmp_path):
    src = tmp_path / "server" / "file.gz"
    src.parent.mkdir()
    src.write_bytes(b"payload")
    md5 = hashlib.md5(b"payload").hexdigest()
    res = Resource("file.gz", (src.as_uri(),), md5=md5)
    root = tmp_path / "cache"
    (path,) = fetch([res], root, "demo")
    assert path.read_bytes() == b"payload"
    src.unlink()  # a second fetch must not download again
    assert fetch([res], root, "demo") == [path]
    assert not list(root.glob(".*part"))


def test_fetch_refuses_a_download_with_the_wrong_checksum(tmp_path):
    src = tmp_path / "file.gz"
    src.write_bytes(b"tampered")
    res = Resource("file.gz", (src.as_uri(),), sha256=hashlib.sha256(b"original").hexdigest())
    root = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch([res], root, "demo")
    assert not (root / "file.gz").exists() and not list(root.iterdir())  # nothing half-written is left


def test_fetch_offline_names_the_files_and_the_folder(tmp_path):
    res = [Resource("a.gz", ("http://127.0.0.1:9/a.gz",), md5="0" * 32),
           Resource("b.gz", ("http://127.0.0.1:9/b.gz",), md5="0" * 32)]
    with pytest.raises(DataError) as e:
        fetch(res, tmp_path / "c", "demo")
    msg = str(e.value)
    assert "a.gz" in msg and "b.gz" in msg and str(tmp_path / "c") in msg and "--data-dir" in msg


def test_fetch_detects_a_damaged_local_file(tmp_path):
    (tmp_path / "a.gz").write_bytes(b"damaged")
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch([Resource("a.gz", (), md5=hashlib.md5(b"good").hexdigest())], tmp_path, "demo", download=False)


def write_fake_mnist(folder, n_train=10010, n_test=20, labels_off_by=0):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        # unpacked names: accepted in place of the checksummed .gz files
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(rng.integers(0, 10, n + labels_off_by)))


def test_mnist_loader_reads_user_files_and_splits(tmp_path):
    write_fake_mnist(tmp_path / "m")
    train = load_dataset("mnist", "train", tmp_path / "m")
    valid = load_dataset("mnist", "valid", tmp_path / "m")
    test = load_dataset("fashion-mnist", "test", tmp_path / "m")
    assert (len(train), len(valid), len(test)) == (10, 10000, 20)
    assert train.x.shape == (10, 1, 28, 28) and 0 <= train.x.min() and train.x.max() <= 1
    assert train.labels.shape == (10,)


def test_test_split_reads_only_the_test_files(tmp_path):
    write_fake_mnist(tmp_path / "m")
    for f in (tmp_path / "m").glob("train-*"):
        f.unlink()
    assert len(load_dataset("mnist", "test", tmp_path / "m")) == 20


def test_label_count_mismatch_is_an_error(tmp_path):
    write_fake_mnist(tmp_path / "m", labels_off_by=3)
    with pytest.raises(DataError, match="labels"):
        load_dataset("mnist", "test", tmp_path / "m")


def test_binarized_mnist_reads_only_its_split(tmp_path):
    arr = np.random.default_rng(0).integers(0, 2, (4, 784), dtype=np.uint8)
    (tmp_path / "binarized_mnist_test.amat.gz").write_bytes(gzip.compress(amat_text(arr).encode()))
    ds = load_dataset("binarized-mnist", "test", tmp_path)
    assert ds.binary and ds.labels is None and ds.x.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(ds.x.numpy().reshape(4, 784), arr)  # row-major 28 x 28


def test_an_idx_header_whose_shape_overflows_64_bits_is_refused(tmp_path):
    """Found by the fuzz test: four int32 dimensions whose product wraps around in int64 to the data's
    length must not pass the length check."""
    import struct

    from vaekit.data.readers import read_idx
    from vaekit.errors import DataError

    dims = (2**31, 2**31, 4, 1)  # 2^64 values: 0 in int64, so "0 bytes of data needed" would match
    p = tmp_path / "x.idx"
    p.write_bytes(bytes([0, 0, 0x0C, 4]) + struct.pack(">4I", *dims))
    with pytest.raises(DataError):
        read_idx(p)
