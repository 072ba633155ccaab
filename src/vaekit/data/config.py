"""The data's part of a run's configuration: which data set, where its files are, how its pixels are treated,
and what was found about it (resolved once, saved with the run). Declared with the same option fields as the
rest of the configuration (:func:`vaekit.options.option`), re-exported by :mod:`vaekit.config`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import require, unknown_name
from ..options import RESUME_WHERE, check_fields, is_int, num, option, path_string, whole
from .datasets import DATASETS, SOURCES
from .resolve import SIZED_DATA
from .sources import parse_background

BINARIZE_CHOICES = ("none", "dynamic", "static")
DEQUANTIZE_CHOICES = ("none", "uniform")
ARRAY_LAYOUTS = ("NHW", "NHWC", "NCHW")



@dataclass(frozen=True)
class DataConfig:
    """Which data set, where its files are, and how grayscale pixels are treated.

    ``binarize``: ``none`` uses pixels as they are; ``dynamic`` draws a new Bernoulli sample of every
    training image each epoch (valid/test use one fixed sample); ``static`` draws one sample once (fixed
    seed) and keeps it. Left unset it is resolved by :class:`RunConfig` from what the likelihood accepts;
    the resolved value is saved with the run.
    """

    name: str = option("mnist-5k", "data set: a named one, 'folder' (your images under --data-dir) or 'array' "
                       "(your --data-file)", flag="--data", choices=lambda: sorted(DATASETS) + list(SOURCES),
                       default_text="mnist-5k, embedded, no download")
    data_dir: str | None = option(None, "folder holding the data files (with --data folder: your images, in "
                                  "train/valid/test and class folders if you have them)", metavar="DIR",
                                  default_text="download into ~/.cache/vaekit/NAME, or into $VAEKIT_DATA/NAME when "
                                  "that is set", check=path_string, rule="a path string", resume=RESUME_WHERE)
    binarize: str | None = option(None, "grayscale pixels: none, dynamic (new Bernoulli sample each epoch) or static "
                                  "(once)", choices=BINARIZE_CHOICES,
                                  default_text="dynamic with the Bernoulli likelihood, none with the Gaussian")
    dequantize: str | None = option(None, "discrete pixels under a density: none, or uniform (each level spread over "
                                    "its bin of [0, 1] with fresh noise each epoch; valid/test use one fixed sample)",
                                    choices=DEQUANTIZE_CHOICES, default_text="uniform with a density (gaussian, "
                                    "gaussian-learned, continuous-bernoulli), none otherwise")
    data_file: str | None = option(None, "--data array: a .npy file of images, or .npz with x (images) and optionally "
                                   "y (labels); uint8 0..255 or floats in [0, 1]", metavar="FILE", default_text="none",
                                   check=path_string, rule="a path string", resume=RESUME_WHERE)
    layout: str | None = option(None, "--data array: the array's layout", choices=ARRAY_LAYOUTS,
                                default_text="detected from the shape and printed")
    image_size: tuple[int, ...] | None = option(
        None, "your images (folder, array, shapes): resize so they cover N x N (or H x W), then cut the centre",
        nargs="+", metavar="N", kind=int, default_text="as they are; a folder's must agree",
        check=lambda v: isinstance(v, tuple) and len(v) in (1, 2) and all(is_int(e) and e >= 1 for e in v),
        rule="one size N or two, H W (whole numbers >= 1)")
    channels: int | None = option(None, "your images: convert to 1 (grey) or 3 (colour) channels", metavar="C",
                                  kind=int, default_text="grey stays grey, anything else colour",
                                  check=lambda c: c in (1, 3), rule="1 (grey) or 3 (colour)")
    valid_fraction: float = option(0.1, "data without a valid split (a folder without valid/, an array): the share "
                                   "held out, by a fixed-seed shuffle", check=num(0, 1), rule="at least 0 and below 1")
    test_fraction: float = option(0.1, "data without a test split: the share held out for it", check=num(0, 1),
                                  rule="at least 0 and below 1")
    background: str = option("white", "what shows through transparent pixels: white, black, grey or #rrggbb",
                             metavar="COLOUR", check=path_string, rule="a colour name or #rrggbb")
    keep_classes: tuple[int, ...] | None = option(
        None, "labelled data: keep only the images of these classes (label numbers), in every split; e.g. train on "
        "digits 0-8 and score the 9s as outliers", nargs="+", metavar="K", kind=int, default_text="all classes",
        check=lambda v: isinstance(v, tuple) and len(v) >= 1 and all(is_int(e) and e >= 0 for e in v)
        and len(set(v)) == len(v), rule="one or more distinct class numbers >= 0")
    skip_bad_images: bool = option(False, "leave unreadable image files out (counted and named) instead of stopping",
                                   check=lambda v: isinstance(v, bool), rule="true or false")
    # resolved from the data and saved: (C, H, W); distinct pixel values (2: binary); label classes and their
    # names; a folder's or array's file-list digest and image count
    image_shape: tuple[int, int, int] | None = option(None, cli=False, check=lambda s: len(s) == 3 and all(
        is_int(e) and e >= 1 for e in s), rule="[channels, height, width]")
    levels: int | None = option(None, cli=False, check=whole(2), rule="a whole number >= 2")
    classes: int | None = option(None, cli=False, check=whole(1), rule="a whole number >= 1")
    class_names: tuple[str, ...] | None = None
    digest: str | None = None
    n_files: int | None = None

    def __post_init__(self):
        for key in ("image_shape", "image_size", "class_names", "keep_classes"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("image_size", "keep_classes"):
            if is_int(getattr(self, key)):
                object.__setattr__(self, key, (getattr(self, key),))
        if not isinstance(self.name, str) or self.name not in DATASETS and self.name not in SOURCES:
            raise unknown_name("data set", self.name, [*DATASETS, *SOURCES])
        check_fields(self, "data")
        require(self.valid_fraction + self.test_fraction < 1, f"valid_fraction + test_fraction must leave images to "
               f"train on, got {self.valid_fraction:g} + {self.test_fraction:g}")
        parse_background(self.background)
        require(self.data_file is None or self.name == "array",
               f"--data-file is for --data array; data set '{self.name}' does not read it")
        require(self.image_size is None or self.name in SIZED_DATA,
               f"--image-size is for your own images ({', '.join(SIZED_DATA)}); '{self.name}' has a fixed size")
        require(self.name != "shapes" or self.image_size is None or (self.image_size[0] == self.image_size[-1] and
                                                                    self.image_size[0] >= 8),
               f"shapes are drawn square: give one --image-size of 8 or more, got {self.image_size!r}")
        require(self.channels is None or self.name in SOURCES,
               f"--channels is for your own images (folder, array); '{self.name}' has fixed channels")
        spec = DATASETS.get(self.name)
        require(not (spec and spec.binary and self.binarize in ("dynamic", "static")), f"data set '{self.name}' is "
               f"already binary ({spec.variant if spec else ''}); drop --binarize {self.binarize} (or use 'none')")


__all__ = ["ARRAY_LAYOUTS", "BINARIZE_CHOICES", "DEQUANTIZE_CHOICES", "DataConfig"]
