"""How vaekit's training throughput scales with batch size and CPU threads.

    python benchmarks/scaling.py [--data-dir DIR] [--batch-sizes 32 64 128 256 512 1024] [--threads 1 2]

Model: MLP 784-400-20, Bernoulli, fused Adam. For each (threads, batch size) pair it
times two full epochs over 50,000 images and keeps the faster. Writes results/scaling.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_train_images, machine, mlp_gemm_seconds, write_results  # noqa: E402
from throughput import LAYERS  # noqa: E402

from vaekit.config import RunConfig  # noqa: E402
from vaekit.models import build_model  # noqa: E402
from vaekit.objectives import ELBO  # noqa: E402
from vaekit.train import make_optimizer, make_step, train_epoch  # noqa: E402


def epoch_rate(x: torch.Tensor, batch_size: int, epochs: int = 2) -> float:
    cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"latent_dim": 20, "hidden": [400]},
                               "train": {"batch_size": batch_size}})
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt = make_optimizer(cfg, model)
    best = 0.0
    for _ in range(epochs):
        t = time.perf_counter()
        xs = x[torch.randperm(x.shape[0])]
        train_epoch(make_step(model), ELBO(), opt, xs, batch_size)
        best = max(best, x.shape[0] / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    x, source = load_train_images(a.data_dir)
    table: dict[int, dict[int, dict[str, float]]] = {}
    for th in a.threads:
        torch.set_num_threads(th)
        table[th] = {}
        for bs in a.batch_sizes:
            rate = epoch_rate(x, bs)
            bound = bs / mlp_gemm_seconds(bs, LAYERS, backward=True)
            table[th][bs] = {"images_per_second": rate, "gemm_bound": bound}
            print(f"threads {th} batch {bs}: {rate:,.0f} img/s (bound {bound:,.0f})", flush=True)
    m = machine()
    head = "| batch size | " + " | ".join(f"{th} thread{'s' if th > 1 else ''}: img/s (of bound)" for th in a.threads)
    lines = [head + " |", "|---" * (len(a.threads) + 1) + "|"]
    for bs in a.batch_sizes:
        cells = [f"{table[th][bs]['images_per_second']:,.0f} ({table[th][bs]['images_per_second'] / table[th][bs]['gemm_bound']:.0%})"
                 for th in a.threads]
        lines.append(f"| {bs} | " + " | ".join(cells) + " |")
    md = (f"### Scaling: MLP 784-400-20 training, images/s by batch size and threads\n\n"
          f"{m['cpu']}, {m['cores']} cores, PyTorch {m['torch']}, {m['date']}; data: {source}. "
          "Best of two epochs each; in brackets, the share of that configuration's GEMM-only bound.\n\n"
          + "\n".join(lines) + "\n")
    write_results("scaling", {"machine": m, "table": {str(k): v for k, v in table.items()}}, md)


if __name__ == "__main__":
    main()
