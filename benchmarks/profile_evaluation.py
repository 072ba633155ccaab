"""Where the evaluation's time goes: torch.profiler over ``vaekit.evaluate``, self CPU time per chunk of samples.

    python benchmarks/profile_evaluation.py [--data-dir DIR] [--n-images 300] [--iw-samples 5000]

Model: the random-weight MLP 784-400-20 of benchmarks/evaluation.py (the cost does not depend on
the weights). Each operator's self time is divided by the number of chunks (K samples of each batch
of 100 images go through the decoder in chunks; see ``vaekit.evaluate.chunk_samples``). Writes
results/profile-evaluation.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, load_valid_images, machine, markdown_table, write_results  # noqa: E402

from vaekit.config import ModelConfig  # noqa: E402
from vaekit.models import build_model  # noqa: E402

ev = importlib.import_module("vaekit.evaluate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--n-images", type=int, default=300)
    ap.add_argument("--iw-samples", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=12, help="operators listed")
    a = ap.parse_args()
    x, source = load_valid_images(a.data_dir, a.n_images)
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=20, hidden=(400,)), (1, 28, 28)).eval()
    ev.evaluate(model, x[:100], iw_samples=min(500, a.iw_samples))  # warm-up
    chunk = ev.chunk_samples(torch.device("cpu"), a.iw_samples, 100, 784)
    chunks = math.ceil(x.shape[0] / 100) * math.ceil(a.iw_samples / chunk)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ev.evaluate(model, x, iw_samples=a.iw_samples)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops) / 1e3 / chunks
    rows = [[f"`{e.key}`", f"{e.count}", f"{e.self_cpu_time_total / 1e3 / chunks:.3f}"] for e in ops[: a.rows]]
    rows.append(["all operators", "", f"{total:.3f}"])
    m = machine()
    md = (f"### Evaluation profile: K={a.iw_samples}, {x.shape[0]} images, MLP 784-400-20\n\n"
          f"{m['cpu']}, {m['cores']} cores, PyTorch {m['torch']}, {m['date']}; data: {source}; {chunks} chunks of "
          f"{chunk} samples x 100 images. Self CPU time per chunk.\n\n"
          + markdown_table(["operator", "calls", "ms per chunk"], rows))
    write_results("profile-evaluation", {"machine": m, "chunks": chunks, "chunk_samples": chunk,
                                         "ms_per_chunk": {e.key: e.self_cpu_time_total / 1e3 / chunks for e in ops},
                                         "total_ms_per_chunk": total}, md)


if __name__ == "__main__":
    main()
