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
        if x.dim() == 2 and logits.dim() == 3 and logits.shape[1:] == x.shape:
            # K samples [K, B, D] of B images [B, D] (evaluation, several samples of z): sum_d x_d l_d as one
            # batched product per image, in float32 even under autocast; 3.7x faster than the broadcast
            # elementwise form for 26 x 100 x 784 on a 2-core CPU (docs/benchmarks.md, "Evaluation")
            with torch.autocast(device_type=logits.device.type, enabled=False):
                xl = torch.matmul(logits.transpose(0, 1), x.to(logits.dtype).unsqueeze(-1)).squeeze(-1).transpose(0, 1)
            return xl - F.softplus(logits).sum(dim=-1)
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


class LearnedGaussian:
    """N(mean, diag(exp(logvar))) over pixels: a Gaussian whose variance the decoder outputs too."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.loc, self.logvar = mean, logvar

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        return self.loc.expand(shape) + torch.exp(0.5 * self.logvar) * torch.randn(shape, dtype=self.loc.dtype,
                                                                                   device=self.loc.device)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x - self.loc).pow(2) * torch.exp(-self.logvar) + self.logvar + LOG_2PI).sum(dim=-1)


TAYLOR_CB = 0.1  # |logit| below which the continuous Bernoulli's constant uses its Taylor series


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(logits) (Loaiza-Ganem & Cunningham, 2019).

    C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = eta / tanh(eta / 2) in terms of the logit eta; at
    eta = 0 (lambda = 1/2) the quotient is 0/0, so near it the series log 2 + eta^2/12 - 7 eta^4/1440
    (error below 1e-8 for |eta| < 0.1) is used instead.
    """
    a = logits.abs()
    far = torch.where(a < TAYLOR_CB, torch.full_like(a, 1.0), a)  # keeps the unused branch finite
    exact = torch.log(far) - torch.log(torch.tanh(far / 2))
    sq = logits * logits
    taylor = math.log(2.0) + sq / 12 - 7 * sq * sq / 1440
    return torch.where(a < TAYLOR_CB, taylor, exact)


