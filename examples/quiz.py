"""The tutorial's closing quiz, answered by measurement (docs/tutorial.md, "The quiz, measured").

Each question is one function that trains what it needs on the embedded mnist-5k sample (4,000 train /
500 valid images), binarized once with a fixed sample (``binarize = "static"``: the same binary images for
every model, so their likelihoods compare), and returns what the page prints. ``size`` scales the work
(epochs, images, optimisation steps): 1.0 gives the page's figures; the tests run a small size.

1. :func:`generative_vs_discriminative`: logistic regression p(y|x) against Bayes' rule on the CVAE's
   importance-weighted log p(x|y).
2. :func:`mixtures_vs_vae`: a mixture of Bernoullis fitted by EM (and the one K-means implies) against the
   VAE, in nats per image on the same binary images.
3. :func:`inference_gaps`: log p(x) - ELBO split into the approximation gap (the best Gaussian q per image,
   optimised for that image) and the amortisation gap (the encoder's q against it), after Cremer, Li &
   Duvenaud (2018); and the importance-weighted bound as K grows.
4. :func:`smoothness`: a plain autoencoder (no KL, deterministic codes) against the VAE with the same
   networks: how far decoded images move per unit of latent distance, and how many grid points decode to
   digits a classifier cannot name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

import vaekit
from vaekit.config import RunConfig
from vaekit.evaluate import evaluate
from vaekit.runs import load_split

LOG_2PI = math.log(2 * math.pi)


def _config(epochs: int, seed: int = 0, **model) -> RunConfig:
    return RunConfig.from_dict({
        "data": {"name": "mnist-5k", "binarize": "static"},
        "model": {"latent_dim": 10, "hidden": [256], **model},
        "train": {"epochs": epochs, "batch_size": 100, "lr": 1e-3, "seed": seed},
    })


def _epochs(size: float, full: int) -> int:
    return max(1, round(full * size))


def _train(cfg: RunConfig, out) -> Any:
    return vaekit.train(cfg, out, progress=False, log=lambda m: None, force=True).model.eval()


def _binary(cfg: RunConfig, split: str, limit: int | None = None):
    ds = load_split(cfg, split)
    if limit is not None:
        ds = ds.subset(torch.arange(len(ds)) < limit)
    return ds


def _flat(ds) -> np.ndarray:
    return ds.x.reshape(len(ds), -1).numpy().astype(np.float64)


# ---- 1. generative vs discriminative ------------------------------------------------------------------------
def generative_vs_discriminative(out, size: float = 1.0, iw_samples: int = 100, seed: int = 0) -> dict[str, Any]:
    """Both classifiers' valid accuracy, and what only the generative one gives: log p(x) and samples."""
    from sklearn.linear_model import LogisticRegression

    cfg = _config(_epochs(size, 60), seed, latent_dim=2, variant={"name": "cvae"})  # z too small to hold y
    train, valid = _binary(cfg, "train"), _binary(cfg, "valid", max(20, round(500 * size)))
    logistic = LogisticRegression(max_iter=max(50, round(1000 * size)), C=0.05)
    logistic.fit(_flat(train), train.labels.numpy())
    disc = float((logistic.predict(_flat(valid)) == valid.labels.numpy()).mean())
    model = _train(cfg, out)
    classes = model.classes
    prior = np.bincount(train.labels.numpy(), minlength=classes) / len(train)
    log_px_y = np.stack([-evaluate(model, valid, iw_samples=iw_samples, seed=seed, per_image=True,
                                   y=torch.full((len(valid),), c))["per_image"]["nll"] for c in range(classes)], 1)
    joint = log_px_y + np.log(prior)  # log p(x, y) for every y
    gen = float((joint.argmax(1) == valid.labels.numpy()).mean())
    log_px = np.logaddexp.reduce(joint, axis=1)  # log p(x) = log sum_y p(x|y) p(y): what p(y|x) cannot give
    return {"discriminative_accuracy": disc, "generative_accuracy": gen, "valid_images": len(valid),
            "iw_samples": iw_samples, "mean_log_px": float(log_px.mean()), "epochs": cfg.train.epochs,
            "model": model}


