"""The run directory's life: create, resume, force, and the data as the run saw it.

A run directory holds ``config.json``, ``model.safetensors`` (best valid ELBO),
``last.safetensors`` (weights, optimiser and random states for exact resume),
``metrics.jsonl`` and the pictures. Nothing here trains; :mod:`vaekit.train` does.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from . import checkpoint as ckpt
from . import limits
from dataclasses import fields

from .config import DataConfig, RunConfig, TrainConfig
from .objectives import OBJECTIVES
from .options import RESUME_FREE, RESUME_WHERE
from .rundir import EXPORT_DIR, EXPORT_FILES, FRAMES_DIR, LOCK_FILE, PICTURE_FILES, RUN_FILES  # noqa: F401
from .data import Dataset, load_data, prepare, to_unit
from .data.dataset import check_shape
from .data.datasets import keep_classes
from .errors import DataError, VaekitError, os_error_line
from .models.likelihoods import BINARY, likelihood_class

# settings that only say when to stop, or where the data are: they may change when a run is resumed (the
# latter with a note), as their fields declare (config.option(resume=...))
RESUMABLE_CHANGES = tuple(f.name for f in fields(TrainConfig) if f.metadata.get("resume") == RESUME_FREE)
WHERE_CHANGES = tuple(("data", f.name) for f in fields(DataConfig) if f.metadata.get("resume") == RESUME_WHERE)


class RunLock:
    """The run directory's owner: an exclusive OS lock (``flock``) on ``RUN_DIR/.lock``, held while a
    run writes. The kernel releases it when the process ends, however it ends (a SIGKILL leaves no
    stale lock). The file names the holder, for the message a second process gets."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None
        self.created_dir = False

    def acquire(self) -> "RunLock":
        import fcntl

        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise VaekitError(f"'{self.run_dir}' is a file, not a run directory; choose another --out")
        self.created_dir = not self.run_dir.exists()
        path = self.run_dir / LOCK_FILE
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # /proc, /sys, a read-only mount, a folder of someone else's
            why = os_error_line(OSError(e.errno, e.strerror, str(self.run_dir)), "create the run directory")
            raise VaekitError(f"{why} (--out)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise VaekitError(f"run directory '{self.run_dir}' is in use by {self._holder(path)}; wait for it to "
                              "finish (or stop it), or choose another --out") from None
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        if prog in ("__main__.py", "vaekit"):  # python -m vaekit, torchrun -m vaekit, or the console script
            prog = "vaekit"
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join([prog, *sys.argv[1:]])}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder) + "\n").encode())
        self.fd = fd
        return self

    @staticmethod
    def _holder(path: Path) -> str:
        try:
            h = json.loads(path.read_text())
            return f"process {h['pid']} on {h['host']} ({h['command']}, since {h['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def release(self) -> None:
        """Let go of the lock; a folder this lock made and nothing else wrote into (a run refused
        before it started) is removed."""
        if self.fd is None:
            return
        try:
            if self.created_dir and [p.name for p in self.run_dir.iterdir()] == [LOCK_FILE]:
                (self.run_dir / LOCK_FILE).unlink()
                self.run_dir.rmdir()
        except OSError:
            pass
        finally:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to touch an existing run unless asked to; changes nothing."""
    if resume:
        if not (run_dir / ckpt.LAST_FILE).is_file():
            raise VaekitError(f"cannot resume: '{run_dir}' holds no {ckpt.LAST_FILE}; "
                              "start a new run without --resume")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise VaekitError(f"'{run_dir}' is a file, not a run directory; choose another --out")
    if run_dir.exists() and not never_saved(run_dir) and not force:
        raise VaekitError(f"run directory '{run_dir}' already exists; pass --resume to continue it, "
                          "--force to overwrite it, or choose another --out")


def _start_up_files(run_dir: Path) -> bool:
    """Whether the folder holds nothing but what a run writes before its first epoch is saved: the lock,
    the config, temporary files of a killed write, an empty frames/ folder."""
    for p in run_dir.iterdir():
        if p.name in (LOCK_FILE, ckpt.CONFIG_FILE) or (p.name.startswith(".") and p.name.endswith(".tmp")):
            continue
        if p.name == FRAMES_DIR and p.is_dir() and not any(p.iterdir()):
            continue
        return False
    return True


def never_saved(run_dir: Path) -> bool:
    """A folder a run made (or was given empty) and stopped in before it saved anything of its training: empty,
    or holding only start-up files (:func:`_start_up_files`). Starting it (with or without ``--resume``) starts
    the run afresh; nothing is lost."""
    return run_dir.is_dir() and _start_up_files(run_dir)


def started_but_unsaved(run_dir: Path) -> bool:
    """A run that was stopped before its first epoch was saved: its trainer state is not written, and either its
    config is (the settings to check a resume against) or the folder holds at most the lock (killed before the
    config was written). Resuming it means starting it afresh (with the saved settings, when there are some)."""
    if not run_dir.is_dir() or (run_dir / ckpt.LAST_FILE).is_file():
        return False
    return (run_dir / ckpt.CONFIG_FILE).is_file() or never_saved(run_dir)


def saved_config(run_dir: Path) -> RunConfig | None:
    """The settings a run directory was started with, or None for a run killed before it wrote them (it
    resumes as a fresh start)."""
    if started_but_unsaved(run_dir) and not (run_dir / ckpt.CONFIG_FILE).is_file():
        return None
    return ckpt.load_run_config(run_dir)


def check_same_run(saved: RunConfig, given: RunConfig, run_dir: Path, log=lambda m: None) -> None:
    """A resumed run must have the saved settings that change its result; those that say when to stop
    may differ, and those that say where the data are may differ with a note."""
    a, b = saved.to_dict(), given.to_dict()
    for key in RESUMABLE_CHANGES:
        a["train"].pop(key), b["train"].pop(key)
    for sec, key in WHERE_CHANGES:
        was, now = a[sec].pop(key), b[sec].pop(key)
        if was != now:
            log(f"note: {sec}.{key} was {was!r} and is {now!r} now; it says only where the data are")
    diff = [f"{s}.{k} (saved {a[s][k]!r}, given {b[s].get(k)!r})" for s in a if isinstance(a[s], dict)
            for k in a[s] if a[s][k] != b[s].get(k)]
    if diff:
        free = ", ".join([*RESUMABLE_CHANGES, *(k for _, k in WHERE_CHANGES)])
        raise VaekitError(f"cannot resume '{run_dir}' with different settings: {'; '.join(diff)}; settings that "
                          f"change the result must equal the saved ones (only {free} may change)")


def start_run_dir(run_dir: Path, resume: bool) -> None:
    """Create the folder; sweep temporary files a killed process left; for a forced fresh
    start remove the old run's files (and only those)."""
    for folder in (run_dir, run_dir / FRAMES_DIR):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
            tmp.unlink(missing_ok=True)
    if not resume:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in EXPORT_FILES:  # graphs of the old run's weights
            (run_dir / EXPORT_DIR / name).unlink(missing_ok=True)
        frames = run_dir / FRAMES_DIR
        for frame in frames.glob("epoch_*.png") if frames.is_dir() else []:
            frame.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def check_and_load(cfg: RunConfig, run_dir: Path, resume: bool, force: bool,
                   log=lambda m: None) -> tuple[Dataset, Dataset]:
    """Everything that may refuse a run, before anything is written: the directory, the saved settings
    of a resumed run, the data. Returns the training and valid splits."""
    if resume and started_but_unsaved(run_dir):  # stopped before its first epoch was saved: it starts again
        saved = saved_config(run_dir)
        if saved is not None:
            check_same_run(saved, cfg, run_dir, log)
        resume, force = False, True
    check_run_dir(run_dir, resume, force)
    if resume:
        check_same_run(ckpt.load_run_config(run_dir), cfg, run_dir, log)
    train, valid = load_splits(cfg)  # bad data changes nothing
    check_cost(cfg, len(train))
    return train, valid


