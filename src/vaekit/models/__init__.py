"""Model parts, their registries, and the builder of a VAE from a :class:`~vaekit.config.ModelConfig`.

Every part is chosen by name from one of :data:`REGISTRIES` (``arch``: the encoder and decoder
networks; ``likelihood``; ``prior``) and built by its own ``from_config``; a new part is a new
class registered with :func:`register`, which also makes its name valid in configs and on the
command line. The parts' protocols are in ``docs/architecture.md``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import VaekitError, unknown_name
from ..options import Option
from .decoders import GatedMLPDecoder, MLPDecoder
from .distributions import Bernoulli, DiagonalNormal, FixedGaussian, StandardNormal
from .encoders import LOGVAR_MAX, LOGVAR_MIN, GatedMLPEncoder, MLPEncoder
from .likelihoods import (DISCRETE, LIKELIHOODS, BernoulliLikelihood, ContinuousBernoulliLikelihood,
                          GaussianLikelihood, LearnedGaussianLikelihood, LogisticLikelihood, likelihood_class,
                          make_likelihood)
from .conv import ConvDecoder, ConvEncoder, max_levels
from .cvae import CVAE, LabelConditioned
from .hvae import HVAE
from .priors import PRIORS, MixturePrior, StandardNormalPrior, VampPrior, make_prior
from .vae import VAE, ELBOTerms


def _widths(v) -> bool:
    return all(w >= 1 for w in v)


HIDDEN = Option("hidden", (400,), "hidden layer widths of the MLP encoder (of the conv networks: the dense layers "
                "between the last level and z; give 0 for none); the decoder mirrors them", kind=int, nargs="+",
                metavar="N", check=_widths, rule="a list of layer widths >= 1", zero=())


LOGVAR_BOUNDS = (Option("logvar_min", LOGVAR_MIN, "lower bound of the Gaussian heads' log-variance (q(z|x), and "
                        "the hvae's q(z1|x,z2) and p(z1|z2)); Tomczak & Welling bound it to [-6, 2]",
                        metavar="F", check=lambda v: -80 <= v <= 80, rule="a number in [-80, 80]"),
                 Option("logvar_max", LOGVAR_MAX, "upper bound of the Gaussian heads' log-variance", metavar="F",
                        check=lambda v: -80 <= v <= 80, rule="a number in [-80, 80]"))


INIT = Option("init", "default", "initial weights of the networks' linear layers: default (PyTorch's) or he (drawn "
              "from a normal of spread sqrt(2 / inputs), as Tomczak & Welling's code; biases as PyTorch's)",
              kind=str, choices=("default", "he"))


ENCODER_NOISE = Option("encoder_noise", 0.0, "spread of the Gaussian noise added to the images the encoders (q(z|x), "
                       "the hvae's q(z2|x) and q(z1|x,z2)) see while training, against overfitting; the likelihood "
                       "scores the clean images, so the ELBO still bounds log p(x) (none at evaluation)",
                       metavar="SIGMA", default_text="0, none", check=lambda s: 0 <= s <= 10, rule="in [0, 10]")


def he_init(model: nn.Module) -> None:
    """Every linear layer's weights drawn from N(0, 2 / its inputs) (He et al., 2015), in place."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, math.sqrt(2.0 / m.in_features))


def _check_logvar_bounds(a) -> None:
    if not a.logvar_min < a.logvar_max:
        raise VaekitError(f"--logvar-min {a.logvar_min:g} must be below --logvar-max {a.logvar_max:g}")


def _options_text(a) -> str:
    """The networks' options beyond their sizes, as the model's line says them (nothing for the defaults)."""
    rest = ", He-initialised" if getattr(a, "init", "default") == "he" else ""
    if getattr(a, "encoder_noise", 0.0):
        rest += f", encoder noise {a.encoder_noise:g}"
    if (a.logvar_min, a.logvar_max) == (LOGVAR_MIN, LOGVAR_MAX):
        return rest
    return f", log-variance in [{a.logvar_min:g}, {a.logvar_max:g}]{rest}"


