"""Objectives: what training minimises and what it reports, in nats.

The model says how to score a batch (its ELBO terms, or its log-weights); an objective
turns that into the loss to minimise and the terms to report. The trainer and
:mod:`vaekit.evaluate` use the same objects, so what is trained is what is measured.

* :class:`ELBO` (Kingma & Welling, 2014): E_q[log p(x|z)] − β · KL(q(z|x) ‖ p(z)), with
  ``n_samples`` reparameterised samples of z. β = 1 is the true bound; β ≠ 1 is the
  β-VAE (Higgins et al., 2017). ``free_bits = λ`` clamps the batch-mean KL of every latent
  dimension below at λ nats (Kingma et al., 2016), so no dimension is pushed all the way to
  the prior; it needs a prior that gives each dimension's KL (in closed form, or from its marginals as
  the mixtures do; then the part of the KL the marginals leave out is kept unclamped).
* :class:`IWAE` (Burda et al., 2016): log (1/K) Σ_k w_k with K samples; the reported bound
  is that value itself, never a surrogate. Under KL warm-up the loss weights each sample's
  log p(z) − log q(z|x) by the warm-up's weight λ (w_k = p(x|z_k) · (p(z_k) / q(z_k|x))^λ),
  which is the IWAE bound itself once λ reaches 1; the bound reported is always λ = 1's.

Every objective also reports the plain ELBO, so runs with different objectives compare.
A schedule acts on the objective, not in the loop: :func:`kl_warmup` gives the objective
of an epoch with its KL weight ramped from 0 to β.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import torch

from .bounds import iwae_bound
from .errors import require, unknown_name
from .options import Option


class BatchTerms(NamedTuple):
    """Sums over a batch (0-d float32 tensors), in nats; ``kl_per_dim`` is ``[L]`` when the objective needs it."""

    bound: torch.Tensor  # the objective's bound on log p(x): the ELBO, or the IWAE bound
    elbo: torch.Tensor  # the plain ELBO (Monte Carlo KL when the objective sampled it)
    reconstruction: torch.Tensor  # E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z))
    kl_per_dim: torch.Tensor | None = None
    kl_rest: torch.Tensor | None = None  # what the per-dimension terms leave of the KL (a mixture prior's)
    log_w: torch.Tensor | None = None  # [K, B] per-sample log-weights, for a loss that reweights them (the IWAE's)
    log_px_z: torch.Tensor | None = None  # [K, B] their log p(x|z) parts


def _labels(y: torch.Tensor | None) -> dict:
    """Keyword arguments that hand the labels on, only when there are any (a plain model takes none)."""
    return {} if y is None else {"y": y}



SAMPLES_HELP = "samples of z per image: of the training ELBO, or the IWAE's K"  # one flag, --n-samples, for both


@dataclasses.dataclass(frozen=True)
class ELBO:
    """The evidence lower bound, optionally with a KL weight ``beta`` and ``free_bits`` per latent dimension."""

    beta: float = 1.0
    free_bits: float = 0.0
    n_samples: int = 1
    name = "elbo"
    kl_weighted = True  # has a KL term for --beta and KL warm-up to weight
    weight_field = "beta"  # the field KL warm-up scales (a compiled step takes it as data: vaekit.grad_step)
    options = (Option("n_samples", 1, SAMPLES_HELP, kind=int,
                      check=lambda n: n >= 1, rule="a whole number >= 1"),
               Option("beta", 1.0, "weight of the KL term (beta-VAE); reported ELBOs always use 1",
                      check=lambda b: b >= 0, rule=">= 0"),
               Option("free_bits", 0.0, "free bits: the batch-mean KL of each latent dimension counts as at least "
                      "this many nats (Kingma et al. 2016); with any prior that gives a KL per dimension (standard, "
                      "mog, vamp)", metavar="F", default_text="0, off", check=lambda f: f >= 0,
                      rule=">= 0 nats per latent dimension"))

    @classmethod
    def from_config(cls, part) -> "ELBO":
        return cls(beta=part.beta, free_bits=part.free_bits, n_samples=part.n_samples)

    @staticmethod
    def samples_per_image(part) -> int:
        """How many samples of z per image a step decodes (what a step costs)."""
        return part.n_samples

    @staticmethod
    def needs_kl_per_dimension(part) -> bool:
        """Free bits clamp each latent dimension's KL: the prior must give one."""
        return part.free_bits > 0

    def __post_init__(self):
        require(self.beta >= 0 and math.isfinite(self.beta), f"beta (the KL weight) must be >= 0, got {self.beta!r}")
        require(self.free_bits >= 0 and math.isfinite(self.free_bits),
               f"free_bits must be >= 0 nats per latent dimension, got {self.free_bits!r}")
        require(isinstance(self.n_samples, int) and self.n_samples >= 1,
               f"n_samples (samples of z per image) must be a whole number >= 1, got {self.n_samples!r}")

    @property
    def kl_weight(self) -> float:
        return self.beta

    def with_kl_weight(self, weight: float) -> "ELBO":
        """This objective with its KL weight scaled by ``weight`` (0..1), as KL warm-up does."""
        return self if weight == 1.0 else dataclasses.replace(self, beta=self.beta * weight)

    def terms(self, model, x: torch.Tensor, y: torch.Tensor | None = None) -> BatchTerms:
        """The batch's sums; ``model`` is a VAE (or a wrapper that forwards to one); ``y`` the labels, if any."""
        kw = _labels(y)
        if self.free_bits > 0:
            kw["kl_per_dim"] = True
        t = model(x, n_samples=self.n_samples, **kw)
        rec, kl = t.reconstruction.sum(), t.kl.sum()
        elbo = t.elbo.sum()
        per_dim = t.kl_per_dim.sum(0) if t.kl_per_dim is not None else None
        rest = t.kl_rest.sum() if getattr(t, "kl_rest", None) is not None else None
        return BatchTerms(elbo, elbo, rec, kl, per_dim, rest)

    def loss(self, terms: BatchTerms, n_images: float) -> torch.Tensor:
        """What the optimiser minimises, per image of the batch (``n_images`` of them)."""
        return self.weighted_loss(terms, n_images, self.beta)

    def weighted_loss(self, terms: BatchTerms, n_images, weight) -> torch.Tensor:
        """The loss with ``weight`` (a float, or a 0-d tensor inside a compiled step) in place of β."""
        rec, kl = terms.reconstruction, terms.kl
        if self.free_bits > 0:
            # Kingma et al. (2016): sum_j max(lambda, batch-mean KL_j), times the batch size; for a prior that does
            # not factorise (a mixture), its marginals' KLs are clamped and the rest of the KL is kept as it is,
            # so that the loss is the true negative ELBO whenever no dimension is below lambda
            kl = terms.kl_per_dim.div(n_images).clamp_min(self.free_bits).sum() * n_images
            if terms.kl_rest is not None:
                kl = kl + terms.kl_rest
        return (kl - rec if isinstance(weight, float) and weight == 1.0 else weight * kl - rec) / n_images


