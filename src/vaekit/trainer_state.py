"""What exact resume restores: the trainer's counters, the optimiser, the gradient scaler and
every random state, saved with the weights in ``last.safetensors``.

An interrupted run resumed from here ends with exactly the weights an uninterrupted run
would have (tests/test_train_checkpoint.py), also under torchrun with the same number of
processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import checkpoint as ckpt
from .distributed import Context
from .errors import CheckpointError


@dataclass
class TrainerState:
    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps taken
    best: float = -math.inf  # best valid ELBO so far
    best_epoch: int = 0
    elapsed: float = 0.0  # seconds of training, validation, callbacks and checkpoints
    last_epoch_seconds: float = 0.0  # wall time of the last whole epoch (for the time budget)
    history: list[dict[str, Any]] = field(default_factory=list)  # the metrics rows

    def stop_reason(self, tc, epoch: int) -> str | None:
        """Why not to start ``epoch`` (patience ran out, or the time budget would be passed), or None."""
        if tc.patience and epoch - 1 - self.best_epoch >= tc.patience:
            return (f"early stop: no better valid ELBO for {tc.patience} epochs (best {self.best:.2f} at epoch "
                    f"{self.best_epoch})")
        if tc.max_minutes and self.elapsed + self.last_epoch_seconds > 60 * tc.max_minutes:
            return (f"time budget: {self.elapsed / 60:.1f} of {tc.max_minutes:g} minutes used, another epoch would "
                    "pass it")
        return None

    @staticmethod
    def rng_states(ctx: Context, data_gen: torch.Generator) -> dict[str, torch.Tensor] | None:
        """This process's random states (CPU, and CUDA when it draws there); with several
        processes every rank's, gathered on rank 0 (a collective: every rank calls it)."""
        mine = {"torch": torch.get_rng_state()}
        if ctx.device.type == "cuda":
            mine["cuda"] = torch.cuda.get_rng_state(ctx.device)
        states = ctx.gather(mine)
        if not ctx.is_main:
            return None
        rng = {"data": data_gen.get_state(), **states[0]}
        for r, st in enumerate(states[1:], start=1):
            rng.update({f"{k}.rank{r}": v for k, v in st.items()})
        return rng


def save_state(path: Path, trainer, rng: dict[str, torch.Tensor]) -> None:
    """Weights, optimiser, random states and counters of ``trainer`` into ``path`` (atomic)."""
    st = trainer.state
    extra = {"grad_scaler": trainer.scaler.state_dict()} if trainer.scaler.is_enabled() else {}
    if trainer.ctx.distributed:
        extra["world_size"] = trainer.ctx.world_size
    average = trainer.average
    if average is not None:
        extra["ema_updates"] = average.updates
    ckpt.save_training_state(path, trainer.model, trainer.optimizer, rng,
                             average.tensors() if average is not None else None, epoch=st.epoch, step=st.step,
                             best_valid_elbo=st.best, best_epoch=st.best_epoch, elapsed_seconds=st.elapsed,
                             last_epoch_seconds=st.last_epoch_seconds, **extra)


def _set_rng_states(ctx: Context, rng: dict[str, torch.Tensor], saved_world: int, seed: int, epoch: int,
                    log: Callable[[str], None]) -> None:
    suffix = f".rank{ctx.rank}" if ctx.rank else ""
    if saved_world == ctx.world_size and f"torch{suffix}" in rng:
        torch.set_rng_state(rng[f"torch{suffix}"])
        if ctx.device.type == "cuda" and f"cuda{suffix}" in rng:
            torch.cuda.set_rng_state(rng[f"cuda{suffix}"], ctx.device)
    else:  # another number of processes: the sampling noise cannot continue as it was
        log(f"note: the run was saved by {saved_world} process(es) and resumes with {ctx.world_size}; the sampling "
            "noise starts afresh, so the result will not be bit-identical to an uninterrupted run")
        torch.manual_seed(seed + 1_000_003 * ctx.rank + 7919 * epoch)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def restore_state(trainer, path: Path) -> None:
    """Load ``path`` into ``trainer`` (rank 0 reads; the other ranks receive it: no shared file system needed)."""
    ctx, model, optimizer = trainer.ctx, trainer.model, trainer.optimizer

    average = trainer.average

    def read_state():
        saved: dict[str, torch.Tensor] = {}
        rng, meta = ckpt.load_training_state(path, model, optimizer, saved)
        if average is not None:
            average.load(saved, meta.get("ema_updates", 0), path)
        if ctx.distributed:
            shadow = average.tensors() if average is not None else {}
            return _to_cpu((model.state_dict(), optimizer.state_dict(), rng, meta, shadow))
        return None, None, rng, meta, None

    weights, opt_state, rng, meta, shadow = ctx.on_main(read_state)
    if not ctx.is_main:
        model.load_state_dict(weights)
        optimizer.load_state_dict(opt_state)
        if average is not None:
            average.load(shadow, meta.get("ema_updates", 0), path)
    st = trainer.state
    try:
        st.epoch, st.step = int(meta["epoch"]), int(meta["step"])
        trainer.data_gen.set_state(rng["data"])
        _set_rng_states(ctx, rng, int(meta.get("world_size", 1)), trainer.cfg.train.seed, st.epoch, trainer.log)
        st.best = float(meta["best_valid_elbo"])
        st.best_epoch, st.elapsed = int(meta.get("best_epoch", st.epoch)), float(meta.get("elapsed_seconds", 0.0))
        # the last epoch's seconds (the budget clock's estimate of the next); runs saved before it was kept: the mean
        st.last_epoch_seconds = float(meta.get("last_epoch_seconds", st.elapsed / max(1, st.epoch)))
        if trainer.scaler.is_enabled() and "grad_scaler" in meta:
            trainer.scaler.load_state_dict(meta["grad_scaler"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: trainer state is incomplete ({e}); it cannot be resumed") from None
    st.history = ctx.on_main(lambda: ckpt.read_metrics(path.parent, upto_epoch=st.epoch))


__all__ = ["TrainerState", "restore_state", "save_state"]