class MLPNetworks:
    """``arch = "mlp"``: ReLU hidden layers of widths ``hidden`` (``dropout`` after each, if set); the decoder
    mirrors the encoder."""

    encoder_cls, decoder_cls = MLPEncoder, MLPDecoder
    options = (HIDDEN,
               Option("dropout", 0.0, "MLP networks: dropout after every hidden layer of encoder and decoder while "
                      "training, against overfitting (none at evaluation)", metavar="P", default_text="0, none",
                      check=lambda p: 0 <= p < 1, rule="in [0, 1)"),
               *LOGVAR_BOUNDS, INIT, ENCODER_NOISE)
    check_options = staticmethod(_check_logvar_bounds)

    @classmethod
    def from_config(cls, cfg, image_shape, likelihood, cond_dim: int = 0):
        """Encoder and decoder for images of ``image_shape``; ``cond_dim``: extra inputs for a label."""
        d, a = math.prod(image_shape), cfg.arch
        encoder = cls.encoder_cls(d, a.hidden, cfg.latent_dim, cond_dim, a.dropout, (a.logvar_min, a.logvar_max))
        encoder.input_shape = tuple(image_shape)  # what it reads (a prior built on it, the VampPrior, needs it)
        # the likelihood says how many numbers it needs per pixel
        decoder = cls.decoder_cls(cfg.latent_dim, tuple(reversed(a.hidden)), d * likelihood.params_per_pixel,
                                  likelihood, cond_dim, a.dropout)
        return encoder, decoder

    @classmethod
    def describe(cls, cfg, image_shape) -> str:
        a = cfg.arch
        return f"{a.name} {math.prod(image_shape)}-{'-'.join(map(str, (*a.hidden, cfg.latent_dim)))}" + \
            (f" (dropout {a.dropout:g})" if a.dropout else "") + _options_text(a)


class GatedMLPNetworks(MLPNetworks):
    """``arch = "gated-mlp"``: gated linear units (Tomczak & Welling, 2018)."""

    encoder_cls, decoder_cls = GatedMLPEncoder, GatedMLPDecoder


class ConvNetworks:
    """``arch = "conv"``: strided convolutions with ``conv_channels`` per level (``conv_levels`` of them), then
    the dense layers ``hidden``; the decoder retraces them to the input's exact size (``models/conv.py``)."""

    options = (Option("conv_channels", (32, 64), "conv networks: channels of each level, each level halving the "
                      "height and width (one number with --conv-levels: doubled at each level)", kind=int, nargs="+",
                      metavar="C", check=_widths, rule="a list of channel counts >= 1"),
               Option("conv_levels", None, "conv networks: number of levels", kind=int, metavar="N",
                      default_text="one per --conv-channels", check=lambda n: n >= 1, rule="a whole number >= 1"),
               HIDDEN, *LOGVAR_BOUNDS, INIT, ENCODER_NOISE)

    refuses = {"dropout": "dropout is for the MLP networks (--arch mlp or gated-mlp); drop --dropout for the conv "
                          "networks"}

    @staticmethod
    def check_options(a) -> None:
        _check_logvar_bounds(a)
        if a.conv_levels is not None and len(a.conv_channels) not in (1, a.conv_levels):
            raise VaekitError(f"--conv-levels {a.conv_levels} needs one channel count per level or a single one "
                              f"(doubled at each level), got --conv-channels {' '.join(map(str, a.conv_channels))}")

    @staticmethod
    def channels_per_level(a) -> tuple[int, ...]:
        """The channels at each level, ``conv_levels`` resolved."""
        if a.conv_levels is None or len(a.conv_channels) == a.conv_levels:
            return a.conv_channels
        return tuple(a.conv_channels[0] * 2 ** i for i in range(a.conv_levels))

    @classmethod
    def from_config(cls, cfg, image_shape, likelihood, cond_dim: int = 0):
        a = cfg.arch
        channels = cls.channels_per_level(a)
        c, h, w = image_shape
        if len(channels) > max_levels(h, w):
            raise VaekitError(f"images of {h}x{w} allow at most {max_levels(h, w)} conv levels (each halves the "
                              f"size), got {len(channels)}: give fewer --conv-channels or a smaller --conv-levels")
        encoder = ConvEncoder(image_shape, channels, a.hidden, cfg.latent_dim, cond_dim, (a.logvar_min, a.logvar_max))
        encoder.input_shape = tuple(image_shape)
        decoder = ConvDecoder(image_shape, channels, tuple(reversed(a.hidden)), cfg.latent_dim, likelihood,
                              cond_dim)
        return encoder, decoder

    @classmethod
    def describe(cls, cfg, image_shape) -> str:
        a = cfg.arch
        return (f"conv {'x'.join(map(str, image_shape))}, levels of {'-'.join(map(str, cls.channels_per_level(a)))} "
                f"channels" + (f", dense {'-'.join(map(str, a.hidden))}" if a.hidden else "") +
                f", latent {cfg.latent_dim}" + _options_text(a))


