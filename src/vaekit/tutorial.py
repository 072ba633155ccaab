"""The tutorial's ``VariationalAutoencoder`` class, in PyTorch, with the tutorial's names.

The tutorial ("Machine Learning Tutorial Part 8: Variational Autoencoders", 2018) shows a
TensorFlow 1 class and links to the UIUC CS446 (Spring 2018) mp10 assignment for the
networks; this module is that class as a ``torch.nn.Module``: the same method names,
arguments and shapes, the same layer sizes, activations and initialisation, the same loss.
Eager PyTorch has no session: ``update_op(loss, learning_rate)`` takes the step that
``session.run(update_op_tensor, feed_dict=...)`` took, and ``train_step(x, learning_rate)``
is that whole ``session.run`` call.

**What the tutorial's loss is.** ``_reconstruction_loss`` is ``tf.nn.l2_loss(f - x)`` =
½ Σ (f − x)², which is −log N(x; f, I) without its constant ``D/2 · log 2π``, **summed**
over the batch; ``_latent_loss`` is the KL to N(0, I), **averaged** over the batch. Their
sum is therefore B · (reconstruction per image) + (KL per image): per image, the KL's
weight is 1/B (1/16 with the assignment's batch of 16), so the loss is not the negative
ELBO and its value is not a bound on anything. vaekit's ELBO for the same networks (the
Gaussian σ = 1 likelihood with its constant, both terms per image, averaged over the batch)
is :meth:`VariationalAutoencoder.elbo_loss`; :meth:`VariationalAutoencoder.as_vae` gives the
same weights as a :class:`vaekit.VAE`, so :func:`vaekit.evaluate` scores either model in nats.
``docs/tutorial.md`` shows what the difference does to a trained model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import VaekitError
from .kl import gaussian_kl
from .models.distributions import DiagonalNormal
from .models.likelihoods import GaussianLikelihood
from .models.priors import StandardNormalPrior
from .models.vae import VAE

__all__ = ["TutorialDecoder", "TutorialEncoder", "VariationalAutoencoder", "batch_stream", "latent_grid",
           "latent_grid_image"]

ENCODER_HIDDEN = (100, 50)  # mp10: ndims -> 100 -> 50 -> (z_mean, z_log_var)
DECODER_HIDDEN = (50, 100)  # mp10: nlatent -> 50 -> 100 -> ndims


def _dense(a: int, b: int) -> nn.Linear:
    """A fully connected layer initialised as ``tf.contrib.slim``'s: Glorot-uniform weights, zero biases."""
    layer = nn.Linear(a, b)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class TutorialEncoder(nn.Module):
    """The mp10 encoder as a vaekit part: x ``[B, ndims]`` -> q(z|x) = N(mu(x), diag(exp(log_var(x))))."""

    def __init__(self, ndims: int, nlatent: int):
        super().__init__()
        h1, h2 = ENCODER_HIDDEN
        self.hidden = nn.Sequential(_dense(ndims, h1), nn.Softplus(), _dense(h1, h2), nn.Softplus())
        self.z_mean = _dense(h2, nlatent)
        self.z_log_var = _dense(h2, nlatent)

    def forward(self, x: torch.Tensor) -> DiagonalNormal:
        h = self.hidden(x)
        return DiagonalNormal(self.z_mean(h), self.z_log_var(h))


class TutorialDecoder(nn.Module):
    """The mp10 decoder as a vaekit part: z ``[..., nlatent]`` -> p(x|z) = N(x; f(z), I), f in (0, 1)."""

    def __init__(self, nlatent: int, ndims: int):
        super().__init__()
        d1, d2 = DECODER_HIDDEN
        self.net = nn.Sequential(_dense(nlatent, d1), nn.Softplus(), _dense(d1, d2), nn.Softplus(),
                                 _dense(d2, ndims), nn.Sigmoid())
        self.likelihood = GaussianLikelihood(1.0)

    def forward(self, z: torch.Tensor):
        return self.likelihood(self.net(z))


