"""The literature presets on static binarized MNIST: train each under a time budget, score its best
checkpoint on the valid split with the importance-weighted bound, and draw the learning curves.

    python benchmarks/presets.py --run iwae-k1=configs/iwae-k1.toml:5 --run iwae-k50=configs/iwae-k50.toml:8 \\
        [--also vamp=runs/vamp-q] [--data-dir DIR] [--iw-samples 5000] [--out-dir runs/presets]

``--run NAME=PRESET:MINUTES`` trains ``vaekit train --config PRESET --max-minutes MINUTES`` into
``OUT_DIR/NAME`` (a run already there is resumed up to the budget, so a finished run costs
nothing); ``--also NAME=RUN_DIR`` adds a run trained elsewhere. Each is evaluated with
``vaekit evaluate --split valid --iw-samples K --json``. Writes results/RESULTS.{json,md} and
docs/images/RESULTS-curves.png (valid ELBO against training minutes; ``--results``, default presets). Run it with nothing else
on the machine: the budgets are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, ROOT, machine, markdown_table, median, write_results  # noqa: E402

IMAGES = ROOT / "docs" / "images"


def vaekit(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "vaekit", *args], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"vaekit {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def curves(runs: dict[str, Path], path: Path) -> None:
    from matplotlib.figure import Figure

    from vaekit.plots import save_figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for name, run_dir in runs.items():
        h = history(run_dir)
        train = json.loads((run_dir / "config.json").read_text())["train"]
        if train["objective"] == "iwae" and train["n_samples"] > 1:  # its ELBO is lower by design: it maximises the K-sample bound
            name += f" (trains the K={train['n_samples']} bound)"
        ax.plot([r["elapsed_seconds"] / 60 for r in h], [r["valid_elbo"] for r in h], label=name)
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("valid ELBO (nats)")
    lows = [max(r["valid_elbo"] for r in history(d)) for d in runs.values()]
    ax.set_ylim(min(lows) - 12, max(lows) + 2)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("static binarized MNIST, valid split")
    save_figure(fig, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=PRESET:MINUTES")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=RUN_DIR")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--iw-samples", type=int, default=5000)
    ap.add_argument("--out-dir", default="runs/presets")
    ap.add_argument("--results", default="presets", help="name of the results files and of the curves figure")
    a = ap.parse_args()
    runs: dict[str, Path] = {}
    presets: dict[str, str] = {}
    for spec in a.run:
        name, rest = spec.split("=", 1)
        preset, minutes = rest.rsplit(":", 1)
        run_dir = Path(a.out_dir) / name
        resume = ["--resume"] if (run_dir / "last.safetensors").is_file() else []
        print(f"{name}: training {preset} for {minutes} minutes into {run_dir}", flush=True)
        vaekit("train", "--config", preset, "--data-dir", a.data_dir, "--max-minutes", minutes, "--out", str(run_dir),
               "--no-plots", "--no-progress", *resume)
        runs[name], presets[name] = run_dir, preset
    for spec in a.also:
        name, run_dir = spec.split("=", 1)
        runs[name] = Path(run_dir)
        presets[name] = json.loads((Path(run_dir) / "config.json").read_text())["model"]["arch"]
    rows = []
    for name, run_dir in runs.items():
        print(f"{name}: evaluating with K={a.iw_samples}", flush=True)
        ev = json.loads(vaekit("evaluate", str(run_dir), "--split", "valid", "--iw-samples", str(a.iw_samples),
                               "--data-dir", a.data_dir, "--json", "--no-progress"))
        h = history(run_dir)
        best = max(h, key=lambda r: r["valid_elbo"])
        rows.append({"name": name, "preset": presets[name], "epochs": h[-1]["epoch"],
                     "minutes": h[-1]["elapsed_seconds"] / 60, "epoch_seconds": median([r["epoch_seconds"] for r in h]),
                     "best_epoch": best["epoch"], "best_valid_elbo": best["valid_elbo"],
                     "train_elbo_last": h[-1]["train_elbo"], **{k: ev[k] for k in ("nll", "nll_stderr", "kl_form",
                                                                                  "seconds", "iw_samples")}})
    table = markdown_table(
        ["run", "training minutes", "epochs", "s/epoch (median)", "best valid ELBO (epoch)", "last train ELBO",
         f"valid NLL (K={a.iw_samples})", "KL"],
        [[r["name"], f"{r['minutes']:.1f}", str(r["epochs"]), f"{r['epoch_seconds']:.1f}",
          f"{r['best_valid_elbo']:.2f} ({r['best_epoch']})", f"{r['train_elbo_last']:.2f}",
          f"{r['nll']:.2f} ± {r['nll_stderr']:.2f}", r["kl_form"]] for r in rows])
    IMAGES.mkdir(parents=True, exist_ok=True)
    curves(runs, IMAGES / f"{a.results}-curves.png")
    write_results(a.results, {"machine": machine(), "data": "binarized-mnist (static binarization)",
                              "iw_samples": a.iw_samples, "rows": rows}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
