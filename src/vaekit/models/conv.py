"""Convolutional encoder and decoder for images of any shape C x H x W (``arch = "conv"``).

Each level of the encoder is a 4x4 convolution with stride 2 and padding 1, which maps a side of
n pixels to floor(n / 2); the decoder retraces the levels with 4x4 transposed convolutions of
stride 2 and padding 1 (2n pixels), adding ``output_padding = 1`` exactly where the encoder's side
was odd. So the decoder's output has the input's size for every H and W (28 -> 14 -> 7 -> 3 and
back 3 -> 7 -> 14 -> 28; 32, 64, rectangles), however many levels the image allows. A kernel a
multiple of the stride also keeps transposed convolutions free of the uneven overlaps that
draw checkerboards.

Between the last level and the latent space sit the dense layers ``hidden`` (none by default:
one linear head for mean and log-variance); the decoder mirrors them. Labels of a conditional
model (``cond``, one-hot rows) join the encoder's flattened features and the decoder's latent input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .distributions import DiagonalNormal
from .encoders import LOGVAR_MAX, LOGVAR_MIN, bounded_logvar, mlp

KERNEL, STRIDE, PADDING = 4, 2, 1


def level_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """The spatial size after each encoder level, starting with the input's: ``levels + 1`` pairs."""
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append((h // 2, w // 2))
    return sizes


def max_levels(height: int, width: int) -> int:
    """How many stride-2 levels an image of ``height x width`` allows (the smallest side stays >= 2)."""
    n, side = 0, min(height, width)
    while side // 2 >= 2:
        side //= 2
        n += 1
    return n


class ConvEncoder(nn.Module):
    """x [B, C, H, W] -> conv levels (ReLU) -> flatten -> dense ``hidden`` -> (mu, logvar) [B, L]."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], hidden: Sequence[int],
                 latent_dim: int, cond_dim: int = 0, logvar_bounds: tuple[float, float] = (LOGVAR_MIN, LOGVAR_MAX),
                 split_cond: bool = False):
        super().__init__()
        c, h, w = image_shape
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.logvar_bounds = tuple(map(float, logvar_bounds))
        layers: list[nn.Module] = []
        for width in channels:
            layers += [nn.Conv2d(c, width, KERNEL, STRIDE, PADDING), nn.ReLU()]
            c = width
        self.conv = nn.Sequential(*layers)
        lh, lw = level_sizes(h, w, len(channels))[-1]
        self.features = c * lh * lw
        self.dense = mlp([self.features + cond_dim, *hidden, 2 * latent_dim], split=cond_dim if split_cond else 0)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> DiagonalNormal:
        if x.dim() == 2:  # rows of pixels -> images
            x = x.reshape(x.shape[0], *self.image_shape)
        f = self.conv(x).flatten(1)
        if cond is not None:
            f = torch.cat([f, cond.to(f.dtype)], dim=-1)
        mu, logvar = self.dense(f).float().chunk(2, dim=-1)
        return DiagonalNormal(mu, bounded_logvar(mu, logvar, self.logvar_bounds))


class ConvDecoder(nn.Module):
    """z [..., L] -> dense ``hidden`` -> [channels[-1], h, w] -> transposed conv levels (ReLU) ->
    a 3x3 convolution to ``params_per_pixel * C`` maps -> the likelihood's parameters [..., P * C * H * W].

    Parameter p of every pixel fills the p-th block of C * H * W numbers, the layout the likelihoods
    read (``out.chunk(P, -1)``)."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], hidden: Sequence[int],
                 latent_dim: int, likelihood, cond_dim: int = 0, split_cond: bool = False):
        super().__init__()
        c, h, w = image_shape
        self.likelihood = likelihood
        sizes = level_sizes(h, w, len(channels))
        self.start = (channels[-1], *sizes[-1])
        start_numel = channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.dense = mlp([latent_dim + cond_dim, *hidden, start_numel], split=cond_dim if split_cond else 0)
        layers: list[nn.Module] = [nn.ReLU()]
        widths = list(channels[::-1])  # deepest first
        for i, width in enumerate(widths):
            out_width = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            (th, tw), (sh, sw) = sizes[-2 - i], sizes[-1 - i]
            pad = (th - 2 * sh, tw - 2 * sw)  # 1 where the encoder's input side was odd
            layers += [nn.ConvTranspose2d(width, out_width, KERNEL, STRIDE, PADDING, output_padding=pad), nn.ReLU()]
        layers.append(nn.Conv2d(widths[-1], likelihood.params_per_pixel * c, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None):
        lead = z.shape[:-1]
        if cond is not None:
            cond = cond.to(z.dtype).expand(*lead, cond.shape[-1])
            z = torch.cat([z, cond], dim=-1)
        h = self.dense(z.reshape(-1, z.shape[-1])).reshape(-1, *self.start)
        out = self.net(h).flatten(1)
        # the likelihood always sees float32 parameters, even when the products ran in bf16
        return self.likelihood(out.reshape(*lead, out.shape[-1]).float())
