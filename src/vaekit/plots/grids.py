"""Figures made of decoded images: samples, reconstructions, the manifold grid, interpolations.

Grey images are shown dark on white (matplotlib's ``gray_r``), colour images in their own
colours, tiles separated by light-grey gaps, the right way up (row-major C x H x W, as stored).
A conditional model (the CVAE) is drawn per label: its samples one row per class, its manifold
one panel per class, its reconstructions and interpolations given the images' own labels.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..files import atomic_write_bytes
from ..limits import check_picture

GAP = 0.25  # value of the gaps between tiles (light grey on the reversed grey map)


def image_grid(images: torch.Tensor, image_shape: tuple[int, int, int], nrow: int | None = None,
               pad: int = 1) -> np.ndarray:
    """Tile images ``[N, C, H, W]`` (or flat ``[N, C*H*W]``) into one array in [0, 1]: grey
    ``[rows*(H+pad)+pad, cols*(W+pad)+pad]`` for one channel, RGB ``[..., ..., 3]`` for three
    (whose gaps are the same light grey as the grey map shows)."""
    c, h, w = image_shape
    imgs = images.detach().float().cpu().clamp(0, 1).reshape(-1, c, h, w)
    colour = c == 3
    imgs = imgs.permute(0, 2, 3, 1).numpy() if colour else imgs.mean(1).numpy()  # [N, H, W(, 3)]
    n = imgs.shape[0]
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad) + ((3,) if colour else ())
    grid = np.full(shape, 1 - GAP if colour else GAP, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = imgs[i]
    return grid


def show(ax, grid: np.ndarray) -> None:
    """Draw a grid from :func:`image_grid`: grey dark on white, colour as it is."""
    if grid.ndim == 3:
        ax.imshow(grid, interpolation="nearest")
    else:
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")


def pad_to_width(grids: list[np.ndarray]) -> list[np.ndarray]:
    """Grids padded on the right with the gap colour to the widest one's width."""
    width = max(g.shape[1] for g in grids)
    out = []
    for g in grids:
        fill = 1 - GAP if g.ndim == 3 else GAP
        widths = ((0, 0), (0, width - g.shape[1])) + (((0, 0),) if g.ndim == 3 else ())
        out.append(np.pad(g, widths, constant_values=fill))
    return out


def class_labels(model, n_per_class: int, device=None) -> torch.Tensor:
    """Labels 0, 0, ..., 1, 1, ...: ``n_per_class`` of each class of a conditional model."""
    return torch.arange(model.classes, device=device).repeat_interleave(n_per_class)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Render ``fig`` to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _grid_figure(grid: np.ndarray, title: str, inches: float = 6.0) -> Figure:
    lines = textwrap.wrap(title, int(11 * inches))  # a long title on two lines, not cut at the figure's edges
    fig = Figure(figsize=(inches, inches * grid.shape[0] / grid.shape[1] + 0.3 + 0.2 * len(lines)))
    ax = fig.subplots()
    show(ax, grid)
    ax.set_title("\n".join(lines))
    ax.axis("off")
    return fig


def _with_seed(seed: int, fn):
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return fn()
    finally:
        torch.random.set_rng_state(state)


