"""Run configuration: one frozen dataclass per concern, composed into :class:`RunConfig`.

A plain description. Each setting is declared once, beside its field (:func:`option`), with its help and
check; a part chosen by name (:func:`part`: the variant, networks, likelihood, prior, objective) keeps
its own options in its own table (``[model.prior] name = "vamp"``, ``components = 500``), declared by
the part (:mod:`vaekit.options`). Unknown keys are errors (with the closest valid name); the flat keys
of earlier versions and of the command line (``prior_components``) are read as the options' aliases.
:meth:`RunConfig.to_dict` is what every run saves as ``config.json``; :meth:`RunConfig.from_dict` reads
it, resolving once what the data are (a folder's scan, the binarization the likelihood needs).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from . import data as _data
from . import models as _models
from . import objectives as _objectives
from .data import resolve as _resolve
from .data.config import ARRAY_LAYOUTS, BINARIZE_CHOICES, DEQUANTIZE_CHOICES, DataConfig  # noqa: F401
from .errors import VaekitError, require, unknown_name
from .options import (RESUME_FREE, RESUME_SAME, PartConfig, PartSection, check_fields, num, option, options_of, part,
                      whole)
from .schedule import CLOCKS

FORMAT_VERSION = 1
OPTIMIZERS = ("adam", "sgd", "adam-normgrad")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SOURCES = _data.SOURCES  # the user's own images (data/user.py)
SIZED_DATA = _resolve.SIZED_DATA  # data that --image-size resizes
SIGMA_MIN = _models.likelihoods.SIGMA_MIN  # the learned Gaussian's floor: one value, the likelihood's


def registry(kind: str) -> dict[str, type]:
    """The parts of ``kind``: the model's (variant, arch, likelihood, prior) and the objectives."""
    return _objectives.OBJECTIVES if kind == "objective" else _models.REGISTRIES[kind]



@dataclass(frozen=True, init=False)
class ModelConfig(PartSection):
    """The VAE: its variant, networks (``arch``), latent size, likelihood and prior, each part with its options."""

    _section, _registry = "model", staticmethod(registry)
    variant: PartConfig = part("variant", "vae", "the member of the VAE family: vae, or cvae (the conditional VAE "
                               "of Sohn et al. 2015: encoder and decoder see the label; needs a data set with labels)")
    arch: PartConfig = part("arch", "mlp", "networks: mlp (ReLU layers), gated-mlp (gated linear units, Tomczak & "
                            "Welling 2018) or conv (strided convolutions, any image size)")
    latent_dim: int = option(2, "latent dimensions", check=whole(1), rule="a whole number >= 1")
    likelihood: PartConfig = part("likelihood", "bernoulli", "p(x|z): bernoulli (binary pixels, logits); gaussian "
                                  "(fixed sigma, the tutorial's L2 loss); gaussian-learned (mean and variance per "
                                  "pixel); continuous-bernoulli (grey levels in [0, 1]); logistic (discretised, over "
                                  "the data's levels). See docs/likelihoods.md")
    prior: PartConfig = part("prior", "standard", "p(z): standard, N(0, I); mog, a learned mixture of Gaussians; "
                             "vamp, the VampPrior (Tomczak & Welling 2018)")

    def __post_init__(self):
        check_fields(self, "model")


