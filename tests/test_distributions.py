import math

import torch
from torch.distributions import Bernoulli as TBernoulli
from torch.distributions import Independent, Normal

from vaekit.models.distributions import Bernoulli, DiagonalNormal, FixedGaussian, StandardNormal


def test_diagonal_normal_log_prob_and_entropy_match_torch():
    mu, lv = torch.randn(5, 3), torch.randn(5, 3)
    z = torch.randn(4, 5, 3)
    ref = Independent(Normal(mu, (0.5 * lv).exp()), 1)
    q = DiagonalNormal(mu, lv)
    torch.testing.assert_close(q.log_prob(z), ref.log_prob(z))
    torch.testing.assert_close(q.entropy(), ref.entropy())
    torch.testing.assert_close(StandardNormal(3).log_prob(z), Independent(Normal(torch.zeros(3), 1.0), 1).log_prob(z))


def test_reparameterised_samples_have_the_right_moments():
    torch.manual_seed(1)
    mu, lv = torch.tensor([1.5, -2.0, 0.0]), torch.tensor([0.0, 1.0, -2.0])
    z = DiagonalNormal(mu, lv).rsample((400_000,))
    assert z.shape == (400_000, 3)
    torch.testing.assert_close(z.mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), lv.exp(), atol=0.03, rtol=0.01)


def test_reparameterisation_passes_gradients():
    mu = torch.zeros(2, requires_grad=True)
    lv = torch.zeros(2, requires_grad=True)
    z = DiagonalNormal(mu, lv).rsample((1000,))
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((2,), 1000.0))  # dz/dmu = 1
    assert lv.grad is not None and torch.isfinite(lv.grad).all()


def test_bernoulli_log_prob_matches_torch_with_and_without_broadcasting():
    logits = torch.randn(7, 10) * 5
    x = torch.bernoulli(torch.full((7, 10), 0.5))
    ref = Independent(TBernoulli(logits=logits), 1).log_prob(x)
    torch.testing.assert_close(Bernoulli(logits).log_prob(x), ref)
    k_logits = torch.randn(3, 7, 10)
    torch.testing.assert_close(Bernoulli(k_logits).log_prob(x),
                               Independent(TBernoulli(logits=k_logits), 1).log_prob(x.expand(3, 7, 10)))


def test_bernoulli_log_prob_is_stable_for_extreme_logits():
    logits = torch.tensor([[1e4, -1e4, 80.0, -80.0]])
    lp = Bernoulli(logits).log_prob(torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    assert torch.isfinite(lp).all() and lp.item() > -1e-6


def test_fixed_gaussian_keeps_its_normalising_constant():
    mean, x = torch.randn(4, 6), torch.randn(4, 6)
    for sigma in (0.1, 1.0, 2.5):
        ref = Independent(Normal(mean, sigma), 1).log_prob(x)
        torch.testing.assert_close(FixedGaussian(mean, sigma).log_prob(x), ref)
    # sigma = 1: the tutorial's l2_loss plus the constant D/2 log(2 pi)
    l2 = 0.5 * (x - mean).pow(2).sum(1)
    torch.testing.assert_close(-FixedGaussian(mean, 1.0).log_prob(x), l2 + 3 * math.log(2 * math.pi))


def test_bernoulli_log_prob_of_k_samples_per_image_matches_the_elementwise_form():
    from vaekit.models.distributions import Bernoulli

    torch.manual_seed(0)
    logits = (3 * torch.randn(5, 4, 30, dtype=torch.float64)).requires_grad_()
    x = torch.bernoulli(torch.full((4, 30), 0.4, dtype=torch.float64))
    fast = Bernoulli(logits).log_prob(x)  # [K, B, D] against [B, D]: the batched-product path
    slow = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
    torch.testing.assert_close(fast, slow)
    g_fast, = torch.autograd.grad(fast.sum(), logits)
    g_slow, = torch.autograd.grad(slow.sum(), logits)
    torch.testing.assert_close(g_fast, g_slow)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the product stays float32 under autocast
        under = Bernoulli(logits.detach().float()).log_prob(x.float())
    torch.testing.assert_close(under.double(), slow.detach(), atol=1e-3, rtol=1e-5)