def samples_figure(model, n: int = 64, seed: int = 0, label: int | None = None, sampler=None) -> Figure:
    """Means of p(x|z) for ``n`` draws z ~ p(z): new images straight from the model. A conditional model
    draws ``label`` (all ``n`` of that class), or without one a row of each class. ``sampler``: another p(z) to
    draw z from (a fitted prior: :mod:`vaekit.fitted`), named in the title by its ``describe()``."""
    from ..models.priors import StandardNormalPrior

    prior = sampler.describe() if sampler is not None else \
        "N(0, I)" if isinstance(model.prior, StandardNormalPrior) else f"the {type(model.prior).__name__}"
    conditional_rows = getattr(model, "conditional", False) and label is None
    check_picture(model.classes * max(1, math.ceil(n / model.classes)) if conditional_rows else n, model.image_shape,
                  "-n")
    if not getattr(model, "conditional", False):
        grid = image_grid(_with_seed(seed, lambda: model.sample(n, prior=sampler)), model.image_shape)
        source = "from the prior" if sampler is None else "from a fitted prior"
        return _grid_figure(grid, f"{n} samples {source} ({model.sample_text.format(prior=prior)})")
    if label is not None:
        y = torch.full((n,), int(label), dtype=torch.long)
        grid = image_grid(_with_seed(seed, lambda: model.sample(n, y=y, prior=sampler)), model.image_shape)
        return _grid_figure(grid, f"{n} samples of label {label} (mean of p(x|z, y={label}), z ~ {prior})")
    per = max(1, math.ceil(n / model.classes))
    y = class_labels(model, per)
    grid = image_grid(_with_seed(seed, lambda: model.sample(len(y), y=y, prior=sampler)), model.image_shape, nrow=per)
    return _grid_figure(grid, f"samples, one row per label 0..{model.classes - 1} (mean of p(x|z, y), z ~ {prior})")


@torch.no_grad()
def reconstructions_figure(model, x: torch.Tensor, n: int = 32, y: torch.Tensor | None = None) -> Figure:
    """Inputs (odd rows) above their reconstructions (even rows); ``y``: their labels, for a conditional model."""
    x = x[:n]
    check_picture(x.shape[0], model.image_shape, "-n", tiles_per_image=2)
    recon = model.reconstruct(x, y[:n]) if y is not None else model.reconstruct(x)
    cols = min(16, x.shape[0])
    pairs = []
    for i in range(0, x.shape[0], cols):
        pairs += [x[i : i + cols], recon[i : i + cols]]
    rows = pad_to_width([image_grid(p, model.image_shape, nrow=cols) for p in pairs])
    return _grid_figure(np.concatenate(rows, axis=0),
                        "inputs (rows 1, 3, ...) and their reconstructions (rows 2, 4, ...)", inches=8.0)


def normal_quantiles(n: int, lo: float = 0.05, hi: float = 0.95) -> torch.Tensor:
    """``n`` points of N(0, 1) at evenly spaced probabilities (the inverse CDF), as in Kingma & Welling's figure."""
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(lo, hi, n))


def prior_draws(model, n: int = 20000) -> torch.Tensor:
    """``n`` draws of the model's prior with a fixed seed ``[n, L]`` (CPU, float32): where its quantiles come from."""
    return _with_seed(0, lambda: model.prior().sample((n,))).float().cpu()


