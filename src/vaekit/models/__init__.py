"""Model parts, their registries, and the builder of a VAE from a :class:`~vaekit.config.ModelConfig`.

Every part is chosen by name from one of :data:`REGISTRIES` (``arch``: the encoder and decoder
networks; ``likelihood``; ``prior``) and built by its own ``from_config``; a new part is a new
class registered with :func:`register`, which also makes its name valid in configs and on the
command line. The parts' protocols are in ``docs/architecture.md``.
"""

from __future__ import annotations

from ..errors import VaekitError, unknown_name
from .decoders import GatedMLPDecoder, MLPDecoder
from .distributions import Bernoulli, DiagonalNormal, FixedGaussian, StandardNormal
from .encoders import GatedMLPEncoder, MLPEncoder
from .likelihoods import (DISCRETE, LIKELIHOODS, BernoulliLikelihood, ContinuousBernoulliLikelihood,
                          GaussianLikelihood, LearnedGaussianLikelihood, LogisticLikelihood, likelihood_class,
                          make_likelihood)
from .conv import ConvDecoder, ConvEncoder, max_levels
from .cvae import CVAE, LabelConditioned
from .priors import PRIORS, MixturePrior, StandardNormalPrior, VampPrior, make_prior
from .vae import VAE, ELBOTerms


class MLPNetworks:
    """``arch = "mlp"``: ReLU hidden layers of widths ``hidden`` (``dropout`` after each, if set); the decoder
    mirrors the encoder."""

    encoder_cls, decoder_cls = MLPEncoder, MLPDecoder

    @classmethod
    def from_config(cls, cfg, image_shape, likelihood, cond_dim: int = 0):
        """Encoder and decoder for images of ``image_shape``; ``cond_dim``: extra inputs for a label."""
        d = 1
        for s in image_shape:
            d *= s
        encoder = cls.encoder_cls(d, cfg.hidden, cfg.latent_dim, cond_dim, cfg.dropout)
        encoder.input_shape = tuple(image_shape)  # what it reads (a prior built on it, the VampPrior, needs it)
        # the likelihood says how many numbers it needs per pixel
        decoder = cls.decoder_cls(cfg.latent_dim, tuple(reversed(cfg.hidden)), d * likelihood.params_per_pixel,
                                  likelihood, cond_dim, cfg.dropout)
        return encoder, decoder


class GatedMLPNetworks(MLPNetworks):
    """``arch = "gated-mlp"``: gated linear units (Tomczak & Welling, 2018)."""

    encoder_cls, decoder_cls = GatedMLPEncoder, GatedMLPDecoder


class ConvNetworks:
    """``arch = "conv"``: strided convolutions with ``conv_channels`` per level (``conv_levels`` of them), then
    the dense layers ``hidden``; the decoder retraces them to the input's exact size (``models/conv.py``)."""

    @classmethod
    def from_config(cls, cfg, image_shape, likelihood, cond_dim: int = 0):
        channels = cfg.channels_per_level
        c, h, w = image_shape
        if len(channels) > max_levels(h, w):
            raise VaekitError(f"images of {h}x{w} allow at most {max_levels(h, w)} conv levels (each halves the "
                              f"size), got {len(channels)}: give fewer --conv-channels or a smaller --conv-levels")
        encoder = ConvEncoder(image_shape, channels, cfg.hidden, cfg.latent_dim, cond_dim)
        encoder.input_shape = tuple(image_shape)
        decoder = ConvDecoder(image_shape, channels, tuple(reversed(cfg.hidden)), cfg.latent_dim, likelihood,
                              cond_dim)
        return encoder, decoder


ARCHITECTURES = {"mlp": MLPNetworks, "gated-mlp": GatedMLPNetworks, "conv": ConvNetworks}
VARIANTS = {"vae": VAE, "cvae": CVAE}
REGISTRIES = {"variant": VARIANTS, "arch": ARCHITECTURES, "likelihood": LIKELIHOODS, "prior": PRIORS}


def register(kind: str, name: str):
    """Class decorator: make ``name`` a valid choice of ``kind`` (``variant``, ``arch``, ``likelihood`` or
    ``prior``)."""
    if kind not in REGISTRIES:
        raise unknown_name("kind of part", kind, REGISTRIES)

    def add(cls):
        needs = "from_parts" if kind == "variant" else "from_config"
        if not hasattr(cls, needs):
            raise VaekitError(f"{cls.__name__} needs a {needs} classmethod to be registered as a {kind}")
        REGISTRIES[kind][name] = cls
        return cls

    return add


def build_model(cfg, image_shape: tuple[int, int, int], levels: int | None = None,
                classes: int | None = None) -> VAE:
    """The VAE a :class:`~vaekit.config.ModelConfig` describes, for images of ``image_shape`` whose pixels
    take ``levels`` values (what a discrete likelihood needs; :attr:`RunConfig.pixel_levels`) and, for a
    conditional variant, labels of ``classes`` classes.

    Built in the order the parts depend on each other: the likelihood (it sets the decoder's
    output size), the networks (with inputs for the label if the variant needs them), then the
    variant puts them together with the prior, which receives the encoder (a VampPrior mixes the
    encoder's posteriors of learned pseudo-inputs; it must hold the encoder, not a copy).
    """
    for kind, registry in REGISTRIES.items():
        if getattr(cfg, kind, "vae") not in registry:  # a config without a variant is the plain VAE's
            raise unknown_name(kind, getattr(cfg, kind), registry)
    lik_cls = LIKELIHOODS[cfg.likelihood]
    if lik_cls.accepts == DISCRETE:
        if levels is None:
            raise VaekitError(f"the {cfg.likelihood} likelihood needs the data's number of levels: "
                              "build_model(cfg, image_shape, levels=...)")
        likelihood = lik_cls.from_config(cfg, levels=levels)
    else:
        likelihood = lik_cls.from_config(cfg)
    variant = VARIANTS[getattr(cfg, "variant", "vae")]
    cond_dim = variant.condition_dims(classes)
    encoder, decoder = ARCHITECTURES[cfg.arch].from_config(cfg, tuple(image_shape), likelihood, cond_dim=cond_dim)
    return variant.from_parts(encoder, decoder, PRIORS[cfg.prior], cfg, tuple(image_shape), classes)


__all__ = [
    "ARCHITECTURES", "CVAE", "ConvDecoder", "ConvEncoder", "ConvNetworks", "LIKELIHOODS", "LabelConditioned",
    "PRIORS", "REGISTRIES", "VARIANTS", "VAE", "ELBOTerms", "Bernoulli", "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood", "LearnedGaussianLikelihood", "LogisticLikelihood",
    "GatedMLPDecoder", "GatedMLPEncoder", "GatedMLPNetworks", "MLPNetworks",
    "DiagonalNormal", "FixedGaussian", "GaussianLikelihood", "MLPDecoder", "MLPEncoder", "StandardNormal",
    "MixturePrior", "StandardNormalPrior", "VampPrior", "build_model", "likelihood_class", "make_likelihood",
    "make_prior", "register",
]
