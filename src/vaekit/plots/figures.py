"""The figures of a run, registered by kind: each a function that draws one file from a :class:`Sheet`
(what every figure of a run is drawn from, derived once), so that :func:`write_figures` is a loop and a new
figure is one function with :func:`figure` above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import VaekitError, unknown_name
from ..limits import grid_side
from .animation import frame_paths, write_gif
from .curves import curves_figure
from .grids import (interpolation_figure, manifold_figure, manifold_per_label_figure, reconstructions_figure,
                    samples_figure, save_figure)
from .latent import PROJECTIONS, kl_figure, scatter_figure
from .report import write_report
from .traversals import base_code, traversals_figure, write_traversals_gif

SCATTER_MAX = 5000  # images in the scatter plot


@dataclass(frozen=True)
class Figure:
    """A registered figure: its kind (``--kind``), its file, whether it needs the valid images and their KL per
    latent dimension, and the function that draws it (returns False when it has nothing to draw)."""

    kind: str
    file: str
    draw: Callable[["Sheet", Path], bool | None]
    data: bool = False
    kl: bool = False


REGISTRY: dict[str, Figure] = {}


def figure(kind: str, file: str, data: bool = False, kl: bool = False):
    """Register a figure (decorator); the report, drawn last, links every figure file it finds."""

    def add(fn):
        REGISTRY[kind] = Figure(kind, file, fn, data, kl)
        return fn

    return add


@dataclass
class Sheet:
    """What the figures of one run are drawn from, found once: the model, its config and history, the valid
    images (in [0, 1], labels for a conditional model), their KL per dimension, and where to write."""

    run_dir: Path
    model: Any
    config: Any
    history: list[dict[str, Any]]
    data: Any
    dims: tuple[int, int] | None
    projection: str
    log: Callable[[str], None] | None
    xs: torch.Tensor | None = None
    y: torch.Tensor | None = None
    kl_dims: torch.Tensor | None = None
    activity: torch.Tensor | None = None
    out: Path | None = None
    base_image: int | None = None  # the traversals' base: this valid image's posterior mean (None: the prior's)

    def skip(self, kind: str, why: str) -> bool:
        if self.log:
            self.log(f"{kind}: skipped, {why}")
        return False


def save_samples(model, path: str | Path, n: int = 64, seed: int = 0, label: int | None = None,
                 sampler=None) -> Path:
    return save_figure(samples_figure(model, n, seed, label, sampler), path)


def save_reconstructions(model, x: torch.Tensor, path: str | Path, n: int = 32, y: torch.Tensor | None = None) -> Path:
    return save_figure(reconstructions_figure(model, x, n, y if getattr(model, "conditional", False) else None), path)


def top_kl_dims(kl_per_dim: torch.Tensor) -> tuple[int, int]:
    """The two latent dimensions with the largest KL (most informative), lower index first."""
    if kl_per_dim.numel() < 2:
        return (0, 0)
    i, j = torch.topk(kl_per_dim, 2).indices.tolist()
    return (i, j) if i < j else (j, i)


@figure("manifold", "manifold.png", data=True, kl=True)
def _manifold(s: Sheet, path: Path):
    m = s.model
    if m.latent_dim == 1:
        return s.skip("manifold", "the latent has one dimension")
    pair = s.dims or (top_kl_dims(s.kl_dims) if m.latent_dim > 2 else (0, 1))
    why = "" if m.latent_dim == 2 or s.dims else "the two dims with the largest KL"
    if getattr(m, "conditional", False):  # a 10 x 10 grid per label, smaller for large images
        names = s.data.class_names if s.data is not None else None
        side = grid_side(m.image_shape, 10, panels=m.classes)
        return save_figure(manifold_per_label_figure(m, side, pair, note=why, class_names=names), path)
    return save_figure(manifold_figure(m, grid_side(m.image_shape, 20), pair, note=why), path)


@figure("scatter", "scatter.png", data=True)
def _scatter(s: Sheet, path: Path):
    n = min(len(s.data), SCATTER_MAX)
    labels = s.data.labels[:n] if s.data.labels is not None else None
    return save_figure(scatter_figure(s.model, s.xs[:n], labels, s.projection, s.data.class_names,
                                      title_note=s.config.short_data()), path)


@figure("recon", "reconstructions.png", data=True)
def _recon(s: Sheet, path: Path):
    return save_reconstructions(s.model, s.xs, path, y=s.y)


@figure("samples", "samples.png")
def _samples(s: Sheet, path: Path):
    return save_samples(s.model, path)


@figure("interpolation", "interpolation.png", data=True)
def _interpolation(s: Sheet, path: Path):
    if len(s.xs) < 2:
        return s.skip("interpolation", "the valid split holds fewer than two images")
    return save_figure(interpolation_figure(s.model, s.xs, y=s.y), path)


@figure("curves", "curves.png")
def _curves(s: Sheet, path: Path):
    if not s.history:
        return s.skip("curves", "metrics.jsonl holds no epochs")
    return save_figure(curves_figure(s.history, title=s.config.short_data(), terms=s.model.terms_text), path)


@figure("kl", "kl.png", data=True, kl=True)
def _kl(s: Sheet, path: Path):
    return save_figure(kl_figure(s.kl_dims, s.activity), path)


def _base(s: Sheet):
    """The traversals' base code and its name: the prior mean, or the posterior of valid image ``s.base_image``."""
    if s.base_image is None:
        return None, "the prior mean", None
    if not 0 <= s.base_image < len(s.xs):
        raise VaekitError(f"--base-image {s.base_image}: the valid images drawn from are 0..{len(s.xs) - 1}")
    i = s.base_image
    y = s.y[i : i + 1] if s.y is not None else None
    return base_code(s.model, s.xs[i : i + 1].to(next(s.model.parameters()).device), y), f"valid image {i}", \
        (int(y[0]) if y is not None else None)


