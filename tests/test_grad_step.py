"""The float32 compiled step's parts: the step that returns its own gradients (vaekit.grad_step) and Adam's
kernel called directly (vaekit.optim.fused_adam_step). Each must give the numbers of the path it replaces."""

import copy

import pytest
import torch

import vaekit
from vaekit.config import RunConfig
from vaekit.data import batch
from vaekit.grad_step import GradStep
from vaekit.models import build_model
from vaekit.objectives import ELBO, IWAE, kl_warmup
from vaekit.optim import AdamNormGrad, fused_adam_step
from vaekit.trainer import make_step


def model_of(variant="vae", prior="standard", **arch):
    part = {"name": variant, "z1_dim": 2} if variant == "hvae" else {"name": variant}
    c = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"variant": part, "latent_dim": 3, "hidden": [16],
                                                                   "prior": prior, "prior_components": 4, **arch}})
    torch.manual_seed(0)
    return build_model(c.model, (1, 8, 8), 2, 10 if variant == "cvae" else None)


CASES = [("vae", "standard", ELBO(), 1.0), ("vae", "standard", ELBO(beta=2.0), 0.3),
         ("vae", "mog", ELBO(free_bits=0.5), 0.5), ("vae", "vamp", IWAE(k=3), 0.25), ("vae", "standard", IWAE(k=2), 1.0),
         ("hvae", "vamp", ELBO(), 0.6), ("cvae", "standard", ELBO(n_samples=2), 1.0),
         ("vae", "standard", ELBO(), {"dropout": 0.2}), ("cvae", "vamp", ELBO(), {"arch": "conv", "conv_channels": [4]})]


@pytest.mark.parametrize("variant,prior,objective,weight", CASES)
def test_the_step_gives_the_gradients_and_loss_of_autograd(variant, prior, objective, weight):
    """Same model, same noise: the loss, the reported terms and every parameter's gradient agree with
    objective.loss(...).backward() (uncompiled, so the noise is eager PyTorch's in both)."""
    arch, weight = (weight, 1.0) if isinstance(weight, dict) else ({}, weight)
    model = model_of(variant, prior, **arch)
    x = (torch.rand(12, 64, generator=torch.Generator().manual_seed(1)) > 0.6).to(torch.uint8)
    y = torch.arange(12) % 10 if variant == "cvae" else None
    b = batch(x, y)
    epoch_objective = kl_warmup(objective, 3, round(3 / weight)) if weight < 1 else objective
    torch.manual_seed(5)
    terms = make_step(model, objective)(b)
    loss = epoch_objective.loss(terms, 12)
    loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    got_terms, got_loss = GradStep(model, objective, None, compile=False)(b, epoch_objective, 12)
    assert torch.allclose(got_loss, loss.detach(), rtol=1e-6, atol=1e-5)
    for name in ("bound", "elbo", "reconstruction", "kl"):
        assert torch.allclose(getattr(got_terms, name), getattr(terms, name).detach(), rtol=1e-6, atol=1e-4), name
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[n], rtol=1e-5, atol=1e-6), n


def test_runs_take_the_step_where_it_was_measured_to_pay():
    from vaekit.trainer import training_step

    model = model_of()
    assert isinstance(training_step(model, ELBO(), "fp32", True), GradStep)
    others = [training_step(model, ELBO(), "fp32", False), training_step(model, ELBO(), "bf16", True),
              training_step(model, IWAE(k=2), "fp32", True, world_size=2)]
    assert not any(isinstance(s, GradStep) for s in others)
    assert not GradStep.usable(ELBO(), "fp32", 1, "cuda")


def test_the_step_refuses_another_objective():
    step = GradStep(model_of(), ELBO(), None, compile=False)
    b = batch((torch.rand(4, 64) > 0.5).to(torch.uint8))
    step(b, ELBO(beta=0.2), 4)  # the same objective at another KL weight: taken
    with pytest.raises(ValueError, match="n_samples=2"):
        step(b, ELBO(n_samples=2), 4)
    with pytest.raises(ValueError, match="IWAE"):
        step(b, IWAE(k=1), 4)


def test_a_compiled_float32_run_takes_the_step_compiles_once_and_matches_eager(tmp_path, monkeypatch):
    """With KL warm-up (a new weight every epoch) and a last batch of another size: compiled and eager runs agree
    to rounding (fallback_random draws eager PyTorch's noise in compiled code), and warm-up recompiles nothing."""
    import torch._dynamo
    import torch._inductor.config

    calls = []
    original = GradStep.__call__
    monkeypatch.setattr(GradStep, "__call__", lambda self, *a: calls.append(1) or original(self, *a))
    c = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [32]},
                             "train": {"epochs": 3, "batch_size": 100, "precision": "fp32", "warmup_epochs": 3}})
    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        eager = vaekit.train(c, tmp_path / "e", progress=False, log=lambda m: None)
        assert not calls  # eager runs keep the autograd path
        frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        compiled = vaekit.train(c, tmp_path / "c", progress=False, compile=True, log=lambda m: None)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames
    assert calls and graphs <= 2, graphs  # the full batch and the last one, not a graph per epoch's weight
    assert [h["kl_weight"] for h in compiled.history] == [1 / 3, 2 / 3, 1.0]
    for a, b in zip(eager.history, compiled.history):
        assert abs(a["train_elbo"] - b["train_elbo"]) < 0.01, (a["train_elbo"], b["train_elbo"])
        assert abs(a["valid_elbo"] - b["valid_elbo"]) < 0.01, (a["valid_elbo"], b["valid_elbo"])