class ContinuousBernoulli:
    """The continuous Bernoulli on [0, 1] from logits: p(x) = C(lambda) lambda^x (1 - lambda)^(1 - x)."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    @property
    def mean(self) -> torch.Tensor:
        eta = self.logits
        small = eta.abs() < 1e-3
        safe = torch.where(small, torch.ones_like(eta), eta)
        exact = -1.0 / torch.expm1(-safe) - 1.0 / safe  # 1/(1 - e^-eta) - 1/eta
        return torch.where(small, 0.5 + eta / 12, exact)

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        eta = self.logits.clamp(-30, 30).expand(torch.Size(sample_shape) + self.logits.shape)
        u = torch.rand_like(eta)
        small = eta.abs() < 1e-3
        safe = torch.where(small, torch.ones_like(eta), eta)
        return torch.where(small, u, torch.log1p(u * torch.expm1(safe)) / safe).clamp(0, 1)  # inverse CDF

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        # x log lambda + (1 - x) log(1 - lambda) = x eta - softplus(eta)
        eta = self.logits
        return (x * eta - F.softplus(eta) + continuous_bernoulli_log_norm(eta)).sum(dim=-1)


def _log1mexp(a: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(a)) for a < 0, accurate everywhere (Maechler, 2012)."""
    return torch.where(a > -math.log(2.0), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


class DiscretizedLogistic:
    """A logistic with location ``loc`` and log-scale ``log_scale`` per pixel, discretised to ``levels`` values
    0, 1/(k-1), ..., 1 (Salimans et al., 2017, one component): the mass of the bin of half-width
    h = 1/(2(k-1)) around each value, the two end bins taking the tails. Masses sum to 1 exactly."""

    def __init__(self, loc: torch.Tensor, log_scale: torch.Tensor, levels: int, balance: float = 0.0):
        self.loc, self.log_scale, self.levels, self.balance = loc, log_scale, int(levels), float(balance)

    @property
    def mean(self) -> torch.Tensor:
        # E[x] = sum_i x_i P(x_i) = (1/(k-1)) sum_{i>=1} P(x >= x_i), and P(x >= x_i) = sigmoid((loc - edge_i) / s)
        # at the bin edges; summed a few edges at a time, so memory stays that of a few images
        k = self.levels
        edges = (torch.arange(1, k, dtype=self.loc.dtype, device=self.loc.device) - 0.5) / (k - 1)
        inv_s = torch.exp(-self.log_scale)
        total = torch.zeros_like(self.loc)
        for chunk in edges.split(16):
            total += torch.sigmoid((self.loc.unsqueeze(-1) - chunk) * inv_s.unsqueeze(-1)).sum(-1)
        return total / (k - 1)

    def probs_of(self, values: torch.Tensor) -> torch.Tensor:
        """P(x = v) for every level ``v`` ``[k]``: ``[..., D, k]``."""
        x = values.expand(*self.loc.shape, self.levels)
        return torch.exp(self._log_mass(x, self.loc.unsqueeze(-1), self.log_scale.unsqueeze(-1)))

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(1e-6, 1 - 1e-6)
        x = self.loc + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
        k = self.levels - 1
        return torch.round(x.clamp(0, 1) * k) / k

    def _log_mass(self, x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
        h = 0.5 / (self.levels - 1)
        inv_s = torch.exp(-log_scale)
        plus, minus = (x + h - loc) * inv_s, (x - h - loc) * inv_s
        # log(sigmoid(plus) - sigmoid(minus)) = log S(near) + log(1 - S(far) / S(near)), from whichever tail
        # keeps it accurate; when the bin is tiny against the scale the ratio rounds to 1, and the density at
        # the bin's centre times its width is used (as PixelCNN++ does). Unused branches are kept finite, so
        # that no NaN reaches the gradient through torch.where.
        up = (plus + minus) > 0
        near = torch.where(up, F.logsigmoid(-minus), F.logsigmoid(plus))
        ratio = torch.where(up, F.logsigmoid(-plus), F.logsigmoid(minus)) - near  # < 0
        resolved = ratio < -1e-4
        exact = near + _log1mexp(torch.where(resolved, ratio, torch.full_like(ratio, -1.0)))
        mid = (x - loc) * inv_s
        centre = math.log(2 * h) - log_scale + F.logsigmoid(mid) + F.logsigmoid(-mid)
        middle = torch.where(resolved, exact, centre)
        first, last = F.logsigmoid(plus), F.logsigmoid(-minus)  # P(x <= h), P(x >= 1 - h)
        return torch.where(x < h, first, torch.where(x > 1 - h, last, middle))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = self._log_mass(x, self.loc, self.log_scale)
        if self.balance and torch.is_grad_enabled() and lp.requires_grad:
            # the value is log p; the gradient of each pixel's term is weighted by its scale^balance (stopped,
            # mean 1 over each image's pixels), in the spirit of Seitzer et al.'s beta-NLL (2022): without it,
            # sharp pixels (a plain background) dominate the gradient and hedged ones stay hedged
            w = torch.exp(self.balance * self.log_scale.detach())
            w = w / w.mean(dim=-1, keepdim=True)
            lp = w * lp + (1 - w) * lp.detach()
        return lp.sum(dim=-1)


class MixtureOfDiagonalNormals:
    """sum_k w_k N(mu_k, diag(exp(logvar_k))) over ``[..., L]``: the mixture priors (a learned mixture, and the
    VampPrior's mixture of the encoder's posteriors). ``log_prob_per_dim`` gives each dimension's marginal,
    itself a mixture, for the Monte Carlo KL per dimension."""

    def __init__(self, log_weights: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor):
        self.log_weights = torch.log_softmax(log_weights, dim=-1)  # [K]
        self.mu, self.logvar = mu, logvar  # [K, L]

    @property
    def mean(self) -> torch.Tensor:
        return (self.log_weights.exp().unsqueeze(-1) * self.mu).sum(0)

    def sample(self, sample_shape: _Shape = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        with torch.no_grad():
            k = torch.multinomial(self.log_weights.exp(), max(1, shape.numel()), replacement=True)
            eps = torch.randn(k.shape[0], self.mu.shape[-1], dtype=self.mu.dtype, device=self.mu.device)
            z = self.mu[k] + torch.exp(0.5 * self.logvar[k]) * eps
        return z.reshape(*shape, self.mu.shape[-1])

    def _components(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z_j; mu_kj, sigma_kj) ``[..., K, L]``."""
        z = z.unsqueeze(-2)
        return -0.5 * ((z - self.mu).pow(2) * torch.exp(-self.logvar) + self.logvar + LOG_2PI)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        # sum_j (z_j - mu_kj)^2 / var_kj expanded into two matrix products, so no [..., K, L] tensor is made (ten
        # times faster for the VampPrior's 500 components). The expansion subtracts large terms, so it runs in
        # float64 and never under autocast: in bfloat16 (8 bits) it gave log-densities of +1e13 nats for narrow
        # components, which training then exploited; in float64 it is within 1e-6 nats of the direct form even
        # for components 1/4096 of their mean wide (tests/test_priors.py)
        wide = torch.float32 if z.device.type == "mps" else torch.float64  # MPS has no float64
        with torch.autocast(z.device.type, enabled=False):
            logvar, mu = self.logvar.to(wide), self.mu.to(wide)
            prec = torch.exp(-logvar)  # [K, L]
            zf = z.reshape(-1, z.shape[-1]).to(wide)
            quad = (zf * zf) @ prec.T - 2.0 * (zf @ (mu * prec).T)
            const = (mu * mu * prec + logvar).sum(-1) + z.shape[-1] * LOG_2PI  # [K]
            out = torch.logsumexp(self.log_weights.to(wide) - 0.5 * (quad + const), dim=-1)
        return out.to(z.dtype).reshape(z.shape[:-1])

    def log_prob_per_dim(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.log_weights.unsqueeze(-1) + self._components(z), dim=-2)
