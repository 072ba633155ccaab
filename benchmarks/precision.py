"""Does bf16 train as well as float32? The evidence behind ``--precision auto``.

    python benchmarks/precision.py [--data-dir DIR] [--epochs 45] [--seeds 0 1 2] [--k 1000]

Trains the preset configs/quality.toml for the same number of epochs (its cosine schedule then
anneals over them) once per seed and precision, with nothing else running, and scores the best
checkpoint on the 10,000 valid images of statically binarized MNIST with the importance-weighted
bound (K = ``--k``, float32). bf16 passes when its mean NLL is within the seed-to-seed spread of
float32's (the larger of the two standard deviations). Writes results/precision.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, ROOT, machine, write_results  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import load_config  # noqa: E402
from vaekit.data import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--config", default=str(ROOT / "configs" / "quality.toml"))
    ap.add_argument("--epochs", type=int, default=45, help="about 4 minutes of float32 training of the preset on 2 cores")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--out", default="runs/precision-benchmark")
    a = ap.parse_args()
    base = load_config(a.config).override(data={"name": "binarized-mnist", "data_dir": a.data_dir},
                                          train={"epochs": a.epochs, "max_minutes": 0})
    valid = load_dataset("binarized-mnist", "valid", a.data_dir).x
    runs = []
    for seed in a.seeds:
        for precision in a.precisions:
            cfg = base.override(train={"seed": seed, "precision": precision})
            res = vaekit.train(cfg, f"{a.out}/{precision}-s{seed}", force=True, progress=False)
            t = time.perf_counter()
            ev = vaekit.evaluate(res.model, valid, iw_samples=a.k)
            hist = res.history
            runs.append({"seed": seed, "precision": precision, "epochs": hist[-1]["epoch"],
                         "train_minutes": hist[-1]["elapsed_seconds"] / 60,
                         "best_valid_elbo": max(h["valid_elbo"] for h in hist), "valid_nll": ev["nll"],
                         "nll_stderr": ev["nll_stderr"], "eval_seconds": time.perf_counter() - t})
            print(runs[-1], flush=True)
    summary = {}
    for p in a.precisions:
        nll = [r["valid_nll"] for r in runs if r["precision"] == p]
        minutes = [r["train_minutes"] for r in runs if r["precision"] == p]
        summary[p] = {"mean_nll": statistics.mean(nll), "sd_nll": statistics.stdev(nll) if len(nll) > 1 else 0.0,
                      "mean_minutes": statistics.mean(minutes)}
    m = machine()
    rows = "\n".join(f"| {r['precision']} | {r['seed']} | {r['epochs']} | {r['train_minutes']:.2f} | "
                     f"{r['best_valid_elbo']:.2f} | {r['valid_nll']:.2f} ± {r['nll_stderr']:.2f} |" for r in runs)
    means = "\n".join(f"| {p} | {s['mean_nll']:.2f} | {s['sd_nll']:.2f} | {s['mean_minutes']:.2f} |"
                      for p, s in summary.items())
    md = (f"### Precision: `{Path(a.config).name}`, {a.epochs} epochs, seeds {a.seeds}\n\n"
          f"{m['cpu']}, {m['cores']} cores, PyTorch {m['torch']}, {m['date']}. Valid split of statically binarized "
          f"MNIST, 10,000 images; NLL from the K = {a.k} bound of the best-valid-ELBO checkpoint, in float32.\n\n"
          "| precision | seed | epochs | training minutes | best valid ELBO | valid NLL (nats) |\n"
          "|---|---|---|---|---|---|\n" + rows + "\n\n"
          "| precision | mean NLL | seed-to-seed SD | mean training minutes |\n|---|---|---|---|\n" + means + "\n")
    write_results("precision", {"machine": m, "config": base.to_dict(), "runs": runs, "summary": summary}, md)


if __name__ == "__main__":
    main()
