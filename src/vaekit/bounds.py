"""Bounds on log p(x) in nats, as pure functions of log-weights.

``log_w[k, b] = log p(x_b|z_k) + log p(z_k) - log q(z_k|x_b)`` with ``z_k ~ q(z|x_b)``.

* ELBO (Kingma & Welling, 2014): ``E_q[log w]``, estimated by the mean over k.
* IWAE bound (Burda et al., 2016): ``log (1/K) sum_k w_k``; it equals the ELBO in
  expectation for K=1, rises with K, and tends to log p(x) as K grows, so
  ``-iwae_bound`` with large K is the usual estimate of the negative log-likelihood.

Every function returns per-example values; the caller reduces.
"""

from __future__ import annotations

import math

import torch


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """Monte Carlo ELBO per example: mean of ``log_w [K, B]`` over K."""
    return log_w.mean(dim=0)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """Importance-weighted bound per example: ``logsumexp_k(log_w) - log K``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


class StreamingLogMeanExp:
    """log (1/K) sum_k exp(a_k), accumulated over chunks of k without holding all K.

    Keeps a running maximum and a rescaled sum, so memory is one chunk, not K.
    """

    def __init__(self):
        self.max: torch.Tensor | None = None
        self.sum: torch.Tensor | None = None
        self.count = 0

    def update(self, chunk: torch.Tensor) -> None:
        """Add a chunk of values ``[k, B]``."""
        m = chunk.max(dim=0).values
        if self.max is None:
            self.max, self.sum = m, torch.exp(chunk - m).sum(0)
        else:
            new = torch.maximum(self.max, m)
            self.sum = self.sum * torch.exp(self.max - new) + torch.exp(chunk - new).sum(0)
            self.max = new
        self.count += chunk.shape[0]

    def result(self) -> torch.Tensor:
        return self.max + torch.log(self.sum) - math.log(self.count)


def bits_per_dim(nll_nats: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nll_nats / (dims * math.log(2.0))
