"""Run directories and checkpoints: safetensors weights, JSON config, atomic writes.

A run directory holds:

``config.json``          the fully resolved :class:`~vaekit.config.RunConfig`
``model.safetensors``    the weights with the best valid ELBO (what :func:`load` returns)
``last.safetensors``     the latest weights *and* trainer state (optimiser, epoch,
                         random-number states) in one file, so that resume never
                         sees weights and state from different moments
``metrics.jsonl``        one JSON object per epoch

Every write goes to a temporary file in the same folder and is renamed into
place, so a crash leaves the old file or the new one, never half of one. Nothing
is pickled: tensors are safetensors, everything else is JSON in its metadata.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import FORMAT_VERSION, RunConfig
from .errors import CheckpointError
from .files import atomic_write_bytes, atomic_write_text  # noqa: F401  (also vaekit.checkpoint's)
from .rundir import BEST_FILE, CONFIG_FILE, LAST_FILE, METRICS_FILE  # noqa: F401  (the run's names, one table)



def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors (in name order)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {"format": "vaekit", "format_version": str(FORMAT_VERSION), "sha256": tensors_digest(tensors)}
    metadata.update({k: json.dumps(v) for k, v in meta.items()})
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    try:
        tensors = st_load(data)

        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, OSError) as e:
        raise CheckpointError(f"{path} is damaged or not a safetensors file ({e}); "
                              "restore it from a copy or retrain") from None
    raw = header.get("__metadata__") or {}
    if raw.get("format") != "vaekit":
        raise CheckpointError(f"{path} is a safetensors file but not a vaekit checkpoint")
    if raw.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path} has checkpoint format version {raw.get('format_version')!r}; "
                              f"this vaekit reads version {FORMAT_VERSION}")
    if "sha256" in raw and raw["sha256"] != tensors_digest(tensors):
        raise CheckpointError(f"{path} is damaged: its tensors do not match the checksum stored with them; "
                              "restore it from a copy or retrain")
    meta = {}
    for k, v in raw.items():
        if k in ("format", "format_version", "sha256"):
            continue
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: metadata entry '{k}' is not valid JSON") from None
    return tensors, meta


def save_weights(path: str | Path, model: torch.nn.Module, **meta: Any) -> None:
    """Save the model's weights (and JSON-able ``meta``) as safetensors, atomically."""
    _save_tensors(Path(path), dict(model.state_dict()), meta)


def _load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the model in config.json: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{path}: tensor '{k}' has shape {tuple(v.shape)}, "
                                  f"the model in config.json needs {tuple(own[k].shape)}")
    model.load_state_dict(state)


def read_metrics(run_dir: str | Path, upto_epoch: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` (only epochs <= ``upto_epoch`` if given); unreadable lines are skipped."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) \
                and (upto_epoch is None or row["epoch"] <= upto_epoch):
            rows.append(row)
    return rows


def save_config(run_dir: str | Path, config: RunConfig) -> None:
    atomic_write_text(Path(run_dir) / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")


def load_run_config(run_dir: str | Path) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory '{run_dir}' not found; pass the folder that 'vaekit train' wrote")
    if not path.is_file():
        raise CheckpointError(f"'{run_dir}' has no {CONFIG_FILE}; is it a vaekit run directory?")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    return RunConfig.from_dict(d, source=str(path))


def load(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu"):
    """The trained VAE of a run directory, in eval mode.

    ``checkpoint="best"`` loads ``model.safetensors`` (best valid ELBO), ``"last"``
    the weights of the last finished epoch.
    """
    from .models import build_model

    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    files = {"best": BEST_FILE, "last": LAST_FILE}
    if checkpoint not in files:
        raise CheckpointError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    if not (run_dir / files[checkpoint]).is_file():
        _no_checkpoint(run_dir, files[checkpoint])
    tensors, _ = _load_tensors(run_dir / files[checkpoint])
    if checkpoint == "last":
        tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model = build_model(config.model, config.data.image_shape, config.pixel_levels, config.data.classes)
    _load_state_strict(model, tensors, run_dir / files[checkpoint])
    model.config = config
    return model.to(device).eval()


def _no_checkpoint(run_dir: Path, name: str) -> None:
    """Say why a run directory holds no weights to load, and how to get them."""
    resume = f"vaekit train --out {run_dir} --resume"
    if not (run_dir / BEST_FILE).is_file() and not (run_dir / LAST_FILE).is_file():
        raise CheckpointError(f"run '{run_dir}' has no finished epoch yet (it was stopped, or is still in its first "
                              f"epoch); continue it with: {resume}")
    if name == LAST_FILE:
        raise CheckpointError(f"run '{run_dir}' has no {LAST_FILE}: its first epoch stopped before it was saved "
                              f"completely; use the best weights (--checkpoint best), or continue it with: {resume}")
    raise CheckpointError(f"checkpoint not found: {run_dir / name}; restore it from a copy, or continue the run "
                          f"with: {resume}")


def save_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        rng: dict[str, torch.Tensor], extra: dict[str, torch.Tensor] | None = None,
                        **meta: Any) -> None:
    """Weights, optimiser state and RNG states in one safetensors file (atomic); ``extra``: more tensors the
    trainer keeps (e.g. the weight average, ``ema.*``), by names outside ``model.``, ``optim.`` and ``rng.``."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for k in extra or {}:
        if k.split(".", 1)[0] in _TRAINING_PREFIXES:
            raise ValueError(f"extra tensor name {k!r} collides with the checkpoint's own names")
    tensors.update(extra or {})
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt["state"].items():
        for name, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = val
            else:
                scalars.setdefault(str(idx), {})[name] = val
    for name, state in rng.items():
        tensors[f"rng.{name}"] = state
    meta = dict(meta, optimizer_param_groups=opt["param_groups"], optimizer_scalars=scalars)
    _save_tensors(Path(path), tensors, meta)


_TRAINING_PREFIXES = ("model", "optim", "rng")


def load_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        extra: dict[str, torch.Tensor] | None = None):
    """Restore weights and optimiser from :func:`save_training_state`; return (rng, meta). ``extra``: a dict
    that receives the tensors saved as ``extra`` there."""
    path = Path(path)
    tensors, meta = _load_tensors(path)
    if extra is not None:
        extra.update({k: v for k, v in tensors.items() if k.split(".", 1)[0] not in _TRAINING_PREFIXES})
    _load_state_strict(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, d in (meta.get("optimizer_scalars") or {}).items():
        state.setdefault(int(idx), {}).update(d)
    groups = meta.get("optimizer_param_groups")
    if not isinstance(groups, list):
        raise CheckpointError(f"{path}: optimizer state is missing; it cannot be resumed")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: optimizer state does not match this model/optimizer ({e})") from None
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return rng, meta
