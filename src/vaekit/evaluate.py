"""Evaluation: the ELBO and its terms, and the importance-weighted estimate of log p(x).

All numbers are per-image averages in nats with every constant kept, so they
compare with the literature; ``nll`` is ``-log p(x)`` estimated by the IWAE bound
with ``iw_samples`` samples (Burda et al., 2016), and ``bits_per_dim`` is the same
number divided by ``D log 2``.

Memory stays bounded whatever K and N: images are processed in batches and the
K samples of each batch in chunks, combined by a streaming log-mean-exp.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm.auto import tqdm

from .bounds import StreamingLogMeanExp, bits_per_dim
from .data.dataset import Dataset, batches
from .errors import VaekitError
from .limits import check_decoder_outputs, check_iw_samples
from .objectives import ELBO

# decoder outputs held at once: chunk_samples * batch_images * D <= this. On a CPU 2^21 (8 MB in
# float32: small enough to stay in cache; it ran about twice as fast as 2^25 on a 2-core CPU).
# On a GPU the chunks must be large for its kernels to fill it: 2^26 (256 MB of outputs, a few
# times that at the peak; docs/benchmarks.md, "Evaluation", gives the sizes measured on an H100).
MAX_ELEMENTS = 1 << 21
MAX_ELEMENTS_GPU = 1 << 26


def chunk_samples(device: torch.device, iw_samples: int, batch_size: int, d: int) -> int:
    """How many of the K samples of a batch of images go through the decoder at once."""
    limit = MAX_ELEMENTS if device.type == "cpu" else MAX_ELEMENTS_GPU
    return max(1, min(iw_samples, limit // (batch_size * d)))


def _device(model) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


@torch.inference_mode()
def elbo_sums(model, x: torch.Tensor, batch_size: int = 1000, n_samples: int = 1,
              y: torch.Tensor | None = None) -> torch.Tensor:
    """Summed ELBO, reconstruction term and KL over the images ``x`` (labels ``y`` for a conditional
    model): float64 ``[3]`` on the CPU."""
    was_training = model.training
    model.eval()
    dev = _device(model)
    totals = torch.zeros(3, dtype=torch.float64)
    objective = ELBO(n_samples=n_samples)
    for b in batches(x, y, batch_size, dev):
        t = objective.terms(model, b.x, b.y)
        totals += torch.stack([t.elbo, t.reconstruction, t.kl]).cpu().double()
    model.train(was_training)
    return totals


def elbo_terms(model, x: torch.Tensor, batch_size: int = 1000, n_samples: int = 1,
               y: torch.Tensor | None = None) -> dict[str, float]:
    """Mean ELBO, reconstruction term and KL over the images ``x [N, D]`` (labels ``y``: a conditional model's)."""
    elbo, rec, kl = (elbo_sums(model, x, batch_size, n_samples, y) / x.shape[0]).tolist()
    return {"elbo": elbo, "reconstruction": rec, "kl": kl}


@torch.inference_mode()
def _nll_per_image(model, x: torch.Tensor, iw_samples: int, batch_size: int, bar,
                   y: torch.Tensor | None = None, prior=None) -> dict[str, torch.Tensor]:
    """Per image (float64 ``[N]`` on the CPU): ``nll``, -log p(x) (or -log p(x|y)) estimated with K samples, the
    ``reconstruction`` term averaged over them and the ``kl`` (closed form, or one Monte Carlo sample). ``prior``:
    another p(z) to score the model with (a fitted one), else the model's own."""
    n, d = x.shape[0], x[0].numel()
    dev = _device(model)
    chunk = chunk_samples(dev, iw_samples, batch_size, d)
    acc_dtype = torch.float32 if dev.type == "mps" else torch.float64  # MPS has no float64
    out = {k: torch.empty(n, dtype=torch.float64) for k in ("nll", "reconstruction", "kl")}
    i = 0
    for xb, yb in batches(x, y, batch_size, dev):
        q = model.encode(xb, yb)
        # once per batch: the VampPrior runs the encoder on its pseudo-inputs
        p = prior if prior is not None else model.prior_given(yb)
        kl = model.kl_estimate(xb, q, y=yb, prior=p)
        acc = StreamingLogMeanExp()
        rec_b = torch.zeros(xb.shape[0], dtype=acc_dtype, device=dev)  # on the device: no wait per chunk
        for k in range(0, iw_samples, chunk):
            log_w, log_px_z = model.log_weights(xb, min(chunk, iw_samples - k), q=q, y=yb, prior=p)
            acc.update(log_w.to(acc_dtype))
            rec_b += log_px_z.to(acc_dtype).sum(0)
        rows = slice(i, i + xb.shape[0])
        out["nll"][rows] = -acc.result().cpu().double()
        out["reconstruction"][rows] = rec_b.cpu().double() / iw_samples
        out["kl"][rows] = kl.cpu().double()
        bar.update(xb.shape[0])
        i = rows.stop
    return out


def _check_inputs(model, n: int, d: int, iw_samples: int, batch_size: int, y):
    """Refuse what cannot be evaluated, before any work; the labels a conditional model needs (else None)."""
    if not isinstance(iw_samples, int) or iw_samples < 1:
        raise VaekitError(f"iw_samples (K) must be a whole number >= 1, got {iw_samples!r}")
    if batch_size < 1:
        raise VaekitError(f"batch_size must be >= 1, got {batch_size}")
    if n == 0:
        raise VaekitError("nothing to evaluate: the data holds no images")
    check_iw_samples(iw_samples)
    # at least one sample of each image of a batch goes through the decoder at once
    check_decoder_outputs(min(batch_size, n), 1, d * model.decoder.likelihood.params_per_pixel, "--batch-size")
    if not getattr(model, "conditional", False):
        return None
    if y is None:
        raise VaekitError("this model is conditioned on labels (a cvae): pass the images' labels, y=")
    from .models.cvae import check_labels

    check_labels(y, n, model.classes)
    return y


def _unpack(model, data, y, dequantized_levels):
    """Images, labels and dequantised levels of ``data``: a :class:`Dataset` says them itself (labels only for a
    model conditioned on them), a tensor comes with what the caller passed."""
    if not isinstance(data, Dataset):
        return data, y, dequantized_levels
    if dequantized_levels is None and data.dequantized:
        dequantized_levels = data.levels
    return data.x, data.labels if y is None and getattr(model, "conditional", False) else y, dequantized_levels


@torch.inference_mode()
def evaluate(model, x: torch.Tensor | Dataset, iw_samples: int = 1000, batch_size: int = 100,
             seed: int = 0, progress: bool = False, context=None,
             dequantized_levels: int | None = None, y: torch.Tensor | None = None, prior=None,
             per_image: bool = False) -> dict[str, Any]:
    """ELBO terms and the importance-weighted NLL estimate over images ``x [N, D]``, or over a
    :class:`~vaekit.data.Dataset` (a split as :func:`vaekit.runs.load_split` gives it), which says itself
    whether its pixels are dequantised (``dequantized_levels``) and which labels a conditional model needs.

    ``y``: the labels, which a conditional model (the CVAE) needs; its figures are then of
    log p(x | y), and ``conditional`` in the result says so.

    Returns a dict with ``elbo``, ``reconstruction``, ``kl`` (nats per image; ``kl_form`` says whether
    in closed form or a one-sample Monte Carlo estimate per image, as for the mixture priors),
    ``nll`` and ``nll_stderr`` (standard error over images), ``bits_per_dim``,
    ``iw_samples`` and ``n_images``. The images go to the model's device batch by batch.
    ``per_image=True`` adds ``per_image``: the same figures for every image, float64 arrays ``[N]`` in the
    order of ``x`` (``nll``, ``elbo``, ``reconstruction``, ``kl``, ``bits_per_dim``).

    ``prior``: score the model with another p(z) than its own (a distribution with ``log_prob`` and
    ``sample``, such as :func:`vaekit.fitted.load_fitted_prior`'s): the same decoder and encoder, so the
    NLL is that of the latent-variable model with this prior, still an honest bound.

    ``dequantized_levels``: ``x`` holds ``k``-level data dequantised into [0, 1] and the model is a
    density; ``nll`` is then that density's, and ``bits_per_dim`` the standard figure for the discrete
    data, (nll + D log k) / (D log 2), from the bound log P(x) >= log p(x + u) - D log k.

    ``context`` (a :class:`vaekit.distributed.Context` of several processes): each
    rank evaluates its contiguous share of the images, rank r with seed ``seed + r``
    (rank 0's share is seeded as a single process would seed the whole), and every rank
    returns the result over all images.
    """
    x, y, dequantized_levels = _unpack(model, x, y, dequantized_levels)
    n, d = x.shape[0], x[0].numel() if x.shape[0] else 0
    y = _check_inputs(model, n, d, iw_samples, batch_size, y)
    per = _per_image(model, x, y, iw_samples, batch_size, seed, progress, context, prior)
    offset = d * math.log(dequantized_levels) if dequantized_levels else 0.0
    mean_nll = float(per["nll"].mean())
    rec, kl = float(per["reconstruction"].sum()) / n, float(per["kl"].sum()) / n
    result = {
        "elbo": rec - kl,
        "reconstruction": rec,
        "kl": kl,
        "kl_form": "Monte Carlo" if prior is not None else getattr(model, "kl_form", "closed form"),
        "conditional": y is not None,  # True: every figure is of log p(x | y), given the labels
        "nll": mean_nll,
        "nll_stderr": float(per["nll"].std() / math.sqrt(n)) if n > 1 else float("nan"),
        "bits_per_dim": bits_per_dim(mean_nll + offset, d),
        "dequantized_levels": dequantized_levels,
        "iw_samples": iw_samples,
        "n_images": n,
    }
    if per_image:
        nll = per["nll"].numpy()
        result["per_image"] = {"nll": nll, "elbo": (per["reconstruction"] - per["kl"]).numpy(),
                               "reconstruction": per["reconstruction"].numpy(), "kl": per["kl"].numpy(),
                               "bits_per_dim": (nll + offset) / (d * math.log(2))}
    return result


def _per_image(model, x, y, iw_samples, batch_size, seed, progress, context, prior) -> dict[str, torch.Tensor]:
    """:func:`_nll_per_image` over all images, seeded, in eval mode (the random state and mode restored after);
    with several processes each rank takes its share and every rank gets all images' figures."""
    distributed = context is not None and context.distributed
    rank = context.rank if distributed else 0
    if distributed:
        from .distributed import shard

        part = shard(x.shape[0], context.world_size, rank)
        x, y = x[part], (y[part] if y is not None else None)
    was_training = model.training
    model.eval()
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed + rank)
    bar = tqdm(total=x.shape[0], desc=f"evaluate (K={iw_samples})", unit="img",
               disable=None if progress and rank == 0 else True, leave=False)
    try:
        per = _nll_per_image(model, x, iw_samples, batch_size, bar, y, prior)
    finally:
        bar.close()
        torch.random.set_rng_state(gen_state)
        model.train(was_training)
    if distributed:
        parts = context.all_gather(per)
        per = {k: torch.cat([p[k] for p in parts]) for k in per}
    return per


@torch.inference_mode()
def kl_per_dimension(model, x: torch.Tensor, batch_size: int = 1000, y: torch.Tensor | None = None) -> torch.Tensor:
    """Mean KL(q(z_i|x) || p(z_i)) over the images, one value per latent dimension ``[L]``, in nats.

    Dimensions with a KL near zero carry no information about x ("inactive units").
    In closed form for a Gaussian prior, else the model's Monte Carlo estimate
    (:meth:`vaekit.VAE.kl_per_dim`).
    """
    total = torch.zeros(model.latent_dim, dtype=torch.float64)
    for b in batches(x, y, batch_size):
        total += model.kl_per_dim(model.encode(b.x, b.y), y=b.y).double().sum(0).cpu()
    return (total / x.shape[0]).float()


@torch.inference_mode()
def unit_activity(model, x: torch.Tensor, batch_size: int = 1000, y: torch.Tensor | None = None) -> torch.Tensor:
    """Activity of each latent dimension, Var_x(E_q[z_i|x]) ``[L]`` (Burda et al., 2016).

    A dimension is usually called active when this exceeds 0.01.
    """
    means = torch.cat([model.latent_code(b.x, b.y) for b in batches(x, y, batch_size)])
    return means.var(dim=0, unbiased=False)
