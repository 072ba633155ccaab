"""A latent sampler fitted after training (ex-post density estimation, Ghosh et al., 2020): a Gaussian mixture
fitted by scikit-learn to the aggregate posterior q(z) = E_x q(z|x) of the training images, saved in the run
(``fitted_prior.safetensors``: plain tensors and JSON, no pickle) and used as p(z) to draw from and to score.

The model with the fitted mixture as its prior is still a latent-variable model p(x) = int p(x|z) p_fit(z) dz,
so :func:`vaekit.evaluate.evaluate` with ``prior=`` gives its honest importance-weighted NLL, beside the
trained prior's. By default the mixture is fitted to draws z ~ q(z|x) (``codes="sample"``, what the aggregate
posterior is); ``codes="mean"`` fits the posterior means, as Ghosh et al. do for their deterministic codes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import distributions as D

from .checkpoint import tensors_digest
from .data.dataset import batches
from .errors import VaekitError
from .files import atomic_write_bytes
from .rundir import FITTED_PRIOR_FILE

COVARIANCES = ("full", "diag")
CODES = ("sample", "mean")


class FittedPrior:
    """A mixture of Gaussians over the latent space, ``[K]`` weights, ``[K, L]`` means and ``[K, L, L]`` (full)
    or ``[K, L]`` (diag) covariances: ``log_prob(z)`` over the last dimension, ``sample(shape)``."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor, info: dict):
        self.weights, self.means, self.covariances, self.info = weights, means, covariances, info
        self.to("cpu")

    def to(self, device) -> "FittedPrior":
        w, m, c = (t.to(device=device, dtype=torch.float32) for t in (self.weights, self.means, self.covariances))
        if c.dim() == 3:
            comp = D.MultivariateNormal(m, scale_tril=torch.linalg.cholesky(c))
        else:
            comp = D.Independent(D.Normal(m, c.sqrt()), 1)
        self._dist = D.MixtureSameFamily(D.Categorical(probs=w), comp)
        return self

    @property
    def components(self) -> int:
        return self.weights.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @property
    def covariance(self) -> str:
        return "full" if self.covariances.dim() == 3 else "diag"

    @property
    def mean(self) -> torch.Tensor:
        return self._dist.mean

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self._dist.log_prob(z)

    def sample(self, shape=()) -> torch.Tensor:
        return self._dist.sample(torch.Size(shape))

    def describe(self) -> str:
        return f"a {self.components}-component {self.covariance}-covariance mixture fitted to the codes"


@torch.inference_mode()
def training_codes(model, data, codes: str = "sample", draws: int = 1, seed: int = 0,
                   batch_size: int = 1000) -> np.ndarray:
    """Codes of the images ``data`` (a :class:`~vaekit.data.Dataset`) for the fit ``[N * draws, L]`` (float64):
    ``draws`` samples z ~ q(z|x) per image (``codes="sample"``), or the posterior means (``"mean"``)."""
    if codes not in CODES:
        raise VaekitError(f"codes must be one of {', '.join(CODES)}, got {codes!r}")
    dev = next(iter(model.parameters()), torch.empty(0)).device
    y = data.labels if getattr(model, "conditional", False) else None
    gen = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for b in batches(data.x, y, batch_size, dev):
        q = model.encode(b.x, b.y)
        if codes == "mean":
            out.append(q.mu.double().cpu())
        else:
            eps = torch.randn((draws, *q.mu.shape), generator=gen, device=dev)
            out.append((q.mu + (0.5 * q.logvar).exp() * eps).reshape(-1, q.mu.shape[-1]).double().cpu())
    return torch.cat(out).numpy()