def check_cost(cfg: RunConfig, n_train: int) -> None:
    """Refuse a run whose step or model would not fit, before anything is written: the decoder outputs of one
    step (batch x samples x pixel numbers), and the model's parameters with their gradients and Adam's two
    moments (counted on PyTorch's meta device, which allocates nothing)."""
    import torch

    from .models import build_model

    c, h, w = cfg.data.image_shape
    lik = likelihood_class(cfg.model.likelihood.name)
    t = cfg.train
    objective = OBJECTIVES[t.objective.name]
    samples = objective.samples_per_image(t.objective) if hasattr(objective, "samples_per_image") else 1
    limits.check_decoder_outputs(min(t.batch_size, n_train), samples, c * h * w * lik.params_per_pixel,
                                 f"--batch-size {t.batch_size} with --n-samples {samples}",
                                 ", or fewer --n-samples" if samples > 1 else "")
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.data.image_shape, cfg.pixel_levels, cfg.data.classes)
    n = sum(p.numel() for p in model.parameters())
    limits.check_memory(16 * n, f"the model's {n:,} parameters with their gradients and the optimiser's state",
                        "choose narrower layers (--hidden, --conv-channels) or a smaller --image-size")


def claim(lock: RunLock, cfg: RunConfig, resume: bool, force: bool, log=lambda m: None) -> tuple[Dataset, Dataset]:
    """Take the run directory's lock, then :func:`check_and_load`; a refused run lets go of the lock and
    leaves no folder it made."""
    lock.acquire()
    try:
        return check_and_load(cfg, lock.run_dir, resume, force, log)
    except BaseException:
        lock.release()
        raise


