"""How well a code separates the factors that made the data: MIG, DCI, SAP and the FactorVAE score.

Each metric is written from its paper, on a code ``[N, D]`` (posterior means) and the factors that drew the
images ``[N, K]``, with the factors declared discrete or continuous (:class:`vaekit.data.factors.Factors`):

- **MIG**, the mutual information gap (Chen, Li, Grosse & Duvenaud, NeurIPS 2018): for each factor, the gap
  between the two code dimensions that know most about it, I(z_j; v_k), over the factor's entropy H(v_k);
  averaged over factors. The informations are estimated from histograms of the posterior means (20 equal-width
  bins per dimension; continuous factors binned the same way), as Locatello et al. (ICML 2019) compute it.
- **DCI** (Eastwood & Williams, ICLR 2018): a random forest per factor predicts it from the code; its feature
  importances form the matrix R[j, k]. *Disentanglement*: 1 - the entropy (base K) of each dimension's
  importances over the factors, weighted by the dimension's share of all importance. *Completeness*: 1 - the
  entropy (base D) of each factor's importances over the dimensions, averaged. *Informativeness*: the held-out
  score of the forests (accuracy for a discrete factor, R^2 clipped to [0, 1] for a continuous one), averaged.
- **SAP**, the separated attribute predictability (Kumar, Sattigeri & Balakrishnan, ICLR 2018): a score per
  dimension and factor -- for a continuous factor the R^2 of a linear fit on that one dimension (its squared
  correlation), for a discrete one the held-out accuracy of a depth-limited tree on it -- and, per factor, the
  gap between the two best dimensions; averaged.
- **The FactorVAE score** (Kim & Mnih, ICML 2018): draw a batch with one factor held at one value, the others
  free; divide the codes by each dimension's spread over the data; the dimension of least variance votes for
  the held factor. A majority-vote classifier (dimension -> factor) is fitted on training votes and scored on
  held-out ones. It needs new images with a factor held, so it takes the data set's sampler and an encoder.

All are in [0, 1], 1 the best; dimensions whose posterior means barely vary over the data (standard deviation
under ``inactive`` = 0.05, the collapsed ones) are left out of the FactorVAE vote, as its paper does.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .data.factors import Factors

BINS = 20


def _checked(codes, factors, discrete) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes [N, D] and factors [N, K] of the same N, got {codes.shape} and {factors.shape}")
    if len(discrete) != factors.shape[1]:
        raise ValueError(f"{factors.shape[1]} factors but {len(discrete)} discrete flags")
    if codes.shape[1] < 2 or factors.shape[1] < 1 or len(codes) < 20:
        raise ValueError(f"need at least 2 code dimensions and 20 images, got {codes.shape}")
    return codes, factors


def discretise(v: np.ndarray, discrete: bool, bins: int = BINS) -> np.ndarray:
    """Integer labels of ``v``: its distinct values if discrete, else ``bins`` equal-width bins."""
    if discrete:
        return np.unique(v, return_inverse=True)[1]
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return np.zeros(len(v), dtype=np.int64)
    return np.minimum(((v - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import mutual_info_score

    return float(mutual_info_score(a, b))  # nats, from the contingency table


def mig(codes, factors, discrete, bins: int = BINS) -> dict[str, object]:
    """The mutual information gap: ``{"mig": mean, "per_factor": [...]}``."""
    codes, factors = _checked(codes, factors, discrete)
    zs = [discretise(codes[:, j], False, bins) for j in range(codes.shape[1])]
    gaps = []
    for k in range(factors.shape[1]):
        v = discretise(factors[:, k], discrete[k], bins)
        h = _mutual_info(v, v)
        if h <= 0:
            gaps.append(0.0)  # a factor that never varies: nothing to find
            continue
        top = sorted((_mutual_info(v, z) for z in zs), reverse=True)
        gaps.append((top[0] - top[1]) / h)
    return {"mig": float(np.mean(gaps)), "per_factor": gaps}


def _split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * train_fraction))
    return order[:cut], order[cut:]


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of ``p`` (rows sum to 1), in base ``base``."""
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=1) / np.log(base)


