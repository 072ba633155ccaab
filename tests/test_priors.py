"""The priors (standard, mixture, VampPrior) with every objective (ELBO, beta, free bits, IWAE)."""

import math

import pytest
import torch

import vaekit
from vaekit.config import RunConfig
from vaekit.errors import VaekitError
from vaekit.models.distributions import MixtureOfDiagonalNormals
from vaekit.runs import load_split


def cfg(prior, objective="elbo", **train):
    return RunConfig.from_dict({"data": {"name": "digits"},
                                "model": {"prior": prior, "prior_components": 7, "hidden": [32], "latent_dim": 3},
                                "train": {"epochs": 1, "batch_size": 128, "objective": objective, **train}})


@pytest.mark.parametrize("prior", ["standard", "mog", "vamp"])
@pytest.mark.parametrize("objective,train", [("elbo", {}), ("elbo", {"beta": 0.5, "warmup_epochs": 2}),
                                             ("iwae", {"n_samples": 4})])
def test_every_prior_with_every_objective_trains_and_evaluates(tmp_path, prior, objective, train):
    c = cfg(prior, objective, **train)
    res = vaekit.train(c, tmp_path / "r", progress=False, log=lambda m: None)
    row = res.history[-1]
    assert math.isfinite(row["train_elbo"]) and math.isfinite(row["valid_elbo"])
    if objective == "iwae":  # the bound it trains, and the plain ELBO beside it, which it never exceeds on average
        assert row["train_iwae_bound"] >= row["train_elbo"] - 1e-3
    out = vaekit.evaluate(vaekit.load(tmp_path / "r"), load_split(c, "valid").x[:30], iw_samples=10)
    assert math.isfinite(out["nll"])
    assert res.model.sample(5).shape == (5, 1, 8, 8)


@pytest.mark.parametrize("prior", ["standard", "mog", "vamp"])
def test_free_bits_train_with_every_prior_that_gives_a_kl_per_dimension(tmp_path, prior):
    from vaekit.data import to_unit
    from vaekit.objectives import ELBO

    c = cfg(prior, free_bits=0.2)
    res = vaekit.train(c, tmp_path / "r", progress=False, log=lambda m: None)
    assert math.isfinite(res.history[-1]["valid_elbo"])
    model, x = res.model, to_unit(load_split(c, "valid").x[:40])
    terms = {}
    torch.set_grad_enabled(False)
    for fb in (0.0, 0.2):  # the same samples: free bits change the loss, never the reported terms
        torch.manual_seed(1)
        terms[fb] = ELBO(free_bits=fb).terms(model, x)
    a, b = terms[0.2], terms[0.0]
    assert torch.allclose(a.elbo, b.elbo, atol=1e-3) and torch.allclose(a.kl, b.kl, atol=1e-3)
    if prior == "standard":  # the KL is the sum of its dimensions'
        assert a.kl_rest is None and torch.allclose(a.kl_per_dim.sum(), a.kl, atol=1e-3)
    else:  # a mixture's marginals leave part of the KL out; the loss keeps it
        assert a.kl_rest is not None and torch.allclose(a.kl_per_dim.sum() + a.kl_rest, a.kl, atol=1e-3)
    # clamping only ever raises the KL term: the loss is never below the negative ELBO
    assert float(ELBO(free_bits=0.2).loss(a, 40)) >= float(-a.elbo / 40) - 1e-4
    torch.set_grad_enabled(True)


def test_free_bits_are_refused_for_a_prior_without_a_kl_per_dimension():
    from vaekit.models import PRIORS, StandardNormalPrior

    class Whole(StandardNormalPrior):  # a prior that declares no per-dimension KL
        per_dimension = False

    PRIORS["whole"] = Whole
    try:
        with pytest.raises(VaekitError, match="the whole prior does not give .* use a prior that does: standard, mog"):
            cfg("whole", free_bits=0.2)
    finally:
        del PRIORS["whole"]


@pytest.mark.parametrize("bad,match", [({"free_bits": -1}, "free_bits"), ({"beta": -0.5}, "beta"),
                                       ({"n_samples": 0}, "n_samples"),
                                       ({"objective": "iwae", "beta": 2.0}, "no KL term"),
                                       ({"objective": "iwea"}, "did you mean 'iwae'")])
def test_bad_objective_settings_are_one_clear_line(bad, match):
    with pytest.raises(VaekitError, match=match):
        cfg("standard", **bad)
    with pytest.raises(VaekitError, match="prior_components"):
        RunConfig.from_dict({"model": {"prior": "mog", "prior_components": 0}})


