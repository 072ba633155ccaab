"""The finiteness check read on the host every N steps (the default off a CPU): a non-finite step still stops the
run naming that step, with the weights and optimiser state of the step before, and a finite run is unchanged
bit for bit. Forced on the CPU here through ``check_every`` / ``FINITE_CHECK_EVERY``."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import vaekit
from vaekit import trainer
from vaekit.checkpoint import load
from vaekit.config import RunConfig
from vaekit.errors import DivergenceError
from vaekit.models import build_model
from vaekit.objectives import ELBO
from vaekit.train import make_optimizer, make_step, train_epoch


def quiet(_msg: str) -> None:
    pass


CFG = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [16]},
                           "train": {"batch_size": 16}})


class PoisonAt:
    """The ELBO, but the loss of the s-th step is NaN."""

    def __init__(self, s: int):
        self.s, self.n, self.inner = s, 0, ELBO()

    def loss(self, terms, n_images):
        self.n += 1
        loss = self.inner.loss(terms, n_images)
        return loss * float("nan") if self.n == self.s else loss


def fresh():
    torch.manual_seed(0)
    model = build_model(CFG.model, (1, 8, 8))
    return model, make_optimizer(CFG, model)


def state_of(model, opt) -> list[torch.Tensor]:
    moments = [t for st in opt.state.values() for t in (st["exp_avg"], st["exp_avg_sq"], st["step"])]
    return [p.detach().clone() for p in model.parameters()] + [t.clone() for t in moments]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


def data(n=160):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 64, generator=g) < 0.3).to(torch.uint8)


@pytest.mark.parametrize("every", [1, 4, 100])
def test_a_nan_at_step_s_names_step_s_and_leaves_the_weights_of_step_s_minus_1(every):
    x = data()
    model, opt = fresh()
    train_epoch(make_step(model), ELBO(), opt, x, 16)  # one good epoch: the optimiser has state
    torch.manual_seed(5)
    model_ref, opt_ref = fresh()
    model_ref.load_state_dict(model.state_dict())
    opt_ref.load_state_dict(copy.deepcopy(opt.state_dict()))
    torch.manual_seed(5)
    train_epoch(make_step(model_ref), ELBO(), opt_ref, x[:16 * 6], 16)  # the 6 steps before the bad one
    before = state_of(model_ref, opt_ref)
    torch.manual_seed(5)
    with pytest.raises(DivergenceError, match=r"the loss became nan at epoch 2, step 17$"):
        train_epoch(make_step(model), PoisonAt(7), opt, x, 16, where=(2, 10), check_every=every)
    assert same(state_of(model, opt), before)  # the bad step and every step after it changed nothing
    assert "found_inf" not in vars(opt)  # the optimiser is left as it was found


def test_a_non_finite_gradient_norm_names_its_step_when_read_every_n_steps():
    x = data()
    model, opt = fresh()
    calls = {"n": 0}

    def poison(g):
        calls["n"] += 1
        return g * float("inf") if calls["n"] == 3 else g

    next(model.parameters()).register_hook(poison)
    with pytest.raises(DivergenceError, match=r"the gradient norm became (inf|nan) at epoch 1, step 3$"):
        train_epoch(make_step(model), ELBO(), opt, x, 16, grad_clip=10.0, where=(1, 0), check_every=8)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_finite_epoch_is_bit_identical_whichever_the_interval():
    x = data()
    out = []
    for every in (1, 3, 1000):
        model, opt = fresh()
        torch.manual_seed(2)
        sums, steps = train_epoch(make_step(model), ELBO(), opt, x, 16, check_every=every)
        out.append((state_of(model, opt), sums["elbo"].item(), steps))
    assert all(same(out[0][0], o[0]) and out[0][1:] == o[1:] for o in out[1:])


def small(epochs):
    return RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [16]},
                                "train": {"epochs": epochs, "batch_size": 64}})


def test_a_run_read_every_n_steps_resumes_bit_identically_and_stops_naming_the_step(tmp_path, monkeypatch,
                                                                                    poison_training):
    vaekit.train(small(3), tmp_path / "once", progress=False, log=quiet)  # the step-by-step check (the CPU's)
    monkeypatch.setitem(trainer.FINITE_CHECK_EVERY, "cpu", 5)
    assert trainer.finite_check_every("cpu") == 5
    vaekit.train(small(2), tmp_path / "cut", progress=False, log=quiet)
    vaekit.train(small(3), tmp_path / "cut", resume=True, progress=False, log=quiet)
    a, b = load(tmp_path / "once", checkpoint="last"), load(tmp_path / "cut", checkpoint="last")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]

    poison_training(30)  # the 31st step: epoch 2 (23 steps an epoch)
    with pytest.raises(DivergenceError) as e:
        vaekit.train(small(3), tmp_path / "bad", progress=False, log=quiet)
    assert "epoch 2, step 31" in str(e.value) and "last good checkpoint (epoch 1)" in str(e.value)