class VariationalAutoencoder(nn.Module):
    """Varational Autoencoder: the tutorial's class (and the CS446 mp10 networks) in PyTorch.

    * ``_encoder(x)``: ``ndims -> 100 -> 50`` fully connected with softplus, then two linear
      heads of ``nlatent`` units, the mean and the log-variance ("we model sigma_z^2 in log
      space ... to make sure sigma_z^2 is always non-negative");
    * ``_sample_z``: z = mu + sqrt(exp(log sigma^2)) * eps, eps ~ N(0, I);
    * ``_decoder(z)``: ``nlatent -> 50 -> 100 -> ndims`` with softplus, sigmoid output f(z);
    * ``loss`` = ``_latent_loss`` + ``_reconstruction_loss``, minimised by Adam in ``update_op``.

    The loss is the tutorial's, kept exactly: the reconstruction term (½ Σ (f − x)², i.e.
    −log N(x; f, I) without its constant) is **summed** over the batch while the KL is
    **averaged** over it, so in effect the KL is weighted by 1/batch size and the loss is not
    a negative ELBO. :meth:`elbo_loss` is the proper one for the same networks.

    Inputs may be numpy arrays or tensors of shape ``[B, ndims]`` with values in [0, 1].
    """

    def __init__(self, ndims: int = 784, nlatent: int = 2):
        """Initialize a VAE.

        Args:
            ndims(int): Number of dimensions in the feature.
            nlatent(int): Number of dimensions in the latent space.
        """
        super().__init__()
        for name, v in (("ndims", ndims), ("nlatent", nlatent)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise VaekitError(f"VariationalAutoencoder needs {name} to be a whole number >= 1, got {v!r}")
        self._ndims, self._nlatent = int(ndims), int(nlatent)
        self.encoder = TutorialEncoder(self._ndims, self._nlatent)
        self.decoder = TutorialDecoder(self._nlatent, self._ndims)
        # the optimiser slot: made once, like the graph's update op; the rate is set per call
        self.optimizer = torch.optim.Adam(self.parameters(), lr=5e-4)

    # ---- the tutorial's methods -------------------------------------------------------------

    def _encoder(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(z; mu_phi(x), sigma_phi^2(x)): returns ``(z_mean, z_log_var)``, each ``[B, nlatent]``."""
        q = self.encoder(self._as_input(x, self._ndims, "x"))
        return q.mu, q.logvar

    def _sample_z(self, z_mean: torch.Tensor, z_log_var: torch.Tensor) -> torch.Tensor:
        """Sample z using the reparametrization trick: z = mu_phi(x) + sigma_phi(x) * eps, eps ~ N(0, 1).

        Gradients reach both ``z_mean`` and ``z_log_var`` (the pathwise gradient).
        """
        return DiagonalNormal(z_mean, z_log_var).rsample()

    def _decoder(self, z) -> torch.Tensor:
        """p_theta(x|z): the decoder's output f(z) in (0, 1), ``[B, ndims]`` (the mean of N(x; f, I))."""
        return self.decoder(self._as_input(z, self._nlatent, "z")).mean

    def _latent_loss(self, z_mean: torch.Tensor, z_log_var: torch.Tensor) -> torch.Tensor:
        """The latent loss: D_KL(q(z|x) || p(z)) = ½ (sigma_z^2 + mu_z^2 − 1 − log sigma_z^2),
        summed over the latent dimensions and **averaged** over the batch (``tf.reduce_mean``)."""
        return gaussian_kl(z_mean, z_log_var).mean()

    def _reconstruction_loss(self, f: torch.Tensor, x_gt) -> torch.Tensor:
        """The reconstruction loss ``tf.nn.l2_loss(f - x_gt)`` = ½ Σ (f − x)², **summed** over the batch.

        Per image this is −log N(x; f, I) − (ndims/2) log 2π: a Gaussian likelihood with
        sigma = 1 without its normalising constant.
        """
        return 0.5 * (f - self._as_input(x_gt, self._ndims, "x_gt")).pow(2).sum()

    def loss(self, f: torch.Tensor, x_gt, z_mean: torch.Tensor, z_log_var: torch.Tensor) -> torch.Tensor:
        """The tutorial's loss: ``_latent_loss + _reconstruction_loss`` (a 0-d tensor)."""
        return self._latent_loss(z_mean, z_log_var) + self._reconstruction_loss(f, x_gt)

    def update_op(self, loss: torch.Tensor, learning_rate: float) -> None:
        """One Adam step on ``loss`` with this learning rate (the rate may change from call to call)."""
        lr = float(learning_rate)
        if not (lr > 0 and math.isfinite(lr)):
            raise VaekitError(f"learning_rate must be a positive number, got {learning_rate!r}")
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The graph of the tutorial's ``__init__``: ``(f, z_mean, z_log_var)`` for a batch ``x``."""
        z_mean, z_log_var = self._encoder(x)
        z = self._sample_z(z_mean, z_log_var)
        return self._decoder(z), z_mean, z_log_var

    def train_step(self, x, learning_rate: float = 5e-4) -> float:
        """``session.run(update_op_tensor, feed_dict={x_placeholder: x, learning_rate_placeholder: lr})``.

        Returns the loss before the step.
        """
        x = self._as_input(x, self._ndims, "x")
        f, z_mean, z_log_var = self(x)
        loss = self.loss(f, x, z_mean, z_log_var)
        self.update_op(loss, learning_rate)
        return float(loss.detach())

    @torch.no_grad()
    def generate_samples(self, z_np) -> np.ndarray:
        """Decoder means f(z) for latent codes ``z_np [B, nlatent]`` (numpy), as numpy ``[B, ndims]``."""
        return self._decoder(z_np).cpu().numpy()

    # ---- vaekit's view of the same weights ----------------------------------------------------

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(1, 28, 28)`` for 784 inputs (MNIST), else a row of ``ndims`` pixels."""
        side = math.isqrt(self._ndims)
        return (1, side, side) if side * side == self._ndims else (1, 1, self._ndims)

    def as_vae(self) -> VAE:
        """The same weights as a :class:`vaekit.VAE` with p(x|z) = N(x; f(z), I) and p(z) = N(0, I).

        The VAE's encoder and decoder are this model's own modules: nothing is copied, and
        training either trains both. Use it with :func:`vaekit.evaluate`
        (ELBO, KL and the importance-weighted log p(x) in nats, constants kept), the pictures
        in :mod:`vaekit.plots` and :func:`vaekit.evaluate.unit_activity`.
        """
        return VAE(self.encoder, self.decoder, StandardNormalPrior(self._nlatent), self.image_shape).to(
            self.encoder.z_mean.weight.device)

    def elbo_loss(self, x) -> torch.Tensor:
        """vaekit's objective for the same networks: −ELBO per image, averaged over the batch.

        −ELBO = ½ Σ_d (f_d − x_d)² + (ndims/2) log 2π + KL(q(z|x) || N(0, I)), one sample of z.
        """
        return -self.as_vae()(self._as_input(x, self._ndims, "x")).elbo.mean()

    # ---- helpers -------------------------------------------------------------------------------

    def _as_input(self, a: Any, width: int, name: str) -> torch.Tensor:
        """Numpy or tensor ``[B, width]`` -> float32 tensor on the model's device (a 1-D row becomes ``[1, width]``)."""
        ref = self.encoder.z_mean.weight
        t = torch.as_tensor(a, dtype=ref.dtype, device=ref.device)
        if t.ndim == 1:
            t = t.unsqueeze(0)
        if t.ndim != 2 or t.shape[1] != width:
            raise VaekitError(f"{name} must have shape [batch, {width}], got {tuple(t.shape)}; flatten images to "
                              f"rows of {width} values")
        return t


def latent_grid(model: VariationalAutoencoder, n: int = 20, span: float = 3.0) -> np.ndarray:
    """The assignment's picture of the latent space: decoded z on an ``n x n`` grid over [−span, span]².

    As in the mp10 driver: the point in row i, column j is z = [y_j, x_i] (one row per x).
    Returns the decoder means tiled into ``[n*28, n*28]`` (``[n*h, n*w]`` in general), in [0, 1].
    """
    if model._nlatent != 2:
        raise VaekitError(f"the latent grid needs a 2-dimensional latent space, the model has {model._nlatent}")
    _, h, w = model.image_shape
    vals = np.linspace(-span, span, n)
    z = np.array([[y, x] for x in vals for y in vals], dtype=np.float32)  # [n*n, 2], rows of x
    imgs = model.generate_samples(z).reshape(n, n, h, w)
    return imgs.transpose(0, 2, 1, 3).reshape(n * h, n * w)


def latent_grid_image(grid: np.ndarray):
    """The grid as the assignment saved it (``plt.imsave(..., cmap="gray")``: white digits on black), a PIL image."""
    from PIL import Image

    return Image.fromarray(np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8), mode="L")


def batch_stream(n: int, batch_size: int, seed: int = 0):
    """Indices of endless mini-batches over ``n`` images, as ``mnist.train.next_batch`` drew them:
    consecutive slices of a fresh random permutation each epoch, a batch straddling two epochs
    taking the rest of one and the start of the next."""
    if n < 1 or batch_size < 1:
        raise VaekitError(f"batch_stream needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    gen = torch.Generator().manual_seed(seed)
    buf = torch.empty(0, dtype=torch.long)
    while True:
        while buf.numel() < batch_size:
            buf = torch.cat([buf, torch.randperm(n, generator=gen)])
        yield buf[:batch_size]
        buf = buf[batch_size:]