def test_the_vampprior_holds_the_encoder_once_and_mixes_its_posteriors():
    model = vaekit.build_model(cfg("vamp").model, (1, 8, 8))
    keys = list(model.state_dict())
    assert not [k for k in keys if k.startswith("prior.") and "encoder" in k]  # the encoder's weights once
    assert model.prior.pseudo_logits.shape == (7, 1, 8, 8)
    p = model.prior()
    q = model.encode(torch.sigmoid(model.prior.pseudo_logits))
    torch.testing.assert_close(p.mu, q.mu)  # the mixture is of the encoder's posteriors of the pseudo-inputs
    loss = -p.log_prob(torch.randn(4, 3)).sum()
    loss.backward()
    assert model.encoder.net[0].weight.grad is not None and model.prior.pseudo_logits.grad is not None


def test_the_mixture_density_and_its_marginals():
    torch.manual_seed(0)
    m = MixtureOfDiagonalNormals(torch.randn(4), torch.randn(4, 1), torch.randn(4, 1))
    x = torch.linspace(-15, 15, 30001).view(-1, 1)
    assert torch.trapezoid(m.log_prob(x).exp(), x.view(-1)).item() == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(m.log_prob_per_dim(x).view(-1), m.log_prob(x))  # one dimension: the same
    z = m.sample((20000,))
    assert z.shape == (20000, 1) and z.mean().item() == pytest.approx(m.mean.item(), abs=0.05)


def test_the_mixture_density_by_matrix_products_matches_the_direct_sum():
    torch.manual_seed(1)
    k, d = 50, 7
    m = MixtureOfDiagonalNormals(torch.randn(k), 2 * torch.randn(k, d), torch.randn(k, d) - 1)
    z = 2 * torch.randn(3, 5, d)
    direct = torch.logsumexp(m.log_weights + m._components(z).sum(-1), dim=-1)
    assert m.log_prob(z).shape == (3, 5)
    torch.testing.assert_close(m.log_prob(z), direct, atol=1e-3, rtol=0)
    m64 = MixtureOfDiagonalNormals(torch.randn(k).double(), torch.randn(k, d).double(), torch.randn(k, d).double())
    z64 = torch.randn(4, d).double()
    torch.testing.assert_close(m64.log_prob(z64), torch.logsumexp(m64.log_weights + m64._components(z64).sum(-1), -1))


def test_narrow_components_far_from_zero_keep_an_honest_density_under_bf16_autocast():
    """Components 1/4096 of their mean wide, 100 from the origin, and z beside them: the expanded form lost
    everything there (in bfloat16 it said +1e13 nats, which training exploited); it must match the direct sum
    in float64, also under autocast, and never exceed the densest component's peak."""
    torch.manual_seed(2)
    k, d = 20, 8
    mu = 100 + torch.randn(k, d)
    logvar = 2 * torch.log(mu.abs() * 2.0 ** -12)  # the narrowest an encoder may make them
    m = MixtureOfDiagonalNormals(torch.zeros(k), mu, logvar)
    z = mu[:5] + torch.exp(0.5 * logvar[:5]) * torch.randn(5, d)
    exact = torch.logsumexp(MixtureOfDiagonalNormals(torch.zeros(k).double(), mu.double(), logvar.double())
                            ._components(z.double()).sum(-1) - math.log(k), -1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m.log_prob(z)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, atol=1e-3, rtol=0)
    peak = (-0.5 * (logvar + math.log(2 * math.pi))).sum(-1).max()
    assert (got <= peak).all()


def test_an_encoder_keeps_its_spread_above_float32_resolution():
    from vaekit.models.encoders import RESOLUTION, bounded_logvar

    mu = torch.tensor([[0.0, 1.0, 124.0, -3e4]])
    logvar = torch.full_like(mu, -30.0)
    lv = bounded_logvar(mu, logvar)
    assert lv[0, 0] == -30.0  # a mean of 0: only the fixed floor
    sigma = torch.exp(0.5 * lv)
    assert (sigma[0, 1:] >= RESOLUTION * mu[0, 1:].abs() * (1 - 1e-6)).all()
    ordinary = torch.tensor([[-2.0, 0.5]])
    assert torch.equal(bounded_logvar(torch.tensor([[1.0, -3.0]]), ordinary), ordinary)  # untouched where it is fine
    z = mu + sigma * torch.randn(1000, 4)
    eps = (z - mu) / sigma  # the sample resolves its own noise: its log-density is that of a draw from q
    assert eps[:, 2:].std().item() == pytest.approx(1.0, abs=0.1)