def _grid_values(model, n: int, dims: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Values along each axis ``[n]``, ``[n]``, the other dimensions' point ``[L]``, and how they were chosen:
    N(0, 1) quantiles for the standard prior; for any other, the 5%..95% quantiles of 20,000 of its samples
    (drawn with a fixed seed) and its mean elsewhere."""
    from ..models.distributions import StandardNormal

    p = model.prior()
    if isinstance(p, StandardNormal):
        vals = normal_quantiles(n)
        return vals, vals, torch.zeros(model.latent_dim), "N(0,1) quantiles 5%..95%"
    z = prior_draws(model)
    q = torch.quantile(z[:, list(dims)], torch.tensor([0.05, 0.95]), dim=0)  # [2, 2]
    vi, vj = (torch.linspace(float(q[0, d]), float(q[1, d]), n) for d in (0, 1))
    return vi, vj, p.mean.detach().float().cpu().reshape(-1), "the prior's samples, quantiles 5%..95%"


@torch.no_grad()
def manifold_images(model, n: int = 20, dims: tuple[int, int] = (0, 1),
                    label: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded means on an ``n x n`` grid of latent points at normal quantiles over ``dims``.

    Other dimensions are 0 (the prior mean). Rows run from high z[dims[1]] (top) to low,
    columns from low z[dims[0]] (left) to high, like a plot's axes. Returns ``(images
    [n*n, D], values [n])``. ``label``: the class a conditional model decodes (default 0).
    """
    i, j = dims
    vi, vj, rest, _ = _grid_values(model, n, dims)
    z = rest.view(1, 1, -1).repeat(n, n, 1)
    z[:, :, i] = vi.view(1, n)
    z[:, :, j] = vj.flip(0).view(n, 1)
    anchor = next(model.parameters())
    y = None
    if getattr(model, "conditional", False):
        y = torch.full((n * n,), int(label or 0), dtype=torch.long, device=anchor.device)
    z = z.reshape(n * n, -1).to(anchor)
    return (model.decode(z, y) if y is not None else model.decode(z)).mean, vi


def manifold_figure(model, n: int = 20, dims: tuple[int, int] = (0, 1), note: str = "") -> Figure:
    """The learned 2-D manifold: the decoder's images over a grid of latent values."""
    images, _ = manifold_images(model, n, dims)
    vals_x, vals_y, _, how = _grid_values(model, n, dims)
    c, h, w = model.image_shape
    grid = image_grid(images, model.image_shape, nrow=n)
    fig = Figure(figsize=(8, 8.4))
    ax = fig.subplots()
    show(ax, grid)
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


def manifold_per_label_figure(model, n: int = 10, dims: tuple[int, int] = (0, 1), note: str = "",
                              class_names=None) -> Figure:
    """A conditional model's manifold, one panel per label: the same ``n x n`` grid of latent points over
    ``dims`` decoded given each class (what z holds apart from the class: style, slant, thickness)."""
    k = model.classes
    cols = min(5, k)
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(3 * cols, 3.2 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    how = _grid_values(model, n, dims)[3]
    for c, ax in enumerate(axes):
        ax.axis("off")
        if c >= k:
            continue
        images, _ = manifold_images(model, n, dims, label=c)
        show(ax, image_grid(images, model.image_shape, nrow=n))
        ax.set_title(f"label {class_names[c] if class_names and c < len(class_names) else c}")
    fig.suptitle(f"decoded latent grid given each label: z[{dims[0]}] left to right, z[{dims[1]}] bottom to top, "
                 f"{how}" + (f"\n{note}" if note else ""))
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
def interpolation_figure(model, x: torch.Tensor, pairs: int = 5, steps: int = 10,
                         y: torch.Tensor | None = None) -> Figure:
    """Decoded paths between the posterior means of pairs of real images, linear and spherical.

    Each row starts with a real image and ends with another; between them, the decoder's
    images along the straight line (left block) and the great circle (right block) joining
    their codes. Smooth changes along the rows are the VAE's smooth latent space. A conditional
    model (``y``: the images' labels) encodes each image with its own label and decodes the path
    given the first image's.
    """
    pairs = min(pairs, x.shape[0] // 2)
    a_img, b_img = x[:pairs], x[pairs : 2 * pairs]
    y_a = y[:pairs] if y is not None else None
    y_b = y[pairs : 2 * pairs] if y is not None else None
    if y is not None:
        mu_a, mu_b = model.latent_code(a_img, y_a), model.latent_code(b_img, y_b)
    else:
        mu_a, mu_b = model.latent_code(a_img), model.latent_code(b_img)
    y_path = y_a.repeat_interleave(steps) if y_a is not None else None
    t = torch.linspace(0, 1, steps).to(mu_a)
    _, h, w = model.image_shape
    aspect = (pairs * (h + 1) + 1) / ((steps + 2) * (w + 1) + 1)
    fig = Figure(figsize=(14, 7 * aspect + 1.0), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (name, path) in zip(axes, (("linear", lerp), ("spherical", slerp))):
        z = path(mu_a, mu_b, t)  # [P, T, L]
        z = z.reshape(pairs * steps, -1)
        dec = (model.decode(z, y_path) if y_path is not None else model.decode(z)).mean.reshape(pairs, steps, -1)
        rows = torch.cat([a_img.reshape(pairs, 1, -1), dec, b_img.reshape(pairs, 1, -1)], dim=1)  # [P, T+2, D]
        grid = image_grid(rows.reshape(pairs * (steps + 2), -1), model.image_shape, nrow=steps + 2)
        show(ax, grid)
        ax.set_title(f"{name} path between the two codes")
        ax.axis("off")
    fig.suptitle("first and last columns: real images; between them: decoded points on a path joining "
                 "their posterior means")
    return fig
