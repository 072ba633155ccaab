"""The conditional VAE (Sohn, Lee & Yan, 2015, "Learning Structured Output Representation using Deep
Conditional Generative Models"): q(z|x, y) and p(x|z, y) see the label y; the prior stays p(z).

Its ELBO bounds log p(x | y): E_q[log p(x|z, y)] - KL(q(z|x, y) || p(z)). Every other part of
vaekit (likelihoods, priors, objectives, evaluation) is the plain VAE's: the label reaches the
encoder and decoder because they declare ``conditional = True`` (see :class:`~vaekit.models.VAE`),
as one-hot rows beside the image's features and beside z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vae import VAE


class LabelConditioned(nn.Module):
    """A network that takes one-hot labels as ``cond`` (the MLP and conv encoders and decoders do), called
    with class indices ``y [B]``. Its attributes the rest of vaekit reads (``latent_dim``, ``input_shape``,
    ``likelihood``) pass through."""

    conditional = True

    def __init__(self, net: nn.Module, classes: int):
        super().__init__()
        self.net = net
        self.classes = classes
        for name in ("latent_dim", "input_shape", "likelihood"):
            if hasattr(net, name):
                setattr(self, name, getattr(net, name))

    def forward(self, inputs: torch.Tensor, y: torch.Tensor):
        # no range check here (it would wait for the GPU every step): the data and the user-facing
        # paths check labels (check_labels), and one_hot itself refuses them on the CPU
        y = torch.as_tensor(y, device=inputs.device).long()
        return self.net(inputs, cond=F.one_hot(y, self.classes).to(torch.float32))


def check_labels(y: torch.Tensor, n: int, classes: int) -> None:
    """One clear line unless ``y`` holds ``n`` class numbers in 0..classes-1."""
    from ..errors import VaekitError

    y = torch.as_tensor(y)
    if y.dim() != 1 or len(y) != n:
        raise VaekitError(f"give one label per image: {n} images, labels of shape {tuple(y.shape)}")
    if y.is_floating_point() or (n and (int(y.min()) < 0 or int(y.max()) >= classes)):
        raise VaekitError(f"labels must be class numbers 0..{classes - 1}; got values from {y.min().item()} to "
                          f"{y.max().item()}")


class CVAE(VAE):
    """``variant = "cvae"``: the VAE whose encoder and decoder are conditioned on the label.

    A VampPrior on a CVAE gives each pseudo-input a fixed label (pseudo-input k has label k mod
    classes), so p(z) stays one mixture over all classes, independent of the image's label."""

    needs_labels = True  # a data set without labels is refused before anything is written

    @staticmethod
    def describe(classes: int | None, options=None) -> str:
        return f"cvae ({classes} labels to encoder and decoder), "

    @classmethod
    def condition_dims(cls, classes: int | None) -> int:
        """Extra inputs of the networks for the label: one per class."""
        if not classes:
            from ..errors import VaekitError

            raise VaekitError("the cvae variant needs labelled data: choose a data set with labels or --variant vae")
        return classes

    @classmethod
    def from_parts(cls, encoder: nn.Module, decoder: nn.Module, prior_cls, cfg, image_shape, classes) -> "CVAE":
        encoder, decoder = LabelConditioned(encoder, classes), LabelConditioned(decoder, classes)
        return cls(encoder, decoder, prior_cls.from_config(cfg, encoder=encoder), image_shape)

    @property
    def classes(self) -> int:
        return self.encoder.classes
