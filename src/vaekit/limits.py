"""What a count, size or K the user types would cost, checked before the work starts.

A number typed by hand (``-n 100000000``, ``--iw-samples 10**9``, ``--image-size 100000``) must
end in one line that gives the limit and why, not in a traceback from an allocation of 160 GB
minutes later. Each limit here is a fact about what the work needs, named in its message:

* a picture: its tiles at full size in one array of at most :data:`MAX_PICTURE_PIXELS`
  (Pillow's decompression-bomb limit: viewers and Pillow itself refuse larger PNGs);
* decoder outputs held at once: :data:`MAX_DECODER_OUTPUTS` (1 GiB in float32; the activations
  and gradients around them are several times that);
* importance samples: :data:`MAX_IW_SAMPLES` per image;
* memory: half of what the machine has available now (as for a decoded folder).
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import DataError, VaekitError

MAX_PICTURE_PIXELS = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS: larger images are refused as decompression bombs
MAX_DECODER_OUTPUTS = 1 << 28  # 268,435,456 numbers, 1 GiB in float32
MAX_IW_SAMPLES = 1_000_000  # 200 times the papers' K = 5000; the estimate's bias is long below its error by then


def available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def check_picture(n: int, image_shape: tuple[int, int, int], flag: str, tiles_per_image: int = 1) -> None:
    """Refuse a picture of ``n`` images (``tiles_per_image`` tiles each) that could not be drawn or opened."""
    _, h, w = image_shape
    tiles = n * tiles_per_image
    pixels = tiles * (h + 1) * (w + 1)
    if pixels > MAX_PICTURE_PIXELS:
        most = max(1, MAX_PICTURE_PIXELS // ((h + 1) * (w + 1) * tiles_per_image))
        raise VaekitError(f"{flag} {n:,}: a picture of that many {h}x{w} images would hold {pixels:,} pixels; at most "
                          f"{most:,} fit in one ({MAX_PICTURE_PIXELS:,} pixels, beyond which Pillow and image viewers "
                          f"refuse a PNG); ask for {most:,} or fewer")


def grid_side(image_shape: tuple[int, int, int], wanted: int, panels: int = 1) -> int:
    """The side of a square grid of decoded images (``panels`` of them) that fits one picture: ``wanted``, or
    fewer for large images."""
    _, h, w = image_shape
    fits = math.isqrt(MAX_PICTURE_PIXELS // ((h + 1) * (w + 1) * panels))
    return max(2, min(wanted, fits))


def check_iw_samples(k: int, flag: str = "--iw-samples") -> None:
    if k > MAX_IW_SAMPLES:
        raise VaekitError(f"{flag} {k:,}: at most {MAX_IW_SAMPLES:,} importance samples per image, 200 times the "
                          "papers' K = 5000 (the time grows with K: K = 5000 over 10,000 MNIST images takes minutes "
                          "on a CPU)")


def check_decoder_outputs(images: int, per_image: int, d: int, what: str, fix: str = "") -> None:
    """Refuse a step or batch whose decoder outputs (``images`` x ``per_image`` samples x ``d`` pixel numbers)
    would not fit :data:`MAX_DECODER_OUTPUTS`; ``what`` names the options that set it, ``fix`` is added to the
    advice (``--batch-size N or fewer``)."""
    outputs = images * per_image * d
    if outputs > MAX_DECODER_OUTPUTS:
        most = max(1, MAX_DECODER_OUTPUTS // (per_image * d))
        raise VaekitError(f"{what}: {images:,} images x {per_image:,} samples x {d:,} numbers per image are "
                          f"{outputs:,} decoder outputs at once, more than {MAX_DECODER_OUTPUTS:,} (1 GiB in float32, "
                          f"several times that with what surrounds them); use --batch-size {most:,} or fewer{fix}")


def check_memory(nbytes: int, what: str, fix: str) -> None:
    """Refuse work that needs more than half the memory available now (``what`` needs ``nbytes``)."""
    avail = available_memory()
    if avail is not None and nbytes > avail / 2:
        raise VaekitError(f"{what} need {nbytes / 2**30:,.1f} GiB, more than half the {avail / 2**30:,.1f} GiB of memory "
                          f"available; {fix}")


def check_image_memory(n: int, image_shape: tuple[int, ...], what: str) -> None:
    """Refuse ``n`` images of ``image_shape`` (uint8) that would not fit, suggesting a smaller ``--image-size``."""
    c, h, w = image_shape
    need = n * c * h * w
    avail = available_memory()
    if avail is not None and need > avail / 2:
        side = max(8, int(min(h, w) * (avail / 2 / need) ** 0.5) // 8 * 8)
        raise DataError(f"the {n:,} images of {what} at {_size((h, w, c))} need {need / 2**30:.1f} GiB decoded, "
                          f"more than half the {avail / 2**30:.1f} GiB available; try --image-size {side}")


__all__ = ["MAX_DECODER_OUTPUTS", "MAX_IW_SAMPLES", "MAX_PICTURE_PIXELS", "available_memory", "check_decoder_outputs",
           "check_image_memory", "check_iw_samples", "check_memory", "check_picture", "grid_side"]
