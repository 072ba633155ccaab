"""Pictures of a VAE and its training, each a function returning a matplotlib Figure,
plus :func:`write_figures`, which draws any set of them for a run directory.

=============== ===================== ===============================================
kind            file                  what
=============== ===================== ===============================================
manifold        manifold.png          decoded grid of latent points at N(0,1) quantiles
scatter         scatter.png           posterior means coloured by label (PCA/t-SNE > 2-D)
recon           reconstructions.png   inputs above their reconstructions
samples         samples.png           decoded draws from the prior
interpolation   interpolation.png     linear and spherical paths between real images
curves          curves.png            ELBO, reconstruction, KL per epoch
kl              kl.png                KL per latent dimension, active units
gif             training.gif          one frame per snapshot during training
report          report.html           one self-contained page with all of the above
=============== ===================== ===============================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ..errors import VaekitError, unknown_name
from ..limits import grid_side
from .animation import frame_paths, render_frame, save_frame, snapshot_grid, write_gif
from .curves import curves_figure
from .grids import (image_grid, interpolation_figure, manifold_figure, manifold_images, manifold_per_label_figure,
                    normal_quantiles, reconstructions_figure, samples_figure, save_figure)
from .latent import PROJECTIONS, kl_figure, project_2d, scatter_figure
from .report import FIGURES, build_report, write_report

FILES = {
    "manifold": "manifold.png", "scatter": "scatter.png", "recon": "reconstructions.png",
    "samples": "samples.png", "interpolation": "interpolation.png", "curves": "curves.png",
    "kl": "kl.png", "gif": "training.gif", "report": "report.html",
}
KINDS = tuple(FILES)
SCATTER_MAX = 5000  # images in the scatter plot


def save_samples(model, path: str | Path, n: int = 64, seed: int = 0, label: int | None = None) -> Path:
    return save_figure(samples_figure(model, n, seed, label), path)


def save_reconstructions(model, x: torch.Tensor, path: str | Path, n: int = 32, y: torch.Tensor | None = None) -> Path:
    return save_figure(reconstructions_figure(model, x, n, y if getattr(model, "conditional", False) else None), path)


def top_kl_dims(kl_per_dim: torch.Tensor) -> tuple[int, int]:
    """The two latent dimensions with the largest KL (most informative), lower index first."""
    if kl_per_dim.numel() < 2:
        return (0, 0)
    i, j = torch.topk(kl_per_dim, 2).indices.tolist()
    return (i, j) if i < j else (j, i)


def write_figures(run_dir: str | Path, model=None, data=None, kinds: Iterable[str] | None = None,
                  out_dir: str | Path | None = None, dims: tuple[int, int] | None = None,
                  projection: str = "pca", log: Callable[[str], None] | None = None,
                  data_dir: str | Path | None = None) -> dict[str, Path]:
    """Draw the figures ``kinds`` (default: all) of a run into ``out_dir`` (default: the run directory).

    ``model`` defaults to the run's best checkpoint and ``data`` to its valid split
    (binarized as the run was), read from ``data_dir`` if given; ``dims`` picks the manifold's latent pair (default:
    the two with the largest KL).
    """
    from ..checkpoint import load, load_run_config, read_metrics
    from ..data import to_unit
    from ..evaluate import kl_per_dimension, unit_activity
    from ..runs import load_split

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir
    kinds = list(kinds) if kinds else list(KINDS)
    for k in kinds:
        if k not in FILES:
            raise unknown_name("figure kind", k, FILES)
    if projection not in PROJECTIONS:
        raise unknown_name("projection", projection, PROJECTIONS)
    config = load_run_config(run_dir)  # first: a run directory that is missing is named as such
    if not out.is_dir():
        raise VaekitError(f"output folder '{out}' does not exist; create it or choose another --out")
    model = model if model is not None else load(run_dir)
    if data is None and any(k in kinds for k in ("manifold", "scatter", "recon", "interpolation", "kl", "report")):
        data = load_split(config, "valid", data_dir=data_dir)
    if dims is not None:
        for d in dims:
            if not 0 <= d < model.latent_dim:
                raise VaekitError(f"--dims {dims[0]} {dims[1]}: the latent has dimensions 0..{model.latent_dim - 1}")
    history = read_metrics(run_dir)
    written: dict[str, Path] = {}
    kl_dims = activity = None
    y = data.labels if data is not None and getattr(model, "conditional", False) else None
    xs = to_unit(data.x[:SCATTER_MAX]) if data is not None else None  # what the figures show, in [0, 1]
    if data is not None and any(k in kinds for k in ("manifold", "kl", "report")):
        kl_dims, activity = kl_per_dimension(model, data.x, y=y), unit_activity(model, data.x, y=y)
    note = config.short_data()
    for kind in kinds:
        path = out / FILES[kind]
        if kind == "manifold":
            pair = dims or (top_kl_dims(kl_dims) if model.latent_dim > 2 else (0, 1))
            if model.latent_dim == 1:
                if log:
                    log("manifold: skipped, the latent has one dimension")
                continue
            why = "" if model.latent_dim == 2 or dims else "the two dims with the largest KL"
            if getattr(model, "conditional", False):  # a 10 x 10 grid per label, smaller for large images
                names = data.class_names if data is not None else None
                side = grid_side(model.image_shape, 10, panels=model.classes)
                save_figure(manifold_per_label_figure(model, side, pair, note=why, class_names=names), path)
            else:
                save_figure(manifold_figure(model, grid_side(model.image_shape, 20), pair, note=why), path)
        elif kind == "scatter":
            n = min(len(data), SCATTER_MAX)
            labels = data.labels[:n] if data.labels is not None else None
            names = data.class_names
            save_figure(scatter_figure(model, xs[:n], labels, projection, names, title_note=note), path)
        elif kind == "recon":
            save_reconstructions(model, xs, path, y=y)
        elif kind == "samples":
            save_samples(model, path)
        elif kind == "interpolation":
            if len(xs) < 2:
                if log:
                    log("interpolation: skipped, the valid split holds fewer than two images")
                continue
            save_figure(interpolation_figure(model, xs, y=y), path)
        elif kind == "curves":
            if not history:
                if log:
                    log("curves: skipped, metrics.jsonl holds no epochs")
                continue
            save_figure(curves_figure(history, title=note), path)
        elif kind == "kl":
            save_figure(kl_figure(kl_dims, activity), path)
        elif kind == "gif":
            frames = frame_paths(run_dir, upto_epoch=history[-1]["epoch"] if history else None)
            if not frames:
                if log:
                    log("gif: skipped, the run has no frames (trained with --no-plots?)")
                continue
            write_gif(frames, path)
        elif kind == "report":
            continue  # last, once the other figures exist
        written[kind] = path
    if "report" in kinds:
        written["report"] = write_report(out / FILES["report"], run_dir, config.to_dict(), history,
                                         _summary(model, config, history, kl_dims, activity), figure_dir=out)
    return written


def _summary(model, config, history, kl_dims, activity) -> dict[str, Any]:
    from ..models import describe

    shape = config.data.image_shape
    s: dict[str, Any] = {
        "data": config.describe_data(),
        "model": f"{describe(config.model, shape, config.data.classes, model)}; images {'x'.join(map(str, shape))}",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
    }
    if history:
        best = max(history, key=lambda h: h["valid_elbo"])
        last = history[-1]
        s["epochs trained"] = last["epoch"]
        s["best valid ELBO (nats)"] = f"{best['valid_elbo']:.3f} (epoch {best['epoch']})"
        s["last epoch: train / valid ELBO"] = f"{last['train_elbo']:.3f} / {last['valid_elbo']:.3f}"
        s["training time"] = f"{sum(h.get('epoch_seconds', 0) for h in history):.1f} s"
    if kl_dims is not None:
        s["valid KL per image (nats)"] = f"{float(kl_dims.sum()):.3f} ({model.kl_form})"
        s["active latent dimensions"] = f"{int((activity > 0.01).sum())} of {model.latent_dim}"
    return s


__all__ = [
    "FIGURES", "FILES", "KINDS", "PROJECTIONS", "build_report", "curves_figure", "frame_paths", "image_grid",
    "interpolation_figure", "kl_figure", "manifold_figure", "manifold_images", "manifold_per_label_figure",
    "normal_quantiles",
    "project_2d", "reconstructions_figure", "render_frame", "samples_figure", "save_figure", "save_frame",
    "save_reconstructions", "save_samples", "scatter_figure", "snapshot_grid", "top_kl_dims", "write_figures",
    "write_gif", "write_report",
]
