"""Pictures of a model: samples from the prior and reconstructions.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so nothing
here touches the global backend or needs a display (a notebook still shows them),
and files are written atomically.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from .checkpoint import atomic_write_bytes


def image_grid(images: torch.Tensor, image_shape: tuple[int, int, int], nrow: int | None = None,
               pad: int = 1) -> np.ndarray:
    """Tile flat images ``[N, C*H*W]`` into one ``[rows*(H+pad), cols*(W+pad)]`` array in [0, 1]."""
    c, h, w = image_shape
    imgs = images.detach().float().cpu().clamp(0, 1).reshape(-1, c, h, w).mean(1).numpy()  # [N, H, W]
    n = imgs.shape[0]
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    # light-grey gaps (0.25 on the reversed grey map) separate the tiles
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 0.25, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = imgs[i]
    return grid


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Render ``fig`` to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _grid_figure(grid: np.ndarray, title: str, inches: float = 6.0):
    fig = Figure(figsize=(inches, inches * grid.shape[0] / grid.shape[1] + 0.5))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    return fig


def samples_figure(model, n: int = 64, seed: int = 0):
    """Means of p(x|z) for ``n`` draws z ~ p(z): new images straight from the model."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        images = model.sample(n)
    finally:
        torch.random.set_rng_state(gen_state)
    grid = image_grid(images, model.image_shape)
    return _grid_figure(grid, f"{n} samples from the prior (mean of p(x|z), z ~ N(0, I))")


def reconstructions_figure(model, x: torch.Tensor, n: int = 32):
    """Inputs (odd rows) above their reconstructions (even rows)."""
    x = x[:n]
    recon = model.reconstruct(x)
    cols = min(16, x.shape[0])
    pairs = []
    for i in range(0, x.shape[0], cols):
        pairs += [x[i : i + cols], recon[i : i + cols]]
    rows = [image_grid(p, model.image_shape, nrow=cols) for p in pairs]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=0.25) for r in rows]
    grid = np.concatenate(rows, axis=0)
    return _grid_figure(grid, "inputs (rows 1, 3, ...) and their reconstructions (rows 2, 4, ...)", inches=8.0)


def save_samples(model, path: str | Path, n: int = 64, seed: int = 0) -> Path:
    return save_figure(samples_figure(model, n, seed), path)


def save_reconstructions(model, x: torch.Tensor, path: str | Path, n: int = 32) -> Path:
    return save_figure(reconstructions_figure(model, x, n), path)
