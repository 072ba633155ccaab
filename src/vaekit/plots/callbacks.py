"""Training callbacks that draw: the animation's frames, the figures at the end, TensorBoard.

:func:`vaekit.train` calls the callbacks it is given (``callbacks=[Pictures()]``); the loop
itself draws nothing. A callback may define any of ``on_start(run, fresh)``,
``on_epoch(run, row)`` (before the epoch's checkpoint is written; it may add keys to the
metrics row) and ``on_end(run, best_model)``; ``run`` is the trainer's
:class:`vaekit.train.RunView` (run directory, model, config, valid data, log).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..errors import VaekitError
from ..rundir import frame_path
from .animation import save_frame


class Pictures:
    """A frame of ``training.gif`` every ``frame_every`` epochs (default: about 50 per run) and every
    figure, the animation and ``report.html`` at the end (see :mod:`vaekit.plots`)."""

    def __init__(self, frame_every: int | None = None):
        if frame_every is not None and (not isinstance(frame_every, int) or frame_every < 1):
            raise VaekitError(f"frame_every must be a whole number >= 1, got {frame_every!r}")
        self.frame_every = frame_every

    def on_start(self, run, fresh: bool) -> None:
        if self.frame_every is None:
            self.frame_every = max(1, math.ceil(run.config.train.epochs / 50))
        if fresh:
            save_frame(run.run_dir, run.model, 0, None)  # the untrained decoder opens the animation

    def on_epoch(self, run, row: dict) -> None:
        epoch = row["epoch"]
        if epoch % self.frame_every == 0 or epoch == run.config.train.epochs:
            t0 = time.perf_counter()
            save_frame(run.run_dir, run.model, epoch, row["valid_elbo"])
            row["frame_seconds"] = time.perf_counter() - t0

    def on_end(self, run, best_model) -> None:
        from . import write_figures

        write_figures(run.run_dir, best_model, run.valid, log=run.log, config=run.config)


class TensorBoard:
    """Scalars and the animation's frames for TensorBoard, in ``RUN_DIR/tensorboard``."""

    def __init__(self):
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise VaekitError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer = None

    def on_start(self, run, fresh: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run.run_dir) / "tensorboard"))

    def on_epoch(self, run, row: dict) -> None:
        epoch = row["epoch"]
        for split in ("train", "valid"):
            for key in ("elbo", "reconstruction", "kl"):
                self.writer.add_scalar(f"{key}/{split}", row[f"{split}_{key}"], epoch)
        self.writer.add_scalar("speed/images_per_second", row["images_per_second"], epoch)
        frame = frame_path(run.run_dir, epoch)
        if "frame_seconds" in row and frame.is_file():
            import numpy as np
            from PIL import Image

            img = np.asarray(Image.open(frame))
            self.writer.add_image("samples", img, epoch, dataformats="HWC" if img.ndim == 3 else "HW")
        self.writer.flush()

    def on_close(self, run) -> None:
        if self.writer is not None:
            self.writer.close()


__all__ = ["Pictures", "TensorBoard"]