@dataclass(frozen=True, init=False)
class TrainConfig(PartSection):
    """Optimisation: epochs, batch size, learning rate and its schedule, optimiser, seed, the objective (with its
    options), KL warm-up (Bowman et al., 2016; Sønderby et al., 2016: reported ELBOs use weight 1), early
    stopping, a wall-clock budget and the clock the schedule follows (:mod:`vaekit.schedule`), weight decay and averaging, gradient clipping,
    and the precision (``auto`` is resolved by :func:`vaekit.trainer.auto_precision` and saved resolved). Each
    option's help says what it does.
    """

    _section, _registry = "train", staticmethod(registry)
    epochs: int = option(100, "epochs", check=whole(1), rule="a whole number >= 1", resume=RESUME_FREE)
    batch_size: int = option(128, "images per step; under torchrun, over all processes together", check=whole(1),
                             rule="a whole number >= 1")
    lr: float = option(1e-3, "learning rate", check=num(0, lo_open=True), rule="> 0", what="lr (learning rate)")
    optimizer: str = option("adam", "optimiser (adam-normgrad: Adam on gradients scaled to unit norm per tensor, "
                            "as Tomczak & Welling's VampPrior code)", choices=OPTIMIZERS)
    momentum: float = option(0.9, cli=False, check=num(0, 1), rule="in [0, 1)")  # of SGD; set it in a preset
    seed: int = option(0, "random seed", check=whole(0), rule="a whole number >= 0")
    objective: PartConfig = part("objective", "elbo", "elbo, or iwae: the importance-weighted bound with K = "
                                 "--n-samples (Burda et al. 2016), reported as itself")
    warmup_epochs: int = option(0, "KL warm-up: the KL weight (the IWAE's: of each sample's log p(z) - log q(z|x)) "
                                "rises linearly to 1 over N epochs, ending by half the budget if fewer fit; reported bounds always use 1", default_text="0, none", check=whole(0),
                                rule="a whole number >= 0")
    lr_schedule: str = option("constant", "constant, or cosine annealing to 0 over the run (see --schedule-clock)",
                              choices=LR_SCHEDULES)
    patience: int = option(0, "stop after N epochs without a better valid ELBO", default_text="0, never",
                           check=whole(0), rule="a whole number >= 0 (0: no early stopping)", resume=RESUME_FREE)
    max_minutes: float = option(0.0, "time budget: stop before an epoch that would end past F minutes of training",
                                default_text="0, no limit", check=num(0), rule=">= 0 (0: no limit)",
                                resume=RESUME_FREE)
    schedule_clock: str = option("auto", "what the learning-rate schedule and the KL warm-up follow: epochs (the "
                                 "epoch's share of --epochs), or budget (the share of --max-minutes used, or of "
                                 "--epochs, whichever is further, so the schedule fits the time budget on any "
                                 "machine); auto: budget when --max-minutes is set; saved resolved in config.json",
                                 choices=CLOCKS, resume=RESUME_FREE)
    weight_decay: float = option(0.0, "weight decay on every parameter: each step shrinks it by lr x F for the Adams "
                                 "(decoupled, AdamW), the L2 term F/2 |w|^2 for sgd", default_text="0, none",
                                 check=num(0), rule=">= 0 (0: none)")
    ema: float = option(0.0, "weight averaging: a moving average of the weights with decay F (e.g. 0.999) after "
                        "every step, which validation, the best checkpoint and the pictures use", default_text="0, off",
                        check=num(0, 1), rule="in [0, 1) (0: off)", what="ema (the weight average's decay)")
    grad_clip: float = option(0.0, "rescale gradients whose global norm exceeds F", default_text="0, off",
                              check=num(0), rule=">= 0 (0: no clipping)")
    precision: str = option("auto", "auto: bf16 where the hardware computes it natively (CPUs with AVX512-BF16 or "
                            "AMX, CUDA GPUs with bf16), else fp32; saved resolved in config.json. fp32; bf16: matrix "
                            "products in bfloat16 under autocast (1.5x faster measured on a 2-core CPU with "
                            "AVX512-BF16, same NLL per epoch, docs/benchmarks.md); fp16: float16 products with a "
                            "gradient scaler, for GPUs without fast bf16. Weights, likelihood and reported numbers "
                            "stay float32", choices=PRECISIONS)

    def __post_init__(self):
        check_fields(self, "train")
        able = [n for n, c in _objectives.OBJECTIVES.items() if getattr(c, "kl_weighted", False)]
        require(self.warmup_epochs == 0 or getattr(registry("objective")[self.objective.name], "kl_weighted", False),
               f"KL warm-up weights the KL term, which the {self.objective.name} objective does not have (its bound "
               f"has no KL term to weight): drop --warmup-epochs, or use --objective {' or '.join(able)}")


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved, fully resolved, as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        lik = _models.LIKELIHOODS[self.model.likelihood.name]
        d = self.data  # your folder or array was scanned by from_dict (resolve_source): no file is read here
        if d.name in SOURCES and (d.image_shape is None or d.levels is None):
            raise VaekitError(f"the {d.name} data of this config are not resolved yet: build it with "
                              "RunConfig.from_dict(...), which scans them once (vaekit.data.resolve.resolve_source)")
        spec = _resolve.spec_of(d)
        # the likelihood's declaration of the pixels it models decides the binarization and dequantisation
        d = dataclasses.replace(
            d, binarize=d.binarize or _models.likelihoods.default_binarize(lik.name, spec.binary),
            dequantize=d.dequantize or _models.likelihoods.default_dequantize(lik.name),
            image_shape=d.image_shape or spec.image_shape, levels=d.levels or spec.levels)
        if d.classes is None and spec.classes:
            d = dataclasses.replace(d, classes=spec.classes, class_names=spec.class_names)
        if d.image_size is not None and d.name == "shapes":
            d = dataclasses.replace(d, image_shape=(3, d.image_size[0], d.image_size[-1]))
        object.__setattr__(self, "data", d)
        variant = self.model.variant.name
        require(not getattr(_models.VARIANTS[variant], "needs_labels", False) or d.classes,
               f"the {variant} variant is conditioned on labels but data set '{d.name}' has none; choose one with "
               f"labels ({', '.join(n for n, s in _data.DATASETS.items() if s.classes)}) or --variant vae")
        _models.likelihoods.check_data(lik.name, spec.binary, d.binarize, d.name, d.dequantize)
        prior, objective = self.model.prior.name, registry("objective")[self.train.objective.name]
        per_dim = getattr(objective, "needs_kl_per_dimension", lambda part: False)(self.train.objective)
        if per_dim and not getattr(_models.PRIORS[prior], "per_dimension", False):
            able = ", ".join(n for n, p in _models.PRIORS.items() if getattr(p, "per_dimension", False))
            raise VaekitError(f"free bits clamp the KL of each latent dimension, which the {prior} prior does not "
                              f"give (it declares no per_dimension); drop --free-bits or use a prior that does: {able}")

    @property
    def pixel_levels(self) -> int:
        """Distinct values a pixel takes as the model sees it: 2 once binarized, else the data's levels."""
        return 2 if self.data.binarize != "none" else self.data.levels

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format_version": FORMAT_VERSION}
        for name in _SECTIONS:
            sec = getattr(self, name)
            out[name] = {f.name: _plain(getattr(sec, f.name)) for f in fields(sec)}
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
        parts: dict[str, Any] = {}
        for key, value in d.items():
            if key == "format_version":
                continue
            if key not in _SECTIONS:
                raise VaekitError(f"{source}: {unknown_name('table', key, _SECTIONS, sort=False)}")
            if not isinstance(value, dict):
                raise VaekitError(f"{source}: '{key}' must be a table of settings, got {value!r}")
            if key == "data":
                valid = [f.name for f in fields(DataConfig)]
                for k in value:
                    if k not in valid:
                        raise VaekitError(f"{source}: {unknown_name('key', k, valid, sort=False, shown=f'data.{k}')}")
            if key == "model" and "data" in parts:
                value = _resolve.image_defaults(parts["data"], value)
            try:
                parts[key] = _SECTIONS[key](**value)
                if key == "data":  # the one step that reads your images' folder or array, once
                    parts[key] = _resolve.resolve_source(parts[key])
            except TypeError as e:  # e.g. a non-comparable type slipping through
                raise VaekitError(f"{source}: bad value in [{key}]: {e}") from None
            except VaekitError as e:  # an unknown key says where it was found
                if str(e).startswith("unknown key"):
                    raise VaekitError(f"{source}: {e}") from None
                raise
        if "model" not in parts and "data" in parts:
            defaults = _resolve.image_defaults(parts["data"], {})
            if defaults:
                parts["model"] = ModelConfig(**defaults)
        return cls(**parts)

    def override(self, **sections: dict[str, Any]) -> "RunConfig":
        """A copy with some keys replaced: ``cfg.override(train={"epochs": 5})``; what depends on the data (its
        shape, levels, classes, binarization) is found anew when the data or the likelihood change."""
        d = self.to_dict()
        for sec, values in sections.items():
            for key, value in values.items():
                set_option(d, sec, key, value)
        if "data" in sections:
            for key in ("binarize", "image_shape", "levels", "digest", "n_files", "class_names", "classes",
                        "dequantize"):
                if key not in sections["data"]:
                    d["data"][key] = None
        if "likelihood" in sections.get("model", {}):
            for key in ("binarize", "dequantize"):
                if key not in sections.get("data", {}):
                    d["data"][key] = None
        return RunConfig.from_dict(d)

    def short_data(self) -> str:
        """A few words for figure titles: the data set and its variant."""
        return _resolve.short_data(self)

    def describe_data(self) -> str:
        """Which data and which variant of it, as every result says."""
        return _resolve.describe_data(self)


