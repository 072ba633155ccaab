"""Training a VAE: :func:`train` checks the run directory, builds the model and a
:class:`~vaekit.trainer.Trainer`, then runs the epochs.

After each epoch the valid ELBO is measured, the callbacks run (pictures, TensorBoard: passed
in, never imported here), a line goes to ``metrics.jsonl``, the best weights to
``model.safetensors`` and the weights with the trainer's state to ``last.safetensors``, so
``resume=True`` continues exactly where a run stopped. The objective
(:mod:`vaekit.objectives`) says what a step minimises; the run directory's rules live in
:mod:`vaekit.runs`, one step and one epoch in :mod:`vaekit.trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import checkpoint as ckpt
from . import runs
from .averaging import averaged
from .config import RunConfig
from .data import Dataset
from .distributed import Context, setup
from .errors import VaekitError
from .heap import keep_freed_memory
from .models import VAE, build_model, describe
from . import schedule
from .optim import learning_rate, make_optimizer
from .plan import make_plan, resolve_precision
from .trainer import Trainer, make_objective, make_step, train_epoch, training_step
from .trainer_state import restore_state


@dataclass
class TrainResult:
    run_dir: Path
    model: VAE
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_valid_elbo(self) -> float:
        return max((h["valid_elbo"] for h in self.history), default=float("nan"))


@dataclass
class RunView:
    """What callbacks see of a run: where it is, the model, its config, the valid data, the logger."""

    run_dir: Path
    model: VAE
    config: RunConfig
    valid: Dataset
    log: Callable[[str], None]


def _describe(log, cfg: RunConfig, model: VAE, train_ds: Dataset, valid_ds: Dataset, ctx: Context) -> None:
    log(f"data: {cfg.describe_data()}: {len(train_ds)} train / {len(valid_ds)} valid images")
    log(f"model: {describe(cfg.model, train_ds.image_shape, cfg.data.classes, model)}")
    bs = cfg.train.batch_size
    if ctx.distributed:
        log(f"{ctx.world_size} processes on {ctx.device.type}: {bs} images per step in all, "
            f"{bs // ctx.world_size}-{-(-bs // ctx.world_size)} per process")
    elif ctx.device.type != "cpu":
        log(f"device: {ctx.device}")
    clock = schedule.describe(cfg.train)
    if clock:
        log(clock)
    if cfg.train.ema:
        log(f"weight averaging: decay {cfg.train.ema:g} after every step; validation, the best checkpoint and the "
            "pictures use the average")


def _run_epochs(tr: Trainer, callbacks, view: RunView) -> None:
    """The loop: stop checks, one epoch, callbacks, checkpoint, one log line."""
    cfg, ctx, st = tr.cfg, tr.ctx, tr.state
    for epoch in range(st.epoch + 1, cfg.train.epochs + 1):
        stop = ctx.broadcast(st.stop_reason(cfg.train, epoch))  # rank 0's clock decides for all
        if stop:
            tr.log(stop)
            break
        row = tr.epoch(epoch)
        with averaged(tr.average):  # the pictures show the weights validated
            for cb in callbacks if ctx.is_main else ():
                if hasattr(cb, "on_epoch"):
                    cb.on_epoch(view, row)
        tr.checkpoint(row)
        tr.log(f"epoch {epoch:3d}/{cfg.train.epochs}  train ELBO {row['train_elbo']:8.2f}  valid ELBO "
               f"{row['valid_elbo']:8.2f} (rec {row['valid_reconstruction']:8.2f}, KL {row['valid_kl']:6.2f})  "
               f"{row['images_per_second']:,.0f} img/s")


def train(config: RunConfig, out: str | Path, resume: bool = False, force: bool = False,
          progress: bool | None = None, callbacks=(), compile: bool | None = None, device: str | torch.device = "auto",
          log: Callable[[str], None] = print, objective=None) -> TrainResult:
    """Train the VAE described by ``config``, writing the run directory ``out``.

    With ``resume=True`` the run continues from ``last.safetensors``; ``config`` must then
    match the saved one except for when to stop (epochs, patience, max_minutes) and where the
    data are (data_dir). While it runs, the directory is locked: a second ``train`` on it is
    refused at once, naming this process (:class:`vaekit.runs.RunLock`).
    ``callbacks``: objects with any of ``on_start``, ``on_epoch``, ``on_end``, ``on_close``
    (see :mod:`vaekit.plots.callbacks`: ``Pictures()`` draws the animation and figures,
    ``TensorBoard()`` logs there); only rank 0 calls them. ``compile=True`` runs the step
    through ``torch.compile`` (seconds, once); ``None`` (the default) decides by
    :func:`vaekit.trainer.auto_compile`: only for runs long enough to earn it back (not fp32 on a GPU). ``device``: ``auto`` (CUDA, else MPS, else CPU).
    ``objective``: what to minimise (default: the config's, see :func:`make_objective`).

    Launched by ``torchrun`` with several processes, every process calls this with the same
    arguments: gradients are averaged by DistributedDataParallel, each rank trains on its share
    of every global batch of ``train.batch_size`` images, metrics are summed over ranks, and
    only rank 0 writes files and calls ``log``. Returns the model with the best valid ELBO
    (as :func:`vaekit.load` would) and the metrics history. The process keeps the memory its steps
    free for the next ones (:func:`vaekit.heap.keep_freed_memory`: no page faults a step on Linux).
    """
    keep_freed_memory()
    ctx = setup(device)
    if not ctx.is_main:
        log, progress, callbacks = (lambda m: None), False, ()
    run_dir = Path(out)
    cfg, why = resolve_precision(config, run_dir, resume, ctx)
    if ctx.distributed and cfg.train.batch_size < ctx.world_size:
        raise ctx.everywhere(VaekitError(
            f"batch size {cfg.train.batch_size} is smaller than the {ctx.world_size} processes; the batch size is "
            f"the global one, split across processes: pass --batch-size {ctx.world_size} or more"))
    # rank 0 takes the run directory's lock and checks (and downloads, if it must) first; the others
    # load once it succeeded. The lock is held until the run ends.
    lock = runs.RunLock(run_dir)
    train_ds, valid_ds = ctx.main_first(lambda: runs.claim(lock, cfg, resume, force, log),
                                        others=lambda: runs.load_splits(cfg))
    if why:
        log(f"precision: {cfg.train.precision} (auto: {why})")
    try:
        return _train_owned(cfg, run_dir, ctx, train_ds, valid_ds, resume, compile, progress, callbacks,
                            objective, log)
    finally:
        lock.release()


def _train_owned(cfg: RunConfig, run_dir: Path, ctx: Context, train_ds: Dataset, valid_ds: Dataset, resume: bool,
                 compile: bool | None, progress: bool | None, callbacks, objective, log) -> TrainResult:
    """The run, once its directory is ours: build, resume, train the epochs, the best model."""
    if resume and ctx.broadcast(runs.started_but_unsaved(run_dir) if ctx.is_main else None):
        log(f"note: {run_dir} stopped before its first epoch was saved; it starts again from epoch 1")
        resume = False
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, train_ds.image_shape, cfg.pixel_levels, cfg.data.classes).to(ctx.device)
    plan = make_plan(cfg, ctx, len(train_ds), model, compile, log)  # resolved once; only read from here on
    tr = Trainer(cfg, run_dir, ctx, model, train_ds, valid_ds, plan, progress, log)
    tr.objective = objective or tr.objective
    if resume:
        restore_state(tr, run_dir / ckpt.LAST_FILE)
        log(f"resuming {run_dir} after epoch {tr.state.epoch}")
    start_epoch = tr.state.epoch
    if ctx.is_main:
        runs.start_run_dir(run_dir, resume)
        ckpt.save_config(run_dir, cfg)
    tr.wrap()
    view = RunView(run_dir, model, cfg, valid_ds, log)
    fresh = start_epoch == 0
    if fresh:
        _describe(log, cfg, model, train_ds, valid_ds, ctx)
    for cb in callbacks:
        if hasattr(cb, "on_start"):
            cb.on_start(view, fresh)
    model.train()
    try:
        _run_epochs(tr, callbacks, view)
    except KeyboardInterrupt:
        log(f"interrupted: epoch {tr.state.epoch} is the last saved in {run_dir}; continue with --resume --out "
            f"{run_dir}")
        raise
    finally:
        for cb in callbacks:
            if hasattr(cb, "on_close"):
                cb.on_close(view)
    if start_epoch >= cfg.train.epochs:
        log(f"{run_dir} already finished {tr.state.epoch} epochs; pass a larger --epochs to train on")
    best = _best_model(cfg, ctx, run_dir, train_ds, callbacks, view)
    if ctx.is_main and tr.state.epoch > start_epoch:
        _write_card(run_dir, plan, ctx, log)
    return TrainResult(run_dir, best, tr.state.history)


def _write_card(run_dir: Path, plan, ctx: Context, log) -> None:
    """The run's model card (README.md); a card that cannot be written is a note, the run is saved."""
    from . import card

    try:
        card.record_training(run_dir, card.machine(plan.device, plan.precision, plan.compile, ctx.world_size))
    except OSError as e:
        log(f"note: the model card could not be written ({e}); the run itself is saved")


def _best_model(cfg: RunConfig, ctx: Context, run_dir: Path, train_ds: Dataset, callbacks, view: RunView) -> VAE:
    """The best weights as :func:`vaekit.load` gives them, after the callbacks' ``on_end``; on every rank."""

    def finish():
        best = ckpt.load(run_dir)
        for cb in callbacks:
            if hasattr(cb, "on_end"):
                cb.on_end(view, best)
        return best.state_dict() if ctx.distributed else best

    best = ctx.on_main(finish)
    if ctx.distributed:  # every rank returns the best weights, read by rank 0
        state, best = best, build_model(cfg.model, train_ds.image_shape, cfg.pixel_levels, cfg.data.classes)
        best.load_state_dict(state)
        best.config = cfg
        best.eval()
    return best


__all__ = ["RunView", "TrainResult", "Trainer", "learning_rate", "make_objective", "make_optimizer", "make_step",
           "train", "train_epoch", "training_step"]
