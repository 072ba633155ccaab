"""``report.html``: one self-contained page per run (images embedded, no network needed)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from ..files import atomic_write_text

# (file, heading, caption) in the order the page shows them
FIGURES = [
    ("training.gif", "Training animation",
     "What the decoder draws after each snapshot; the label gives the epoch and the valid ELBO."),
    ("manifold.png", "Latent manifold",
     "Decoded images over a grid of latent values placed at quantiles of N(0, 1)."),
    ("scatter.png", "Latent space",
     "Posterior means of held-out images, one colour per label."),
    ("samples.png", "Samples", "New images: z drawn from the prior, decoded (mean of p(x|z))."),
    ("reconstructions.png", "Reconstructions", "Held-out images above their reconstructions."),
    ("interpolation.png", "Interpolation",
     "Decoded paths between the codes of two real images, along a line and along a great circle."),
    ("curves.png", "Training curves", "ELBO, reconstruction term and KL per epoch, train and valid."),
    ("kl.png", "KL per latent dimension", "Which latent dimensions carry information (active units)."),
    ("traversals.png", "Latent traversals",
     "What each latent dimension does: one row per dimension, by KL, each sweeping it over its prior quantiles."),
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td.k{text-align:left;font-weight:600}table.summary td{text-align:left}img{max-width:100%;height:auto;border:1px solid #eee}img.anim{width:440px}
.cap{color:#555;font-size:.92em}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.85em}
.muted{color:#777}
"""


def _data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def build_report(run_dir: str | Path, config: dict[str, Any], history: list[dict[str, Any]],
                 summary: dict[str, Any], figure_dir: str | Path | None = None) -> str:
    """The page as a string. ``summary`` rows are shown first (data, model, best ELBO, ...)."""
    run_dir = Path(run_dir)
    fig_dir = Path(figure_dir) if figure_dir else run_dir
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>vaekit run {html.escape(run_dir.name)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>vaekit run <code>{html.escape(run_dir.name)}</code></h1>",
             "<p class='muted'>All numbers are per-image log-likelihood terms in nats.</p>",
             "<h2>Summary</h2><table class='summary'>"]
    parts += [f"<tr><td class='k'>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in summary.items()]
    parts.append("</table>")
    for name, heading, caption in FIGURES:
        path = fig_dir / name
        parts.append(f"<h2 id='{name.split('.')[0]}'>{heading}</h2>")
        if path.is_file():
            cls = " class='anim'" if name.endswith(".gif") else ""
            parts.append(f"<p class='cap'>{caption}</p><img{cls} src='{_data_uri(path)}' alt='{heading}' "
                         f"data-file='{name}'>")
        else:
            parts.append(f"<p class='muted'>({name} was not drawn for this run)</p>")
    if history:
        keys = ["epoch", "train_elbo", "valid_elbo", "train_reconstruction", "valid_reconstruction",
                "train_kl", "valid_kl", "images_per_second"]
        parts.append("<h2 id='metrics'>Metrics per epoch</h2><table><tr>"
                     + "".join(f"<th>{k}</th>" for k in keys) + "</tr>")
        for row in history:
            parts.append("<tr>" + "".join(f"<td>{_fmt(row.get(k, ''))}</td>" for k in keys) + "</tr>")
        parts.append("</table>")
    parts.append(f"<h2 id='config'>Configuration</h2><pre>{html.escape(json.dumps(config, indent=2), quote=False)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | Path, *args, **kwargs) -> Path:
    atomic_write_text(path, build_report(*args, **kwargs))
    return Path(path)
