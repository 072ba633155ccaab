"""Priors p(z).

A prior is an ``nn.Module`` with ``latent_dim`` and ``forward()`` returning a distribution
over ``[..., latent_dim]`` that can ``sample(shape)`` and ``log_prob(z)`` (optionally
``log_prob_per_dim(z)``, its marginals, for free bits and the KL figure). It is built by
``from_config(cfg, encoder)``: a prior built on the encoder (the VampPrior) keeps a
reference to it, not a copy, so the weights are stored once.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import unknown_name
from .distributions import StandardNormal


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I), the prior of Kingma & Welling (2014)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        # an empty buffer tells us the module's device and dtype after .to()
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @classmethod
    def from_config(cls, cfg, encoder=None) -> "StandardNormalPrior":
        return cls(cfg.latent_dim)

    def forward(self) -> StandardNormal:
        return StandardNormal(self.latent_dim, device=self._anchor.device, dtype=self._anchor.dtype)


PRIORS = {"standard": StandardNormalPrior}


def make_prior(name: str, latent_dim: int, encoder: nn.Module | None = None) -> nn.Module:
    """The prior ``name`` over ``latent_dim`` dimensions (``encoder``: for priors built on it)."""
    from types import SimpleNamespace

    if name not in PRIORS:
        raise unknown_name("prior", name, PRIORS)
    return PRIORS[name].from_config(SimpleNamespace(latent_dim=latent_dim), encoder=encoder)
