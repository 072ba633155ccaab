"""What a data set declares of the factors that drew its images (for :mod:`vaekit.disentangle`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Factors:
    """The factors of one split's images: their names, values ``[N, K]`` (in the split's order), which are
    discrete, and (for the FactorVAE score) a sampler ``sample(k, n, rng) -> (images [n, C, H, W] float32 in
    [0, 1], factors [n, K])`` that draws new images with factor ``k`` held at one value drawn at random and
    the others free. ``note``: what the values are, in a sentence (how a factor was measured or left out)."""

    names: tuple[str, ...]
    values: np.ndarray
    discrete: tuple[bool, ...]
    sample: Callable[[int, int, np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None
    note: str = ""


__all__ = ["Factors"]
