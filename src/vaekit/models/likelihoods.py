"""Likelihoods p(x|z): turn the decoder network's output into a distribution.

A new likelihood is a new class registered in :data:`LIKELIHOODS`, not a branch
inside the model.
"""

from __future__ import annotations

import torch

from ..errors import VaekitError, unknown_name
from .distributions import Bernoulli, FixedGaussian


class BernoulliLikelihood:
    """Independent Bernoulli pixels; the decoder outputs logits. Needs binary data."""

    name = "bernoulli"
    needs_binary_data = True

    def __call__(self, out: torch.Tensor) -> Bernoulli:
        return Bernoulli(out)

    def describe(self) -> str:
        return "Bernoulli (decoder outputs logits)"


class GaussianLikelihood:
    """Gaussian pixels with a fixed standard deviation ``sigma``; the decoder outputs means."""

    name = "gaussian"
    needs_binary_data = False

    def __init__(self, sigma: float = 1.0):
        if not sigma > 0:
            raise VaekitError(f"the Gaussian likelihood needs sigma > 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(self, out: torch.Tensor) -> FixedGaussian:
        return FixedGaussian(out, self.sigma)

    def describe(self) -> str:
        return f"Gaussian with fixed sigma={self.sigma:g} (decoder outputs means)"


LIKELIHOODS = {"bernoulli": BernoulliLikelihood, "gaussian": GaussianLikelihood}


def make_likelihood(name: str, sigma: float = 1.0):
    if name not in LIKELIHOODS:
        raise unknown_name("likelihood", name, LIKELIHOODS)
    if name == "gaussian":
        return GaussianLikelihood(sigma)
    return LIKELIHOODS[name]()
