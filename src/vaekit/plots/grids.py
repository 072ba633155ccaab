"""Figures made of decoded images: samples, reconstructions, the manifold grid, interpolations.

Images are shown dark on white (matplotlib's ``gray_r``), tiles separated by
light-grey gaps, the right way up (row-major C x H x W, as stored).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..checkpoint import atomic_write_bytes

GAP = 0.25  # value of the gaps between tiles (light grey on the reversed grey map)


def image_grid(images: torch.Tensor, image_shape: tuple[int, int, int], nrow: int | None = None,
               pad: int = 1) -> np.ndarray:
    """Tile flat images ``[N, C*H*W]`` into one ``[rows*(H+pad)+pad, cols*(W+pad)+pad]`` array in [0, 1]."""
    c, h, w = image_shape
    imgs = images.detach().float().cpu().clamp(0, 1).reshape(-1, c, h, w).mean(1).numpy()  # [N, H, W]
    n = imgs.shape[0]
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), GAP, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = imgs[i]
    return grid


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Render ``fig`` to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _grid_figure(grid: np.ndarray, title: str, inches: float = 6.0) -> Figure:
    fig = Figure(figsize=(inches, inches * grid.shape[0] / grid.shape[1] + 0.5))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    return fig


def _with_seed(seed: int, fn):
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return fn()
    finally:
        torch.random.set_rng_state(state)


def samples_figure(model, n: int = 64, seed: int = 0) -> Figure:
    """Means of p(x|z) for ``n`` draws z ~ p(z): new images straight from the model."""
    images = _with_seed(seed, lambda: model.sample(n))
    grid = image_grid(images, model.image_shape)
    return _grid_figure(grid, f"{n} samples from the prior (mean of p(x|z), z ~ N(0, I))")


@torch.no_grad()
def reconstructions_figure(model, x: torch.Tensor, n: int = 32) -> Figure:
    """Inputs (odd rows) above their reconstructions (even rows)."""
    x = x[:n]
    recon = model.reconstruct(x)
    cols = min(16, x.shape[0])
    pairs = []
    for i in range(0, x.shape[0], cols):
        pairs += [x[i : i + cols], recon[i : i + cols]]
    rows = [image_grid(p, model.image_shape, nrow=cols) for p in pairs]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=GAP) for r in rows]
    return _grid_figure(np.concatenate(rows, axis=0),
                        "inputs (rows 1, 3, ...) and their reconstructions (rows 2, 4, ...)", inches=8.0)


def normal_quantiles(n: int, lo: float = 0.05, hi: float = 0.95) -> torch.Tensor:
    """``n`` points of N(0, 1) at evenly spaced probabilities (the inverse CDF), as in Kingma & Welling's figure."""
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(lo, hi, n))


