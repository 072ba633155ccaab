"""Likelihoods p(x|z): turn the decoder network's output into a distribution over pixels.

A likelihood is a class registered in :data:`LIKELIHOODS`, built from the model config by
its own ``from_config``. It declares

* ``accepts``: the pixels it is a distribution over: ``"binary"`` (0 or 1: grey-level data
  must be binarized first, which is what decides the default ``--binarize``),
  ``"continuous"`` (any value; for images, grey levels in [0, 1]) or ``"discrete"`` (the data
  set's k levels);
* ``params_per_pixel``: how many numbers the decoder outputs per pixel (its output size is
  this times the number of pixels, parameters stacked block by block: all first parameters,
  then all second ones).

``__call__(out)`` maps the decoder's output ``[..., params_per_pixel * D]`` to a
distribution over ``[..., D]`` whose ``log_prob`` keeps every constant (nats).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import VaekitError, unknown_name
from ..options import Option
from .distributions import Bernoulli, ContinuousBernoulli, DiscretizedLogistic, FixedGaussian, LearnedGaussian

BINARY, CONTINUOUS, DISCRETE = "binary", "continuous", "discrete"
SIGMA_MIN = 0.003  # the learned Gaussian's floor: best of 0.0003-0.1 on mnist-5k (benchmarks/sigma_min.py)


class BernoulliLikelihood:
    """Independent Bernoulli pixels; the decoder outputs logits. Needs binary data."""

    name = "bernoulli"
    accepts = BINARY
    params_per_pixel = 1

    @classmethod
    def from_config(cls, cfg) -> "BernoulliLikelihood":
        return cls()

    def __call__(self, out: torch.Tensor) -> Bernoulli:
        return Bernoulli(out)

    def describe(self) -> str:
        return "Bernoulli (decoder outputs logits)"


class GaussianLikelihood:
    """Gaussian pixels with a fixed standard deviation ``sigma``; the decoder outputs means."""

    name = "gaussian"
    accepts = CONTINUOUS
    params_per_pixel = 1
    options = (Option("sigma", 1.0, "standard deviation of the gaussian likelihood", check=lambda v: v > 0,
                      rule="> 0"),)

    def __init__(self, sigma: float = 1.0):
        if not sigma > 0:
            raise VaekitError(f"the Gaussian likelihood needs sigma > 0, got {sigma}")
        self.sigma = float(sigma)

    @classmethod
    def from_config(cls, cfg) -> "GaussianLikelihood":
        return cls(cfg.likelihood.sigma)

    def __call__(self, out: torch.Tensor) -> FixedGaussian:
        return FixedGaussian(out, self.sigma)

    def describe(self) -> str:
        return f"Gaussian with fixed sigma={self.sigma:g} (decoder outputs means)"


class LearnedGaussianLikelihood:
    """Gaussian pixels whose mean and variance the decoder outputs (two numbers per pixel); the standard
    deviation is kept above ``sigma_min`` by a soft floor, log sigma^2 = f + softplus(out - f) with
    f = 2 log sigma_min, without which it runs off to 0 on near-constant pixels (the density grows
    without bound there)."""

    name = "gaussian-learned"
    accepts = CONTINUOUS
    params_per_pixel = 2
    options = (Option("sigma_min", SIGMA_MIN, "smallest standard deviation of the gaussian-learned likelihood",
                      check=lambda v: v > 0, rule="> 0"),)

    def __init__(self, sigma_min: float = SIGMA_MIN):
        if not sigma_min > 0:
            raise VaekitError(f"--sigma-min must be > 0, got {sigma_min}")
        self.sigma_min = float(sigma_min)
        self.floor = 2 * math.log(self.sigma_min)

    @classmethod
    def from_config(cls, cfg) -> "LearnedGaussianLikelihood":
        return cls(cfg.likelihood.sigma_min)

    def __call__(self, out: torch.Tensor) -> LearnedGaussian:
        mean, raw = out.chunk(2, dim=-1)
        return LearnedGaussian(mean, self.floor + F.softplus(raw - self.floor))

    def describe(self) -> str:
        return f"Gaussian with learned mean and variance, sigma >= {self.sigma_min:g}"


class ContinuousBernoulliLikelihood:
    """The continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019): a true density on [0, 1] for grey levels;
    the decoder outputs logits."""

    name = "continuous-bernoulli"
    accepts = CONTINUOUS
    params_per_pixel = 1

    @classmethod
    def from_config(cls, cfg) -> "ContinuousBernoulliLikelihood":
        return cls()

    def __call__(self, out: torch.Tensor) -> ContinuousBernoulli:
        return ContinuousBernoulli(out)

    def describe(self) -> str:
        return "continuous Bernoulli (decoder outputs logits)"


class LogisticLikelihood:
    """The discretised logistic (Salimans et al., 2017; one component per pixel) over the data set's
    ``levels`` grey levels; the decoder outputs a location and a log-scale per pixel."""

    name = "logistic"
    accepts = DISCRETE
    params_per_pixel = 2
    options = (Option("balance", 1.0, "logistic likelihood: each pixel's gradient weighted by its scale to this power "
                      "(mean 1 per image; values reported are unchanged), so that sharp pixels do not drown hedged "
                      "ones; 0: plain gradient", alias="logistic_balance", metavar="B", check=lambda v: v >= 0,
                      rule=">= 0"),)
    LOG_SCALE_MIN = -7.0  # as PixelCNN++: scales below e^-7 add nothing at 8 bits and can overflow

    def __init__(self, levels: int, balance: float = 1.0):
        if not isinstance(levels, int) or levels < 3:
            raise VaekitError(f"the logistic likelihood needs grey levels (3 or more), got {levels!r}")
        self.levels, self.balance = levels, float(balance)

    @classmethod
    def from_config(cls, cfg, levels: int | None = None) -> "LogisticLikelihood":
        return cls(levels, cfg.likelihood.balance)

    def __call__(self, out: torch.Tensor) -> DiscretizedLogistic:
        loc, log_scale = out.chunk(2, dim=-1)
        return DiscretizedLogistic(loc, log_scale.clamp_min(self.LOG_SCALE_MIN), self.levels, self.balance)

    def describe(self) -> str:
        return f"discretised logistic over {self.levels} levels"


LIKELIHOODS = {"bernoulli": BernoulliLikelihood, "gaussian": GaussianLikelihood,
               "gaussian-learned": LearnedGaussianLikelihood, "continuous-bernoulli": ContinuousBernoulliLikelihood,
               "logistic": LogisticLikelihood}


def likelihood_class(name: str):
    if name not in LIKELIHOODS:
        raise unknown_name("likelihood", name, LIKELIHOODS)
    return LIKELIHOODS[name]


def make_likelihood(name: str, sigma: float = 1.0, sigma_min: float = SIGMA_MIN, levels: int | None = None,
                    logistic_balance: float = 1.0):
    """The likelihood ``name`` (``sigma``: the fixed Gaussian's standard deviation; ``sigma_min``: the learned
    Gaussian's floor; ``levels``: the data's number of grey levels, for a discrete likelihood;
    ``logistic_balance``: the logistic's gradient weighting)."""
    from types import SimpleNamespace

    from ..options import PartConfig

    cls = likelihood_class(name)
    given = {"sigma": sigma, "sigma_min": sigma_min, "balance": logistic_balance}
    cfg = SimpleNamespace(likelihood=PartConfig(name, {o.key: given[o.key] for o in getattr(cls, "options", ())
                                                       if o.key in given}))
    return cls.from_config(cfg, levels=levels) if cls.accepts == DISCRETE else cls.from_config(cfg)


def _names(kind: str) -> str:
    return ", ".join(sorted(n for n, c in LIKELIHOODS.items() if c.accepts == kind))


def default_binarize(likelihood: str, binary_data: bool) -> str:
    """The binarization a likelihood needs on data of this kind: ``dynamic`` when it models binary
    pixels and the data are grey levels, else ``none``."""
    return "dynamic" if likelihood_class(likelihood).accepts == BINARY and not binary_data else "none"


def default_dequantize(likelihood: str) -> str:
    """``uniform`` for a density (every data set here is discrete: its levels must be spread into
    bins of [0, 1] for the density's numbers to mean anything), else ``none``."""
    return "uniform" if likelihood_class(likelihood).accepts == CONTINUOUS else "none"


def check_data(likelihood: str, binary_data: bool, binarize: str, data_name: str, dequantize: str = "none") -> None:
    """Refuse data a likelihood is not a distribution over, naming the valid choices."""
    accepts = likelihood_class(likelihood).accepts
    if accepts == BINARY and binarize == "none" and not binary_data:
        raise VaekitError(
            f"the {likelihood} likelihood needs binary pixels but '{data_name}' is grayscale and binarize is "
            f"'none'; use --binarize dynamic (or static), or a likelihood for grey levels: {_names(CONTINUOUS)}, "
            f"{_names(DISCRETE)}")
    if accepts == DISCRETE and (binary_data or binarize != "none"):
        raise VaekitError(
            f"the {likelihood} likelihood models grey levels but the data are binary ('{data_name}', binarize "
            f"{binarize}); use a likelihood for binary pixels ({_names(BINARY)}), or grey-level data with "
            "--binarize none")
    if accepts == BINARY and dequantize != "none":
        raise VaekitError(
            f"the {likelihood} likelihood is a mass over pixels that are 0 or 1, and dequantised pixels are spread "
            f"over [0, 1]: its ELBO would bound nothing; drop --dequantize (or use --dequantize none), or a density "
            f"for dequantised pixels: {_names(CONTINUOUS)}")
    if accepts == DISCRETE and dequantize != "none":
        raise VaekitError(f"the {likelihood} likelihood is a mass over the data's levels and needs them as they "
                          "are; drop --dequantize (or use --dequantize none)")
    if accepts == CONTINUOUS and dequantize == "none":
        raise VaekitError(
            f"the {likelihood} likelihood is a density but '{data_name}' holds discrete levels, on which a density "
            f"can grow without bound; use --dequantize uniform (its default), or a likelihood for discrete pixels: "
            f"{_names(DISCRETE)}, {_names(BINARY)}")
    if accepts not in (BINARY, CONTINUOUS, DISCRETE):
        raise VaekitError(f"likelihood '{likelihood}' declares accepts={accepts!r}; valid: {BINARY}, {CONTINUOUS}, "
                          f"{DISCRETE}")
