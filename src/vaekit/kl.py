"""Kullback-Leibler divergences.

* :func:`discrete_kl` -- KL(p || q) between discrete distributions, with the
  semantics of ``scipy.stats.entropy(pk, qk, base)``: inputs are normalised to sum
  to one along ``axis``, terms with ``p == 0`` contribute nothing, and the result is
  ``inf`` where ``q == 0`` but ``p > 0``.
* :func:`gaussian_kl` -- the analytic KL between diagonal Gaussians given by means
  and log-variances. Against the standard normal prior it reduces to the closed form
  of Kingma & Welling (2014, appendix B) used in the tutorial:
  ``0.5 * sum(sigma^2 + mu^2 - 1 - log sigma^2)``.
* :func:`monte_carlo_kl` -- an unbiased estimate ``E_q[log q(z) - log p(z)]`` for
  any pair of distributions that can sample and score (``torch.distributions`` or
  :mod:`vaekit.models.distributions`).

All results are in nats unless a ``base`` is given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import VaekitError

__all__ = ["discrete_kl", "gaussian_kl", "gaussian_kl_per_dim", "monte_carlo_kl"]


def discrete_kl(pk: Any, qk: Any, base: float | None = None, axis: int = 0):
    """KL(p || q) = sum_i p_i log(p_i / q_i) between two discrete distributions.

    ``pk`` and ``qk`` are array-likes or tensors of non-negative weights (not
    necessarily normalised). Returns a tensor if either input is a tensor, else a
    NumPy float or array, like ``scipy.stats.entropy(pk, qk, base, axis=axis)``.
    """
    as_tensor = isinstance(pk, torch.Tensor) or isinstance(qk, torch.Tensor)
    p = torch.as_tensor(np.asarray(pk, dtype=np.float64) if not isinstance(pk, torch.Tensor) else pk)
    q = torch.as_tensor(np.asarray(qk, dtype=np.float64) if not isinstance(qk, torch.Tensor) else qk)
    dtype = torch.promote_types(p.dtype, q.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float64
    p, q = torch.broadcast_tensors(p.to(dtype), q.to(dtype))
    if p.ndim == 0:
        raise VaekitError("discrete_kl needs at least one outcome; got scalars")
    if torch.isnan(p).any() or torch.isnan(q).any():
        raise VaekitError("discrete_kl got NaN probabilities; pass finite, non-negative weights")
    if (p < 0).any() or (q < 0).any():
        raise VaekitError("discrete_kl got negative probabilities; pass non-negative weights")
    if base is not None and (base <= 0 or base == 1):
        raise VaekitError(f"discrete_kl base must be positive and not 1, got {base}")
    p = p / p.sum(dim=axis, keepdim=True)
    q = q / q.sum(dim=axis, keepdim=True)
    # rel_entr: p log(p/q) for p > 0, q > 0; 0 for p == 0; inf for p > 0, q == 0
    terms = torch.special.xlogy(p, p) - torch.special.xlogy(p, q)
    terms = torch.where((p > 0) & (q == 0), torch.full_like(terms, math.inf), terms)
    out = terms.sum(dim=axis)
    if base is not None:
        out = out / math.log(base)
    if as_tensor:
        return out
    out = out.numpy()
    return out[()] if out.ndim == 0 else out


def gaussian_kl_per_dim(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    mu_p: torch.Tensor | float = 0.0,
    logvar_p: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(mu_p, e^logvar_p)) per dimension, in nats (same shape as ``mu``)."""
    mu_p = torch.as_tensor(mu_p, dtype=mu.dtype, device=mu.device)
    logvar_p = torch.as_tensor(logvar_p, dtype=mu.dtype, device=mu.device)
    # 0.5 * [log(s_p^2 / s^2) + (s^2 + (mu - mu_p)^2) / s_p^2 - 1]
    return 0.5 * (logvar_p - logvar + (torch.exp(logvar) + (mu - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0)


def gaussian_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    mu_p: torch.Tensor | float = 0.0,
    logvar_p: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(mu_p, e^logvar_p)) for diagonal Gaussians, in nats.

    Summed over the last dimension, so ``[B, D]`` inputs give ``[B]``. With the
    default ``mu_p = 0, logvar_p = 0`` this is the KL to the standard normal prior.
    """
    return gaussian_kl_per_dim(mu, logvar, mu_p, logvar_p).sum(dim=-1)


def monte_carlo_kl(q: Any, p: Any, n_samples: int = 1000, return_stderr: bool = False):
    """Monte Carlo estimate of KL(q || p) = E_q[log q(z) - log p(z)].

    ``q`` must offer ``rsample(shape)`` or ``sample(shape)`` and both must offer
    ``log_prob(z)`` returning one value per batch element (use
    ``torch.distributions.Independent`` for multivariate torch distributions).
    Returns the estimate over the batch shape; with ``return_stderr`` also its
    standard error.
    """
    if int(n_samples) < 1:
        raise VaekitError(f"monte_carlo_kl needs n_samples >= 1, got {n_samples}")
    shape = torch.Size([int(n_samples)])
    z = q.rsample(shape) if getattr(q, "has_rsample", True) and hasattr(q, "rsample") else q.sample(shape)
    diffs = q.log_prob(z) - p.log_prob(z)  # [N, *batch]
    est = diffs.mean(dim=0)
    if not return_stderr:
        return est
    stderr = diffs.std(dim=0) / math.sqrt(n_samples) if n_samples > 1 else torch.full_like(est, math.inf)
    return est, stderr
