"""Latent traversals: what each latent dimension does to the decoded image.

One row per latent dimension (the top layer of a hierarchical model), ordered by its KL, largest first,
each decoding a sweep of that one dimension from a base code while the others stay at the base: the
prior's mean, or the posterior mean of a chosen image. The sweep runs over the 5%..95% quantiles of
that dimension under the prior (N(0, 1)'s for the standard prior; 20,000 of its samples, drawn with a
fixed seed, for a mixture). Inactive dimensions (Var_x E[z_i|x] <= 0.01, Burda et al. 2016) are marked:
their rows should not change. The GIF form moves every dimension through the sweep at once, one tile
per dimension.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from ..files import atomic_write_bytes
from .grids import image_grid, show

STEPS = 11
MAX_ROWS = 64  # dimensions drawn, the most informative first
ACTIVE = 0.01  # unit activity above which a dimension is active


def sweep_values(model, steps: int = STEPS) -> torch.Tensor:
    """``[L, steps]``: each latent dimension's sweep, its 5%..95% quantiles under the prior."""
    from ..models.distributions import StandardNormal
    from .grids import normal_quantiles, prior_draws

    if isinstance(model.prior(), StandardNormal):
        return normal_quantiles(steps).repeat(model.latent_dim, 1)
    z = prior_draws(model)
    return torch.quantile(z, torch.linspace(0.05, 0.95, steps), dim=0).T.contiguous()


def base_code(model, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
    """``[L]``: the prior's mean, or the posterior mean of the one image ``x`` ``[1, C, H, W]``."""
    if x is None:
        return model.prior().mean.detach().float().cpu().reshape(-1)
    with torch.no_grad():
        q = model.encode(x, y) if y is not None else model.encode(x)
    return q.mu.float().cpu().reshape(-1)


def order(kl_dims: torch.Tensor | None, latent_dim: int) -> list[int]:
    """Dimensions by KL, largest first (their own order without a KL)."""
    if kl_dims is None:
        return list(range(latent_dim))
    return sorted(range(latent_dim), key=lambda d: (-float(kl_dims[d]), d))


@torch.no_grad()
def traversal_images(model, dims: list[int], base: torch.Tensor, values: torch.Tensor,
                     label: int | None = None) -> torch.Tensor:
    """Decoded means ``[len(dims) * steps, C, H, W]``: row r sweeps dimension ``dims[r]`` through ``values[d]``."""
    steps = values.shape[1]
    z = base.view(1, 1, -1).repeat(len(dims), steps, 1)
    for r, d in enumerate(dims):
        z[r, :, d] = values[d]
    anchor = next(model.parameters())
    z = z.reshape(len(dims) * steps, -1).to(anchor)
    if getattr(model, "conditional", False):
        y = torch.full((z.shape[0],), int(label or 0), dtype=torch.long, device=anchor.device)
        return model.decode(z, y).mean
    return model.decode(z).mean


def _labels(dims, kl_dims, activity) -> list[str]:
    out = []
    for d in dims:
        kl = f" KL {float(kl_dims[d]):.2f}" if kl_dims is not None else ""
        idle = activity is not None and float(activity[d]) <= ACTIVE
        out.append(f"z[{d}]{kl}" + (" (inactive)" if idle else ""))
    return out


def traversals_figure(model, kl_dims=None, activity=None, base: torch.Tensor | None = None, base_name: str = "",
                      steps: int = STEPS, label: int | None = None) -> Figure:
    """The traversal grid: one labelled row per dimension (at most :data:`MAX_ROWS`, by KL)."""
    dims = order(kl_dims, model.latent_dim)[:MAX_ROWS]
    base = base_code(model) if base is None else base
    values = sweep_values(model, steps)
    images = traversal_images(model, dims, base, values, label)
    c, h, w = model.image_shape
    grid = image_grid(images, model.image_shape, nrow=steps)
    inches = min(10.0, 0.55 * steps + 2)
    fig = Figure(figsize=(inches, inches * grid.shape[0] / grid.shape[1] + 0.8))
    ax = fig.subplots()
    show(ax, grid)
    centres = 1 + np.arange(len(dims)) * (h + 1) + h / 2 - 0.5
    ax.set_yticks(centres, _labels(dims, kl_dims, activity), fontsize=7)
    ax.set_xticks([1 + w / 2, 1 + (steps - 1) * (w + 1) + w / 2], ["5%", "95%"], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    more = f"; the {len(dims)} of {model.latent_dim} with the largest KL" if len(dims) < model.latent_dim else ""
    cond = f", label {int(label or 0)}" if getattr(model, "conditional", False) else ""
    ax.set_title(f"latent traversals from {base_name or 'the prior mean'}{cond}: each row sweeps one dimension "
                 f"over its prior quantiles,\nthe others held (rows by KL, largest first{more})", fontsize=8)
    return fig


def write_traversals_gif(model, path: str | Path, kl_dims=None, activity=None, base: torch.Tensor | None = None,
                         steps: int = 16, label: int | None = None, duration_ms: int = 120) -> Path:
    """The GIF form: one tile per dimension (in KL order, each marked with its number; inactive ones framed in
    red), every dimension moving through its sweep at once, forth and back."""
    dims = order(kl_dims, model.latent_dim)[:MAX_ROWS]
    base = base_code(model) if base is None else base
    images = traversal_images(model, dims, base, sweep_values(model, steps), label).float().cpu()
    c, h, w = model.image_shape
    images = images.reshape(len(dims), steps, c, h, w)
    cols = int(np.ceil(np.sqrt(len(dims))))
    scale = max(1, 64 // max(h, w))
    idle = [activity is not None and float(activity[d]) <= ACTIVE for d in dims]
    frames = []
    for t in list(range(steps)) + list(range(steps - 2, 0, -1)):
        grid = image_grid(images[:, t], model.image_shape, nrow=cols)
        pixels = grid if grid.ndim == 3 else 1 - grid  # grey dark on white, as the figures show it
        im = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST).convert("RGB")
        canvas = Image.new("RGB", (max(im.width, 240), im.height + 14), (255, 255, 255))  # room for the line above
        canvas.paste(im, (0, 14))
        draw = ImageDraw.Draw(canvas)
        draw.text((2, 1), f"step {t + 1}/{steps} of each sweep (5%..95%)", fill=(0, 0, 0))
        for i, d in enumerate(dims):
            r, col = divmod(i, cols)
            x0, y0 = (1 + col * (w + 1)) * scale, 14 + (1 + r * (h + 1)) * scale
            draw.text((x0 + 1, y0), str(d), fill=(200, 30, 30) if idle[i] else (30, 90, 200))
            if idle[i]:
                draw.rectangle((x0, y0, x0 + w * scale - 1, y0 + h * scale - 1), outline=(200, 30, 30))
        frames.append(canvas)
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


__all__ = ["MAX_ROWS", "STEPS", "base_code", "order", "sweep_values", "traversal_images", "traversals_figure",
           "write_traversals_gif"]
