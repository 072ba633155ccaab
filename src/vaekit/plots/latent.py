"""Figures of the latent space itself: where the encoder puts the images, and which
dimensions it uses."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.dataset import batches
from ..errors import unknown_name

PROJECTIONS = ("pca", "tsne")
# one colour per label, the same in every figure (matplotlib's tab10)
LABEL_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


@torch.no_grad()
def encode_means(model, x: torch.Tensor, batch_size: int = 1000, y: torch.Tensor | None = None) -> torch.Tensor:
    """Posterior means E_q[z|x] ``[N, L]`` (E_q[z|x, y] for a conditional model, given the labels ``y``)."""
    y = y if getattr(model, "conditional", False) else None
    return torch.cat([model.latent_code(b.x, b.y) for b in batches(x, y, batch_size)]).cpu()


def project_2d(z: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """A 2-D view of codes ``[N, L]``: the codes themselves for L <= 2, else PCA or t-SNE."""
    if z.shape[1] == 1:
        return np.stack([z[:, 0], np.zeros(len(z))], 1), ("z[0]", "(none)")
    if z.shape[1] == 2 or len(z) < 3:  # two dimensions, or too few points to project: the first two as they are
        return z[:, :2], ("z[0]", "z[1]")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(z)
        ev = pca.explained_variance_ratio_
        return pca.transform(z), (f"PC 1 ({ev[0]:.0%} of variance)", f"PC 2 ({ev[1]:.0%})")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(z) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z), \
            ("t-SNE 1", "t-SNE 2")
    raise unknown_name("projection", method, PROJECTIONS)


def scatter_figure(model, x: torch.Tensor, labels: torch.Tensor | None = None, projection: str = "pca",
                   class_names: list[str] | None = None, title_note: str = "") -> Figure:
    """Posterior means of the images coloured by label, with a legend."""
    z = encode_means(model, x, y=labels).numpy()
    xy, (xl, yl) = project_2d(z, projection)
    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.subplots()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.6, color="#1f77b4", linewidths=0)
        note = "no labels in this data set"
    else:
        lab = labels.cpu().numpy()
        for k in np.unique(lab):
            sel = lab == k
            name = class_names[k] if class_names and k < len(class_names) else str(k)
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.75, linewidths=0,
                       color=LABEL_COLOURS[int(k) % len(LABEL_COLOURS)], label=name)
        ax.legend(title="label", markerscale=2.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        note = ""
    how = "" if z.shape[1] <= 2 else f", {projection.upper() if projection == 'pca' else 't-SNE'} of {z.shape[1]}-D codes"
    ax.set_title(f"posterior means of {len(z)} images{how}" + (f" ({note})" if note else "")
                 + (f"\n{title_note}" if title_note else ""))
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.grid(alpha=0.25)
    return fig


def kl_figure(kl_per_dim: torch.Tensor, activity: torch.Tensor | None = None, threshold: float = 0.01) -> Figure:
    """Mean KL(q(z_i|x) || p(z_i)) per latent dimension; active units highlighted."""
    kl = kl_per_dim.cpu().numpy()
    dims = np.arange(len(kl))
    active = (activity.cpu().numpy() > threshold) if activity is not None else kl > threshold
    fig = Figure(figsize=(max(6.0, 0.28 * len(kl) + 2), 4))
    ax = fig.subplots()
    ax.bar(dims[active], kl[active], color="#1f77b4", label=f"active ({active.sum()})")
    if (~active).any():
        ax.bar(dims[~active], kl[~active], color="#bbbbbb", label=f"inactive ({(~active).sum()})")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("mean KL (nats)")
    crit = "Var_x E[z_i|x] > 0.01" if activity is not None else "KL > 0.01 nats"
    ax.set_title(f"KL per latent dimension: {active.sum()} of {len(kl)} active\n"
                 f"(active: {crit}); total {kl.sum():.2f} nats per image")
    if len(kl) <= 40:
        ax.set_xticks(dims)
    ax.grid(axis="y", alpha=0.3)
    return fig
