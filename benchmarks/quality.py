"""Quality at speed: train the preset configs/quality.toml within its time budget and record
the valid NLL (importance-weighted, nats, static binarization) against training wall-clock.

    python benchmarks/quality.py [--data-dir DIR] [--checkpoints 2 5 10 20] [--final-k 5000]

Training runs in segments that stop at each checkpoint's minute mark (a resumed run ends with
exactly the weights of an uninterrupted one, so the segments change nothing); after each
segment the best-so-far model is scored with K=1000 on the 10,000 valid images, and after the
last with K=``--final-k``. Evaluation time is not training time. Writes results/quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("--out", default="runs/quality-benchmark")
    ap.add_argument("--checkpoints", type=float, nargs="+", default=[2, 5, 10, 20], help="minute marks")
    ap.add_argument("--curve-k", type=int, default=1000)
    ap.add_argument("--final-k", type=int, default=5000)
    a = ap.parse_args()
    base = load_config(a.config).override(data={"name": "binarized-mnist", "data_dir": a.data_dir})
    valid = load_dataset("binarized-mnist", "valid", a.data_dir).x
    points = []
    for i, minutes in enumerate(a.checkpoints):
        cfg = base.override(train={"max_minutes": minutes})
        res = vaekit.train(cfg, a.out, resume=i > 0, force=i == 0, progress=False,
                           log=lambda m: print(m, flush=True))
        hist = [json.loads(x) for x in (Path(a.out) / "metrics.jsonl").read_text().splitlines()]
        last = hist[-1]
        k = a.final_k if i == len(a.checkpoints) - 1 else a.curve_k
        t = time.perf_counter()
        ev = vaekit.evaluate(res.model, valid, iw_samples=k)
        points.append({"minutes_budget": minutes, "train_minutes": last["elapsed_seconds"] / 60,
                       "epochs": last["epoch"], "best_valid_elbo": max(h["valid_elbo"] for h in hist),
                       "valid_nll": ev["nll"], "nll_stderr": ev["nll_stderr"], "iw_samples": k,
                       "eval_seconds": time.perf_counter() - t})
        print(points[-1], flush=True)
    m = machine()
    rows = "\n".join(f"| {p['train_minutes']:.1f} | {p['epochs']} | {p['best_valid_elbo']:.2f} | "
                     f"{p['valid_nll']:.2f} ± {p['nll_stderr']:.2f} | {p['iw_samples']} |" for p in points)
    md = (f"### Quality at speed: `{Path(a.config).name}` on statically binarized MNIST\n\n"
          f"{m['cpu']}, {m['cores']} cores, PyTorch {m['torch']}, {m['date']}. Valid split, 10,000 images; "
          "NLL from the importance-weighted bound of the best-valid-ELBO checkpoint so far.\n\n"
          "| training minutes | epochs | best valid ELBO (nats) | valid NLL (nats) | K |\n|---|---|---|---|---|\n"
          + rows + "\n")
    write_results("quality", {"machine": m, "config": base.to_dict(), "points": points}, md)


if __name__ == "__main__":
    main()
