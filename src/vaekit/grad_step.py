"""The compiled training step as one function of the parameters: forward, loss and backward traced together
(``torch.func.grad_and_value`` over the model with its parameters passed in) and compiled into one graph that
returns the gradients, so no autograd engine, no per-parameter gradient accumulation and no second compiled
region run at each step.

A run uses it where its step is compiled in float32 on a CPU and one process trains;
:func:`vaekit.trainer.train_epoch` then takes the loss and the gradients from it
instead of calling ``backward``, and everything after (the finiteness check, clipping, the optimiser, weight
averaging) is as before. Measured on a 2-core AMD EPYC, float32, 784-400-20 at batch 128
(``benchmarks/step_variants.py``, docs/benchmarks.md "Float32 on an AVX2 CPU"): faster than compiling the
forward and backward as two graphs run by autograd.

The KL weight of the epoch (warm-up, β) enters the graph as a tensor, so the step compiles once per run, not
once per epoch of warm-up; the objective's other settings (samples, free bits) are fixed for a run and are
part of the graph.
"""

from __future__ import annotations

import dataclasses

import torch

from .objectives import BatchTerms


def _terms(objective, model, x, y) -> BatchTerms:
    """The objective's terms of a batch, the labels handed on only to a model conditioned on them."""
    return objective.terms(model, x) if y is None else objective.terms(model, x, y)


class _Scored(torch.nn.Module):
    """The model with its objective: ``forward`` gives the loss to differentiate and the terms reported."""

    def __init__(self, model: torch.nn.Module, objective, dtype):
        super().__init__()
        self.model, self.objective, self.dtype = model, objective, dtype

    def forward(self, x, y, kl_weight, n_images):
        with torch.autocast(device_type=x.device.type, dtype=self.dtype or torch.bfloat16,
                            enabled=self.dtype is not None):
            t = _terms(self.objective, self.model, x, y)
        loss = self.objective.weighted_loss(t, n_images, kl_weight)
        return loss, (loss.detach(), t.bound.detach(), t.elbo.detach(), t.reconstruction.detach(), t.kl.detach())


class GradStep:
    """``step(batch, objective, n_images) -> (terms, loss)``, with each parameter's ``.grad`` set to the gradient of
    ``objective``'s loss (per image of the ``n_images``). ``objective`` is the epoch's (KL warm-up changes only its
    weight, which this step reads as data); it must be the objective this step was built with up to that weight.
    """

    computes_gradients = True

    def __init__(self, model: torch.nn.Module, objective, dtype: torch.dtype | None, compile: bool = True):
        self.model, self.base, self._checked = model, objective, objective
        scored = _Scored(model, objective, dtype)
        self.names = [name for name, _ in scored.named_parameters()]
        self.params = [p for _, p in scored.named_parameters()]
        self.values = [p.detach() for p in self.params]  # the same storage, outside autograd: the optimiser's
        # in-place updates show through, and the compiled graph computes no gradient of the gradients

        def loss(params, x, y, kl_weight, n_images):
            return torch.func.functional_call(scored, dict(zip(self.names, params)), (x, y, kl_weight, n_images))

        grads = torch.func.grad_and_value(loss, has_aux=True)
        self.inner = torch.compile(grads) if compile else grads
        self.unused: list[bool] | None = None  # parameters the loss does not reach, found at the first step
        self._scalars: dict[tuple[float, torch.device], torch.Tensor] = {}

    def __call__(self, b, objective, n_images: float) -> tuple[BatchTerms, torch.Tensor]:
        if objective is not self._checked:
            self._check(objective)
        weight, n = self._scalar(objective.kl_weight, b.x.device), self._scalar(n_images, b.x.device)
        if self.unused is None:
            self.unused = self._unused(b)
        grads, (_, (loss, bound, elbo, rec, kl)) = self.inner(self.values, b.x, b.y, weight, n)
        for p, g, unused in zip(self.params, grads, self.unused):
            p.grad = None if unused else g  # as autograd leaves them: the optimiser skips them
        return BatchTerms(bound, elbo, rec, kl), loss

    def _scalar(self, value: float, device: torch.device) -> torch.Tensor:
        """``value`` as a 0-d tensor, made once: the KL weight changes once an epoch, the batch size at its end."""
        key = (float(value), device)
        if key not in self._scalars:
            if len(self._scalars) >= 8:  # past weights of the warm-up
                self._scalars.clear()
            self._scalars[key] = torch.tensor(key[0], device=device)
        return self._scalars[key]

    def _unused(self, b) -> list[bool]:
        """Which parameters get no gradient from autograd (functional gradients would give them zeros, which an
        optimiser with momentum or weight decay would act on): one eager pass over the terms every loss is made
        of, its noise drawn from a copy of the random state, so the run draws what it would have drawn without
        it."""
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            t = _terms(self.base, self.model, b.x, b.y)
            reach = t.bound + t.reconstruction + t.kl
            grads = torch.autograd.grad(reach, self.params, allow_unused=True)
        return [g is None for g in grads]

    def _check(self, objective) -> None:
        field = self.base.weight_field
        if type(objective) is not type(self.base) or \
                dataclasses.replace(objective, **{field: 1.0}) != dataclasses.replace(self.base, **{field: 1.0}):
            raise ValueError(f"this step was built for {self.base}; it takes that objective with another "
                             f"{field} only, got {objective}")
        self._checked = objective

    @staticmethod
    def usable(objective, precision: str, world_size: int, device: torch.device | str) -> bool:
        """float32 on a CPU, where it was measured (with bf16 autocast it measured slower than the autograd path:
        80% of the float32 bound against 85%, same run; not measured on a GPU), one process
        (DistributedDataParallel reduces through autograd's hooks), and an objective that can take its KL weight
        as a tensor."""
        return precision == "fp32" and torch.device(device).type == "cpu" and world_size == 1 \
            and hasattr(objective, "weighted_loss") and hasattr(objective, "weight_field")


__all__ = ["GradStep"]
