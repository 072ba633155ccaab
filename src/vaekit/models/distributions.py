"""Small, fast distributions over vectors (the last dimension is the event).

``log_prob`` sums over the event dimension and keeps every normalising constant,
so values are log-densities (or log-masses) in nats. Sample dimensions broadcast
on the left: parameters ``[B, D]`` and ``z`` of shape ``[K, B, D]`` give ``[K, B]``.
They mirror ``torch.distributions`` (tests check them against it) without its
argument validation, which costs time in the training loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..kl import gaussian_kl

LOG_2PI = math.log(2.0 * math.pi)

_Shape = torch.Size | tuple[int, ...]


class DiagonalNormal:
    """N(mu, diag(exp(logvar))): the encoder's q(z|x), parameterised in log-variance."""

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        self.mu = mu
        self.logvar = logvar

    @property
    def mean(self) -> torch.Tensor:
        return self.mu

    @property
    def stddev(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def variance(self) -> torch.Tensor:
        return torch.exp(self.logvar)

    def rsample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        """The reparameterised sample z = mu + sigma * eps, eps ~ N(0, I)."""
        shape = torch.Size(sample_shape) + self.mu.shape
        eps = torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device)
        return self.mu + self.stddev * eps

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        sq = (z - self.mu).pow(2) * torch.exp(-self.logvar)
        return -0.5 * (sq + self.logvar + LOG_2PI).sum(dim=-1)

    def log_prob_per_dim(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z_j; mu_j, sigma_j^2) of each dimension (same shape as ``z``)."""
        return -0.5 * ((z - self.mu).pow(2) * torch.exp(-self.logvar) + self.logvar + LOG_2PI)

    def entropy(self) -> torch.Tensor:
        return 0.5 * (self.logvar + 1.0 + LOG_2PI).sum(dim=-1)

    def kl(self, other: "DiagonalNormal") -> torch.Tensor:
        """Analytic KL(self || other) in nats, summed over the event dimension."""
        if isinstance(other, StandardNormal):
            return gaussian_kl(self.mu, self.logvar)
        return gaussian_kl(self.mu, self.logvar, other.mu, other.logvar)


class StandardNormal(DiagonalNormal):
    """N(0, I) over ``dim`` dimensions: the VAE prior p(z)."""

    def __init__(self, dim: int, device=None, dtype=torch.float32):
        zeros = torch.zeros(dim, device=device, dtype=dtype)
        super().__init__(zeros, zeros)
        self.dim = dim

    def rsample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + torch.Size([self.dim])
        return torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(dim=-1)


class Bernoulli:
    """Independent Bernoulli pixels from logits: p(x|z) for binary data."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        probs = self.mean.expand(torch.Size(sample_shape) + self.logits.shape)
        return torch.bernoulli(probs)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits
        if x.shape == logits.shape:
            # fused, numerically stable kernel when no broadcasting is needed
            return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)
        # log p = x * l - log(1 + e^l), stable through softplus
        return (x * logits - F.softplus(logits)).sum(dim=-1)


class FixedGaussian:
    """N(mean, sigma^2 I) with a fixed sigma: the tutorial's L2 loss as a likelihood.

    log p(x|z) = -||x - mean||^2 / (2 sigma^2) - D * log(sigma) - D/2 * log(2 pi);
    with sigma = 1 the first term is the tutorial's ``tf.nn.l2_loss``.
    """

    def __init__(self, mean: torch.Tensor, sigma: float):
        self.loc = mean
        self.sigma = float(sigma)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        return self.loc.expand(shape) + self.sigma * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = self.loc.shape[-1]
        sq = (x - self.loc).pow(2).sum(dim=-1)
        return -0.5 * sq / self.sigma**2 - d * (math.log(self.sigma) + 0.5 * LOG_2PI)
