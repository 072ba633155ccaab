"""A run directory's files, named once: every module that reads or writes a run takes the names from here.

``config.json`` (the resolved configuration), ``model.safetensors`` (best valid ELBO),
``last.safetensors`` (weights and trainer state, for exact resume), ``metrics.jsonl`` (one row an
epoch), ``.lock`` (the owner's OS lock), ``frames/`` (the animation's frames), ``README.md`` (the model card),
``fitted_prior.safetensors`` (``vaekit fit-prior``'s mixture) and the pictures the
registered figures draw (:mod:`vaekit.plots.figures`; a test checks that the two agree). This module
imports nothing of vaekit.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.json"
BEST_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"
FRAMES_DIR = "frames"
FITTED_PRIOR_FILE = "fitted_prior.safetensors"  # vaekit fit-prior: a mixture fitted to the training codes
CARD_FILE = "README.md"  # the model card, written at the end of training
EXPORT_DIR = "onnx"  # vaekit export's default folder: its files go with the run's on --force
EXPORT_FILES = ("encoder.onnx", "decoder.onnx", "onnx.json")
CARD_FACTS_FILE = "card.json"  # what the card says beyond the run's other files: the machine, evaluations recorded
# what the figures write; --force removes these too, and the frames
PICTURE_FILES = ("manifold.png", "scatter.png", "reconstructions.png", "samples.png", "interpolation.png",
                 "curves.png", "kl.png", "traversals.png", "traversals.gif", "training.gif", "report.html")
# what a run directory may hold; --force removes only these
RUN_FILES = (CONFIG_FILE, BEST_FILE, LAST_FILE, METRICS_FILE, FITTED_PRIOR_FILE, CARD_FILE, CARD_FACTS_FILE,
             *PICTURE_FILES)


def frame_path(run_dir: str | Path, epoch: int) -> Path:
    """The animation's frame of ``epoch`` (0: the untrained decoder)."""
    return Path(run_dir) / FRAMES_DIR / f"epoch_{epoch:04d}.png"


__all__ = ["BEST_FILE", "CARD_FACTS_FILE", "CARD_FILE", "CONFIG_FILE", "EXPORT_DIR", "EXPORT_FILES", "FITTED_PRIOR_FILE", "FRAMES_DIR", "LAST_FILE", "LOCK_FILE", "METRICS_FILE", "PICTURE_FILES",
           "RUN_FILES", "frame_path"]
