"""Model parts and the registry that builds a VAE from a :class:`~vaekit.config.ModelConfig`."""

from __future__ import annotations

from ..errors import unknown_name
from .decoders import GatedMLPDecoder, MLPDecoder
from .distributions import Bernoulli, DiagonalNormal, FixedGaussian, StandardNormal
from .encoders import GatedMLPEncoder, MLPEncoder
from .likelihoods import LIKELIHOODS, BernoulliLikelihood, GaussianLikelihood, likelihood_class, make_likelihood
from .priors import PRIORS, StandardNormalPrior, make_prior
from .vae import VAE, ELBOTerms


def _mlp_builder(encoder_cls, decoder_cls):
    def build(cfg, image_shape):
        d = 1
        for s in image_shape:
            d *= s
        likelihood = likelihood_class(cfg.likelihood).from_config(cfg)
        encoder = encoder_cls(d, cfg.hidden, cfg.latent_dim)
        # the likelihood says how many numbers it needs per pixel
        decoder = decoder_cls(cfg.latent_dim, tuple(reversed(cfg.hidden)), d * likelihood.params_per_pixel, likelihood)
        return VAE(encoder, decoder, make_prior(cfg.prior, cfg.latent_dim), image_shape)

    return build


# "mlp": ReLU hidden layers; "gated-mlp": gated linear units (Tomczak & Welling, 2018)
ARCHITECTURES = {"mlp": _mlp_builder(MLPEncoder, MLPDecoder),
                 "gated-mlp": _mlp_builder(GatedMLPEncoder, GatedMLPDecoder)}


def build_model(cfg, image_shape: tuple[int, int, int]) -> VAE:
    """The VAE a :class:`~vaekit.config.ModelConfig` describes, for images of ``image_shape``."""
    if cfg.arch not in ARCHITECTURES:
        raise unknown_name("architecture", cfg.arch, ARCHITECTURES)
    return ARCHITECTURES[cfg.arch](cfg, tuple(image_shape))


__all__ = [
    "ARCHITECTURES", "LIKELIHOODS", "PRIORS", "VAE", "ELBOTerms", "Bernoulli", "BernoulliLikelihood",
    "GatedMLPDecoder", "GatedMLPEncoder",
    "DiagonalNormal", "FixedGaussian", "GaussianLikelihood", "MLPDecoder", "MLPEncoder", "StandardNormal",
    "StandardNormalPrior", "build_model", "likelihood_class", "make_likelihood", "make_prior",
]