def _grid_values(model, n: int, dims: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Values along each axis ``[n]``, ``[n]``, the other dimensions' point ``[L]``, and how they were chosen:
    N(0, 1) quantiles for the standard prior; for any other, the 5%..95% quantiles of 20,000 of its samples
    (drawn with a fixed seed) and its mean elsewhere."""
    from ..models.distributions import StandardNormal

    p = model.prior()
    if isinstance(p, StandardNormal):
        vals = normal_quantiles(n)
        return vals, vals, torch.zeros(model.latent_dim), "N(0,1) quantiles 5%..95%"
    z = _with_seed(0, lambda: p.sample((20000,))).float().cpu()
    q = torch.quantile(z[:, list(dims)], torch.tensor([0.05, 0.95]), dim=0)  # [2, 2]
    vi, vj = (torch.linspace(float(q[0, d]), float(q[1, d]), n) for d in (0, 1))
    return vi, vj, p.mean.detach().float().cpu().reshape(-1), "the prior's samples, quantiles 5%..95%"


@torch.no_grad()
def manifold_images(model, n: int = 20, dims: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded means on an ``n x n`` grid of latent points at normal quantiles over ``dims``.

    Other dimensions are 0 (the prior mean). Rows run from high z[dims[1]] (top) to low,
    columns from low z[dims[0]] (left) to high, like a plot's axes. Returns ``(images
    [n*n, D], values [n])``.
    """
    i, j = dims
    vi, vj, rest, _ = _grid_values(model, n, dims)
    z = rest.view(1, 1, -1).repeat(n, n, 1)
    z[:, :, i] = vi.view(1, n)
    z[:, :, j] = vj.flip(0).view(n, 1)
    anchor = next(model.parameters())
    return model.decode(z.reshape(n * n, -1).to(anchor)).mean, vi


def manifold_figure(model, n: int = 20, dims: tuple[int, int] = (0, 1), note: str = "") -> Figure:
    """The learned 2-D manifold: the decoder's images over a grid of latent values."""
    images, _ = manifold_images(model, n, dims)
    vals_x, vals_y, _, how = _grid_values(model, n, dims)
    c, h, w = model.image_shape
    grid = image_grid(images, model.image_shape, nrow=n)
    fig = Figure(figsize=(8, 8.4))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    centres_x = 1 + np.arange(n) * (w + 1) + w / 2 - 0.5
    centres_y = 1 + np.arange(n) * (h + 1) + h / 2 - 0.5
    step = max(1, n // 7)
    ax.set_xticks(centres_x[::step], [f"{v:.2f}" for v in vals_x[::step].tolist()])
    ax.set_yticks(centres_y[::step], [f"{v:.2f}" for v in vals_y.flip(0)[::step].tolist()])
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    title = f"decoded latent grid at {how} (dims {dims[0]}, {dims[1]})"
    if model.latent_dim > 2:
        title += ", other dims at the prior mean"
    ax.set_title(title + (f"\n{note}" if note else ""))
    return fig


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` ``[B, L]`` at fractions ``t [T]`` -> ``[B, T, L]``."""
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    omega = torch.acos((an * bn).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7)).unsqueeze(-1)  # [B, 1]
    t = t.view(1, -1, 1)
    so = torch.sin(omega).unsqueeze(1)  # [B, 1, 1]
    wa = torch.sin((1 - t) * omega.unsqueeze(1)) / so
    wb = torch.sin(t * omega.unsqueeze(1)) / so
    return wa * a.unsqueeze(1) + wb * b.unsqueeze(1)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``[B, L]``, ``[B, L]``, ``[T]`` -> ``[B, T, L]``."""
    t = t.view(1, -1, 1)
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


@torch.no_grad()
def interpolation_figure(model, x: torch.Tensor, pairs: int = 5, steps: int = 10) -> Figure:
    """Decoded paths between the posterior means of pairs of real images, linear and spherical.

    Each row starts with a real image and ends with another; between them, the decoder's
    images along the straight line (left block) and the great circle (right block) joining
    their codes. Smooth changes along the rows are the VAE's smooth latent space.
    """
    pairs = min(pairs, x.shape[0] // 2)
    a_img, b_img = x[:pairs], x[pairs : 2 * pairs]
    mu_a, mu_b = model.latent_code(a_img), model.latent_code(b_img)
    t = torch.linspace(0, 1, steps).to(mu_a)
    _, h, w = model.image_shape
    aspect = (pairs * (h + 1) + 1) / ((steps + 2) * (w + 1) + 1)
    fig = Figure(figsize=(14, 7 * aspect + 1.0), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (name, path) in zip(axes, (("linear", lerp), ("spherical", slerp))):
        z = path(mu_a, mu_b, t)  # [P, T, L]
        dec = model.decode(z.reshape(pairs * steps, -1)).mean.reshape(pairs, steps, -1)
        rows = torch.cat([a_img.reshape(pairs, 1, -1), dec, b_img.reshape(pairs, 1, -1)], dim=1)  # [P, T+2, D]
        grid = image_grid(rows.reshape(pairs * (steps + 2), -1), model.image_shape, nrow=steps + 2)
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{name} path between the two codes")
        ax.axis("off")
    fig.suptitle("first and last columns: real images; between them: decoded points on a path joining "
                 "their posterior means")
    return fig
