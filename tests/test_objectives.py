"""Objectives: the ELBO (beta, free bits), the IWAE bound, KL warm-up, and the seams they plug into."""

import math

import pytest
import torch
from torch import nn

from vaekit.bounds import iwae_bound
from vaekit.config import ModelConfig, RunConfig
from vaekit.errors import VaekitError
from vaekit.kl import gaussian_kl_per_dim
from vaekit.models import build_model
from vaekit.models.distributions import DiagonalNormal
from vaekit.objectives import ELBO, IWAE, BatchTerms, kl_warmup
from vaekit.train import make_optimizer, make_step, train_epoch


def small_model(latent=3):
    torch.manual_seed(0)
    return build_model(ModelConfig(latent_dim=latent, hidden=(16,)), (1, 4, 4))


def batch(n=12):
    return torch.bernoulli(torch.full((n, 16), 0.3), generator=torch.Generator().manual_seed(1))


def test_elbo_terms_are_the_models_and_the_loss_is_minus_the_mean_elbo():
    model, x = small_model(), batch()
    torch.manual_seed(3)
    t = model(x)
    torch.manual_seed(3)
    terms = ELBO().terms(model, x)
    assert torch.equal(terms.elbo, t.elbo.sum()) and torch.equal(terms.bound, terms.elbo)
    assert torch.equal(terms.reconstruction, t.reconstruction.sum()) and torch.equal(terms.kl, t.kl.sum())
    assert ELBO().loss(terms, 12).item() == pytest.approx(-t.elbo.mean().item(), rel=1e-6)
    beta = ELBO(beta=0.25).loss(terms, 12).item()
    assert beta == pytest.approx((0.25 * t.kl.sum() - t.reconstruction.sum()).item() / 12, rel=1e-6)


def test_free_bits_clamp_the_batch_mean_kl_of_each_dimension():
    model, x = small_model(latent=4), batch()
    torch.manual_seed(3)
    terms = ELBO(free_bits=0.5).terms(model, x)
    per_dim = terms.kl_per_dim / 12  # batch-mean KL of each dimension
    assert per_dim.shape == (4,) and terms.kl.item() == pytest.approx(terms.kl_per_dim.sum().item(), rel=1e-5)
    expected = (per_dim.clamp_min(0.5).sum() * 12 - terms.reconstruction) / 12
    assert ELBO(free_bits=0.5).loss(terms, 12).item() == pytest.approx(expected.item(), rel=1e-6)
    # every dimension under the floor: the KL is a constant, so the gradient is the reconstruction's alone
    huge = ELBO(free_bits=1e6)

    def grads(loss_of):
        model.zero_grad()
        torch.manual_seed(5)
        loss_of(huge.terms(model, x)).backward()
        return [p.grad.clone() for p in model.parameters()]

    clamped = grads(lambda t: huge.loss(t, 12))
    rec_only = grads(lambda t: -t.reconstruction / 12)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(clamped, rec_only))


def test_iwae_reports_its_true_bound_and_rises_with_k():
    model, x = small_model(), batch(50)
    torch.manual_seed(0)
    terms = IWAE(k=10).terms(model, x)
    torch.manual_seed(0)
    log_w, _ = model.log_weights(x, 10)
    assert terms.bound.item() == pytest.approx(iwae_bound(log_w).sum().item(), rel=1e-6)
    assert terms.elbo.item() == pytest.approx(log_w.mean(0).sum().item(), rel=1e-6)
    assert IWAE(k=10).loss(terms, 50).item() == pytest.approx(-terms.bound.item() / 50, rel=1e-6)
    torch.manual_seed(1)
    means = [torch.stack([IWAE(k=k).terms(model, x).bound for _ in range(20)]).mean().item() for k in (1, 5, 50)]
    assert means[0] < means[1] < means[2]
    assert terms.bound >= terms.elbo  # log-mean-exp >= mean, image by image


