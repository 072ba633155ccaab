"""The model card: ``README.md`` in every run directory, so that a run can be published as it is.

Written by rank 0 at the end of training (and again by ``vaekit evaluate --record``), from the run's own
files: ``config.json`` (data, model, objective), ``metrics.jsonl`` (epochs, time, best valid ELBO) and
``card.json`` (the machine it was trained on, the evaluations recorded). Every figure in it is one the run
measured; what was not measured says so and gives the command that measures it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .checkpoint import load
from .config import RunConfig
from .files import atomic_write_text
from .models import describe
from .rundir import BEST_FILE, CARD_FACTS_FILE, CARD_FILE, CONFIG_FILE, METRICS_FILE


def cpu_name() -> str:
    """The CPU's model name and whether it computes bf16 natively (its flags as :mod:`vaekit.trainer` reads them)."""
    from .trainer import _cpu_flags

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    flags = _cpu_flags()
    kind = "AVX512-BF16" if "avx512_bf16" in flags else "AVX512" if "avx512f" in flags else \
        "AVX2" if "avx2" in flags else ""
    return f"{name}, {os.cpu_count()} cores" + (f", {kind}" if kind else "")


def machine(device: torch.device, precision: str, compiled: bool, processes: int) -> dict[str, Any]:
    """What trained the run, for its card."""
    dev = torch.device(device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name() if dev.type == "cpu" else dev.type
    return {"device": dev.type, "hardware": where, "precision": precision, "compiled": bool(compiled),
            "processes": processes, "torch": torch.__version__, "vaekit": __version__,
            "python": platform.python_version(), "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def read_facts(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CARD_FACTS_FILE
    try:
        facts = json.loads(path.read_text())
        return facts if isinstance(facts, dict) else {}
    except (OSError, ValueError):
        return {}


def record_training(run_dir: str | Path, trained_on: dict[str, Any]) -> Path:
    """Save what trained the run (keeping the evaluations recorded before) and write the card."""
    facts = read_facts(run_dir)
    facts["trained_on"] = trained_on
    atomic_write_text(Path(run_dir) / CARD_FACTS_FILE, json.dumps(facts, indent=2) + "\n")
    return write_card(run_dir)


def record_evaluation(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """Add one evaluation (``vaekit evaluate --record``) to the card: replaces an earlier one of the same split,
    checkpoint, prior and K."""
    keys = ("data", "split", "keep_classes", "checkpoint", "prior", "iw_samples")
    row = {k: result.get(k) for k in (*keys, "nll", "nll_stderr", "elbo", "reconstruction", "kl", "bits_per_dim",
                                      "n_images", "binarization", "seconds")}
    facts = read_facts(run_dir)
    rows = [r for r in facts.get("evaluations", []) if any(r.get(k) != row[k] for k in keys)]
    facts["evaluations"] = rows + [row]
    atomic_write_text(Path(run_dir) / CARD_FACTS_FILE, json.dumps(facts, indent=2) + "\n")
    return write_card(run_dir)


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        for line in (run_dir / METRICS_FILE).read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return rows


def render(run_dir: str | Path) -> str:
    """The card's Markdown, from the run's files."""
    run_dir = Path(run_dir)
    cfg = RunConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text()), source=str(run_dir / CONFIG_FILE))
    rows, facts = _metrics(run_dir), read_facts(run_dir)
    model = load(run_dir)
    best = max(rows, key=lambda r: r["valid_elbo"]) if rows else None
    lines = (_about(cfg, model, facts) + _training(cfg, rows, best, facts.get("trained_on", {}))
             + _results(cfg, run_dir, best, facts.get("evaluations", [])) + _use(cfg, run_dir, model))
    return "\n".join(lines)


def _about(cfg, model, facts) -> list[str]:
    d = cfg.data
    kept = f", classes {' '.join(map(str, d.keep_classes))} only" if d.keep_classes else ""
    channels = f"{d.image_shape[0]} channel{'s' if d.image_shape[0] > 1 else ''}"
    return [
        f"# {d.name}: a variational autoencoder trained with vaekit",
        "",
        f"A {'conditional ' if getattr(model, 'conditional', False) else ''}VAE of {d.name} images "
        f"{'x'.join(map(str, d.image_shape[1:]))} with {channels}, trained by vaekit "
        f"{facts.get('trained_on', {}).get('vaekit', __version__)}. Every figure below is one this run measured.",
        "",
        "## Data",
        "",
        f"- {cfg.describe_data()}{kept}",
        f"- images of shape {tuple(d.image_shape)} (channels, height, width), {d.levels} pixel levels as stored"
        + (" (the model sees them binary)" if cfg.pixel_levels == 2 and d.levels != 2 else "")
        + (f", {d.classes} label classes" if d.classes else ", no labels"),
        "",
        "## Model",
        "",
        f"- {describe(cfg.model, d.image_shape, d.classes, model)}",
        f"- latent dimensions: {cfg.model.latent_dim}; objective: {_objective(cfg)}",
        "",
    ]


def _training(cfg, rows, best, on) -> list[str]:
    t, lines = cfg.train, ["## Training", ""]
    if best is not None:
        seconds = rows[-1].get("elapsed_seconds", sum(r.get("epoch_seconds", 0) for r in rows))
        last = rows[-1]
        n_train = round(last["images_per_second"] * last["epoch_seconds"]) if "images_per_second" in last else None
        lines += [f"- {len(rows)} of {t.epochs} epochs in {seconds:.1f} s"
                  + (f" over {n_train:,} training images" if n_train else "") + " "
                  f"(batch {t.batch_size}, learning rate {t.lr:g}, seed {t.seed}); best valid ELBO at epoch "
                  f"{best['epoch']}, weights in `{BEST_FILE}`"]
    else:
        lines += ["- no epoch finished"]
    if on:
        lines += [f"- trained on {on['hardware']} ({on['device']}, {on['processes']} process"
                  f"{'es' if on['processes'] > 1 else ''}), precision {on['precision']}"
                  f"{', compiled' if on['compiled'] else ''}; PyTorch {on['torch']}, Python {on['python']}; "
                  f"finished {on['finished']}"]
    return lines


def _results(cfg, run_dir, best, evals) -> list[str]:
    d, lines = cfg.data, ["", "## Results", ""]
    if best is not None:
        lines += [f"- best valid ELBO {best['valid_elbo']:.2f} nats per image (reconstruction "
                  f"{best['valid_reconstruction']:.2f}, KL {best['valid_kl']:.2f}), measured during training on "
                  "the valid split"]
    for e in evals:
        prior = "" if e.get("prior") in (None, "trained") else f", with the {e['prior']} prior"
        data = f" of {e['binarization']}" if e.get("data") not in (None, d.name) else ""
        keep = e.get("keep_classes")
        keep = "" if keep == (list(d.keep_classes) if d.keep_classes else None) else \
            f", classes {' '.join(map(str, keep))}" if keep else ", all classes"
        lines += [f"- {e['split']} split{data} ({e['n_images']:,} images{keep}, checkpoint '{e['checkpoint']}'{prior}): "
                  f"NLL {e['nll']:.2f} ± {e['nll_stderr']:.2f} nats (importance-weighted, K = {e['iw_samples']:,}), "
                  f"{e['bits_per_dim']:.4f} bits/dim; ELBO {e['elbo']:.2f}"]
    if not evals:
        lines += [f"- the NLL is not measured yet: `vaekit evaluate {run_dir} --split valid --iw-samples 1000 "
                  "--record` measures it and adds it here"]
    return lines


def _use(cfg, run_dir, model) -> list[str]:
    return [
        "", "## Use it", "",
        "```python",
        "import vaekit",
        f"model = vaekit.load(\"{run_dir}\")  # the best weights, in eval mode",
        "q = model.encode(x)  # x: images [N, C, H, W] in [0, 1]; q.mean, q.logvar",
        "images = model.sample(16)  # new images from the prior"
        + (" (a CVAE: y=labels)" if getattr(model, "conditional", False) else ""),
        "```",
        "",
        f"From the command line: `vaekit encode {run_dir} --out codes.npz` (latent codes), "
        f"`vaekit evaluate {run_dir} --per-image scores.csv` (a score per image), "
        f"`vaekit sample {run_dir}`, `vaekit export {run_dir} --format onnx --out onnx/` (portable graphs).",
        "",
        "## Intended use and limits",
        "",
        "- A model of the data above, for research and teaching: codes, samples and likelihoods of images like "
        "those it was trained on, prepared the same way (size, channels"
        + (", binarization" if cfg.data.binarize != "none" else "")
        + (", dequantisation" if cfg.data.dequantize != "none" else "") + ").",
        "- Its likelihoods are bounds in nats for this data variant; they compare with other models only on the "
        "same variant and split.",
        "- Likelihoods can rank outliers wrongly (Nalisnick et al., 2019): measure before using a score as an "
        "outlier detector.",
        "- Samples show the mean of p(x|z), smoother than real images; nothing here was checked for fairness, and "
        "it is not meant for decisions about people.",
        "",
    ]


def _objective(cfg) -> str:
    o = cfg.train.objective
    opts = ", ".join(f"{k} {v}" for k, v in dict(o).items() if k != "name") if hasattr(o, "keys") else ""
    return f"{o.name}" + (f" ({opts})" if opts else "")


def write_card(run_dir: str | Path) -> Path:
    path = Path(run_dir) / CARD_FILE
    atomic_write_text(path, render(run_dir))
    return path


__all__ = ["cpu_name", "machine", "record_evaluation", "record_training", "render", "write_card"]
