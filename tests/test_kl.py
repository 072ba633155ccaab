import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.errors import VaekitError
from vaekit.kl import discrete_kl, gaussian_kl, monte_carlo_kl
from vaekit.models.distributions import DiagonalNormal, StandardNormal


@pytest.mark.parametrize("n", [2, 5, 50])
@pytest.mark.parametrize("base", [None, 2, 10])
def test_discrete_kl_matches_scipy(n, base):
    rng = np.random.default_rng(n)
    p, q = rng.random(n) * 3, rng.random(n)  # unnormalised on purpose
    assert discrete_kl(p, q, base=base) == pytest.approx(scipy.stats.entropy(p, q, base=base), rel=1e-10)


def test_discrete_kl_zeros_and_inf_like_scipy():
    p, q = [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]
    assert discrete_kl(p, q) == pytest.approx(scipy.stats.entropy(p, q))  # p=0 terms vanish
    assert discrete_kl(q, p) == np.inf == scipy.stats.entropy(q, p)  # q=0 where p>0
    assert discrete_kl(p, p) == 0.0


def test_discrete_kl_axis_and_tensors():
    rng = np.random.default_rng(1)
    p, q = rng.random((4, 3)), rng.random((4, 3))
    np.testing.assert_allclose(discrete_kl(p, q), scipy.stats.entropy(p, q), rtol=1e-10)
    np.testing.assert_allclose(discrete_kl(p, q, axis=1), scipy.stats.entropy(p, q, axis=1), rtol=1e-10)
    out = discrete_kl(torch.tensor(p), torch.tensor(q))
    assert isinstance(out, torch.Tensor) and out.shape == (3,)


def test_discrete_kl_rejects_bad_input():
    with pytest.raises(VaekitError, match="negative"):
        discrete_kl([0.5, -0.1], [0.5, 0.5])
    with pytest.raises(VaekitError, match="base"):
        discrete_kl([0.5, 0.5], [0.5, 0.5], base=1)


@pytest.mark.parametrize("shape", [(3,), (7, 2), (4, 5, 10)])
def test_gaussian_kl_matches_torch(shape):
    g = torch.Generator().manual_seed(0)
    mu, lv, mu_p, lv_p = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4))
    ours = gaussian_kl(mu, lv, mu_p, lv_p)
    ref = kl_divergence(Independent(Normal(mu, (0.5 * lv).exp()), 1), Independent(Normal(mu_p, (0.5 * lv_p).exp()), 1))
    torch.testing.assert_close(ours, ref)
    assert ours.shape == shape[:-1]


def test_gaussian_kl_standard_prior_is_the_tutorial_closed_form():
    mu, lv = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    tutorial = 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, lv), tutorial)
    assert torch.all(gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 2)) == 0)


def test_monte_carlo_kl_agrees_with_analytic():
    torch.manual_seed(0)
    q = DiagonalNormal(torch.tensor([[0.5, -1.0, 0.2]]), torch.tensor([[-0.5, 0.3, 0.0]]))
    p = StandardNormal(3)
    est, se = monte_carlo_kl(q, p, n_samples=200_000, return_stderr=True)
    exact = q.kl(p)
    assert abs(float(est - exact)) < 5 * float(se)
    # works with torch.distributions too
    tq = Independent(Normal(q.mu, q.stddev), 1)
    tp = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    assert abs(float(monte_carlo_kl(tq, tp, 200_000) - exact)) < 0.02