def fit_prior(model, data, components: int = 10, covariance: str = "full", codes: str = "sample",
              draws: int = 1, seed: int = 0, max_iter: int = 200) -> FittedPrior:
    """Fit a ``components``-component Gaussian mixture (scikit-learn, EM from k-means++) to the codes of ``data``
    (the training split, as the model was trained on it). Returns the :class:`FittedPrior`; its ``info`` says
    how it was fitted, with the mean log-density of the codes it was fitted to."""
    from sklearn.mixture import GaussianMixture

    if not isinstance(components, int) or components < 1:
        raise VaekitError(f"--components must be a whole number >= 1, got {components!r}")
    if covariance not in COVARIANCES:
        raise VaekitError(f"--covariance must be one of {', '.join(COVARIANCES)}, got {covariance!r}")
    if not isinstance(draws, int) or draws < 1:
        raise VaekitError(f"--draws must be a whole number >= 1, got {draws!r}")
    was_training = model.training
    model.eval()
    try:
        z = training_codes(model, data, codes, draws, seed)
    finally:
        model.train(was_training)
    if len(z) < components:
        raise VaekitError(f"{components} components need at least as many codes; the data give {len(z)} "
                          "(lower --components)")
    t0 = time.perf_counter()
    gm = GaussianMixture(components, covariance_type=covariance, random_state=seed, max_iter=max_iter,
                         reg_covar=1e-6, init_params="k-means++").fit(z)
    info = {"components": components, "covariance": covariance, "codes": codes, "draws": draws, "seed": seed,
            "n_codes": int(len(z)), "data": f"{data.name} ({data.split})", "converged": bool(gm.converged_),
            "iterations": int(gm.n_iter_), "mean_log_density": float(gm.score(z)),
            "seconds": round(time.perf_counter() - t0, 2), "model_digest": weights_digest(model)}
    return FittedPrior(torch.from_numpy(gm.weights_), torch.from_numpy(gm.means_),
                       torch.from_numpy(gm.covariances_), info)


def weights_digest(model) -> str:
    """The digest of the model's weights the mixture was fitted to (a mixture fitted to other weights is refused)."""
    return tensors_digest(model.state_dict())


def save_fitted_prior(prior: FittedPrior, run_dir: str | Path) -> Path:
    """Write the mixture into the run directory (safetensors, atomically; its ``info`` as JSON metadata)."""
    path = Path(run_dir) / FITTED_PRIOR_FILE
    tensors = {"weights": prior.weights.float().contiguous(), "means": prior.means.float().contiguous(),
               "covariances": prior.covariances.float().contiguous()}
    atomic_write_bytes(path, save(tensors, metadata={"vaekit": json.dumps(prior.info)}))
    return path


def load_fitted_prior(run_dir: str | Path, model=None) -> FittedPrior:
    """The mixture ``vaekit fit-prior`` saved in a run directory, checked against ``model`` (its latent size and
    the weights it was fitted to); one line saying how to make it when absent or stale."""
    path = Path(run_dir) / FITTED_PRIOR_FILE
    if not path.is_file():
        raise VaekitError(f"'{run_dir}' has no fitted prior ({FITTED_PRIOR_FILE}); fit one first: "
                          f"vaekit fit-prior {run_dir} --components 10")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {}).get("vaekit", "{}"))
        prior = FittedPrior(tensors["weights"], tensors["means"], tensors["covariances"], info)
    except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as e:
        raise VaekitError(f"'{path}' is not a fitted prior vaekit can read ({e}); fit it again: "
                          f"vaekit fit-prior {run_dir}") from None
    if model is not None and prior.latent_dim != model.latent_dim:
        raise VaekitError(f"'{path}' is over {prior.latent_dim} latent dimensions but the model has "
                          f"{model.latent_dim}; fit it again: vaekit fit-prior {run_dir}")
    if model is not None and info.get("model_digest") not in (None, weights_digest(model)):
        raise VaekitError(f"'{path}' was fitted to other weights than these (another checkpoint, or the run "
                          f"trained on since); fit it again: vaekit fit-prior {run_dir}")
    if not math.isclose(float(prior.weights.sum()), 1.0, abs_tol=1e-3):
        raise VaekitError(f"'{path}': its mixture weights do not sum to 1; fit it again: vaekit fit-prior {run_dir}")
    return prior


__all__ = ["CODES", "COVARIANCES", "FittedPrior", "fit_prior", "load_fitted_prior", "save_fitted_prior",
           "training_codes"]
