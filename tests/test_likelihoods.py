"""The likelihoods: true masses and densities (they sum or integrate to 1), finite at extremes, each declaring
the data it accepts, and each training on tiny data with both MLP architectures."""

import math

import pytest
import torch
from torch.distributions import ContinuousBernoulli as TorchCB

import vaekit
from vaekit.config import RunConfig
from vaekit.errors import VaekitError
from vaekit.models.distributions import (ContinuousBernoulli, DiscretizedLogistic, LearnedGaussian,
                                          continuous_bernoulli_log_norm)
from vaekit.models.likelihoods import LIKELIHOODS, make_likelihood
from vaekit.runs import load_split

EXTREME_LOCS = [-50.0, -3.0, 0.0, 0.37, 0.5, 1.0, 4.0, 50.0]
EXTREME_LOG_SCALES = [-7.0, -4.0, -1.0, 0.0, 3.0, 10.0]


@pytest.mark.parametrize("levels", [3, 17, 256])
def test_the_discretised_logistic_sums_to_one_over_its_levels(levels):
    values = torch.linspace(0, 1, levels, dtype=torch.float64)
    for loc in EXTREME_LOCS:
        for log_scale in EXTREME_LOG_SCALES:
            d = DiscretizedLogistic(torch.tensor([loc], dtype=torch.float64),
                                    torch.tensor([log_scale], dtype=torch.float64), levels)
            p = d.probs_of(values)
            assert (p >= 0).all() and abs(p.sum().item() - 1) < 1e-9, (loc, log_scale)
            assert torch.isfinite(d.log_prob(values.view(-1, 1))).all()


def test_the_discretised_logistic_is_finite_with_finite_gradients_at_extremes():
    loc = torch.tensor([[-50.0, 0.5, 50.0, 0.2, 0.0, 1.0]], requires_grad=True)
    log_scale = torch.tensor([[-7.0, -7.0, 10.0, 5.0, -7.0, -7.0]], requires_grad=True)
    x = torch.tensor([[0.0, 0.5, 1.0, 0.2, 1.0, 0.0]])  # the last two: far in the wrong tail
    lp = DiscretizedLogistic(loc, log_scale, 256).log_prob(x)
    lp.backward()
    assert torch.isfinite(lp).all() and torch.isfinite(loc.grad).all() and torch.isfinite(log_scale.grad).all()


def test_the_continuous_bernoulli_integrates_to_one_and_matches_torch():
    x = torch.linspace(0, 1, 100_001, dtype=torch.float64)
    for eta in [-60.0, -20.0, -1.0, -1e-3, 0.0, 1e-5, 0.05, 0.0999, 0.1001, 3.0, 30.0, 60.0]:
        logits = torch.tensor([eta], dtype=torch.float64)
        log_p = x * eta - torch.nn.functional.softplus(logits) + continuous_bernoulli_log_norm(logits)
        assert torch.trapezoid(log_p.exp(), x).item() == pytest.approx(1.0, abs=1e-6), eta
        d = ContinuousBernoulli(logits)
        mean = torch.trapezoid(x * log_p.exp(), x).item()
        assert d.mean.item() == pytest.approx(mean, abs=1e-5), eta
    # against torch.distributions away from 1/2, where torch's own constant is accurate
    logits = torch.tensor([-5.0, -1.0, 2.0, 7.0], dtype=torch.float64)
    xs = torch.tensor([0.1, 0.5, 0.9, 0.3], dtype=torch.float64)
    ours = ContinuousBernoulli(logits.view(1, -1)).log_prob(xs.view(1, -1))
    assert ours.item() == pytest.approx(TorchCB(logits=logits).log_prob(xs).sum().item(), rel=1e-9)


def test_the_continuous_bernoulli_constant_is_smooth_across_its_taylor_switch():
    eta = torch.linspace(-0.2, 0.2, 4001, dtype=torch.float64)
    c = continuous_bernoulli_log_norm(eta)
    exact = torch.log(eta.abs()) - torch.log(torch.tanh(eta.abs() / 2))
    far = eta.abs() > 1e-3
    assert torch.allclose(c[far], exact[far], atol=1e-9)
    assert c[2000].item() == pytest.approx(math.log(2.0), abs=1e-15)
    assert torch.isfinite(continuous_bernoulli_log_norm(torch.tensor([-1e4, 1e4, 0.0]))).all()


@pytest.mark.parametrize("mean,logvar", [(0.3, -9.2), (0.0, 0.0), (1.0, 4.0)])
def test_the_learned_gaussian_integrates_to_one(mean, logvar):
    sd = math.exp(0.5 * logvar)
    x = torch.linspace(mean - 12 * sd, mean + 12 * sd, 200_001, dtype=torch.float64)
    d = LearnedGaussian(torch.tensor([mean], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64))
    dens = torch.stack([d.log_prob(v.view(1)) for v in x[::100]]).exp()
    assert torch.trapezoid(dens, x[::100]).item() == pytest.approx(1.0, abs=1e-6)


