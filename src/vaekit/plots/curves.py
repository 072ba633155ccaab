"""Training curves from ``metrics.jsonl``."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

TERMS = ("E_q[log p(x|z)]", "KL(q(z|x) || p(z))")  # the one-layer model's; a model names its own (terms_text)


def curves_figure(history: list[dict[str, Any]], title: str = "", terms: tuple[str, str] = TERMS) -> Figure:
    """ELBO, reconstruction term and KL per epoch, train and valid, side by side; ``terms`` names the last two
    panels' quantities as the model defines them (the hvae's are over both layers)."""
    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    epochs = [h["epoch"] for h in history]
    panels = (("elbo", "ELBO (nats, higher is better)"), ("reconstruction", f"reconstruction {terms[0]} (nats)"),
              ("kl", f"{terms[1]} (nats)"))
    for ax, (key, label) in zip(axes, panels):
        for split, style in (("train", dict(color="#1f77b4")), ("valid", dict(color="#d62728"))):
            ys = [h.get(f"{split}_{key}") for h in history]
            ax.plot(epochs, ys, marker="o" if len(epochs) < 30 else None, markersize=3, label=split, **style)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    return fig
