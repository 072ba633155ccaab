import math

import pytest
import torch

import importlib

evaluate_mod = importlib.import_module("vaekit.evaluate")
from vaekit.bounds import StreamingLogMeanExp, bits_per_dim, elbo, iwae_bound
from vaekit.config import ModelConfig
from vaekit.errors import VaekitError
from vaekit.evaluate import elbo_terms, evaluate
from vaekit.models import build_model


def tiny_model(latent=2, hidden=(16,), shape=(1, 3, 4), seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(latent_dim=latent, hidden=hidden), shape)


def binary_data(n=64, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, d, generator=g), generator=g)


def test_iwae_with_one_sample_is_the_elbo():
    log_w = torch.randn(1, 10)
    torch.testing.assert_close(iwae_bound(log_w), elbo(log_w))


def test_iwae_k1_equals_the_elbo_in_expectation():
    model, x = tiny_model(), binary_data()
    with torch.no_grad():
        reps = torch.stack([iwae_bound(model.log_weights(x, 1)[0]) for _ in range(3000)]).mean(0)  # [B]
        analytic = model(x, n_samples=3000).elbo  # analytic KL, MC reconstruction
    # the two estimators agree on every image to within Monte Carlo error
    assert (reps - analytic).abs().max() < 0.15


def test_iwae_bound_rises_with_k():
    model, x = tiny_model(), binary_data(n=256)
    torch.manual_seed(1)
    with torch.no_grad():
        bounds = [iwae_bound(model.log_weights(x, k)[0]).mean().item() for k in (1, 5, 50, 500)]
    assert bounds == sorted(bounds) and bounds[-1] - bounds[0] > 0.05, bounds


def test_streaming_log_mean_exp_equals_logsumexp():
    a = torch.randn(1000, 7, dtype=torch.float64) * 30
    acc = StreamingLogMeanExp()
    for chunk in a.split(97):
        acc.update(chunk)
    torch.testing.assert_close(acc.result(), torch.logsumexp(a, 0) - math.log(1000))


def test_iwae_estimate_converges_to_exact_log_likelihood():
    """With a 1-D latent, log p(x) = log int p(x|z) p(z) dz by quadrature; IWAE must approach it."""
    model, x = tiny_model(latent=1, hidden=(8,), shape=(1, 1, 5), seed=3), binary_data(n=8, d=5, seed=3)
    with torch.no_grad():
        z = torch.linspace(-12, 12, 24001).unsqueeze(-1)  # [G, 1]
        dz = (z[1] - z[0]).item()
        log_joint = model.decode(z.unsqueeze(1)).log_prob(x) + model.prior().log_prob(z.unsqueeze(1))  # [G, B]
        exact = torch.logsumexp(log_joint, 0) + math.log(dz)
        res = evaluate(model, x, iw_samples=20000, batch_size=4)
        elbo_ = model(x, n_samples=20000).elbo
    assert res["nll"] == pytest.approx(-exact.mean().item(), abs=0.01)
    assert (elbo_ <= exact + 1e-3).all()  # the ELBO is a lower bound


def test_evaluate_is_the_same_when_chunked(monkeypatch):
    model, x = tiny_model(), binary_data(n=30)
    full = evaluate(model, x, iw_samples=64, batch_size=30)
    monkeypatch.setattr(evaluate_mod, "MAX_ELEMENTS", 12 * 10 * 7)  # chunks of 7 samples, batches of 10
    chunked = evaluate_mod.evaluate(model, x, iw_samples=64, batch_size=10)
    assert chunked["nll"] == pytest.approx(full["nll"], abs=0.3)  # different draws, same quantity
    assert chunked["n_images"] == 30 and chunked["iw_samples"] == 64
    assert chunked["nll"] <= -chunked["elbo"] + 0.5
    assert chunked["bits_per_dim"] == pytest.approx(chunked["nll"] / (12 * math.log(2)))


def test_evaluation_chunks_are_sized_by_device():
    # the CPU keeps its chunks in cache; a GPU needs large ones to fill it (docs/benchmarks.md, "GPU")
    assert evaluate_mod.chunk_samples(torch.device("cpu"), 5000, 100, 784) == 26
    assert evaluate_mod.chunk_samples(torch.device("cuda"), 5000, 100, 784) == 855
    assert evaluate_mod.chunk_samples(torch.device("cuda"), 100, 100, 784) == 100  # never more than K
    assert evaluate_mod.chunk_samples(torch.device("cpu"), 5000, 100, 10**6) == 1  # never fewer than one


def test_evaluate_is_deterministic_and_restores_the_rng():
    model, x = tiny_model(), binary_data(n=10)
    state = torch.random.get_rng_state()
    a, b = evaluate(model, x, iw_samples=20), evaluate(model, x, iw_samples=20)
    assert a == b
    assert torch.equal(state, torch.random.get_rng_state())


def test_evaluate_rejects_bad_k():
    with pytest.raises(VaekitError, match="iw_samples"):
        evaluate(tiny_model(), binary_data(), iw_samples=0)


def test_elbo_terms_add_up():
    t = elbo_terms(tiny_model(), binary_data(), batch_size=7)
    assert t["elbo"] == pytest.approx(t["reconstruction"] - t["kl"])
    assert t["kl"] >= 0


def test_bits_per_dim():
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
