"""``variant = "hvae"``: two stochastic layers, in the form of Tomczak & Welling's hierarchical VAE (2018):

* inference q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2);
* generative p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2), with any registered prior as p(z2) (a VampPrior
  passes its pseudo-inputs through q(z2 | x), the top encoder it is built on).

Every conditional is a diagonal Gaussian from a network of the chosen arch (``mlp`` or ``gated-mlp``: the widths
of ``hidden``, dropout as set; ``conv``: q(z1|x, z2) and p(x|z1, z2) convolutional, p(z1|z2) an MLP); ``latent_dim`` is the size of the top layer z2 and ``z1_dim`` that of the lower one.
The top layer is "the latent" for the rest of vaekit: ``encode`` is q(z2|x), ``decode(z2)`` is p(x | z1, z2)
at z1 = the mean of p(z1|z2), and the pictures, codes and explorer see z2. The ELBO and the log-weights
of the importance-weighted bound sum both layers:

    log w = log p(x|z1,z2) + log p(z1|z2) + log p(z2) - log q(z1|x,z2) - log q(z2|x),  (z1, z2) ~ q.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import VaekitError
from ..kl import gaussian_kl_per_dim
from ..options import Option
from .conv import ConvDecoder, ConvEncoder
from .decoders import MLPDecoder
from .distributions import DiagonalNormal
from .encoders import MLPEncoder
from .vae import VAE, ELBOTerms


def _reshaped(q: DiagonalNormal, lead: tuple[int, ...]) -> DiagonalNormal:
    return DiagonalNormal(q.mu.reshape(*lead, q.mu.shape[-1]), q.logvar.reshape(*lead, q.logvar.shape[-1]))


class HVAE(VAE):
    """A VAE with two stochastic layers: ``encoder`` q(z2|x), ``lower_encoder`` q(z1|x, z2), ``lower_prior``
    p(z1|z2) and ``decoder`` p(x|z1, z2)."""

    options = (Option("z1_dim", None, "hvae: size of the lower stochastic layer z1 (the top layer z2 has "
                      "--latent-dim)", kind=int, metavar="N", default_text="the same as --latent-dim",
                      check=lambda n: n >= 1, rule="a whole number >= 1"),
               Option("inputs", "joined", "hvae: how the two-input networks q(z1|x, z2) and p(x|z1, z2) take "
                      "their inputs: joined (one first layer on both, side by side) or separate (each input its "
                      "own first hidden layer, the outputs joined for the next: Tomczak & Welling's form)",
                      kind=str, alias="hvae_inputs", choices=("joined", "separate")))
    sample_text = "mean of p(x|z1, z2), z2 ~ {prior}, z1 = mean of p(z1|z2)"
    terms_text = ("E_q[log p(x|z1, z2)]", "KL(q(z1, z2|x) || p(z1, z2))")
    page_exportable = False  # the explorer's self-contained page runs one decoder network, not this chain

    def __init__(self, encoder, lower_encoder, lower_prior, decoder, prior, image_shape):
        super().__init__(encoder, decoder, prior, image_shape)
        self.lower_encoder, self.lower_prior = lower_encoder, lower_prior

    @staticmethod
    def describe(classes: int | None, options=None) -> str:
        split = "; each input its own first layer" if options is not None and options.inputs == "separate" else ""
        return f"hvae (two stochastic layers, z1 under the top z2{split}), "

    @classmethod
    def from_parts(cls, encoder, decoder, prior_cls, cfg, image_shape, classes) -> "HVAE":
        """The top encoder comes from the arch; the other three networks are built here from the same arch: MLPs,
        or for the conv networks (the spirit of Tomczak & Welling's convHVAE) a conv q(z1|x, z2) and a conv
        p(x|z1, z2) with z2 (and z1) joined at their dense layers; p(z1|z2) is an MLP in both. ``inputs =
        "separate"``: the two-input networks give each input its own first hidden layer (the widths of the
        first of ``hidden``), whose outputs, side by side, feed the rest."""
        a, l2 = cfg.arch, cfg.latent_dim
        l1 = cfg.variant.z1_dim or l2
        hidden = tuple(a.hidden)
        likelihood = decoder.likelihood
        bounds = encoder.logvar_bounds  # the top encoder's, from the networks' options: the same for every head
        split = cfg.variant.inputs == "separate"
        if split and not hidden:
            raise VaekitError("--hvae-inputs separate gives each input its own first hidden layer, so it needs one: "
                              "set --hidden (e.g. --hidden 300 300) or use --hvae-inputs joined")
        if isinstance(encoder, ConvEncoder) and isinstance(decoder, ConvDecoder):
            channels = [m.out_channels for m in encoder.conv if isinstance(m, nn.Conv2d)]
            lower_encoder = ConvEncoder(image_shape, channels, hidden, l1, cond_dim=l2, logvar_bounds=bounds,
                                        split_cond=split)
            lower_prior = MLPEncoder(l2, hidden or (max(l1, l2),), l1, logvar_bounds=bounds)
            top_decoder = ConvDecoder(image_shape, channels, tuple(reversed(hidden)), l2, likelihood, cond_dim=l1,
                                      split_cond=split)
        elif isinstance(encoder, MLPEncoder) and isinstance(decoder, MLPDecoder):
            d, dropout = math.prod(image_shape), a.dropout
            enc_cls, dec_cls = type(encoder), type(decoder)
            lower_encoder = enc_cls(d, hidden, l1, cond_dim=l2, dropout=dropout,  # q(z1 | x, z2): x, z2 beside it
                                    logvar_bounds=bounds, split_cond=split)
            lower_prior = enc_cls(l2, hidden, l1, dropout=dropout, logvar_bounds=bounds)  # p(z1 | z2)
            top_decoder = dec_cls(l2, tuple(reversed(hidden)), d * likelihood.params_per_pixel, likelihood,
                                  cond_dim=l1, dropout=dropout, split_cond=split)  # p(x | z1, z2): z2, z1 beside it
        else:
            raise VaekitError(f"the hvae variant is built for the MLP and conv networks, not {type(encoder).__name__}")
        return cls(encoder, lower_encoder, lower_prior, top_decoder, prior_cls.from_config(cfg, encoder=encoder),
                   image_shape)

    @property
    def z1_dim(self) -> int:
        return self.lower_prior.latent_dim

    # ---- the lower layer ----------------------------------------------------------------------------------------
    def _lower(self, x: torch.Tensor, z2: torch.Tensor) -> tuple[DiagonalNormal, DiagonalNormal]:
        """q(z1|x, z2) and p(z1|z2) for samples ``z2 [..., B, L2]`` of the images ``x [B, D]`` (as the inference
        networks see them)."""
        lead = z2.shape[:-1]
        z2f = z2.reshape(-1, z2.shape[-1])
        xf = x.expand(*lead, x.shape[-1]).reshape(-1, x.shape[-1])
        return _reshaped(self.lower_encoder(xf, cond=z2f), lead), _reshaped(self.lower_prior(z2f), lead)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None):
        """p(x | z1, z2) at a top code ``z [..., L2]``, z1 at the mean of p(z1 | z2)."""
        lead = z.shape[:-1]
        z1 = self.lower_prior(z.reshape(-1, z.shape[-1])).mu.reshape(*lead, self.z1_dim)
        return self.decoder(z, cond=z1)

    @property
    def kl_form(self) -> str:
        top = "closed form" if super().kl_form == "closed form" else "Monte Carlo"
        return f"{top} for z2, closed form for z1 given one sample of z2"

    def kl_estimate(self, x: torch.Tensor, q: DiagonalNormal, y: torch.Tensor | None = None, prior=None):
        """KL(q(z1, z2|x) || p(z1, z2)) per image from one sample of z2: the top layer's (closed form for a
        Gaussian prior) plus KL(q(z1|x, z2) || p(z1|z2)) in closed form."""
        p = prior if prior is not None else self.prior_given(y)
        z2 = q.rsample()
        q1, p1 = self._lower(self.pixels(x), z2)
        top = q.kl(p) if isinstance(p, DiagonalNormal) else q.log_prob(z2) - p.log_prob(z2)
        return top + q1.kl(p1)

    # ---- the bounds ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, n_samples: int = 1, kl_per_dim: bool = False,
                log_weights: bool = False, y: torch.Tensor | None = None) -> ELBOTerms:
        """Per-image ELBO terms with ``n_samples`` samples of (z1, z2); ``kl_per_dim``: the KL of every dimension of
        both layers ``[B, L2 + L1]`` (z2's first), what free bits clamp."""
        if log_weights:
            return self.log_weights(x, n_samples)
        xn = self.noisy(x)  # what the inference networks see (x itself but while training with encoder noise)
        q2, xf = self.encode(xn), self.pixels(x)
        z2 = q2.rsample() if n_samples == 1 else q2.rsample((n_samples,))
        q1, p1 = self._lower(self.pixels(xn), z2)
        z1 = q1.rsample()
        rec = self.decoder(z2, cond=z1).log_prob(xf)
        p = self.prior_given()
        closed = isinstance(p, DiagonalNormal)
        top = q2.kl(p) if closed else q2.log_prob(z2) - p.log_prob(z2)
        lower = q1.kl(p1)
        if n_samples > 1:
            rec, lower = rec.mean(0), lower.mean(0)
            top = top if closed else top.mean(0)
        kl = top + lower
        if not kl_per_dim:
            return ELBOTerms(rec - kl, rec, kl)
        top_dims = self.kl_per_dim(q2, z2, prior=p)
        lower_dims = gaussian_kl_per_dim(q1.mu, q1.logvar, p1.mu, p1.logvar)
        if n_samples > 1:
            lower_dims = lower_dims.mean(0)
        per = torch.cat([top_dims, lower_dims], dim=-1)
        return ELBOTerms(rec - kl, rec, kl, per, None if closed else kl - per.sum(-1))

    def log_weights(self, x: torch.Tensor, n_samples: int, q: DiagonalNormal | None = None,
                    y: torch.Tensor | None = None, prior=None):
        """log w_k of both layers for (z1, z2)_k ~ q; ``(log_w, log p(x|z1, z2))``, both ``[K, B]``."""
        xn = self.noisy(x) if q is None else x  # a caller's own q(z2|x) was of the clean images
        q2 = q if q is not None else self.encode(xn)
        p = prior if prior is not None else self.prior_given()
        xf = self.pixels(x)
        z2 = q2.rsample((n_samples,))
        q1, p1 = self._lower(self.pixels(xn), z2)
        z1 = q1.rsample()
        log_px = self.decoder(z2, cond=z1).log_prob(xf)
        log_w = log_px + p1.log_prob(z1) + p.log_prob(z2) - q1.log_prob(z1) - q2.log_prob(z2)
        return log_w, log_px


__all__ = ["HVAE"]
