"""examples/quiz.py, the code behind the tutorial's quiz section: its pieces where the answer is known (each
question end to end runs in the tutorial page's test, at its small size, which checks their results)."""

import itertools
import math
import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quiz():
    return runpy.run_path(str(ROOT / "examples" / "quiz.py"), run_name="quiz")


def test_the_bernoulli_mixture_log_likelihood_is_the_sum_over_components(quiz):
    rng = np.random.default_rng(0)
    x = (rng.random((5, 4)) < 0.5).astype(float)
    w, p = np.array([0.2, 0.8]), rng.uniform(0.1, 0.9, (2, 4))
    brute = [math.log(sum(w[k] * np.prod(np.where(row == 1, p[k], 1 - p[k])) for k in range(2))) for row in x]
    assert np.allclose(quiz["bernoulli_mixture_log_lik"](x, np.log(w), p), brute)
    every = np.array(list(itertools.product([0, 1], repeat=4)), dtype=float)  # a distribution: sums to 1
    assert np.exp(quiz["bernoulli_mixture_log_lik"](every, np.log(w), p)).sum() == pytest.approx(1.0)


def test_em_finds_the_clusters_that_made_the_data(quiz):
    rng = np.random.default_rng(1)
    truth = np.array([[0.9] * 10 + [0.1] * 10, [0.1] * 10 + [0.9] * 10])
    x = (rng.random((400, 20)) < truth[rng.integers(0, 2, 400)]).astype(float)
    log_w, p = quiz["fit_bernoulli_mixture"](x, 2, steps=30)
    assert np.abs(np.sort(p[:, 0]) - [0.1, 0.9]).max() < 0.08
    one = quiz["fit_bernoulli_mixture"](x, 1, steps=5)
    ll = quiz["bernoulli_mixture_log_lik"]
    assert ll(x, log_w, p).mean() > ll(x, *one).mean() + 5  # two components explain it; one cannot