def _check_binary(ds: Dataset, cfg: RunConfig) -> None:
    if ds.binary:  # binary by construction (binarized files, or binarized already)
        return
    x = to_unit(ds.x)
    odd = x[(x != 0) & (x != 1)]
    if odd.numel():
        raise DataError(f"the Bernoulli likelihood needs pixels that are 0 or 1, but the {ds.split} split of "
                        f"'{ds.name}' holds values such as {odd[0].item():.3g}; binarize it "
                        "(--binarize dynamic or static) or use --likelihood gaussian")


def load_split(cfg: RunConfig, split: str, image_shape: tuple[int, ...] | None = None,
               data_dir: str | Path | None = None, training: bool = False) -> Dataset:
    """One split as the run saw it: read from the run's data folder (or ``data_dir``), binarized and dequantised
    as the run was, with one fixed sample, so that what is evaluated or drawn is the data the likelihood is a
    distribution over (the training split too). ``training``: the training split as the trainer takes it, left
    for it to binarize or dequantise afresh each epoch. ``image_shape``: the model's, checked against the data.
    Only the images of ``keep_classes`` when the config names some, chosen after the pixels are prepared."""
    data = cfg.data if data_dir is None or data_dir == cfg.data.data_dir else \
        cfg.override(data={"data_dir": str(data_dir)}).data
    ds = load_data(data, split)
    if image_shape is not None:
        check_shape(ds.image_shape, image_shape, f"'{cfg.data.name}'")
    if training and split == "train" and (cfg.data.binarize == "dynamic" or cfg.data.dequantize == "uniform"):
        # re-binarized / re-dequantised by the trainer every epoch
        ds = prepare(ds, cfg.data.binarize) if cfg.data.binarize == "static" else ds
    else:
        ds = prepare(ds, cfg.data.binarize, dequantize_mode=cfg.data.dequantize)
    return keep_classes(ds, cfg.data.keep_classes) if cfg.data.keep_classes else ds


def load_splits(cfg: RunConfig) -> tuple[Dataset, Dataset]:
    """The training split (as stored, binarized later if dynamic) and the prepared valid split."""
    train, valid = load_split(cfg, "train", training=True), load_split(cfg, "valid")
    if likelihood_class(cfg.model.likelihood.name).accepts == BINARY and cfg.data.binarize != "dynamic":
        for ds in (train, valid):
            _check_binary(ds, cfg)
    return train, valid


__all__ = ["FRAMES_DIR", "LOCK_FILE", "RUN_FILES", "RESUMABLE_CHANGES", "RunLock", "WHERE_CHANGES", "check_and_load",
           "check_cost", "check_run_dir", "claim", "check_same_run", "load_split",
           "load_splits", "never_saved", "saved_config", "start_run_dir", "started_but_unsaved"]
