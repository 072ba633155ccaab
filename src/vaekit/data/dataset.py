"""The data contract: one split of images in memory (:class:`Dataset`) and the :class:`Batch` every model
call takes: images ``[B, C, H, W]`` float32 in [0, 1] and their labels when the model is conditioned on them.
:func:`batches` cuts a split into them (moving each to the device and through :func:`to_unit`), so a VAE and a
CVAE go through the same calls. Every source (named sets, your folder or array) gives a :class:`Dataset`, and
training, evaluation and the pictures read only these. Nothing else of vaekit is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    # where each image came from, so a row of a result can be traced to it: a folder's file (relative to the
    # folder), an array's row in its file; None for a named set (its position in the split says it)
    sources: tuple[str, ...] | None = None
    # each image's position in the split as the source gives it (before any filter such as keep_classes)
    index: torch.Tensor | None = None

    def positions(self) -> torch.Tensor:
        """Each image's position in its split as the source gives it ``[N]`` (int64)."""
        return self.index if self.index is not None else torch.arange(len(self))

    def with_pixels(self, x: torch.Tensor, **changes) -> "Dataset":
        """The same images' record with other pixels (binarized, dequantised): labels and trace kept."""
        return replace(self, x=x, **changes)

    def subset(self, keep: torch.Tensor) -> "Dataset":
        """The images where ``keep`` (a boolean mask ``[N]``) is true, their labels, trace and positions kept."""
        rows = keep.nonzero().flatten()
        return replace(self, x=self.x[rows], labels=self.labels[rows] if self.labels is not None else None,
                       sources=tuple(self.sources[i] for i in rows.tolist()) if self.sources is not None else None,
                       index=self.positions()[rows])

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


def check_shape(image_shape: tuple[int, ...], want: tuple[int, ...], what: str) -> None:
    """One line unless images of ``what`` (of ``image_shape``) have the model's shape ``want``: which of channels
    or size differs, and the option that makes your own images match."""
    got, want = tuple(image_shape), tuple(want)
    if got == want:
        return
    from ..errors import VaekitError

    other = "channels" if got[0] != want[0] else "size"
    fix = f"--channels {want[0]}" if other == "channels" else f"--image-size {want[1]} {want[2]}"
    raise VaekitError(f"the model was trained on images of shape {want} (channels, height, width) but {what} has "
                      f"{got}: other {other}; give data like the run's ({fix} makes your own images match)")


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


__all__ = ["Batch", "Dataset", "batch", "batches", "check_shape", "to_unit"]
