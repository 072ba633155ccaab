"""``vaekit explore RUN --export page.html``: the explorer page as one file that needs no Python. The encoder's and
decoder's weights are embedded (base64 float32), and the page's JavaScript runs them: linear layers, ReLU, gated
units, the label's one-hot inputs of a CVAE, and the mean of every likelihood vaekit has. The points, the plane,
the valid images shown and the prior's mixture components (N(0, I), a mixture, the VampPrior's posteriors of
its pseudo-inputs) are computed here once. MLP and gated-MLP models only: a conv network is refused in one line
that points to the server.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import torch
from torch import nn

from ..errors import VaekitError
from ..files import atomic_write_text
from ..models.distributions import DiagonalNormal
from ..models.encoders import GatedDense
from .server import page_html
from .state import Explorer, pixels_b64

EXPORT_POINTS = 1000  # valid images embedded (their pixels too: clicking one shows it)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.detach().float().contiguous().cpu().numpy().tobytes()).decode()


def _layers(net: nn.Module, what: str) -> list[dict]:
    """The layers of an MLP (``net.net``: Linear, ReLU, GatedDense, Dropout) as the page's JavaScript runs them."""
    inner = getattr(net, "net", None)
    inner = getattr(inner, "net", inner)  # a CVAE's LabelConditioned wraps the network
    if not isinstance(inner, nn.Sequential):
        raise VaekitError(f"the page cannot run this {what} (not an MLP); explore it with the server: vaekit explore RUN")
    out = []
    for layer in inner:
        if isinstance(layer, nn.Linear):
            out.append({"op": "linear", "w": _b64(layer.weight), "b": _b64(layer.bias),
                        "n_in": layer.in_features, "n_out": layer.out_features})
        elif isinstance(layer, GatedDense):
            lin = layer.linear
            out.append({"op": "glu", "w": _b64(lin.weight), "b": _b64(lin.bias), "n_in": lin.in_features,
                        "n_out": lin.out_features})
        elif isinstance(layer, nn.ReLU):
            out.append({"op": "relu"})
        elif isinstance(layer, nn.Dropout):
            continue  # nothing at evaluation
        else:
            raise VaekitError(f"the page cannot run the {what}'s {type(layer).__name__} layer; explore it with the "
                              "server: vaekit explore RUN")
    return out


def _likelihood(model) -> dict:
    lik = model.decoder.likelihood
    name = {"BernoulliLikelihood": "bernoulli", "GaussianLikelihood": "gaussian",
            "LearnedGaussianLikelihood": "gaussian-learned", "ContinuousBernoulliLikelihood": "continuous-bernoulli",
            "LogisticLikelihood": "logistic"}.get(type(lik).__name__)
    if name is None:
        raise VaekitError(f"the page cannot compute the mean of the {type(lik).__name__} likelihood; explore it with "
                          "the server: vaekit explore RUN")
    out = {"name": name}
    if name == "logistic":
        out.update(levels=lik.levels, log_scale_min=float(lik.LOG_SCALE_MIN))
    return out


def _prior(model, conditional: bool) -> dict:
    """The prior as mixture components (weights, means, log-variances), which the page samples from."""
    with torch.inference_mode():
        p = model.prior_given(torch.zeros(1, dtype=torch.long) if conditional else None)
    if isinstance(p, DiagonalNormal):
        mu, logvar, w = p.mu.reshape(1, -1), p.logvar.reshape(1, -1).expand(1, model.latent_dim), torch.ones(1)
    elif hasattr(p, "mu") and hasattr(p, "log_weights"):
        mu, logvar, w = p.mu, p.logvar, p.log_weights.softmax(-1)
    else:
        raise VaekitError(f"the page cannot sample the {type(model.prior).__name__}; explore it with the server")
    return {"weights": w.float().tolist(), "mu": mu.float().tolist(), "logvar": logvar.float().tolist()}


def export_page(run_dir: str | Path, out: str | Path, dims: tuple[int, int] | None = None) -> Path:
    """Write the self-contained explorer page of a run (MLP and gated-MLP models)."""
    out = Path(out)
    if out.is_dir() or out.suffix.lower() not in (".html", ".htm"):
        raise VaekitError(f"--export names the page to write, a .html file; got '{out}'")
    if not out.parent.exists():
        raise VaekitError(f"folder '{out.parent}' does not exist; create it or choose another --export")
    ex = Explorer(run_dir, dims=dims, max_points=EXPORT_POINTS)
    m = ex.model
    if not getattr(m, "page_exportable", True):
        raise VaekitError(f"the page cannot run this {type(m).__name__}'s chain of networks; explore it with the "
                          "server: vaekit explore RUN")
    embedded = {"encoder": {"layers": _layers(m.encoder, "encoder")},
                "decoder": {"layers": _layers(m.decoder, "decoder"), "likelihood": _likelihood(m)},
                "prior": _prior(m, ex.conditional), "info": ex.info()}
    x = ex.data.x
    embedded["images"] = pixels_b64(x.float() / 255 if x.dtype == torch.uint8 else x)
    text = json.dumps(embedded).replace("</", "<\\/")  # never ends the script element early
    page = page_html().replace('<script id="embedded" type="application/json">null</script>',
                               f'<script id="embedded" type="application/json">{text}</script>')
    atomic_write_text(out, page)
    return out


__all__ = ["EXPORT_POINTS", "export_page"]
