"""The data contract: one split of images in memory (:class:`Dataset`), and :func:`to_unit`, which makes a
batch of them float32 in [0, 1]. Every source (named sets, your folder or array) gives this, and training,
evaluation and the pictures read only this. Nothing else of vaekit is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0, 1]: uint8 images (0..255) are divided by 255, float ones pass unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


__all__ = ["Dataset", "to_unit"]