def test_kl_warmup_ramps_the_weight_of_the_elbo_and_of_the_iwae_log_weights():
    assert [kl_warmup(ELBO(beta=2.0), e, 4).kl_weight for e in (1, 2, 4, 9)] == [0.5, 1.0, 2.0, 2.0]
    assert kl_warmup(ELBO(), 3, 0) == ELBO()
    assert kl_warmup(IWAE(k=3), 5, 4) == IWAE(k=3)
    assert [kl_warmup(IWAE(k=3), e, 4).kl_weight for e in (1, 2, 4)] == [0.25, 0.5, 1.0]
    model, x = small_model(), batch(40)
    torch.manual_seed(0)
    terms = IWAE(k=3).terms(model, x)
    torch.manual_seed(0)
    log_w, log_px_z = model(x, n_samples=3, log_weights=True)
    # the loss at weight lam is the IWAE bound of log p(x|z) + lam (log p(z) - log q(z|x)), sample by sample
    for lam in (0.0, 0.3):
        want = -iwae_bound(log_px_z + lam * (log_w - log_px_z)).sum() / 40
        assert kl_warmup(IWAE(k=3), lam * 10, 10).loss(terms, 40).item() == pytest.approx(want.item(), rel=1e-6)
    # at weight 1 it is the bound itself, which is what is reported at every weight
    assert IWAE(k=3, kl_weight=1.0).loss(terms, 40).item() == pytest.approx(-terms.bound.item() / 40, rel=1e-6)
    with pytest.raises(VaekitError, match="in \\[0, 1\\]"):
        IWAE(k=3, kl_weight=1.5)


@pytest.mark.parametrize("make,match", [(lambda: ELBO(beta=-1), "beta"), (lambda: ELBO(free_bits=-0.1), "free_bits"),
                                        (lambda: ELBO(n_samples=0), "n_samples"), (lambda: IWAE(k=0), "K >= 1")])
def test_bad_objective_values_are_refused_in_one_line(make, match):
    with pytest.raises(VaekitError, match=match):
        make()


def test_kl_per_dim_closed_form_monte_carlo_and_refusal():
    model, x = small_model(), batch()
    q = model.encode(x)
    torch.testing.assert_close(model.kl_per_dim(q), gaussian_kl_per_dim(q.mu, q.logvar))

    class MarginalsOnly(nn.Module):  # a prior that scores each dimension but is no DiagonalNormal
        latent_dim = 3

        def forward(self):
            inner = DiagonalNormal(torch.zeros(3), torch.zeros(3))
            return type("P", (), {"log_prob": inner.log_prob, "log_prob_per_dim": inner.log_prob_per_dim,
                                  "sample": inner.sample})()

    model.prior = MarginalsOnly()
    torch.manual_seed(0)
    mc = model.kl_per_dim(q, q.rsample((20000,)))
    torch.testing.assert_close(mc, gaussian_kl_per_dim(q.mu, q.logvar), atol=0.05, rtol=0.05)

    class Opaque(nn.Module):
        latent_dim = 3

        def forward(self):
            return type("P", (), {"log_prob": lambda self, z: -z.pow(2).sum(-1)})()

    model.prior = Opaque()
    with pytest.raises(VaekitError, match="no KL per latent dimension"):
        model.kl_per_dim(q)
    with pytest.raises(VaekitError, match="no KL per latent dimension"):
        ELBO(free_bits=0.1).terms(model, x)


def test_a_toy_objective_plugs_into_the_training_loop():
    """An objective defined here, not in vaekit: reconstruction only (a plain autoencoder's loss)."""

    class ReconstructionOnly:
        kl_weight = 0.0

        def terms(self, model, x):
            t = model(x)
            return BatchTerms(t.reconstruction.sum(), t.elbo.sum(), t.reconstruction.sum(), t.kl.sum())

        def loss(self, terms, n_images):
            return -terms.reconstruction / n_images

    model, x = small_model(), batch(64)
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "train": {"lr": 1e-2}})
    opt = make_optimizer(cfg, model)
    objective = ReconstructionOnly()
    first, _ = train_epoch(make_step(model, objective), objective, opt, x, 16)
    for _ in range(30):
        last, steps = train_epoch(make_step(model, objective), objective, opt, x, 16)
    assert steps == 4 and last["reconstruction"] > first["reconstruction"]  # the reconstruction term rose
    assert math.isfinite(float(last["elbo"]))
