"""Evaluation speed: the importance-weighted NLL with K samples over N images, against the
time its decoder's matrix products alone take (the bound), in one run.

    python benchmarks/evaluation.py [--data-dir DIR] [--iw-samples 5000] [--n-images 10000] [--device cuda]

Trains nothing: the model is a 784-400-20 MLP VAE with random weights (the cost does not
depend on the weights). Writes results/evaluation.{json,md} (evaluation-cuda.* with --device cuda).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (add_device_argument, load_valid_images, machine, mlp_gemm_seconds, sync,  # noqa: E402
                    where, write_results)

from vaekit.config import ModelConfig  # noqa: E402
from vaekit.models import build_model  # noqa: E402

ev = importlib.import_module("vaekit.evaluate")
DECODER = [(20, 400), (400, 784)]
ENCODER = [(784, 400), (400, 40)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--iw-samples", type=int, default=5000)
    ap.add_argument("--n-images", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=100)
    add_device_argument(ap)
    a = ap.parse_args()
    dev = torch.device(a.device)
    x, source = load_valid_images(a.data_dir, a.n_images)
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=20, hidden=(400,)), (1, 28, 28)).to(dev).eval()
    n, k = x.shape[0], a.iw_samples
    chunk = ev.chunk_samples(dev, k, a.batch_size, 784)
    rows = a.batch_size * chunk
    # the bound: the decoder's two products for all n*k samples, at the chunk shape evaluate() uses
    per_chunk = mlp_gemm_seconds(rows, DECODER, backward=False, device=a.device)
    bound = per_chunk * (n * k / rows)
    enc = mlp_gemm_seconds(a.batch_size, ENCODER, backward=False, device=a.device) * (n / a.batch_size)
    sync(dev)
    t = time.perf_counter()
    res = ev.evaluate(model, x, iw_samples=k, batch_size=a.batch_size)
    sync(dev)
    took = time.perf_counter() - t
    m = machine()
    flops = 2 * n * k * sum(i * o for i, o in DECODER)
    md = (f"### Evaluation: IWAE NLL, K={k}, {n:,} images, MLP 784-400-20, {dev.type}\n\n"
          f"{where(m, dev.type)}, PyTorch {m['torch']}, {m['date']}; data: {source}; "
          f"{a.batch_size} images x {chunk} samples per chunk ({rows:,} decoder rows).\n\n"
          "| what | seconds | ratio to the bound |\n|---|---|---|\n"
          f"| `vaekit.evaluate` (everything: encoder, sampling, decoder, log-probs, log-sum-exp) | {took:.1f} | "
          f"{took / bound:.2f}x |\n"
          f"| decoder matrix products alone (the bound) | {bound:.1f} | 1.00x |\n"
          f"| encoder matrix products alone | {enc:.2f} | |\n\n"
          f"Decoder products: {flops / 1e12:.1f} TFLOP at {flops / bound / 1e9:.0f} GFLOP/s; "
          f"vaekit.evaluate as a whole ran at {flops / took / 1e9:.0f} GFLOP/s of decoder work. NLL {res['nll']:.2f} "
          f"(random weights: the value itself means nothing here).\n")
    write_results("evaluation" if dev.type == "cpu" else f"evaluation-{dev.type}", {"machine": m, "device": dev.type, "iw_samples": k, "n_images": n, "batch_size": a.batch_size,
                                 "chunk_samples": chunk, "seconds": took, "bound_seconds": bound,
                                 "encoder_gemm_seconds": enc, "ratio": took / bound, "decoder_flop": flops}, md)


if __name__ == "__main__":
    main()