@figure("traversals", "traversals.png", data=True, kl=True)
def _traversals(s: Sheet, path: Path):
    base, name, label = _base(s)
    return save_figure(traversals_figure(s.model, s.kl_dims, s.activity, base, name, label=label), path)


@figure("traversals-gif", "traversals.gif", data=True, kl=True)
def _traversals_gif(s: Sheet, path: Path):
    base, _, label = _base(s)
    return write_traversals_gif(s.model, path, s.kl_dims, s.activity, base, label=label)


@figure("gif", "training.gif")
def _gif(s: Sheet, path: Path):
    frames = frame_paths(s.run_dir, upto_epoch=s.history[-1]["epoch"] if s.history else None)
    if not frames:
        return s.skip("gif", "the run has no frames (trained with --no-plots?)")
    return write_gif(frames, path)


@figure("report", "report.html", data=True, kl=True)
def _report(s: Sheet, path: Path):  # registered last: drawn once the other figures exist
    return write_report(path, s.run_dir, s.config.to_dict(), s.history, summary(s), figure_dir=s.out)


def summary(s: Sheet) -> dict[str, Any]:
    """The report's table: data, model, parameters, training, KL and active units."""
    from ..models import describe

    model, config, history = s.model, s.config, s.history
    shape = config.data.image_shape
    out: dict[str, Any] = {
        "data": config.describe_data(),
        "model": f"{describe(config.model, shape, config.data.classes, model)}; images {'x'.join(map(str, shape))}",
        "parameters": f"{sum(p.numel() for p in model.parameters()):,}",
    }
    if history:
        best = max(history, key=lambda h: h["valid_elbo"])
        last = history[-1]
        out["epochs trained"] = last["epoch"]
        out["best valid ELBO (nats)"] = f"{best['valid_elbo']:.3f} (epoch {best['epoch']})"
        out["last epoch: train / valid ELBO"] = f"{last['train_elbo']:.3f} / {last['valid_elbo']:.3f}"
        out["training time"] = f"{sum(h.get('epoch_seconds', 0) for h in history):.1f} s"
    if s.kl_dims is not None:
        out["valid KL per image (nats)"] = f"{float(s.kl_dims.sum()):.3f} ({model.kl_form})"
        out["active latent dimensions"] = f"{int((s.activity > 0.01).sum())} of {model.latent_dim}"
    return out


FILES = {kind: f.file for kind, f in REGISTRY.items()}
KINDS = tuple(FILES)


def write_figures(run_dir: str | Path, model=None, data=None, kinds: Iterable[str] | None = None,
                  out_dir: str | Path | None = None, dims: tuple[int, int] | None = None,
                  projection: str = "pca", log: Callable[[str], None] | None = None,
                  data_dir: str | Path | None = None, config=None, base_image: int | None = None) -> dict[str, Path]:
    """Draw the figures ``kinds`` (default: all) of a run into ``out_dir`` (default: the run directory).

    ``model`` defaults to the run's best checkpoint, ``config`` to its ``config.json`` and ``data`` to its valid
    split (binarized as the run was), read from ``data_dir`` if given; ``dims`` picks the manifold's latent pair
    (default: the two with the largest KL); ``base_image`` the valid image whose posterior mean the traversals
    start from (default: the prior's mean).
    """
    from ..checkpoint import load, load_run_config, read_metrics
    from ..data import to_unit
    from ..evaluate import kl_per_dimension, unit_activity
    from ..runs import load_split

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir
    kinds = list(kinds) if kinds else list(KINDS)
    for k in kinds:
        if k not in REGISTRY:
            raise unknown_name("figure kind", k, REGISTRY)
    if projection not in PROJECTIONS:
        raise unknown_name("projection", projection, PROJECTIONS)
    config = config or load_run_config(run_dir)  # first: a run directory that is missing is named as such
    if not out.is_dir():
        raise VaekitError(f"output folder '{out}' does not exist; create it or choose another --out")
    model = model if model is not None else load(run_dir)
    wanted = [REGISTRY[k] for k in KINDS if k in kinds]  # in registry order: the report last
    if data is None and any(f.data for f in wanted):
        data = load_split(config, "valid", data_dir=data_dir)
    for d in dims or ():
        if not 0 <= d < model.latent_dim:
            raise VaekitError(f"--dims {dims[0]} {dims[1]}: the latent has dimensions 0..{model.latent_dim - 1}")
    s = Sheet(run_dir, model, config, read_metrics(run_dir), data, dims, projection, log, out=out,
              base_image=base_image)
    if data is not None:
        s.y = data.labels if getattr(model, "conditional", False) else None
        s.xs = to_unit(data.x[:SCATTER_MAX])  # what the figures show, in [0, 1]
        if any(f.kl for f in wanted):
            s.kl_dims, s.activity = kl_per_dimension(model, data.x, y=s.y), unit_activity(model, data.x, y=s.y)
    written: dict[str, Path] = {}
    for f in wanted:
        if f.draw(s, out / f.file) is not False:
            written[f.kind] = out / f.file
    return written


__all__ = ["FILES", "Figure", "KINDS", "REGISTRY", "SCATTER_MAX", "Sheet", "figure", "save_reconstructions",
           "save_samples", "summary", "top_kl_dims", "write_figures"]
