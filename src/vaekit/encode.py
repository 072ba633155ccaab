"""Latent codes out of a trained model: for every image the posterior q(z|x) (its mean and log-variance, and
draws from it if asked), traced back to the image by its position in the split and, for your own images, its
file (a folder) or row (an array); and the tables they are written to (``.npz`` or ``.csv``).

The images must be the kind the model was trained on: the same shape, and the pixels as its likelihood saw
them (binary for a Bernoulli model). Loaded through the run's configuration (:func:`vaekit.runs.load_split`)
they are binarized or dequantised as the run's were; a tensor handed in directly is checked.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import load
from .data.dataset import Dataset, batches, check_shape, to_unit
from .errors import VaekitError
from .files import atomic_write_bytes
from .models.likelihoods import BINARY
from .runs import load_split

TABLE_SUFFIXES = (".npz", ".csv")


def model_and_data(model_or_run, data=None, split: str = "valid", device: str | torch.device = "cpu"):
    """The model (a loaded VAE, or the run directory to load it from) and the data to use with it: ``data`` as
    given (a :class:`~vaekit.data.Dataset` or images ``[N, C, H, W]``), or the run's ``split``."""
    if isinstance(model_or_run, (str, Path)):
        model = load(model_or_run, device=device)
    else:
        model = model_or_run
    if data is None:
        cfg = getattr(model, "config", None)
        if cfg is None:
            raise VaekitError("this model knows no run to take data from: pass data= (a Dataset or images)")
        data = load_split(cfg, split, model.image_shape)
    return model, check_data(model, data)


def check_data(model, data) -> Dataset:
    """``data`` as a :class:`Dataset` the model can take, or one line saying what differs from what it was
    trained on: the image shape (channels, size), binary pixels for a Bernoulli model, labels for a CVAE."""
    if not isinstance(data, Dataset):
        x = torch.as_tensor(data)
        if x.dim() == 3:  # [N, H, W] grey images
            x = x.unsqueeze(1)
        levels = 256 if x.dtype == torch.uint8 else 2 if bool(((x == 0) | (x == 1)).all()) else 0
        data = Dataset(x, None, tuple(x.shape[1:]), "images", "given", levels)
    if model.image_shape:
        check_shape(data.image_shape, model.image_shape, "these images")
    x = to_unit(data.x[:1000])
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise VaekitError("images must hold pixels in [0, 1] (floats) or 0..255 (uint8)")
    if getattr(model.decoder.likelihood, "accepts", None) == BINARY and not data.binary:
        odd = x[(x != 0) & (x != 1)]
        if odd.numel():
            raise VaekitError(f"the model was trained on binary pixels (a Bernoulli likelihood) but these hold "
                              f"values such as {odd[0].item():.3g}; binarize them as the run did "
                              "(vaekit.data.binarize), or load them through the run (its --data options)")
    if getattr(model, "conditional", False) and data.labels is None:
        raise VaekitError("this model is conditioned on labels (a cvae) and these images have none; give labelled "
                          "data (class folders, or an array with y)")
    return data


