"""The data contract: one split of images in memory (:class:`Dataset`) and the :class:`Batch` every model
call takes: images ``[B, C, H, W]`` float32 in [0, 1] and their labels when the model is conditioned on them.
:func:`batches` cuts a split into them (moving each to the device and through :func:`to_unit`), so a VAE and a
CVAE go through the same calls. Every source (named sets, your folder or array) gives a :class:`Dataset`, and
training, evaluation and the pictures read only these. Nothing else of vaekit is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch


@dataclass
class Dataset:
    """Images of one split held in memory, with labels if known: float32 in [0, 1], or uint8 (0..255, the
    user's own images, kept small and converted per batch by :func:`to_unit`)."""

    x: torch.Tensor  # [N, C, H, W] float32 in [0, 1], or uint8 in 0..255
    labels: torch.Tensor | None  # [N] int64
    image_shape: tuple[int, int, int]  # (C, H, W)
    name: str
    split: str
    levels: int  # distinct pixel values: 2 for binary images, 256 for 8-bit ones, 17 for digits
    dequantized: bool = False  # levels spread uniformly over their bins (x no longer on the levels)
    class_names: tuple[str, ...] | None = None

    @property
    def binary(self) -> bool:
        return self.levels == 2

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def dim(self) -> int:
        """Pixels per image, C * H * W."""
        return self.x[0].numel()


class Batch(NamedTuple):
    """What a model is handed: images ``[B, C, H, W]`` float32 in [0, 1], and their labels ``[B]`` (int64) for a
    model conditioned on them (``None`` otherwise: a plain model is never handed labels)."""

    x: torch.Tensor
    y: torch.Tensor | None = None


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1]: uint8 images (0..255) are divided by 255, float ones pass unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def batch(x: torch.Tensor, y: torch.Tensor | None = None, device: torch.device | str | None = None) -> Batch:
    """One :class:`Batch` of rows ``x`` (any stored form: uint8 or float) and labels ``y``, on ``device``."""
    return Batch(to_unit(x.to(device) if device is not None else x),
                 (y.to(device) if device is not None else y) if y is not None else None)


def batches(x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000,
            device: torch.device | str | None = None) -> Iterator[Batch]:
    """Contiguous batches of the rows ``x`` (and labels ``y``, when given), in order, each on ``device`` and in
    [0, 1]; only one batch is converted at a time, so memory stays bounded for any number of rows."""
    for i in range(0, x.shape[0], batch_size):
        yield batch(x[i : i + batch_size], y[i : i + batch_size] if y is not None else None, device)


__all__ = ["Batch", "Dataset", "batch", "batches", "to_unit"]
