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

import torch

from ..errors import VaekitError, unknown_name
from .distributions import Bernoulli, FixedGaussian

BINARY, CONTINUOUS, DISCRETE = "binary", "continuous", "discrete"


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

    def __init__(self, sigma: float = 1.0):
        if not sigma > 0:
            raise VaekitError(f"the Gaussian likelihood needs sigma > 0, got {sigma}")
        self.sigma = float(sigma)

    @classmethod
    def from_config(cls, cfg) -> "GaussianLikelihood":
        return cls(cfg.sigma)

    def __call__(self, out: torch.Tensor) -> FixedGaussian:
        return FixedGaussian(out, self.sigma)

    def describe(self) -> str:
        return f"Gaussian with fixed sigma={self.sigma:g} (decoder outputs means)"


LIKELIHOODS = {"bernoulli": BernoulliLikelihood, "gaussian": GaussianLikelihood}


def likelihood_class(name: str):
    if name not in LIKELIHOODS:
        raise unknown_name("likelihood", name, LIKELIHOODS)
    return LIKELIHOODS[name]


def make_likelihood(name: str, sigma: float = 1.0):
    """The likelihood ``name`` (``sigma``: the fixed Gaussian's standard deviation)."""
    from types import SimpleNamespace

    return likelihood_class(name).from_config(SimpleNamespace(sigma=sigma))


def default_binarize(likelihood: str, binary_data: bool) -> str:
    """The binarization a likelihood needs on data of this kind: ``dynamic`` when it models binary
    pixels and the data are grey levels, else ``none``."""
    return "dynamic" if likelihood_class(likelihood).accepts == BINARY and not binary_data else "none"


def check_data(likelihood: str, binary_data: bool, binarize: str, data_name: str) -> None:
    """Refuse data a likelihood is not a distribution over, naming the valid choices."""
    if likelihood_class(likelihood).accepts == BINARY and binarize == "none" and not binary_data:
        others = sorted(n for n, c in LIKELIHOODS.items() if c.accepts != BINARY)
        raise VaekitError(
            f"the {likelihood} likelihood needs binary pixels but '{data_name}' is grayscale and binarize is "
            f"'none'; use --binarize dynamic (or static), or a likelihood for grey levels: {', '.join(others)}")
