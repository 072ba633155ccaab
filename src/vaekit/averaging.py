"""Weight averaging: an exponential moving average of the model's parameters, updated after every optimiser
step (Polyak & Juditsky 1992; the exponential form of e.g. Tieleman & Hinton's and many VAE codebases).

The trainer keeps the average beside the weights it optimises. With ``--ema D`` validation, the best
checkpoint (``model.safetensors``) and the pictures use the averaged weights; training and the optimiser use
the raw ones. Both, and the number of updates, are saved in ``last.safetensors``, so a resumed run goes on
bit-identically.

The average starts at the initial weights with a shorter memory: the decay of update ``t`` is
``min(D, (1 + t) / (10 + t))``, so the first thousand steps are not dragged back to the random start.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from .errors import CheckpointError

PREFIX = "ema."  # the averaged tensors' names in last.safetensors: ema.<parameter name>


class WeightAverage:
    """The moving average of ``model``'s parameters with decay ``decay`` (in (0, 1))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model, self.decay = model, float(decay)
        named = list(model.named_parameters())
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    def rate(self) -> float:
        """The decay of the next update."""
        t = self.updates + 1
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights (after an optimiser step)."""
        weight = 1.0 - self.rate()
        self.updates += 1
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], weight)

    @contextmanager
    @torch.no_grad()
    def swapped(self) -> Iterator[None]:
        """The averaged weights in the model while the block runs; the raw ones back after it (exactly)."""
        raw = [p.detach().clone() for p in self.params]
        torch._foreach_copy_([p.detach() for p in self.params], self.shadow)
        try:
            yield
        finally:
            torch._foreach_copy_([p.detach() for p in self.params], raw)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What ``last.safetensors`` keeps: the averaged tensors by parameter name."""
        return {PREFIX + n: s for n, s in zip(self.names, self.shadow)}

    def load(self, tensors: dict[str, torch.Tensor], updates: int, path) -> None:
        """Restore what :meth:`tensors` saved (and the count of updates); a file without them cannot resume."""
        missing = [n for n in self.names if PREFIX + n not in tensors]
        if missing:
            raise CheckpointError(f"{path}: this run averages its weights (--ema) but the checkpoint holds no average "
                                  f"of {missing[0]}; it was saved without --ema: resume it without --ema")
        with torch.no_grad():
            for n, s in zip(self.names, self.shadow):
                t = tensors[PREFIX + n]
                if t.shape != s.shape:
                    raise CheckpointError(f"{path}: the average of {n} has shape {tuple(t.shape)}, the model's is "
                                          f"{tuple(s.shape)}; it cannot be resumed")
                s.copy_(t)
        self.updates = int(updates)


@contextmanager
def averaged(average: WeightAverage | None) -> Iterator[None]:
    """The averaged weights in place while the block runs, or nothing when the run does not average."""
    if average is None:
        yield
    else:
        with average.swapped():
            yield


__all__ = ["WeightAverage", "averaged"]
