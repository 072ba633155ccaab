"""A run's plan: what it resolves once, before its trainer exists, and every later step only reads.

As nanoGPT derives its dtype and autocast context once at the top: the device, the precision
(``auto`` made concrete, or kept as a resumed run saved it), whether the step is compiled, the image
shape, the pixel levels the model sees, the label classes and whether batches carry labels. The
trainer takes the plan; nothing after it resolves "auto" again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import RunConfig
from .distributed import Context
from .errors import VaekitError
from .schedule import concrete_clock
from .trainer import auto_compile, auto_precision


@dataclass(frozen=True)
class RunPlan:
    device: torch.device
    precision: str  # fp32, bf16 or fp16: never "auto"
    compile: bool
    image_shape: tuple[int, int, int]
    levels: int  # distinct values a pixel takes as the model sees it (2 once binarized)
    classes: int | None  # label classes of the data (None: no labels)
    labels: bool  # whether batches carry labels: the model has a part conditioned on them


def resolve_precision(cfg: RunConfig, run_dir: Path, resume: bool, ctx: Context) -> tuple[RunConfig, str | None]:
    """``precision = "auto"`` made concrete (rank 0 decides for all), and why; a resumed run keeps the precision
    it was saved with. Other precisions pass unchanged (why: None). Saved resolved in config.json. The schedule's
    clock (``schedule_clock = "auto"``) is made concrete the same way (:func:`vaekit.schedule.concrete_clock`)."""
    saved = _saved(run_dir, resume, ctx) if "auto" in (cfg.train.precision, cfg.train.schedule_clock) else None
    if cfg.train.schedule_clock == "auto":
        # a resumed run keeps its clock; one saved before the clock was kept ("auto") counted epochs
        clock = ("epochs" if saved.schedule_clock == "auto" else saved.schedule_clock) if saved \
            else concrete_clock(cfg.train)
        cfg = cfg.override(train={"schedule_clock": ctx.broadcast(clock)})
    if cfg.train.precision != "auto":
        return cfg, None
    if saved and saved.precision != "auto":
        precision, why = saved.precision, "as saved when the run started"
    else:
        precision, why = auto_precision(ctx.device)
    precision, why = ctx.broadcast((precision, why))
    return cfg.override(train={"precision": precision}), why


def _saved(run_dir: Path, resume: bool, ctx: Context):
    """The train config a resumed run was saved with (rank 0 reads), or None."""
    if resume and ctx.is_main:
        try:
            return ckpt.load_run_config(run_dir).train
        except VaekitError:
            return None  # the run directory's own check says what is wrong with it
    return None


def make_plan(cfg: RunConfig, ctx: Context, n_train: int, model, compile: bool | None, log) -> RunPlan:
    """The plan of a run whose config has its precision resolved (:func:`resolve_precision`) and whose model is
    built; ``compile=None`` decides by :func:`vaekit.trainer.auto_compile` (and says so)."""
    if compile is None:
        compile, why = auto_compile(cfg.train.precision, ctx.device, cfg.train.epochs * n_train)
        if compile:
            log(f"compile: on (auto: {why}); --no-compile to turn it off")
    return RunPlan(ctx.device, cfg.train.precision, bool(compile), tuple(cfg.data.image_shape), cfg.pixel_levels,
                   cfg.data.classes, bool(getattr(model, "conditional", False)))


__all__ = ["RunPlan", "make_plan", "resolve_precision"]
