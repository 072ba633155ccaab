"""Decoders: networks that map z to p(x|z) through a likelihood."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .encoders import gated_mlp, mlp


class MLPDecoder(nn.Module):
    """z [..., L] -> hidden ReLU layers -> likelihood parameters [..., D] -> p(x|z)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], out_dim: int, likelihood, cond_dim: int = 0,
                 dropout: float = 0.0, split_cond: bool = False):
        super().__init__()
        self.net = mlp([latent_dim + cond_dim, *hidden, out_dim], dropout, split=cond_dim if split_cond else 0)
        self.likelihood = likelihood

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None):
        if cond is not None:  # a conditional model's labels, one-hot rows [B, classes], beside every sample of z
            z = torch.cat([z, cond.to(z.dtype).expand(*z.shape[:-1], cond.shape[-1])], dim=-1)
        # the likelihood always sees float32 parameters, even when the products ran in bf16
        return self.likelihood(self.net(z).float())


class GatedMLPDecoder(MLPDecoder):
    """:class:`MLPDecoder` with gated hidden layers."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], out_dim: int, likelihood, cond_dim: int = 0,
                 dropout: float = 0.0, split_cond: bool = False):
        super().__init__(latent_dim, hidden, out_dim, likelihood, cond_dim)
        self.net = gated_mlp([latent_dim + cond_dim, *hidden, out_dim], dropout, split=cond_dim if split_cond else 0)
