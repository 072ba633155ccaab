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
from ..options import Option
from .distributions import MixtureOfDiagonalNormals, StandardNormal


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I), the prior of Kingma & Welling (2014)."""

    per_dimension = True  # gives each latent dimension's KL (closed form): free bits and the KL figure use it

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


class MixturePrior(nn.Module):
    """p(z) = sum_k w_k N(m_k, diag(exp(s_k))), weights, means and log-variances learned (``mog``)."""

    per_dimension = True  # gives each latent dimension's KL from its marginals
    options = (Option("components", 10, "components of the mog prior", kind=int, alias="prior_components",
                      metavar="K", check=lambda k: k >= 1, rule="a whole number >= 1"),)

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.logits = nn.Parameter(torch.zeros(components))
        self.mu = nn.Parameter(torch.randn(components, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(components, latent_dim))

    @classmethod
    def from_config(cls, cfg, encoder=None) -> "MixturePrior":
        return cls(cfg.latent_dim, cfg.prior.components)

    @staticmethod
    def describe(p) -> str:
        return f"mog prior of {p.components} components"

    def forward(self) -> MixtureOfDiagonalNormals:
        return MixtureOfDiagonalNormals(self.logits, self.mu, self.logvar)


class VampPrior(nn.Module):
    """The VampPrior (Tomczak & Welling, 2018): p(z) = (1/K) sum_k q(z | u_k), the encoder's posteriors of K
    learned pseudo-inputs u_k in [0, 1] (``vamp``). It holds the encoder by reference, so its weights are
    stored once (under ``encoder.``)."""

    per_dimension = True  # gives each latent dimension's KL from its marginals (a mixture, as the mog's)
    options = (Option("components", 500, "pseudo-inputs of the vamp prior", kind=int, alias="prior_components",
                      metavar="K", check=lambda k: k >= 1, rule="a whole number >= 1"),
               Option("pseudo_inputs", "sigmoid", "vamp: how the pseudo-inputs are held in [0, 1]: sigmoid (of "
                      "learned logits, starting near mid-grey) or clipped (learned values clipped to [0, 1], "
                      "starting at 0.05 +- 0.01: Tomczak & Welling's hardtanh and their start for MNIST)",
                      kind=str, choices=("sigmoid", "clipped")))

    CLIPPED_START = (0.05, 0.01)  # mean and spread of the clipped form's first values (Tomczak & Welling, MNIST)

    def __init__(self, encoder: nn.Module, input_shape: tuple[int, ...], latent_dim: int, components: int,
                 pseudo_inputs: str = "sigmoid"):
        super().__init__()
        self.latent_dim = latent_dim
        self._encoder = [encoder]  # a list: not registered as a submodule a second time
        self.clipped = pseudo_inputs == "clipped"
        if self.clipped:  # values clipped to [0, 1] (zero gradient outside), starting near black as the paper's
            mean, spread = self.CLIPPED_START
            self.pseudo_values = nn.Parameter(mean + spread * torch.randn(components, *input_shape))
        else:  # pseudo-inputs through a sigmoid, starting near mid-grey
            self.pseudo_logits = nn.Parameter(0.1 * torch.randn(components, *input_shape))

    @classmethod
    def from_config(cls, cfg, encoder=None) -> "VampPrior":
        if encoder is None:
            raise ValueError("the VampPrior is built on the encoder; pass encoder=")
        return cls(encoder, encoder.input_shape, cfg.latent_dim, cfg.prior.components,
                   getattr(cfg.prior, "pseudo_inputs", "sigmoid"))

    @staticmethod
    def describe(p) -> str:
        clipped = " (clipped to [0, 1])" if getattr(p, "pseudo_inputs", "sigmoid") == "clipped" else ""
        return f"VampPrior of {p.components} pseudo-inputs{clipped}"

    def pseudo_inputs(self) -> torch.Tensor:
        """The pseudo-inputs u_k [K, *input_shape], in [0, 1]."""
        if self.clipped:
            return torch.nn.functional.hardtanh(self.pseudo_values, 0.0, 1.0)
        return torch.sigmoid(self.pseudo_logits)

    def forward(self) -> MixtureOfDiagonalNormals:
        encoder = self._encoder[0]
        u = self.pseudo_inputs()
        if getattr(encoder, "conditional", False):  # a conditional VAE's encoder: pseudo-input k has label k mod C
            q = encoder(u, y=torch.arange(u.shape[0], device=u.device) % encoder.classes)
        else:
            q = encoder(u)
        return MixtureOfDiagonalNormals(torch.zeros(q.mu.shape[0], device=q.mu.device), q.mu, q.logvar)


PRIORS = {"standard": StandardNormalPrior, "mog": MixturePrior, "vamp": VampPrior}


def make_prior(name: str, latent_dim: int, encoder: nn.Module | None = None) -> nn.Module:
    """The prior ``name`` over ``latent_dim`` dimensions (``encoder``: for priors built on it)."""
    from types import SimpleNamespace

    if name not in PRIORS:
        raise unknown_name("prior", name, PRIORS)
    from ..options import PartConfig, options_of

    defaults = {o.key: o.default for o in options_of(PRIORS[name])}
    return PRIORS[name].from_config(SimpleNamespace(latent_dim=latent_dim, prior=PartConfig(name, defaults)),
                                    encoder=encoder)