def dci(codes, factors, discrete, train_fraction: float = 0.8, seed: int = 0, trees: int = 50) -> dict[str, object]:
    """Disentanglement, completeness and informativeness, with the importance matrix ``R`` [D, K]."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    codes, factors = _checked(codes, factors, discrete)
    d, k = codes.shape[1], factors.shape[1]
    tr, te = _split(len(codes), train_fraction, seed)
    r, info = np.zeros((d, k)), []
    for f in range(k):
        cls = RandomForestClassifier if discrete[f] else RandomForestRegressor
        forest = cls(n_estimators=trees, max_depth=10, min_samples_leaf=5, random_state=seed, n_jobs=1)
        forest.fit(codes[tr], factors[tr, f])
        r[:, f] = forest.feature_importances_
        info.append(max(0.0, float(forest.score(codes[te], factors[te, f]))))  # accuracy, or R^2
    used = r.sum(axis=1) > 0
    if k > 1 and used.any():
        p_code = r[used] / r[used].sum(axis=1, keepdims=True)
        weight = r[used].sum(axis=1) / r.sum()
        disentanglement = float((weight * (1 - _entropy_rows(p_code, k))).sum())
    else:
        disentanglement = float("nan")  # one factor: nothing to be disentangled from
    p_factor = (r / np.maximum(r.sum(axis=0, keepdims=True), 1e-12)).T
    completeness = float(np.mean(1 - _entropy_rows(p_factor, d)))
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": float(np.mean(info)), "per_factor_informativeness": info,
            "importance": r.tolist()}


def sap(codes, factors, discrete, train_fraction: float = 0.8, seed: int = 0) -> dict[str, object]:
    """The separated attribute predictability: ``{"sap": mean gap, "per_factor": [...], "scores": [D][K]}``."""
    from sklearn.tree import DecisionTreeClassifier

    codes, factors = _checked(codes, factors, discrete)
    d, k = codes.shape[1], factors.shape[1]
    tr, te = _split(len(codes), train_fraction, seed)
    s = np.zeros((d, k))
    for f in range(k):
        for j in range(d):
            z, v = codes[:, j], factors[:, f]
            if discrete[f]:
                tree = DecisionTreeClassifier(max_depth=4, random_state=seed).fit(z[tr, None], v[tr])
                s[j, f] = tree.score(z[te, None], v[te])
            elif z.std() > 0 and v.std() > 0:
                s[j, f] = np.corrcoef(z, v)[0, 1] ** 2
    top = np.sort(s, axis=0)[::-1]
    gaps = (top[0] - top[1]).tolist()
    return {"sap": float(np.mean(gaps)), "per_factor": gaps, "scores": s.tolist()}


def factor_vae_score(encode: Callable[[np.ndarray], np.ndarray], sample, codes, n_factors: int,
                     votes: int = 800, batch: int = 64, seed: int = 0, inactive: float = 0.05) -> dict[str, object]:
    """Kim & Mnih's score: ``encode(images) -> codes [n, D]``; ``sample`` as :class:`Factors` declares it;
    ``codes``: the data's codes, for each dimension's spread. Half the votes train the majority classifier,
    half score it."""
    codes = np.asarray(codes, dtype=np.float64)
    scale = codes.std(axis=0)
    active = np.flatnonzero(scale > inactive)
    if len(active) == 0:
        return {"factor_vae": 0.0, "active_dims": 0, "note": "no active dimension: every vote is a guess"}
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(votes):
        f = int(rng.integers(n_factors))
        images, _held = sample(f, batch, rng)
        z = np.asarray(encode(images), dtype=np.float64)[:, active] / scale[active]
        pairs.append((int(np.argmin(z.var(axis=0))), f))
    train, test = pairs[: votes // 2], pairs[votes // 2 :]
    counts = np.zeros((len(active), n_factors), dtype=np.int64)
    for dim, f in train:
        counts[dim, f] += 1
    guess = counts.argmax(axis=1)
    accuracy = float(np.mean([guess[dim] == f for dim, f in test]))
    return {"factor_vae": accuracy, "active_dims": int(len(active))}


def scores(codes, factors: Factors, encode=None, seed: int = 0, votes: int = 800) -> dict[str, object]:
    """Every metric for ``codes`` of the images ``factors`` describes; the FactorVAE score when ``encode`` and
    the data set's sampler are there."""
    out = {"factors": list(factors.names), "discrete": list(factors.discrete), "note": factors.note,
           "mig": mig(codes, factors.values, factors.discrete),
           "dci": dci(codes, factors.values, factors.discrete, seed=seed),
           "sap": sap(codes, factors.values, factors.discrete, seed=seed)}
    if encode is not None and factors.sample is not None:
        out["factor_vae"] = factor_vae_score(encode, factors.sample, codes, len(factors.names), votes=votes,
                                             seed=seed)
    return out


def factors_of(data_name: str, split: str, side: int, dataset=None) -> Factors:
    """The factors data set ``data_name`` declares for ``split`` drawn at ``side`` pixels, in the order of
    ``dataset`` (a :class:`~vaekit.data.Dataset` of that split, perhaps filtered); refused in one line for a data
    set that declares none."""
    from .data.datasets import DATASETS
    from .errors import VaekitError

    spec = DATASETS.get(data_name)
    if spec is None or spec.factors is None:
        known = ", ".join(n for n, s in DATASETS.items() if s.factors is not None)
        raise VaekitError(f"data set '{data_name}' declares no factors, so its disentanglement cannot be measured; "
                          f"train on one whose generating factors are known ({known})")
    f = spec.factors(split, side)
    if dataset is not None:
        f = Factors(f.names, f.values[dataset.positions().numpy()], f.discrete, f.sample, f.note)
    return f


def measure(model, dataset, factors: Factors, seed: int = 0, votes: int = 800, batch_size: int = 1000):
    """Every metric for ``model``'s posterior means (the top layer of a hierarchical model) on ``dataset``, whose
    images ``factors`` describes; the FactorVAE score encodes new images drawn by the data set's sampler."""
    import torch

    from .encode import encode

    codes = encode(model, dataset, batch_size=batch_size)["mean"]
    dev = next(iter(model.parameters())).device

    @torch.no_grad()
    def encode_images(images: np.ndarray) -> np.ndarray:
        was = model.training
        model.eval()
        try:
            return model.encode(torch.as_tensor(images, device=dev)).mu.float().cpu().numpy()
        finally:
            model.train(was)

    return scores(codes, factors, encode_images, seed=seed, votes=votes)


__all__ = ["BINS", "Factors", "dci", "discretise", "factor_vae_score", "factors_of", "measure", "mig", "sap",
           "scores"]