def test_the_learned_gaussian_keeps_its_sigma_above_the_floor():
    lik = make_likelihood("gaussian-learned", sigma_min=0.05)
    out = torch.tensor([[0.5, 0.5, -1e4, 1e4]])  # two means, then a huge negative and positive log-variance
    d = lik(out)
    assert (torch.exp(0.5 * d.logvar) >= 0.05 * (1 - 1e-6)).all()
    assert torch.isfinite(d.log_prob(torch.tensor([[0.5, 0.5]]))).all()


@pytest.mark.parametrize("name,options,match", [
    ("bernoulli", {"data": {"name": "digits", "binarize": "none"}}, "needs binary pixels"),
    ("logistic", {"data": {"name": "digits", "binarize": "dynamic"}}, "models grey levels but the data are binary"),
    ("logistic", {"data": {"name": "binarized-mnist"}}, "models grey levels but the data are binary"),
    ("gaussian", {"data": {"name": "digits", "dequantize": "none"}}, "is a density .* --dequantize uniform"),
    ("continuous-bernoulli", {"data": {"name": "mnist-5k", "dequantize": "none"}}, "logistic"),
    ("logistic", {"data": {"name": "digits", "dequantize": "uniform"}}, "mass over the data's levels"),
])
def test_a_likelihood_refuses_data_it_is_not_a_distribution_over(name, options, match):
    with pytest.raises(VaekitError, match=match):
        RunConfig.from_dict({**options, "model": {"likelihood": name}})


def test_each_likelihood_resolves_the_data_it_needs():
    got = {name: RunConfig.from_dict({"data": {"name": "digits"}, "model": {"likelihood": name}}).data
           for name in LIKELIHOODS}
    assert (got["bernoulli"].binarize, got["bernoulli"].dequantize) == ("dynamic", "none")
    assert (got["logistic"].binarize, got["logistic"].dequantize, got["logistic"].levels) == ("none", "none", 17)
    for name in ("gaussian", "gaussian-learned", "continuous-bernoulli"):
        assert (got[name].binarize, got[name].dequantize) == ("none", "uniform")


@pytest.mark.parametrize("arch", ["mlp", "gated-mlp"])
@pytest.mark.parametrize("name", ["bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli", "logistic"])
def test_each_likelihood_trains_and_evaluates_to_a_finite_nll(tmp_path, name, arch):
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"likelihood": name, "arch": arch,
                                                                     "hidden": [32], "latent_dim": 2},
                               "train": {"epochs": 1, "batch_size": 128}})
    res = vaekit.train(cfg, tmp_path / "r", progress=False, log=lambda m: None)
    valid = load_split(cfg, "valid")
    levels = cfg.pixel_levels if cfg.data.dequantize == "uniform" else None
    out = vaekit.evaluate(res.model, valid.x[:40], iw_samples=8, dequantized_levels=levels)
    assert math.isfinite(out["nll"]) and 0 < out["bits_per_dim"] < 10
    images = res.model.sample(4)
    assert images.shape == (4, 1, 8, 8) and torch.isfinite(images).all()
    assert vaekit.load(tmp_path / "r").decoder.likelihood.name == name


def test_the_discretised_logistic_mean_is_the_expectation_over_its_levels():
    torch.manual_seed(0)
    loc, log_scale = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64) * 2 - 2
    for levels in (3, 17, 256):
        d = DiscretizedLogistic(loc, log_scale, levels)
        values = torch.linspace(0, 1, levels, dtype=torch.float64)
        torch.testing.assert_close(d.mean, (d.probs_of(values) * values).sum(-1), atol=1e-10, rtol=0)


def test_logistic_balance_changes_the_gradient_not_the_value():
    from vaekit.models.likelihoods import LogisticLikelihood

    torch.manual_seed(0)
    out = torch.randn(3, 2 * 12, dtype=torch.float64).requires_grad_()
    x = (torch.randint(0, 256, (3, 12)) / 255.0).double()
    plain, balanced = LogisticLikelihood(256, 0.0)(out), LogisticLikelihood(256, 1.0)(out)
    a, b = plain.log_prob(x), balanced.log_prob(x)
    torch.testing.assert_close(a, b)
    ga, = torch.autograd.grad(a.sum(), out)
    gb, = torch.autograd.grad(b.sum(), out)
    assert not torch.allclose(ga, gb)
    w = torch.exp(out[:, 12:].detach())  # the scales (log-scales well above the floor here)
    torch.testing.assert_close(gb[:, :12], ga[:, :12] * w / w.mean(-1, keepdim=True), rtol=1e-3, atol=1e-6)