ARCHITECTURES = {"mlp": MLPNetworks, "gated-mlp": GatedMLPNetworks, "conv": ConvNetworks}
VARIANTS = {"vae": VAE, "cvae": CVAE, "hvae": HVAE}
REGISTRIES = {"variant": VARIANTS, "arch": ARCHITECTURES, "likelihood": LIKELIHOODS, "prior": PRIORS}


def register(kind: str, name: str):
    """Class decorator: make ``name`` a valid choice of ``kind`` (``variant``, ``arch``, ``likelihood``, ``prior``
    or ``objective``). The class's ``options`` become settings of its table and flags of ``vaekit train``."""
    from ..objectives import OBJECTIVES

    registries = {**REGISTRIES, "objective": OBJECTIVES}
    if kind not in registries:
        raise unknown_name("kind of part", kind, registries)

    def add(cls):
        needs = "from_parts" if kind == "variant" else "from_config"
        if not hasattr(cls, needs):
            raise VaekitError(f"{cls.__name__} needs a {needs} classmethod to be registered as a {kind}")
        registries[kind][name] = cls
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
        if str(getattr(cfg, kind)) not in registry:
            raise unknown_name(kind, str(getattr(cfg, kind)), registry)
    lik_cls = LIKELIHOODS[cfg.likelihood.name]
    if lik_cls.accepts == DISCRETE:
        if levels is None:
            raise VaekitError(f"the {cfg.likelihood.name} likelihood needs the data's number of levels: "
                              "build_model(cfg, image_shape, levels=...)")
        likelihood = lik_cls.from_config(cfg, levels=levels)
    else:
        likelihood = lik_cls.from_config(cfg)
    variant = VARIANTS[cfg.variant.name]
    cond_dim = variant.condition_dims(classes)
    encoder, decoder = ARCHITECTURES[cfg.arch.name].from_config(cfg, tuple(image_shape), likelihood,
                                                                cond_dim=cond_dim)
    model = variant.from_parts(encoder, decoder, PRIORS[cfg.prior.name], cfg, tuple(image_shape), classes)
    if getattr(cfg.arch, "init", "default") == "he":
        he_init(model)
    model.encoder_noise = float(getattr(cfg.arch, "encoder_noise", 0.0))
    return model


def describe(cfg, image_shape: tuple[int, int, int], classes: int | None, model: VAE) -> str:
    """The model in one line, each part in its own words: variant, networks, likelihood, prior."""
    variant = VARIANTS[cfg.variant.name]
    head = variant.describe(classes, cfg.variant) if hasattr(variant, "describe") else ""
    nets = ARCHITECTURES[cfg.arch.name]
    nets = nets.describe(cfg, image_shape) if hasattr(nets, "describe") else cfg.arch.name
    prior = PRIORS[cfg.prior.name]
    prior = prior.describe(cfg.prior) if hasattr(prior, "describe") else f"{cfg.prior.name} prior"
    return (f"{head}{nets}, {model.decoder.likelihood.describe()}, {prior} (KL in {model.kl_form}), "
            f"{sum(p.numel() for p in model.parameters()):,} parameters")


__all__ = [
    "ARCHITECTURES", "CVAE", "HVAE", "ConvDecoder", "ConvEncoder", "ConvNetworks", "LIKELIHOODS", "LabelConditioned",
    "PRIORS", "REGISTRIES", "VARIANTS", "VAE", "ELBOTerms", "Bernoulli", "BernoulliLikelihood",
    "ContinuousBernoulliLikelihood", "LearnedGaussianLikelihood", "LogisticLikelihood",
    "GatedMLPDecoder", "GatedMLPEncoder", "GatedMLPNetworks", "MLPNetworks",
    "DiagonalNormal", "FixedGaussian", "GaussianLikelihood", "MLPDecoder", "MLPEncoder", "StandardNormal",
    "MixturePrior", "StandardNormalPrior", "VampPrior", "build_model", "describe", "likelihood_class", "make_likelihood",
    "make_prior", "register",
]