def _plain(v: Any) -> Any:
    return v.to_dict() if isinstance(v, PartConfig) else list(v) if isinstance(v, tuple) else v


def set_option(d: dict[str, Any], section: str, key: str, value: Any) -> None:
    """Set ``key`` of ``section`` in a config dict; a part's name given over its table keeps the options the
    newly named part also has (``--prior mog`` over ``{"name": "vamp", "components": 500}``)."""
    table = d.setdefault(section, {})
    if not isinstance(table, dict):
        raise VaekitError(f"'{section}' must be a table of settings, got {table!r}")
    old = table.get(key)
    if isinstance(old, dict) and isinstance(value, str):
        kind = next((f.metadata["part"] for f in fields(_SECTIONS[section]) if f.name == key), None)
        cls = registry(kind).get(value) if kind else None
        keep = {o.key for o in options_of(cls)} if cls else set()
        value = {"name": value, **{k: v for k, v in old.items() if k in keep}}
    table[key] = value


def resume_rule(section: str, key: str) -> str:
    """Whether a setting may change when a run is resumed: ``same``, ``free`` (when to stop) or ``where`` (where
    the data are), as its field declares."""
    for f in fields(_SECTIONS[section]):
        if f.name == key:
            return f.metadata.get("resume", RESUME_SAME)
    return RESUME_SAME


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