@torch.inference_mode()
def encode(model_or_run, data=None, split: str = "valid", samples: int = 0, batch_size: int = 1000,
           seed: int = 0, progress: bool = False, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """The latent codes of every image: ``mean`` and ``logvar`` of q(z|x) ``[N, L]``, ``samples`` draws
    ``[N, S, L]`` when ``samples`` > 0, ``index`` (the image's position in its split), ``label`` when the data
    have labels and ``source`` (file or row) for your own images. Arrays in the order of the data.

    ``model_or_run``: a VAE or a run directory; ``data``: a :class:`~vaekit.data.Dataset`, images ``[N, C, H, W]``
    (or ``[N, H, W]``), or None for the run's ``split``. A conditional model is given each image's label."""
    if not isinstance(samples, int) or samples < 0:
        raise VaekitError(f"samples must be a whole number >= 0, got {samples!r}")
    if batch_size < 1:
        raise VaekitError(f"batch_size must be >= 1, got {batch_size}")
    model, data = model_and_data(model_or_run, data, split, device)
    dev = next(iter(model.parameters()), torch.empty(0)).device
    y = data.labels if getattr(model, "conditional", False) else None
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=dev).manual_seed(seed)
    means, logvars, draws = [], [], []
    try:
        with tqdm(total=len(data), desc="encode", unit="img", disable=None if progress else True, leave=False) as bar:
            for b in batches(data.x, y, batch_size, dev):
                q = model.encode(b.x, b.y)
                means.append(q.mu.float().cpu())
                logvars.append(q.logvar.float().cpu())
                if samples:
                    eps = torch.randn((b.x.shape[0], samples, q.mu.shape[-1]), generator=gen, device=dev)
                    draws.append((q.mu.unsqueeze(1) + (0.5 * q.logvar).exp().unsqueeze(1) * eps).float().cpu())
                bar.update(b.x.shape[0])
    finally:
        model.train(was_training)
    out: dict[str, np.ndarray] = {"index": data.positions().numpy()}
    if data.sources is not None:
        out["source"] = np.asarray(data.sources)
    if data.labels is not None:
        out["label"] = data.labels.numpy()
    out["mean"] = torch.cat(means).numpy() if means else np.zeros((0, model.latent_dim), np.float32)
    out["logvar"] = torch.cat(logvars).numpy() if logvars else np.zeros((0, model.latent_dim), np.float32)
    if samples:
        out["samples"] = torch.cat(draws).numpy()
    return out


def check_table_path(path: str | Path, flag: str = "--out") -> Path:
    """A table file to write: ``.npz`` or ``.csv`` by its suffix, in a folder that exists (checked before work)."""
    path = Path(path)
    if path.is_dir():
        raise VaekitError(f"{flag} '{path}' is a folder; name a .npz or .csv file in it")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise VaekitError(f"{flag} must name a .npz or .csv file (the suffix says which), got '{path}'")
    if not path.parent.exists():
        raise VaekitError(f"folder '{path.parent}' does not exist; create it or choose another {flag}")
    return path


def _columns(table: dict[str, Any]) -> tuple[list[str], list[np.ndarray]]:
    """Flat columns of a table: arrays ``[N]`` as they are, ``[N, L]`` as name_0..name_{L-1}, ``[N, S, L]`` as
    name_s_j."""
    names, cols = [], []
    for key, a in table.items():
        a = np.asarray(a)
        if a.ndim == 1:
            names.append(key)
            cols.append(a)
        elif a.ndim == 2:
            names += [f"{key}_{j}" for j in range(a.shape[1])]
            cols += [a[:, j] for j in range(a.shape[1])]
        else:
            flat = a.reshape(a.shape[0], -1)
            names += [f"{key}_{s}_{j}" for s in range(a.shape[1]) for j in range(a.shape[2])]
            cols += [flat[:, k] for k in range(flat.shape[1])]
    return names, cols


def write_table(table: dict[str, Any], path: str | Path) -> Path:
    """Write ``table`` (name -> array with one row per image) to ``path``: ``.npz`` keeps the arrays as they are,
    ``.csv`` flattens them into columns (floats with 9 significant digits: float32 round-trips). Written
    atomically: an existing file is replaced whole or not at all."""
    path = check_table_path(path)
    buf = io.BytesIO()
    if path.suffix.lower() == ".npz":
        np.savez(buf, **{k: np.asarray(v) for k, v in table.items()})
        atomic_write_bytes(path, buf.getvalue())
        return path
    names, cols = _columns(table)
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(names)
    fmt = [(lambda v: f"{v:.9g}") if np.issubdtype(c.dtype, np.floating) else str for c in cols]
    for i in range(len(cols[0]) if cols else 0):
        w.writerow([f(c[i]) for f, c in zip(fmt, cols)])
    atomic_write_bytes(path, text.getvalue().encode())
    return path


__all__ = ["TABLE_SUFFIXES", "check_data", "check_table_path", "encode", "model_and_data", "write_table"]
