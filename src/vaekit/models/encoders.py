"""Encoders: networks that map x to q(z|x)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .distributions import DiagonalNormal

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0
RESOLUTION = 2.0 ** -12  # a posterior's spread is kept >= this share of its mean's size (float32 has 24 bits)


def bounded_logvar(mu: torch.Tensor, logvar: torch.Tensor,
                   bounds: tuple[float, float] = (LOGVAR_MIN, LOGVAR_MAX)) -> torch.Tensor:
    """The head's log-variance kept in ``bounds`` (by default [LOGVAR_MIN, LOGVAR_MAX]; the networks' option
    ``logvar_min``/``logvar_max`` narrows it, as Tomczak & Welling's hardtanh to [-6, 2] does: outside, the
    gradient is zero) and sigma >= RESOLUTION * |mu|: exp() can neither
    underflow to 0 nor overflow, and a float32 sample mu + sigma * eps resolves eps (where sigma is below a few
    float32 steps of mu, the sample is rounded onto a grid and its log-density is no longer that of a draw
    from q: the bounds would bound nothing). The floor is reached only by a posterior narrower than 1/4096
    of its mean, far beyond anything a fitted VAE uses; it stops an optimiser from exploiting the rounding."""
    floor = 2.0 * torch.log(mu.detach().abs() * RESOLUTION)
    return torch.maximum(logvar.clamp(*bounds), floor)


class SplitInput(nn.Module):
    """A two-input network's first layer with each input apart: the first ``at`` columns through ``first``, the
    rest through ``second``, their outputs side by side (Tomczak & Welling's two-input networks give x and z2,
    or z1 and z2, a first gated layer each before a joint one)."""

    def __init__(self, first: nn.Module, second: nn.Module, at: int):
        super().__init__()
        self.first, self.second, self.at = first, second, at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.first(x[..., :self.at]), self.second(x[..., self.at:])], dim=-1)


def _split_first(layer, sizes: Sequence[int], split: int) -> tuple[nn.Module, int]:
    """The first hidden layer as two (``layer(in, out)`` each): one for the first ``sizes[0] - split`` columns,
    one for the last ``split``; with the width of their joined output."""
    a, b = sizes[0], sizes[1]
    if len(sizes) < 3 or not 0 < split < a:
        raise ValueError(f"a split first layer needs a hidden layer and two inputs, got sizes {list(sizes)}, "
                         f"split {split}")
    return SplitInput(layer(a - split, b), layer(split, b), a - split), 2 * b


def mlp(sizes: Sequence[int], dropout: float = 0.0, split: int = 0) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last), and dropout after each ReLU if asked.
    ``split`` > 0: the last ``split`` input columns (a second input) get their own first layer (:class:`SplitInput`)."""
    layers: list[nn.Module] = []
    sizes = list(sizes)
    if split:
        first, width = _split_first(nn.Linear, sizes, split)
        layers += [first, nn.ReLU(), nn.Dropout(dropout)] if dropout else [first, nn.ReLU()]
        sizes = [width, *sizes[2:]]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)] if dropout else [nn.ReLU()]
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x [B, C, H, W] (or [B, D]) -> hidden ReLU layers -> (mu, logvar) [B, L] -> DiagonalNormal.

    One linear head outputs mean and log-variance together (one matrix product);
    the log-variance head is the tutorial's "sigma^2 in log space".
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], latent_dim: int, cond_dim: int = 0, dropout: float = 0.0,
                 logvar_bounds: tuple[float, float] = (LOGVAR_MIN, LOGVAR_MAX), split_cond: bool = False):
        super().__init__()
        self.net = mlp([in_dim + cond_dim, *hidden, 2 * latent_dim], dropout, split=cond_dim if split_cond else 0)
        self.latent_dim = latent_dim
        self.logvar_bounds = tuple(map(float, logvar_bounds))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> DiagonalNormal:
        if x.dim() > 2:  # images [B, C, H, W] -> rows of pixels (a view)
            x = x.reshape(x.shape[0], -1)
        if cond is not None:  # a conditional model's labels, one-hot rows [B, classes]
            x = torch.cat([x, cond.to(x.dtype)], dim=-1)
        mu, logvar = self.net(x).float().chunk(2, dim=-1)  # float32 even under bf16 autocast
        return DiagonalNormal(mu, bounded_logvar(mu, logvar, self.logvar_bounds))


class GatedDense(nn.Module):
    """h = (W x + b) * sigmoid(V x + c): a gated linear unit (Dauphin et al., 2017), the layer
    of the MLP VAEs of Tomczak & Welling (2018). Both halves come from one matrix product."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, g = self.linear(x).chunk(2, dim=-1)
        return h * torch.sigmoid(g)


def gated_mlp(sizes: Sequence[int], dropout: float = 0.0, split: int = 0) -> nn.Sequential:
    """Gated layers for every hidden width (each followed by dropout if asked), then a plain linear output layer;
    ``split`` as for :func:`mlp`."""
    layers: list[nn.Module] = []
    sizes = list(sizes)
    if split:
        first, width = _split_first(GatedDense, sizes, split)
        layers += [first, nn.Dropout(dropout)] if dropout else [first]
        sizes = [width, *sizes[2:]]
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [GatedDense(a, b), nn.Dropout(dropout)] if dropout else [GatedDense(a, b)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class GatedMLPEncoder(MLPEncoder):
    """:class:`MLPEncoder` with gated hidden layers."""

    def __init__(self, in_dim: int, hidden: Sequence[int], latent_dim: int, cond_dim: int = 0, dropout: float = 0.0,
                 logvar_bounds: tuple[float, float] = (LOGVAR_MIN, LOGVAR_MAX), split_cond: bool = False):
        super().__init__(in_dim, hidden, latent_dim, cond_dim, logvar_bounds=logvar_bounds)
        self.net = gated_mlp([in_dim + cond_dim, *hidden, 2 * latent_dim], dropout,
                             split=cond_dim if split_cond else 0)
