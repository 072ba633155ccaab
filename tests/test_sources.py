"""The user's own images: folders of image files and array files, on data the tests write."""

import numpy as np
import pytest
from PIL import Image

from vaekit.data.sources import (decode_images, detect_layout, files_digest, parse_background, read_array,
                                 resize_and_crop, scan_folder, split_indices)
from vaekit.errors import DataError


def write_image(path, size=(6, 4), mode="RGB", colour=(200, 10, 10), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, format=fmt)
    return path


def test_a_folder_with_split_and_class_folders(tmp_path):
    for split, n in (("train", 3), ("valid", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png")
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    scan = scan_folder(tmp_path)
    assert scan.has_splits and set(scan.files) == {"train", "valid"} and len(scan.files["train"]) == 6
    assert [p.name for p in scan.not_images] == ["notes.txt"]  # counted and skipped
    assert scan.class_names == ("cat", "dog") and scan.labels["train"] == [0, 0, 0, 1, 1, 1]
    write_image(tmp_path / "train" / "stray.png")  # an image outside the class folders: no labels at all
    assert scan_folder(tmp_path).labels is None


def test_a_flat_folder_has_no_labels_and_no_splits(tmp_path):
    for i in range(4):
        write_image(tmp_path / f"{i}.jpg", mode="L", colour=100, fmt="JPEG")
    scan = scan_folder(tmp_path)
    assert not scan.has_splits and scan.labels is None and len(scan.files["all"]) == 4


def test_folders_without_images_are_refused_in_one_line(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        scan_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no images .* under"):
        scan_folder(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"1 other files, such as 'a.txt'"):
        scan_folder(tmp_path)
    write_image(tmp_path / "valid" / "1.png")
    with pytest.raises(DataError, match="no 'train/'"):
        scan_folder(tmp_path)


def test_the_digest_follows_names_and_sizes(tmp_path):
    a = write_image(tmp_path / "a.png")
    b = write_image(tmp_path / "b.png")
    d = files_digest([a, b], tmp_path)
    assert d == files_digest([b, a], tmp_path)
    write_image(tmp_path / "b.png", size=(30, 30))
    assert files_digest([a, b], tmp_path) != d


def test_decoding_grey_colour_alpha_exif_and_sizes(tmp_path):
    grey = write_image(tmp_path / "g.png", size=(8, 6), mode="L", colour=77)
    red = write_image(tmp_path / "r.png", size=(8, 6))
    clear = tmp_path / "t.png"
    Image.new("RGBA", (8, 6), (0, 0, 255, 0)).save(clear)  # fully transparent: the background shows
    x, kept, bad = decode_images([grey, red, clear], None, None, background=(0, 255, 0))
    assert x.shape == (3, 1, 6, 8) and x.dtype == np.uint8 and kept == [0, 1, 2] and not bad  # the first is grey
    x, _, _ = decode_images([red, grey, clear], None, None, background=(0, 255, 0))
    assert x.shape == (3, 3, 6, 8)
    assert x[0, :, 0, 0].tolist() == [200, 10, 10] and x[1, :, 0, 0].tolist() == [77, 77, 77]
    assert x[2, :, 0, 0].tolist() == [0, 255, 0]
    rotated = tmp_path / "exif.jpg"
    img = Image.new("RGB", (8, 6), (10, 10, 10))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(rotated, exif=exif.tobytes())
    x, _, _ = decode_images([rotated], None, 3)
    assert x.shape == (1, 3, 8, 6)  # shown upright: 6 wide, 8 high
    with pytest.raises(DataError, match="images differ in size: .* pass --image-size"):
        decode_images([red, write_image(tmp_path / "big.png", size=(9, 9))], None, None)
    x, _, _ = decode_images([red, tmp_path / "big.png"], (4, 4), 1)
    assert x.shape == (2, 1, 4, 4)


def test_a_broken_image_stops_with_its_name_or_is_skipped(tmp_path):
    good = write_image(tmp_path / "good.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:30])
    with pytest.raises(DataError, match="cannot read image '.*broken.png'.*--skip-bad-images"):
        decode_images([good, broken], None, None)
    x, kept, bad = decode_images([good, broken], None, None, skip_bad=True)
    assert len(x) == 1 and kept == [0] and bad == [broken]


def test_resize_covers_and_cuts_the_centre():
    img = Image.new("L", (20, 10), 0)
    img.paste(255, (5, 0, 15, 10))  # a white band in the middle
    out = resize_and_crop(img, 4, 4)
    assert out.size == (4, 4) and np.asarray(out).min() > 200  # the centre square is all band


def test_arrays_in_every_layout(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 7, 9, 3), dtype=np.uint8)
    np.save(tmp_path / "nhwc.npy", imgs)
    x, y, layout = read_array(tmp_path / "nhwc.npy")
    assert layout == "NHWC" and x.shape == (5, 3, 7, 9) and y is None and np.array_equal(x[2, 1], imgs[2, :, :, 1])
    np.savez(tmp_path / "nchw.npz", x=imgs.transpose(0, 3, 1, 2), y=np.arange(5))
    x, y, layout = read_array(tmp_path / "nchw.npz")
    assert layout == "NCHW" and x.shape == (5, 3, 7, 9) and y.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "nhw.npy", imgs[..., 0].astype(np.float32) / 255)
    x, _, layout = read_array(tmp_path / "nhw.npy")
    assert layout == "NHW" and x.shape == (5, 1, 7, 9) and x.dtype == np.float32
    with pytest.raises(DataError, match="could be .* say which with --layout"):
        detect_layout((5, 3, 4, 3))


@pytest.mark.parametrize("make,match", [
    (lambda p: np.save(p / "a.npy", np.zeros((2, 3))), "not images"),
    (lambda p: np.save(p / "a.npy", np.zeros((2, 4, 4), dtype=np.int64)), "int64 pixels"),
    (lambda p: np.save(p / "a.npy", np.full((2, 4, 4), 2.0)), "outside \\[0, 1\\]"),
    (lambda p: np.savez(p / "a.npz", images=np.zeros((2, 4, 4))), "no 'x'"),
    (lambda p: np.savez(p / "a.npz", x=np.zeros((2, 4, 4)), y=np.arange(3)), "2 images but labels of shape"),
    (lambda p: (p / "a.npy").write_bytes(b"not numpy"), "is not a numpy array file"),
])
def test_bad_arrays_are_one_line(tmp_path, make, match):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(DataError, match=match):
        read_array(path)


def test_fixed_seed_splits_and_backgrounds():
    s = split_indices(100, 0.1, 0.2)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [70, 10, 20]
    assert np.array_equal(np.sort(np.concatenate(list(s.values()))), np.arange(100))
    assert all(np.array_equal(s[k], split_indices(100, 0.1, 0.2)[k]) for k in s)
    with pytest.raises(DataError, match="too few"):
        split_indices(2, 0.5, 0.5)
    assert parse_background("#ff8000") == (255, 128, 0) and parse_background("black") == (0, 0, 0)
    with pytest.raises(DataError, match="not a colour"):
        parse_background("mauve")