def _pair(**kw):
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    b = copy.deepcopy(a)
    return (a, torch.optim.Adam(a.parameters(), lr=1e-2, fused=True, **kw)), \
        (b, torch.optim.Adam(b.parameters(), lr=1e-2, fused=True, **kw))


@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.05, "decoupled_weight_decay": True}, {"weight_decay": 0.01}])
def test_adams_kernel_called_directly_is_bit_identical_to_its_step(kw):
    (m1, o1), (m2, o2) = _pair(**kw)
    used = []
    for i in range(6):
        x = torch.randn(4, 5)
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            m(x).square().sum().backward()
        if i == 3:  # a skipped step, as the deferred finiteness check asks for
            o1.found_inf, o2.found_inf = torch.tensor(1.0), torch.tensor(1.0)
        o1.step()
        used.append(fused_adam_step(o2))
        if not used[-1]:
            o2.step()
        if i == 3:
            del o1.found_inf, o2.found_inf
    assert used == [False] + [True] * 5  # the first step makes the state; the kernel is called from then on
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(o1.state[p1][k], o2.state[p2][k]), k


def test_adams_kernel_is_not_called_where_it_does_not_apply():
    m = torch.nn.Linear(3, 2)
    m(torch.randn(2, 3)).sum().backward()
    others = [torch.optim.SGD(m.parameters(), lr=0.1), AdamNormGrad(m.parameters(), fused=True),
              torch.optim.Adam(m.parameters(), amsgrad=True, fused=True), torch.optim.Adam(m.parameters())]
    for o in others:
        o.step()
        assert not fused_adam_step(o), o
    fresh = torch.optim.Adam(m.parameters(), fused=True)
    assert not fused_adam_step(fresh)  # no state yet
    fresh.step()
    m.bias.grad = None
    assert not fused_adam_step(fresh)  # a parameter without a gradient: step() knows what to do


def test_a_compiled_float32_run_resumes_bit_identically(tmp_path):
    from vaekit import checkpoint as ckpt

    c = lambda epochs: RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [32]},
                                            "train": {"epochs": epochs, "batch_size": 100, "precision": "fp32",
                                                      "warmup_epochs": 2}})
    quiet = lambda m: None  # noqa: E731
    vaekit.train(c(2), tmp_path / "straight", progress=False, compile=True, log=quiet)
    vaekit.train(c(1), tmp_path / "resumed", progress=False, compile=True, log=quiet)
    vaekit.train(c(2), tmp_path / "resumed", resume=True, progress=False, compile=True, log=quiet)
    straight, _ = ckpt._load_tensors(tmp_path / "straight" / ckpt.LAST_FILE)
    resumed, _ = ckpt._load_tensors(tmp_path / "resumed" / ckpt.LAST_FILE)
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


@pytest.mark.parametrize("every", [1, 4])
def test_a_nan_at_step_s_through_this_step_names_step_s_and_changes_nothing(every):
    """The finiteness check (read every step, or every N with the updates skipped on the device) sees the loss
    this step returns: a NaN at step S stops the epoch naming S, with the weights and moments of step S - 1."""
    import dataclasses

    from tests.test_deferred_check import data, fresh, same, state_of

    from vaekit.errors import DivergenceError
    from vaekit.train import train_epoch

    count = [0]

    @dataclasses.dataclass(frozen=True)
    class PoisonedAt(ELBO):
        at: int = 0

        def weighted_loss(self, terms, n_images, weight):
            count[0] += 1
            loss = super().weighted_loss(terms, n_images, weight)
            return loss * float("nan") if count[0] == self.at else loss

    x = data()
    model, opt = fresh()
    train_epoch(GradStep(model, ELBO(), None, compile=False), ELBO(), opt, x, 16)  # the optimiser has state
    model_ref, opt_ref = fresh()
    model_ref.load_state_dict(model.state_dict())
    opt_ref.load_state_dict(copy.deepcopy(opt.state_dict()))
    torch.manual_seed(5)
    train_epoch(GradStep(model_ref, ELBO(), None, compile=False), ELBO(), opt_ref, x[:16 * 6], 16)
    before = state_of(model_ref, opt_ref)
    torch.manual_seed(5)
    poisoned = PoisonedAt(at=7)
    with pytest.raises(DivergenceError, match=r"the loss became nan at epoch 2, step 17$"):
        train_epoch(GradStep(model, poisoned, None, compile=False), poisoned, opt, x, 16, where=(2, 10),
                    check_every=every)
    assert same(state_of(model, opt), before)


def test_a_parameter_the_loss_does_not_reach_is_left_alone_as_autograd_leaves_it():
    """Functional gradients are zeros where autograd gives none; the step hands the optimiser None there, so
    weight decay and momentum leave such a parameter as the autograd path does."""
    from vaekit.train import train_epoch

    x = (torch.rand(48, 64, generator=torch.Generator().manual_seed(2)) > 0.6).to(torch.uint8)
    for functional in (False, True):
        model = model_of()
        model.spare = torch.nn.Parameter(torch.ones(3))  # a part's parameter that the loss does not use
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5, fused=True)
        step = GradStep(model, ELBO(), None, compile=False) if functional else make_step(model)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        train_epoch(step, ELBO(), opt, x, 16)
        assert model.spare.grad is None and torch.equal(model.spare, torch.ones(3)), functional
        assert all(p.grad is not None for n, p in model.named_parameters() if n != "spare")
        assert not torch.equal(before["encoder.net.0.weight"], model.encoder.net[0].weight)
