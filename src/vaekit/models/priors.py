"""Priors p(z)."""

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

    def forward(self) -> StandardNormal:
        return StandardNormal(self.latent_dim, device=self._anchor.device, dtype=self._anchor.dtype)


PRIORS = {"standard": StandardNormalPrior}


def make_prior(name: str, latent_dim: int) -> nn.Module:
    if name not in PRIORS:
        raise unknown_name("prior", name, PRIORS)
    return PRIORS[name](latent_dim)
