"""The disentanglement metrics on codes whose answer is known: a perfect code, a rotated one, noise."""

import numpy as np
import pytest

from vaekit import disentangle as dz

N = 3000
DISCRETE = (True, False, False)


def _factors(rng):
    """Three independent factors: a discrete one of 4 values, two uniform ones."""
    return np.stack([rng.integers(0, 4, N), rng.uniform(0, 1, N), rng.uniform(0, 1, N)], axis=1).astype(float)


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    v = _factors(rng)
    perfect = np.concatenate([v, 0.01 * rng.normal(size=(N, 1))], axis=1)  # one dimension per factor, one idle
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    rotated = perfect.copy()
    rotated[:, 1], rotated[:, 2] = c * v[:, 1] - s * v[:, 2], s * v[:, 1] + c * v[:, 2]  # the two mixed evenly
    noise = rng.normal(size=(N, 4))
    return v, {"perfect": perfect, "rotated": rotated, "noise": noise}


def test_mig_is_one_for_a_perfect_code_and_falls_for_mixed_or_noise(codes):
    v, c = codes
    got = {name: dz.mig(z, v, DISCRETE) for name, z in c.items()}
    assert got["perfect"]["mig"] > 0.9
    assert got["rotated"]["per_factor"][0] > 0.9  # the factor left alone keeps its gap
    assert max(got["rotated"]["per_factor"][1:]) < 0.15  # the mixed pair: two dimensions know each equally
    assert got["noise"]["mig"] < 0.05


def test_dci_separates_perfect_rotated_and_noise(codes):
    v, c = codes
    p, r, n = (dz.dci(c[name], v, DISCRETE, trees=20) for name in ("perfect", "rotated", "noise"))
    assert p["disentanglement"] > 0.9 and p["completeness"] > 0.9 and p["informativeness"] > 0.9
    assert r["disentanglement"] < p["disentanglement"] - 0.2 and r["completeness"] < p["completeness"] - 0.2
    assert r["informativeness"] > 0.8  # mixed, not lost: the forests still predict every factor
    assert n["informativeness"] < 0.35  # chance: 1/4 for the discrete factor, R^2 0 for the others
    assert np.asarray(p["importance"]).shape == (4, 3)


def test_sap_is_high_for_a_perfect_code_and_low_otherwise(codes):
    v, c = codes
    assert dz.sap(c["perfect"], v, DISCRETE)["sap"] > 0.6
    assert max(dz.sap(c["rotated"], v, DISCRETE)["per_factor"][1:]) < 0.1
    assert dz.sap(c["noise"], v, DISCRETE)["sap"] < 0.05


def test_the_factor_vae_score_votes_for_the_held_factor():
    rng0 = np.random.default_rng(1)
    data = _factors(rng0)

    def sample(k, n, rng):  # the "images" are the factors themselves; factor k held at one drawn value
        f = _factors(rng)[:n]
        f[:, k] = f[0, k]
        return f, f

    def perfect(x):
        return np.concatenate([x, np.zeros((len(x), 1))], axis=1)  # the idle dimension is left out of the vote

    def scrambled(x):
        return np.random.default_rng(int(x.sum() * 1000) % 2**32).normal(size=(len(x), 4))

    got = dz.factor_vae_score(perfect, sample, perfect(data), 3, votes=200)
    assert got["factor_vae"] == 1.0 and got["active_dims"] == 3
    noise = dz.factor_vae_score(scrambled, sample, np.random.default_rng(2).normal(size=(N, 4)), 3, votes=200)
    assert noise["factor_vae"] < 0.6


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same N"):
        dz.mig(np.zeros((30, 3)), np.zeros((20, 2)), (False, False))
    with pytest.raises(ValueError, match="discrete flags"):
        dz.sap(np.zeros((30, 3)), np.zeros((30, 2)), (False,))
