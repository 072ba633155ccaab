"""The VAE composed from its parts: ``VAE(encoder, decoder, prior)``.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes"; the importance-weighted
bound of Burda, Grosse & Salakhutdinov (2016).

* generative model p(x, z) = p(x|z) p(z): ``prior()`` returns p(z), ``decoder(z)``
  returns p(x|z);
* inference model q(z|x) = N(mu(x), diag(sigma^2(x))): ``encoder(x)``;
* training maximises the ELBO E_q[log p(x|z)] - KL(q(z|x) || p(z)), estimated with
  ``n_samples`` reparameterised samples (the tutorial's 1/N sum) and the KL in
  closed form when it has one.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..errors import VaekitError
from ..kl import gaussian_kl_per_dim
from .distributions import DiagonalNormal, StandardNormal


class ELBOTerms(NamedTuple):
    """Per-example terms of the ELBO, in nats: ``elbo = reconstruction - kl``."""

    elbo: torch.Tensor  # [B]
    reconstruction: torch.Tensor  # [B]  E_q[log p(x|z)]
    kl: torch.Tensor  # [B]  KL(q(z|x) || p(z))
    kl_per_dim: torch.Tensor | None = None  # [B, L] when asked for
    # [B] with kl_per_dim, for a prior that does not factorise (a mixture): kl - kl_per_dim.sum(-1), the part of
    # the KL its marginals leave out; None when the KL is the sum of its dimensions' (a Gaussian prior)
    kl_rest: torch.Tensor | None = None


class VAE(nn.Module):
    """The VAE composed from an encoder, a decoder (with its likelihood) and a prior.

    Images go in as ``[B, C, H, W]`` (rows of pixels ``[B, D]`` work too) and come out of
    :meth:`sample` and :meth:`reconstruct` as images. ``y``, the labels, reach every part that
    declares ``conditional = True`` (a conditional VAE's encoder, decoder or prior); the parts
    of the plain VAE are not conditional and never see them.
    """

    sample_text = "mean of p(x|z), z ~ {prior}"  # what a picture of samples shows (its title)
    terms_text = ("E_q[log p(x|z)]", "KL(q(z|x) || p(z))")  # the ELBO's two terms, as the curves name them

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module,
                 image_shape: tuple[int, int, int] | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.image_shape = tuple(image_shape) if image_shape else None

    @classmethod
    def condition_dims(cls, classes: int | None) -> int:
        """Extra inputs the networks need for a label: none, the plain VAE ignores labels."""
        return 0

    @classmethod
    def from_parts(cls, encoder: nn.Module, decoder: nn.Module, prior_cls, cfg, image_shape, classes) -> "VAE":
        """The model from its networks, the prior built on the encoder (``build_model`` calls this)."""
        return cls(encoder, decoder, prior_cls.from_config(cfg, encoder=encoder), image_shape)

    @property
    def latent_dim(self) -> int:
        return self.prior.latent_dim

    @property
    def conditional(self) -> bool:
        """Whether any part needs the labels ``y``."""
        return any(getattr(part, "conditional", False) for part in (self.encoder, self.decoder, self.prior))

    @staticmethod
    def _given(part: nn.Module, y: torch.Tensor | None) -> dict:
        return {"y": y} if y is not None and getattr(part, "conditional", False) else {}

    @staticmethod
    def pixels(x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` as the rows of pixels ``[B, D]`` a likelihood scores (a view; flat rows pass)."""
        return x.reshape(x.shape[0], -1) if x.dim() > 2 else x

    encoder_noise = 0.0  # the networks' option: the spread of the noise on what the encoders see while training

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        """The images as the inference networks see them: while training with ``encoder_noise`` = s > 0, x + s * eps
        with eps ~ N(0, I) (a denoising encoder, Im et al. 2017; amortised inference regularisation, Shu et al.
        2018), else ``x`` itself. The likelihood scores the clean ``x``: the ELBO of any q(z|x~) bounds log p(x)."""
        if not (self.training and self.encoder_noise > 0):
            return x
        x = x if x.is_floating_point() else x.float()
        return x + self.encoder_noise * torch.randn_like(x)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> DiagonalNormal:
        """q(z|x) for a batch of images ``x [B, C, H, W]`` (or rows of pixels ``[B, D]``)."""
        return self.encoder(x, **self._given(self.encoder, y))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        """p(x|z) for latents ``z [..., L]``."""
        return self.decoder(z, **self._given(self.decoder, y))

    def prior_given(self, y: torch.Tensor | None = None):
        """p(z) (or p(z|y) for a conditional prior)."""
        return self.prior(**self._given(self.prior, y))

    @property
    def kl_form(self) -> str:
        """How :meth:`kl` is computed: ``"closed form"`` when the prior is a diagonal Gaussian, else
        ``"Monte Carlo"`` (the mixture priors)."""
        if getattr(self.prior, "conditional", False):  # p(z|y): asking needs labels; the prior may say
            return getattr(self.prior, "kl_form", "Monte Carlo")
        with torch.no_grad():
            return "closed form" if isinstance(self.prior(), DiagonalNormal) else "Monte Carlo"

    def kl(self, q: DiagonalNormal, z: torch.Tensor | None = None, y: torch.Tensor | None = None,
           prior=None) -> torch.Tensor:
        """KL(q || p): analytic when both are Gaussian, else a Monte Carlo estimate from ``z``. ``prior``: p(z)
        when the caller has it already (as in :meth:`log_weights`)."""
        p = prior if prior is not None else self.prior_given(y)
        if isinstance(q, DiagonalNormal) and isinstance(p, DiagonalNormal):
            return q.kl(p)
        if z is None:
            z = q.rsample()
        return (q.log_prob(z) - p.log_prob(z)).reshape(-1, *q.mean.shape[:-1]).mean(0)

    def kl_estimate(self, x: torch.Tensor, q: DiagonalNormal, y: torch.Tensor | None = None, prior=None):
        """KL(q(z|x) || p(z)) of the images ``x`` per image, as evaluation reports it: :meth:`kl` here; a model with
        more stochastic layers sums them (it needs ``x`` for the lower ones)."""
        return self.kl(q, y=y, prior=prior)

    def kl_per_dim(self, q: DiagonalNormal, z: torch.Tensor | None = None,
                   y: torch.Tensor | None = None, prior=None) -> torch.Tensor:
        """KL(q(z_j|x) || p(z_j)) per latent dimension ``[B, L]``: in closed form for a Gaussian prior,
        else a Monte Carlo estimate from ``z`` (or a fresh sample) when the prior scores each
        dimension (``log_prob_per_dim``, its marginals). Priors that do neither raise. For a prior that does
        not factorise the dimensions' terms do not sum to the KL (:attr:`ELBOTerms.kl_rest` is the rest)."""
        p = prior if prior is not None else self.prior_given(y)
        if isinstance(q, DiagonalNormal) and isinstance(p, DiagonalNormal):
            return gaussian_kl_per_dim(q.mu, q.logvar, p.mu, p.logvar)
        if not hasattr(p, "log_prob_per_dim"):
            raise VaekitError(f"the prior '{type(self.prior).__name__}' has no KL per latent dimension "
                              "(it does not factorise and gives no marginals); free bits and the KL-per-dimension "
                              "figure need one")
        if z is None:
            z = q.rsample()
        per = q.log_prob_per_dim(z) - p.log_prob_per_dim(z)
        return per.reshape(-1, *q.mean.shape).mean(0)

    def forward(self, x: torch.Tensor, n_samples: int = 1, kl_per_dim: bool = False,
                log_weights: bool = False, y: torch.Tensor | None = None) -> ELBOTerms:
        """Per-example ELBO terms for images ``x`` with ``n_samples`` samples of z.

        ``kl_per_dim=True`` also returns the KL of each latent dimension ``[B, L]``;
        ``log_weights=True`` returns :meth:`log_weights` instead (so that objectives reach it
        through ``forward``, as a DistributedDataParallel wrapper requires).
        """
        if log_weights:
            return self.log_weights(x, n_samples, y=y)
        q = self.encode(self.noisy(x), y)
        x = self.pixels(x)
        if n_samples == 1:
            z = q.rsample()  # [B, L]
            rec = self.decode(z, y).log_prob(x)  # [B]
        else:
            z = q.rsample((n_samples,))  # [N, B, L]
            rec = self.decode(z, y).log_prob(x).mean(0)  # [B]
        if kl_per_dim:
            p = self.prior_given(y)
            per_dim = self.kl_per_dim(q, z, y, prior=p)
            if isinstance(p, DiagonalNormal):  # the KL is the sum of its dimensions'
                kl = per_dim.sum(-1)
                return ELBOTerms(rec - kl, rec, kl, per_dim)
            kl = self.kl(q, z, y, prior=p)  # the true KL, from the same samples
            return ELBOTerms(rec - kl, rec, kl, per_dim, kl - per_dim.sum(-1))
        kl = self.kl(q, z, y)
        return ELBOTerms(rec - kl, rec, kl)

    def log_weights(self, x: torch.Tensor, n_samples: int, q: DiagonalNormal | None = None,
                    y: torch.Tensor | None = None, prior=None):
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x).

        Returns ``(log_w, log_px_z)``, both ``[K, B]``. ``q`` (the posterior from :meth:`encode`) and
        ``prior`` (from :meth:`prior_given`): when the caller draws several chunks of samples for the
        same images, so that neither is computed again per chunk.
        """
        if q is None:
            q = self.encode(self.noisy(x), y)
        if prior is None:
            prior = self.prior_given(y)
        z = q.rsample((n_samples,))  # [K, B, L]
        log_px_z = self.decode(z, y).log_prob(self.pixels(x))  # [K, B]
        log_w = log_px_z + prior.log_prob(z) - q.log_prob(z)
        return log_w, log_px_z

    def images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Rows of pixels ``[N, D]`` as images ``[N, C, H, W]`` (unchanged when the model has no image shape)."""
        return pixels.reshape(pixels.shape[0], *self.image_shape) if self.image_shape else pixels

    def latent_code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Where the encoder puts each image: the posterior mean E_q[z|x] ``[B, L]`` (what pictures of the
        latent space show)."""
        return self.encode(x, y).mean

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, y: torch.Tensor | None = None, prior=None) -> torch.Tensor:
        """n new images ``[n, C, H, W]`` drawn from p(x) = int p(x|z) p(z) dz, no MCMC: z ~ p(z), decode.

        With ``mean=True`` (the usual picture) returns the mean of p(x|z); ``y``: the labels to
        draw, for a conditional model; ``prior``: another p(z) to draw z from (a fitted one).
        """
        if self.conditional and y is None:
            raise VaekitError("a conditional model draws given labels: pass y= (one class number per image)")
        if y is not None and self.conditional and len(y) != n:
            raise VaekitError(f"give one label per image to draw: n = {n}, {len(y)} labels")
        p = prior if prior is not None else self.prior_given(y)
        # a conditional prior: one z per label
        z = p.sample(() if prior is None and self._given(self.prior, y) else (n,))
        px = self.decode(z, y)
        return self.images(px.mean if mean else px.sample())

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[B, C, H, W]``: the mean of p(x|z) at z = the posterior mean of q(z|x)."""
        return self.images(self.decode(self.latent_code(x, y), y).mean)


__all__ = ["VAE", "ELBOTerms", "StandardNormal"]