@dataclasses.dataclass(frozen=True)
class IWAE:
    """The importance-weighted bound with ``k`` samples per image; K = 1 is the ELBO with a sampled KL.

    ``kl_weight`` < 1 (set by KL warm-up, never by hand) trains on log-weights whose log p(z) − log q(z|x) part is
    scaled by it; the reported bound is the true one."""

    k: int = 5
    kl_weight: float = 1.0
    name = "iwae"
    kl_weighted = True  # KL warm-up may weight each sample's log p(z) - log q(z|x); --beta and --free-bits may not
    weight_field = "kl_weight"
    refuses = dict.fromkeys(("beta", "free_bits"), "the IWAE bound has no KL term for --beta or --free-bits to "
                            "weight (KL warm-up is the one weight it takes): drop them, or use --objective elbo")
    options = (Option("k", 1, SAMPLES_HELP, kind=int,
                      alias="n_samples", check=lambda n: n >= 1, rule="a whole number >= 1"),)

    @classmethod
    def from_config(cls, part) -> "IWAE":
        return cls(k=part.k)

    @staticmethod
    def samples_per_image(part) -> int:
        return part.k

    def report(self, terms: BatchTerms) -> dict[str, torch.Tensor]:
        """The bound it trains, beside the plain ELBO (logged as ``train_iwae_bound``)."""
        return {"iwae_bound": terms.bound}

    def __post_init__(self):
        require(isinstance(self.k, int) and self.k >= 1, f"the IWAE needs K >= 1 samples, got {self.k!r}")
        require(0 <= self.kl_weight <= 1, f"the IWAE's KL weight (from KL warm-up) must be in [0, 1], "
                f"got {self.kl_weight!r}")

    def with_kl_weight(self, weight: float) -> "IWAE":
        """This objective with each sample's log p(z) - log q(z|x) weighted by ``weight`` (0..1), as KL warm-up
        does."""
        return self if weight == self.kl_weight else dataclasses.replace(self, kl_weight=weight)

    def terms(self, model, x: torch.Tensor, y: torch.Tensor | None = None) -> BatchTerms:
        log_w, log_px_z = model(x, n_samples=self.k, log_weights=True, **_labels(y))  # [K, B] each
        bound = iwae_bound(log_w).sum()
        elbo = log_w.mean(0).sum()
        rec = log_px_z.mean(0).sum()
        return BatchTerms(bound, elbo, rec, rec - elbo, log_w=log_w, log_px_z=log_px_z)

    def loss(self, terms: BatchTerms, n_images: float) -> torch.Tensor:
        return self.weighted_loss(terms, n_images, self.kl_weight)

    def weighted_loss(self, terms: BatchTerms, n_images, weight) -> torch.Tensor:
        """The loss with ``weight`` (a float, or a 0-d tensor inside a compiled step) as the KL weight."""
        if isinstance(weight, float) and weight == 1.0:
            return -terms.bound / n_images
        log_px_z = terms.log_px_z
        return -iwae_bound(log_px_z + weight * (terms.log_w - log_px_z)).sum() / n_images


def reported(objective, terms: BatchTerms) -> dict[str, torch.Tensor]:
    """What an objective reports of a batch, by name (sums in nats; the trainer logs each as ``train_NAME``): its
    own ``report(terms)``, or the ELBO, its reconstruction term and its KL."""
    plain = {"elbo": terms.elbo, "reconstruction": terms.reconstruction, "kl": terms.kl}
    if objective is not None and hasattr(objective, "report"):
        return {**plain, **objective.report(terms)}
    return plain


OBJECTIVES = {"elbo": ELBO, "iwae": IWAE}


def make_objective(part):
    """The objective a configuration's ``train.objective`` names, with its options."""
    if part.name not in OBJECTIVES:
        raise unknown_name("objective", part.name, OBJECTIVES)
    return OBJECTIVES[part.name].from_config(part)


def kl_warmup(objective, epoch: int, warmup_epochs: int):
    """The objective of ``epoch`` (1-based): its KL weight times min(1, epoch / warmup_epochs) (the ELBO's KL
    term; the IWAE's log p(z) - log q(z|x) in each sample's weight)."""
    if warmup_epochs == 0:
        return objective
    return objective.with_kl_weight(min(1.0, epoch / warmup_epochs))


__all__ = ["BatchTerms", "ELBO", "IWAE", "OBJECTIVES", "kl_warmup", "make_objective", "reported"]