# ---- 2. mixtures against the VAE ------------------------------------------------------------------------------
def bernoulli_mixture_log_lik(x: np.ndarray, log_w: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log sum_k w_k prod_d p_kd^x_d (1 - p_kd)^(1 - x_d) of each row of binary ``x`` (nats)."""
    lp, lq = np.log(p), np.log1p(-p)
    comp = x @ lp.T + (1 - x) @ lq.T + log_w  # [N, K]
    return np.logaddexp.reduce(comp, axis=1)


def fit_bernoulli_mixture(x: np.ndarray, k: int, steps: int = 100, seed: int = 0, eps: float = 1e-3,
                          start=None):
    """EM for a mixture of ``k`` Bernoulli images; ``(log weights [k], pixel probabilities [k, D])``. ``start``:
    a mixture to begin from (the K-means one, say), else random pixel probabilities. Each M-step is the
    maximum-likelihood one, its probabilities kept in [eps, 1 - eps]."""
    if start is None:
        rng = np.random.default_rng(seed)
        log_w, p = np.full(k, -math.log(k)), np.clip(0.25 + 0.5 * rng.random((k, x.shape[1])), eps, 1 - eps)
    else:
        log_w, p = start
    for _ in range(steps):
        comp = x @ np.log(p).T + (1 - x) @ np.log1p(-p).T + log_w
        r = np.exp(comp - np.logaddexp.reduce(comp, axis=1, keepdims=True))  # responsibilities [N, k]
        n_k = r.sum(0)
        keep = n_k > 1e-6  # a component that lost every image keeps its pixels
        p[keep] = np.clip((r.T @ x)[keep] / n_k[keep, None], eps, 1 - eps)
        log_w = np.log(np.maximum(n_k, 1e-12) / n_k.sum())
    return log_w, p


def kmeans_mixture(x: np.ndarray, k: int, seed: int = 0, eps: float = 1e-3):
    """The mixture K-means implies: its clusters' shares as weights, their mean images as Bernoulli pixels."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    counts = np.bincount(km.labels_, minlength=k)
    p = np.clip(np.stack([x[km.labels_ == j].mean(0) if counts[j] else np.full(x.shape[1], 0.5)
                          for j in range(k)]), eps, 1 - eps)
    return np.log(np.maximum(counts, 1) / counts.sum()), p


def mixtures_vs_vae(out, size: float = 1.0, components=(10, 50, 200), iw_samples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Valid log-likelihoods (nats per image, binary images, all constants kept) of the mixtures and the VAE."""
    cfg = _config(_epochs(size, 100), seed)
    train, valid = _binary(cfg, "train"), _binary(cfg, "valid", max(20, round(500 * size)))
    xt, xv = _flat(train), _flat(valid)
    rows = []
    for k in components:
        k = max(2, round(k * min(1.0, 4 * size)))
        hard = kmeans_mixture(xt, k, seed)
        soft = fit_bernoulli_mixture(xt, k, steps=max(5, round(100 * size)), start=(hard[0].copy(), hard[1].copy()))
        for name, (log_w, p) in ((f"K-means, k = {k}, read as a Bernoulli mixture", hard),
                                 (f"mixture of {k} Bernoullis (EM from the K-means one)", soft)):
            rows.append({"model": name, "k": k, "train": float(bernoulli_mixture_log_lik(xt, log_w, p).mean()),
                         "valid": float(bernoulli_mixture_log_lik(xv, log_w, p).mean())})
    model = _train(cfg, out)
    res = evaluate(model, valid, iw_samples=iw_samples, seed=seed)
    rows.append({"model": f"VAE, 784-256-10, {cfg.train.epochs} epochs (K = {iw_samples})", "k": None,
                 "train": None, "valid": -float(res["nll"]), "elbo": float(res["elbo"])})
    return {"rows": rows, "valid_images": len(valid), "model": model}


# ---- 3. the approximation and amortisation gaps ----------------------------------------------------------------
def _elbo(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, samples: int) -> torch.Tensor:
    """The ELBO of each image under q = N(mu, diag(e^logvar)) by ``samples`` draws ``[B]`` (differentiable)."""
    eps = torch.randn(samples, *mu.shape)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
    log_w = model.decode(z).log_prob(model.pixels(x)) + model.prior().log_prob(z) - log_q
    return log_w.mean(0)


def _iw_bound(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int, chunk: int = 500):
    """log (1/K) sum_k w_k with q = N(mu, e^logvar) ``[B]``: the importance-weighted bound (Burda et al. 2016)."""
    parts = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        eps = torch.randn(n, *mu.shape)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
        parts.append(model.decode(z).log_prob(model.pixels(x)) + model.prior().log_prob(z) - log_q)
    return torch.logsumexp(torch.cat(parts), 0) - math.log(k)


def best_gaussian(model, x: torch.Tensor, mu0: torch.Tensor, logvar0: torch.Tensor, steps: int = 500,
                  samples: int = 16, lr: float = 1e-2):
    """The Gaussian q that maximises each image's ELBO, found by Adam from the encoder's q (the decoder fixed)."""
    mu, logvar = mu0.clone().requires_grad_(True), logvar0.clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, logvar], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-_elbo(model, x, mu, logvar, samples).sum()).backward()
        opt.step()
    return mu.detach(), logvar.detach()


def inference_gaps(out, size: float = 1.0, images: int = 100, ks=(1, 10, 100, 1000, 5000),
                   seed: int = 0) -> dict[str, Any]:
    """Mean gaps over ``images`` valid images, nats: log p(x) (IW, K = max(ks), with the best q as proposal),
    the ELBO of the best q and of the encoder's q (1,000 draws each), and the IW bound with the encoder's q."""
    torch.manual_seed(seed)
    cfg = _config(_epochs(size, 100), seed)
    model = _train(cfg, out)
    for p in model.parameters():
        p.requires_grad_(False)
    valid = _binary(cfg, "valid", max(4, round(images * min(1.0, 10 * size))))
    x = valid.x
    ks = [k for k in ks if k <= max(10, round(max(ks) * size))] or [1]
    with torch.no_grad():
        q = model.encode(x)
        amortised = _elbo(model, x, q.mu, q.logvar, 1000)
        by_k = {k: float(_iw_bound(model, x, q.mu, q.logvar, k).mean()) for k in ks}
    mu, logvar = best_gaussian(model, x, q.mu, q.logvar, steps=max(10, round(500 * size)))
    with torch.no_grad():
        optimum = _elbo(model, x, mu, logvar, 1000)
        log_px = _iw_bound(model, x, mu, logvar, max(ks))
    return {"images": len(x), "epochs": cfg.train.epochs, "log_px": float(log_px.mean()),
            "elbo_best_q": float(optimum.mean()), "elbo_encoder": float(amortised.mean()),
            "approximation_gap": float((log_px - optimum).mean()),
            "amortisation_gap": float((optimum - amortised).mean()), "iw_bound_by_k": by_k, "k_max": max(ks)}


# ---- 4. why VAE results are smooth ----------------------------------------------------------------------------
def train_autoencoder(cfg: RunConfig, epochs: int, seed: int = 0):
    """The VAE's networks trained as a plain autoencoder: x -> the encoder's mean -> the decoder, maximising
    log p(x | z = mu(x)) alone (no KL, no sampling)."""
    from vaekit.models import build_model

    torch.manual_seed(seed)
    train = _binary(cfg, "train")
    model = build_model(cfg.model, train.image_shape, cfg.pixel_levels, cfg.data.classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(train), generator=gen).split(cfg.train.batch_size):
            x = train.x[rows]
            loss = -model.decode(model.encode(x).mu).log_prob(model.pixels(x)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _grid(model, lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
    """Decoded means over an n x n grid from ``lo`` to ``hi`` in two latent dimensions ``[n, n, D]``."""
    a = torch.linspace(float(lo[0]), float(hi[0]), n)
    b = torch.linspace(float(hi[1]), float(lo[1]), n)
    z = torch.stack(torch.meshgrid(b, a, indexing="ij")[::-1], -1).reshape(-1, 2)
    with torch.no_grad():
        return model.decode(z).mean.reshape(n, n, -1)


def smoothness(out, size: float = 1.0, n: int = 20, seed: int = 0, figure=None) -> dict[str, Any]:
    """Per model (the autoencoder and the VAE, 2-D latents, the same networks and epochs): the mean pixel
    change between neighbouring grid points per unit of latent distance (in units of the codes' spread), its
    largest jump against its median along interpolations, and the share of grid images that a logistic
    regression trained on real digits names with less than 50% confidence."""
    from sklearn.linear_model import LogisticRegression

    epochs = _epochs(size, 50)
    cfg = _config(epochs, seed, latent_dim=2, hidden=[256])
    ae, vae = train_autoencoder(cfg, epochs, seed), _train(cfg, out)
    train, valid = _binary(cfg, "train"), _binary(cfg, "valid", max(20, round(500 * size)))
    clf = LogisticRegression(max_iter=max(50, round(1000 * size)), C=0.05).fit(_flat(train), train.labels.numpy())
    n = max(5, round(n * min(1.0, 4 * size)))
    result, grids = {}, {}
    for name, model in (("autoencoder", ae), ("VAE", vae)):
        with torch.no_grad():
            codes = model.encode(valid.x).mu
        lo, hi = torch.quantile(codes, 0.01, 0), torch.quantile(codes, 0.99, 0)
        spread = codes.std(0)
        g = _grid(model, lo, hi, n)
        grids[name] = g
        step = ((hi - lo) / (n - 1) / spread)  # one grid step in units of the codes' spread, per dimension
        moves = torch.cat([(g[:, 1:] - g[:, :-1]).norm(dim=-1).flatten() / step[0],
                           (g[1:] - g[:-1]).norm(dim=-1).flatten() / step[1]])
        confident = clf.predict_proba(g.reshape(n * n, -1).numpy()).max(1)
        pairs = torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed))[: 2 * min(25, len(codes) // 2)]
        a, b = codes[pairs[0::2]], codes[pairs[1::2]]
        t = torch.linspace(0, 1, 32).view(-1, 1, 1)
        with torch.no_grad():
            path = model.decode((1 - t) * a + t * b).mean  # [32, P, D]
        jumps = (path[1:] - path[:-1]).norm(dim=-1)  # [31, P]
        result[name] = {"pixels_per_unit": float(moves.mean()), "largest_over_median_jump":
                        float((jumps.max(0).values / jumps.median(0).values.clamp_min(1e-9)).median()),
                        "unnamed_share": float((confident < 0.5).mean()), "grid": n}
    if figure is not None:
        _grid_figure(grids, vae.image_shape, figure)
    return {"epochs": epochs, **result}


def _grid_figure(grids: dict[str, torch.Tensor], image_shape, path) -> None:
    from matplotlib.figure import Figure

    from vaekit.plots.grids import image_grid, save_figure, show

    fig = Figure(figsize=(12, 6.4))
    for ax, (name, g) in zip(fig.subplots(1, 2), grids.items()):
        n = g.shape[0]
        show(ax, image_grid(g.reshape(n * n, -1), image_shape, nrow=n))
        ax.set_title(f"{name}: decoded grid over the codes' 1%..99% range")
        ax.axis("off")
    save_figure(fig, path)


__all__ = ["bernoulli_mixture_log_lik", "best_gaussian", "fit_bernoulli_mixture", "generative_vs_discriminative",
           "inference_gaps", "kmeans_mixture", "mixtures_vs_vae", "smoothness", "train_autoencoder"]
