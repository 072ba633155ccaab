"""Run configuration: one frozen dataclass per concern, composed into :class:`RunConfig`.

Unknown keys are errors (with the closest valid name), validation happens in
``__post_init__`` and has no side effects, and :meth:`RunConfig.to_dict` is what
every run saves as ``config.json``. Presets are TOML files with ``[data]``,
``[model]`` and ``[train]`` tables; the command line overrides them key by key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import VaekitError, unknown_name
from .models.likelihoods import SIGMA_MIN  # the learned Gaussian's floor: one value, the likelihood's

FORMAT_VERSION = 1
BINARIZE_CHOICES = ("none", "dynamic", "static")
DEQUANTIZE_CHOICES = ("none", "uniform")
OPTIMIZERS = ("adam", "sgd")
OBJECTIVES = ("elbo", "iwae")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SOURCES = ("folder", "array")  # the user's own images (data/user.py)
SIZED_DATA = ("folder", "array", "shapes")  # data that --image-size resizes
ARRAY_LAYOUTS = ("NHW", "NHWC", "NCHW")


def option(default: Any = None, help: str = "", flag: str | None = None, metavar: str | None = None,
           choices: Any = None, nargs: str | None = None, default_text: str | None = None,
           kind: type | None = None) -> Any:
    """A config field that is also a ``vaekit train`` option: declared once, here, with its help.

    ``flag`` defaults to ``--`` and the field's name with dashes; ``choices`` may be a tuple or a
    function returning one (a registry's names, read when the parser is built); the help ends with
    the default (``default_text`` words it). The parser is built from these (:func:`cli_options`).
    """
    meta = {"cli": True, "help": help, "flag": flag, "metavar": metavar, "choices": choices, "nargs": nargs,
            "default_text": default_text, "kind": kind}
    return field(default=default, metadata=meta)


def cli_options():
    """``(section, field, argparse flag, argparse keyword arguments)`` for every option field, in order."""
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            meta = f.metadata
            if not meta.get("cli"):
                continue
            choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
            shown = meta["default_text"] or (" ".join(map(str, f.default)) if isinstance(f.default, tuple)
                                             else f"{f.default:g}" if isinstance(f.default, float) else str(f.default))
            kw: dict[str, Any] = {"default": None, "help": f"{meta['help']} (default: {shown})"}
            if isinstance(f.default, bool):  # a switch: given means true
                yield section, f.name, meta["flag"] or "--" + f.name.replace("_", "-"), \
                    {"action": "store_true", "default": None, "help": meta["help"]}
                continue
            if choices:
                kw["choices"] = tuple(choices)
            else:
                kind = meta["kind"] or (type(f.default[0]) if isinstance(f.default, tuple) else type(f.default))
                kw["type"] = kind if kind in (int, float) else str
                kw["metavar"] = meta["metavar"] or {int: "N", float: "F"}.get(kind, "TEXT")
            if meta["nargs"]:
                kw["nargs"] = meta["nargs"]
            yield section, f.name, meta["flag"] or "--" + f.name.replace("_", "-"), kw


def _dataset_names() -> list[str]:
    from .data import DATASETS

    return sorted(DATASETS) + list(SOURCES)


def _registry(name: str):
    def names() -> list[str]:
        from . import models

        return sorted(getattr(models, name))

    return names


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise VaekitError(msg)


def _check_choice(field: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise unknown_name(field, value, valid, sort=False)


def _check_finite(obj: Any, section: str) -> None:
    """Refuse NaN and infinities in any number of a section, in the option's own words: an infinite rate, sigma
    or budget would pass the range checks below and fail later under another option's name."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            name = f.metadata.get("flag") or "--" + f.name.replace("_", "-") if f.metadata.get("cli") \
                else f"{section}.{f.name}"
            default = f" (its default: {f.default:g})" if isinstance(f.default, float) else ""
            raise VaekitError(f"{name} must be a finite number, got {v}{default}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class DataConfig:
    """Which data set, where its files are, and how grayscale pixels are treated.

    ``binarize``: ``none`` uses pixels as they are; ``dynamic`` draws a new Bernoulli
    sample of every training image each epoch (valid/test use one fixed sample);
    ``static`` draws one sample once (fixed seed) and keeps it. Left unset it is
    resolved by :class:`RunConfig`: ``dynamic`` for a Bernoulli likelihood on
    grayscale data, ``none`` otherwise; the resolved value is saved with the run.
    """

    name: str = option("mnist-5k", "data set: a named one, 'folder' (your images under --data-dir) or 'array' "
                                   "(your --data-file)", flag="--data", choices=_dataset_names,
                       default_text="mnist-5k, embedded, no download")
    data_dir: str | None = option(None, "folder holding the data files (with --data folder: your images, in "
                                        "train/valid/test and class folders if you have them)", metavar="DIR",
                                  default_text="download into ~/.cache/vaekit/NAME, or into $VAEKIT_DATA/NAME "
                                               "when that is set")
    binarize: str | None = option(None, "grayscale pixels: none, dynamic (new Bernoulli sample each epoch) or static "
                                        "(once)", choices=BINARIZE_CHOICES,
                                  default_text="dynamic with the Bernoulli likelihood, none with the Gaussian")
    dequantize: str | None = option(None, "discrete pixels under a density: none, or uniform (each level spread "
                                          "over its bin of [0, 1] with fresh noise each epoch; valid/test use one "
                                          "fixed sample)", choices=DEQUANTIZE_CHOICES,
                                    default_text="uniform with a density (gaussian, gaussian-learned, "
                                                 "continuous-bernoulli), none otherwise")
    data_file: str | None = option(None, "--data array: a .npy file of images, or .npz with x (images) and "
                                         "optionally y (labels); uint8 0..255 or floats in [0, 1]", metavar="FILE",
                                   default_text="none")
    layout: str | None = option(None, "--data array: the array's layout", choices=ARRAY_LAYOUTS,
                                default_text="detected from the shape and printed")
    image_size: tuple[int, ...] | None = option(None, "your images (folder, array, shapes): resize so they cover N x N "
                                                      "(or H x W), then cut the centre", nargs="+", metavar="N",
                                                kind=int, default_text="as they are; a folder's must agree")
    channels: int | None = option(None, "your images: convert to 1 (grey) or 3 (colour) channels", metavar="C",
                                  kind=int, default_text="grey stays grey, anything else colour")
    valid_fraction: float = option(0.1, "data without a valid split (a folder without valid/, an array): the share "
                                        "held out, by a fixed-seed shuffle")
    test_fraction: float = option(0.1, "data without a test split: the share held out for it")
    background: str = option("white", "what shows through transparent pixels: white, black, grey or #rrggbb",
                             metavar="COLOUR")
    skip_bad_images: bool = option(False, "leave unreadable image files out (counted and named) instead of stopping")
    image_shape: tuple[int, int, int] | None = None  # (C, H, W); resolved from the data set and saved
    levels: int | None = None  # distinct pixel values of the stored data (2: binary); resolved and saved
    classes: int | None = None  # label classes of the data set (None: no labels); resolved and saved
    class_names: tuple[str, ...] | None = None  # their names; resolved and saved
    digest: str | None = None  # a folder's or array's file list (names, sizes); resolved and saved
    n_files: int | None = None  # how many images it held; resolved and saved

    def __post_init__(self):
        from .data import DATASETS  # the registry of names

        _check_finite(self, "data")
        for key in ("image_shape", "image_size", "class_names"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        if _is_int(self.image_size):
            object.__setattr__(self, "image_size", (self.image_size,))
        _check(self.image_shape is None or (len(self.image_shape) == 3 and all(_is_int(s) and s >= 1
                                                                                for s in self.image_shape)),
               f"data.image_shape must be [channels, height, width], got {self.image_shape!r}")

        _check(isinstance(self.name, str), f"data.name must be a string, got {self.name!r}")
        if self.name not in DATASETS and self.name not in SOURCES:
            raise unknown_name("data set", self.name, [*DATASETS, *SOURCES])
        _check(self.data_file is None or isinstance(self.data_file, str),
               f"data.data_file must be a path string, got {self.data_file!r}")
        _check(self.data_file is None or self.name == "array",
               f"--data-file is for --data array; data set '{self.name}' does not read it")
        _check(self.image_size is None or (isinstance(self.image_size, tuple) and len(self.image_size) in (1, 2)
                                           and all(_is_int(v) and v >= 1 for v in self.image_size)),
               f"image_size must be one size N or two, H W (whole numbers >= 1), got {self.image_size!r}")
        _check(self.channels in (None, 1, 3), f"channels must be 1 (grey) or 3 (colour), got {self.channels!r}")
        _check(self.layout is None or self.layout in ARRAY_LAYOUTS,
               f"layout must be one of {', '.join(ARRAY_LAYOUTS)}, got {self.layout!r}")
        for key in ("valid_fraction", "test_fraction"):
            v = getattr(self, key)
            _check(_is_num(v) and 0 <= v < 1, f"{key} must be at least 0 and below 1, got {v!r}")
        _check(self.valid_fraction + self.test_fraction < 1,
               f"valid_fraction + test_fraction must leave images to train on, got {self.valid_fraction:g} + "
               f"{self.test_fraction:g}")
        _check(isinstance(self.skip_bad_images, bool), f"skip_bad_images must be true or false, got "
                                                       f"{self.skip_bad_images!r}")
        from .data.sources import parse_background

        _check(isinstance(self.background, str), f"background must be a colour name or #rrggbb, got "
                                                 f"{self.background!r}")
        parse_background(self.background)
        _check(self.image_size is None or self.name in SIZED_DATA,
               f"--image-size is for your own images ({', '.join(SIZED_DATA)}); '{self.name}' has a fixed size")
        _check(self.name != "shapes" or self.image_size is None or
               (self.image_size[0] == self.image_size[-1] and self.image_size[0] >= 8),
               f"shapes are drawn square: give one --image-size of 8 or more, got {self.image_size!r}")
        _check(self.channels is None or self.name in SOURCES,
               f"--channels is for your own images (folder, array); '{self.name}' has fixed channels")
        _check(self.data_dir is None or isinstance(self.data_dir, str),
               f"data.data_dir must be a path string, got {self.data_dir!r}")
        if self.binarize is not None:
            _check_choice("binarize", self.binarize, BINARIZE_CHOICES)
        if self.dequantize is not None:
            _check_choice("dequantize", self.dequantize, DEQUANTIZE_CHOICES)
        _check(self.levels is None or (_is_int(self.levels) and self.levels >= 2),
               f"data.levels must be a whole number >= 2, got {self.levels!r}")
        _check(self.classes is None or (_is_int(self.classes) and self.classes >= 1),
               f"data.classes must be a whole number >= 1, got {self.classes!r}")
        if self.name in DATASETS and DATASETS[self.name].binary and self.binarize in ("dynamic", "static"):
            raise VaekitError(
                f"data set '{self.name}' is already binary ({DATASETS[self.name].variant}); "
                f"drop --binarize {self.binarize} (or use 'none')"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The VAE: architecture, latent size, hidden layer widths, likelihood and prior."""

    variant: str = option("vae", "the member of the VAE family: vae, or cvae (the conditional VAE of Sohn et al. "
                                 "2015: encoder and decoder see the label; needs a data set with labels)",
                          choices=_registry("VARIANTS"))
    arch: str = option("mlp", "networks: mlp (ReLU layers), gated-mlp (gated linear units, Tomczak & Welling "
                              "2018) or conv (strided convolutions, any image size)", choices=_registry("ARCHITECTURES"))
    latent_dim: int = option(2, "latent dimensions")
    hidden: tuple[int, ...] = option((400,), "hidden layer widths of the MLP encoder (of the conv networks: the dense "
                                             "layers between the last level and z; give 0 for none); the decoder "
                                             "mirrors them", nargs="+")
    dropout: float = option(0.0, "MLP networks: dropout after every hidden layer of encoder and decoder while "
                                 "training, against overfitting (none at evaluation)", metavar="P",
                            default_text="0, none")
    conv_channels: tuple[int, ...] = option((32, 64), "conv networks: channels of each level, each level halving "
                                                      "the height and width (one number with --conv-levels: doubled "
                                                      "at each level)", nargs="+", metavar="C")
    conv_levels: int | None = option(None, "conv networks: number of levels", metavar="N",
                                     default_text="one per --conv-channels", kind=int)
    likelihood: str = option("bernoulli", "p(x|z): bernoulli (binary pixels, logits); gaussian (fixed sigma, the "
                                          "tutorial's L2 loss); gaussian-learned (mean and variance per pixel); "
                                          "continuous-bernoulli (grey levels in [0, 1]); logistic (discretised, over "
                                          "the data's levels). See docs/likelihoods.md",
                             choices=_registry("LIKELIHOODS"))
    sigma: float = option(1.0, "standard deviation of the gaussian likelihood")
    logistic_balance: float = option(1.0, "logistic likelihood: each pixel's gradient weighted by its scale to this "
                                          "power (mean 1 per image; values reported are unchanged), so that sharp "
                                          "pixels do not drown hedged ones; 0: plain gradient", metavar="B")
    sigma_min: float = option(SIGMA_MIN, "smallest standard deviation of the gaussian-learned likelihood")
    prior: str = option("standard", "p(z): standard, N(0, I); mog, a learned mixture of Gaussians; vamp, the "
                                    "VampPrior (Tomczak & Welling 2018)", choices=_registry("PRIORS"))
    prior_components: int | None = option(None, "components of the mog prior, pseudo-inputs of the vamp prior",
                                          metavar="K", default_text="10 for mog, 500 for vamp", kind=int)

    def __post_init__(self):
        from .models import ARCHITECTURES, LIKELIHOODS, PRIORS, VARIANTS

        _check_finite(self, "model")
        for key in ("hidden", "conv_channels"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
            if _is_int(getattr(self, key)):
                object.__setattr__(self, key, (getattr(self, key),))
        if self.hidden == (0,):  # "--hidden 0": no hidden layers
            object.__setattr__(self, "hidden", ())
        for key, reg in (("variant", VARIANTS), ("arch", ARCHITECTURES), ("likelihood", LIKELIHOODS),
                         ("prior", PRIORS)):
            val = getattr(self, key)
            if val not in reg:
                raise unknown_name(f"model.{key}", val, reg)
        _check(_is_int(self.latent_dim) and self.latent_dim >= 1,
               f"latent_dim must be a whole number >= 1, got {self.latent_dim!r}")
        _check(isinstance(self.hidden, tuple) and all(_is_int(h) and h >= 1 for h in self.hidden),
               f"hidden must be a list of layer widths >= 1, got {self.hidden!r}")
        _check(_is_num(self.dropout) and 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}")
        _check(self.dropout == 0 or self.arch != "conv", "dropout is for the MLP networks (--arch mlp or "
               "gated-mlp); drop --dropout for the conv networks")
        _check(isinstance(self.conv_channels, tuple) and len(self.conv_channels) >= 1
               and all(_is_int(c) and c >= 1 for c in self.conv_channels),
               f"conv_channels must be a list of channel counts >= 1, got {self.conv_channels!r}")
        _check(self.conv_levels is None or (_is_int(self.conv_levels) and self.conv_levels >= 1),
               f"conv_levels must be a whole number >= 1, got {self.conv_levels!r}")
        _check(self.conv_levels is None or len(self.conv_channels) in (1, self.conv_levels),
               f"--conv-levels {self.conv_levels} needs one channel count per level or a single one (doubled at "
               f"each level), got --conv-channels {' '.join(map(str, self.conv_channels))}")
        _check(_is_num(self.logistic_balance) and self.logistic_balance >= 0,
               f"logistic_balance must be >= 0, got {self.logistic_balance!r}")
        _check(_is_num(self.sigma) and self.sigma > 0,
               f"sigma (the Gaussian likelihood's standard deviation) must be > 0, got {self.sigma!r}")
        _check(self.prior_components is None or (_is_int(self.prior_components) and self.prior_components >= 1),
               f"prior_components must be a whole number >= 1, got {self.prior_components!r}")
        _check(_is_num(self.sigma_min) and self.sigma_min > 0,
               f"sigma_min (the learned Gaussian's floor) must be > 0, got {self.sigma_min!r}")

    @property
    def channels_per_level(self) -> tuple[int, ...]:
        """The conv networks' channels at each level, ``conv_levels`` resolved."""
        if self.conv_levels is None or len(self.conv_channels) == self.conv_levels:
            return self.conv_channels
        return tuple(self.conv_channels[0] * 2 ** i for i in range(self.conv_levels))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: epochs, batch size, learning rate and its schedule, optimiser, seed,
    ELBO samples, KL warm-up, early stopping and a wall-clock budget.

    ``warmup_epochs``: the KL term's weight rises linearly, beta = min(1, epoch / W),
    over the first W epochs (Bowman et al., 2016; Sønderby et al., 2016); every
    reported ELBO still uses beta = 1. ``lr_schedule = "cosine"`` anneals the learning
    rate from ``lr`` to 0 over ``epochs``. ``patience``: stop after that many epochs
    without a better valid ELBO (0: never). ``max_minutes``: stop before an epoch that
    would end past this much training time (0: no limit). ``grad_clip``: rescale
    gradients whose global norm exceeds this (0: off). ``precision = "bf16"`` runs the
    network's matrix products in bfloat16 under autocast, ``"fp16"`` in float16 with a
    gradient scaler (weights, optimiser state, likelihood, KL and every reported number
    stay float32); ``"auto"`` (the default) is bf16 where the hardware computes it natively
    and fp32 elsewhere (:func:`vaekit.trainer.auto_precision`), saved resolved.
    """

    epochs: int = option(100, "epochs")
    batch_size: int = option(128, "images per step; under torchrun, over all processes together")
    lr: float = option(1e-3, "learning rate")
    optimizer: str = option("adam", "optimiser", choices=OPTIMIZERS)
    momentum: float = 0.9  # of SGD; set it in a preset
    seed: int = option(0, "random seed")
    objective: str = option("elbo", "elbo, or iwae: the importance-weighted bound with K = --n-samples (Burda et "
                                    "al. 2016), reported as itself", choices=OBJECTIVES)
    n_samples: int = option(1, "samples of z per image: of the training ELBO, or the IWAE's K")
    beta: float = option(1.0, "weight of the KL term (beta-VAE); reported ELBOs always use 1")
    free_bits: float = option(0.0, "free bits: the batch-mean KL of each latent dimension counts as at least this "
                                   "many nats (Kingma et al. 2016); with any prior that gives a KL per dimension (standard, mog, vamp)", metavar="F",
                              default_text="0, off")
    warmup_epochs: int = option(0, "KL warm-up: the KL weight rises linearly to 1 over N epochs; reported ELBOs "
                                   "always use weight 1", default_text="0, none")
    lr_schedule: str = option("constant", "constant, or cosine annealing to 0 over --epochs", choices=LR_SCHEDULES)
    patience: int = option(0, "stop after N epochs without a better valid ELBO", default_text="0, never")
    max_minutes: float = option(0.0, "stop before an epoch that would end past F minutes of training",
                                default_text="0, no limit")
    grad_clip: float = option(0.0, "rescale gradients whose global norm exceeds F", default_text="0, off")
    precision: str = option("auto", "auto: bf16 where the hardware computes it natively (CPUs with AVX512-BF16 or "
                                    "AMX, CUDA GPUs with bf16), else fp32; saved resolved in config.json. fp32; bf16: "
                                    "matrix products in bfloat16 under autocast (1.5x faster measured on a 2-core CPU "
                                    "with AVX512-BF16, same NLL per epoch, docs/benchmarks.md); fp16: float16 products "
                                    "with a gradient scaler, for GPUs without fast bf16. Weights, likelihood and "
                                    "reported numbers stay float32", choices=PRECISIONS)

    def __post_init__(self):
        _check_finite(self, "train")
        _check(_is_int(self.epochs) and self.epochs >= 1, f"epochs must be a whole number >= 1, got {self.epochs!r}")
        _check(_is_int(self.batch_size) and self.batch_size >= 1,
               f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        _check(_is_num(self.lr) and self.lr > 0, f"lr (learning rate) must be > 0, got {self.lr!r}")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check(_is_num(self.momentum) and 0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum!r}")
        _check(_is_int(self.seed) and self.seed >= 0, f"seed must be a whole number >= 0, got {self.seed!r}")
        _check(_is_int(self.n_samples) and self.n_samples >= 1,
               f"n_samples (Monte Carlo samples per ELBO) must be >= 1, got {self.n_samples!r}")
        _check_choice("objective", self.objective, OBJECTIVES)
        _check(_is_num(self.beta) and self.beta >= 0, f"beta (the KL weight) must be >= 0, got {self.beta!r}")
        _check(_is_num(self.free_bits) and self.free_bits >= 0,
               f"free_bits must be >= 0 nats per latent dimension, got {self.free_bits!r}")
        if self.objective == "iwae":
            _check(self.beta == 1 and self.free_bits == 0 and self.warmup_epochs == 0,
                   "the IWAE bound has no KL term to weight: drop --beta, --free-bits and --warmup-epochs, or use "
                   "--objective elbo")
        _check(_is_int(self.warmup_epochs) and self.warmup_epochs >= 0,
               f"warmup_epochs must be a whole number >= 0, got {self.warmup_epochs!r}")
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check(_is_int(self.patience) and self.patience >= 0,
               f"patience must be a whole number >= 0 (0: no early stopping), got {self.patience!r}")
        _check(_is_num(self.max_minutes) and self.max_minutes >= 0,
               f"max_minutes must be >= 0 (0: no limit), got {self.max_minutes!r}")
        _check_choice("precision", self.precision, PRECISIONS)
        _check(_is_num(self.grad_clip) and self.grad_clip >= 0,
               f"grad_clip (largest gradient norm) must be >= 0 (0: no clipping), got {self.grad_clip!r}")


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved, fully resolved, as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        from .data import DATASETS

        from .models.likelihoods import check_data, default_binarize, default_dequantize

        spec = self._resolve_source()
        # the likelihood's declaration of the pixels it models decides the binarization
        if self.data.binarize is None:
            mode = default_binarize(self.model.likelihood, spec.binary)
            object.__setattr__(self, "data", dataclasses.replace(self.data, binarize=mode))
        if self.data.dequantize is None:
            mode = default_dequantize(self.model.likelihood)
            object.__setattr__(self, "data", dataclasses.replace(self.data, dequantize=mode))
        if self.data.image_shape is None:
            object.__setattr__(self, "data", dataclasses.replace(self.data, image_shape=spec.image_shape))
        if self.data.levels is None:
            object.__setattr__(self, "data", dataclasses.replace(self.data, levels=spec.levels))
        if self.data.classes is None and spec.classes:
            object.__setattr__(self, "data", dataclasses.replace(self.data, classes=spec.classes,
                                                                 class_names=spec.class_names))
        if self.data.image_size is not None and self.data.name == "shapes":
            h, w = self.data.image_size[0], self.data.image_size[-1]
            object.__setattr__(self, "data", dataclasses.replace(self.data, image_shape=(3, h, w)))
        if self.model.variant == "cvae" and not self.data.classes:
            raise VaekitError(f"the cvae variant is conditioned on labels but data set '{self.data.name}' has none; "
                              f"choose one with labels ({', '.join(n for n, d in DATASETS.items() if d.classes)}) "
                              "or --variant vae")
        check_data(self.model.likelihood, spec.binary, self.data.binarize, self.data.name, self.data.dequantize)
        if self.train.free_bits > 0:
            from .models import PRIORS

            if not getattr(PRIORS[self.model.prior], "per_dimension", False):
                able = ", ".join(n for n, p in PRIORS.items() if getattr(p, "per_dimension", False))
                raise VaekitError(f"free bits clamp the KL of each latent dimension, which the {self.model.prior} "
                                  f"prior does not give (it declares no per_dimension); drop --free-bits or use a "
                                  f"prior that does: {able}")

    def _resolve_source(self):
        """The data's spec. The user's folder or array is scanned only while something about it is unresolved
        (a saved run knows its image shape, levels, classes and digest, and keeps working without the data);
        the scan's findings are saved with the run."""
        d = self.data
        if d.name in SOURCES and (d.image_shape is None or d.levels is None or d.digest is None):
            from .data.user import check_unchanged, source_spec

            src = source_spec(d)
            check_unchanged(d, src)  # a digest given with unresolved fields must still match
            object.__setattr__(self, "data", dataclasses.replace(
                d, image_shape=d.image_shape or src.image_shape, levels=d.levels or src.levels,
                classes=len(src.class_names) if src.class_names else None, class_names=src.class_names,
                digest=src.digest, n_files=src.n_files, layout=d.layout or src.layout))
        return self._spec()

    @property
    def pixel_levels(self) -> int:
        """Distinct values a pixel takes as the model sees it: 2 once binarized, else the data's levels."""
        return 2 if self.data.binarize != "none" else self.data.levels

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        for name in _SECTIONS:
            d = dataclasses.asdict(getattr(self, name))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "RunConfig":
        """Build from a nested dict; unknown tables or keys are errors naming the valid ones."""
        if not isinstance(d, dict):
            raise VaekitError(f"{source}: expected a table of [data], [model], [train]; got {type(d).__name__}")
        version = d.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise VaekitError(f"{source}: format_version {version!r} is not supported (this vaekit reads "
                              f"{FORMAT_VERSION})")
        parts = {}
        for key, value in d.items():
            if key == "format_version":
                continue
            if key not in _SECTIONS:
                raise VaekitError(f"{source}: {unknown_name('table', key, _SECTIONS, sort=False)}")
            if not isinstance(value, dict):
                raise VaekitError(f"{source}: '{key}' must be a table of settings, got {value!r}")
            valid = [f.name for f in fields(_SECTIONS[key])]
            for k in value:
                if k not in valid:
                    raise VaekitError(f"{source}: {unknown_name('key', k, valid, sort=False, shown=f'{key}.{k}')}")
            if key == "model" and "data" in parts:
                value = _image_defaults(parts["data"], value)
            try:
                parts[key] = _SECTIONS[key](**value)
            except TypeError as e:  # e.g. a non-comparable type slipping through
                raise VaekitError(f"{source}: bad value in [{key}]: {e}") from None
        if "model" not in parts and "data" in parts:
            defaults = _image_defaults(parts["data"], {})
            if defaults:
                parts["model"] = ModelConfig(**defaults)
        return cls(**parts)

    def override(self, **sections: dict[str, Any]) -> "RunConfig":
        """A copy with some keys replaced: ``cfg.override(train={"epochs": 5})``."""
        d = self.to_dict()
        for sec, values in sections.items():
            d.setdefault(sec, {}).update(values)
        if "data" in sections and "binarize" not in sections["data"]:
            d["data"]["binarize"] = None  # re-resolve for the new data or likelihood
        if "data" in sections and "image_shape" not in sections["data"]:
            d["data"]["image_shape"] = None
        if "data" in sections and "levels" not in sections["data"]:
            d["data"]["levels"] = None
        for key in ("digest", "n_files", "class_names"):  # other data: found anew
            if "data" in sections and key not in sections["data"]:
                d["data"][key] = None
        if "data" in sections and "classes" not in sections["data"]:
            d["data"]["classes"] = None
        if ("data" in sections or "likelihood" in sections.get("model", {})) and "dequantize" not in \
                sections.get("data", {}):
            d["data"]["dequantize"] = None
        if "model" in sections and "likelihood" in sections["model"] and "binarize" not in sections.get("data", {}):
            d["data"]["binarize"] = None
        return RunConfig.from_dict(d)

    def short_data(self) -> str:
        """A few words for figure titles: the data set and its variant."""
        from .data import DATASETS

        deq = ", dequantised" if self.data.dequantize == "uniform" else ""
        spec = self._spec()
        if spec.binary:
            return f"{self.data.name} ({'static binarization' if self.data.name in DATASETS else 'binary'}{deq})"
        return {"none": f"{self.data.name} ({spec.variant}{deq})",
                "dynamic": f"{self.data.name} (dynamic binarization{deq})",
                "static": f"{self.data.name} (static binarization, fixed seed{deq})"}[self.data.binarize]

    def _spec(self):
        from .data import DATASETS, DatasetSpec

        d = self.data
        if d.name in DATASETS:
            return DATASETS[d.name]
        where = d.data_dir if d.name == "folder" else d.data_file
        return DatasetSpec(d.name, None, d.image_shape, d.levels, "colour" if d.image_shape[0] == 3 else "grayscale",
                           f"images from {where}", d.class_names)

    def describe_data(self) -> str:
        spec = self._spec()
        deq = (f"; uniformly dequantised over its {self.pixel_levels} levels, fresh noise each epoch, one fixed "
               "sample for valid/test") if self.data.dequantize == "uniform" else ""
        name = self.data.name
        if name in SOURCES:
            name = f"{name} '{self.data.data_dir if name == 'folder' else self.data.data_file}'"
        shape = "x".join(map(str, self.data.image_shape or ()))
        if self.data.name in SIZED_DATA:
            name += f", {shape}" + (" (resized and centre-cut)" if self.data.image_size else "")
        if self.data.name == "array" and self.data.layout:
            name += f", read as {self.data.layout}"
        if spec.binary:
            return f"{name} ({spec.variant}{deq})"
        levels = f"{spec.levels} levels" if spec.levels != 256 else "8-bit"
        return {
            "none": f"{name} ({spec.variant}, {levels}, not binarized{deq})",
            "dynamic": f"{name} (dynamically binarized: a new Bernoulli sample each epoch; "
                       f"valid/test use one fixed sample{deq})",
            "static": f"{name} (statically binarized once with a fixed seed{deq})",
        }[self.data.binarize]


def _image_defaults(data: DataConfig, model: dict[str, Any]) -> dict[str, Any]:
    """The model settings not given, for images of any size (your folder or array, shapes): the conv
    networks, and the discretised logistic over 8-bit levels (the Bernoulli for binary arrays), so that
    nobody binarises their photos by hand."""
    if data.name not in SIZED_DATA or ("arch" in model and "likelihood" in model):
        return model
    model = dict(model)
    model.setdefault("arch", "conv")
    if "likelihood" not in model:
        levels = data.levels
        if levels is None and data.name in SOURCES:
            from .data.user import source_spec

            levels = source_spec(data).levels
        model["likelihood"] = "bernoulli" if levels == 2 else "logistic"
    return model


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML preset into a dict, with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise VaekitError(f"config file '{p}' not found; pass an existing .toml file to --config")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise VaekitError(f"config file '{p}' is not valid TOML: {e}") from None


def load_config(path: str | Path) -> RunConfig:
    """A :class:`RunConfig` from a TOML preset or a saved ``config.json``."""
    p = Path(path)
    if p.suffix == ".json":
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise VaekitError(f"config file '{p}' not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise VaekitError(f"config file '{p}' is not valid JSON: {e}") from None
        return RunConfig.from_dict(d, source=str(p))
    return RunConfig.from_dict(load_toml(p), source=str(p))
