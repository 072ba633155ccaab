"""Where a training step's time goes: torch.profiler over vaekit's step, grouped by component.

    python benchmarks/profile_step.py [--batch-size 128] [--steps 200] [--precision fp32] [--compile]

Model: MLP 784-400-20, Bernoulli, fused Adam, the step of vaekit's trainer (float32 unless --precision says
otherwise; --compile as a long run compiles it). Writes results/profile.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

from vaekit.config import RunConfig  # noqa: E402
from vaekit.models import build_model  # noqa: E402
from vaekit.objectives import ELBO  # noqa: E402
from vaekit.train import make_optimizer, train_epoch, training_step  # noqa: E402

GROUPS = [  # (component, operator-name fragments), first match wins
    ("matrix products (forward and backward)", ("aten::mm", "aten::addmm", "aten::bmm")),
    ("optimiser (fused Adam, zero_grad)", ("adam", "Optimizer", "zero_grad")),
    ("Bernoulli log-likelihood (log-sigmoid, BCE)", ("log_sigmoid", "binary_cross_entropy")),
    ("sampling z (randn)", ("normal_", "randn")),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--compile", action="store_true", help="compile the step, as a long run does by default")
    a = ap.parse_args()
    cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"latent_dim": 20, "hidden": [400]},
                               "train": {"batch_size": a.batch_size}})
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt = make_optimizer(cfg, model)
    x = torch.bernoulli(torch.full((a.batch_size * a.steps, 784), 0.13))
    step = training_step(model, ELBO(), a.precision, a.compile)  # the step a run trains with
    train_epoch(step, ELBO(), opt, x[: a.batch_size * 20], a.batch_size)  # warm up (and compile)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epoch(step, ELBO(), opt, x, a.batch_size)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = {g: 0.0 for g, _ in GROUPS}
    shares["everything else (elementwise ops, autograd and Python dispatch)"] = 0.0
    for e in events:
        for g, frags in GROUPS:
            if any(f.lower() in e.key.lower() for f in frags):
                shares[g] += e.self_cpu_time_total
                break
        else:
            shares["everything else (elementwise ops, autograd and Python dispatch)"] += e.self_cpu_time_total
    per_step = {g: v / a.steps / 1000 for g, v in shares.items()}  # ms
    m = machine()
    rows = "\n".join(f"| {g} | {ms:.3f} | {shares[g] / total:.0%} |" for g, ms in per_step.items())
    md = (f"### Profile of one vaekit training step, MLP 784-400-20, batch {a.batch_size}, {a.precision}"
          f"{', compiled' if a.compile else ''}\n\n"
          f"{m['cpu']}, {m['cores']} cores, PyTorch {m['torch']}, {m['date']}; torch.profiler self CPU time "
          f"over {a.steps} steps (the profiler adds some overhead of its own).\n\n"
          "| component | ms per step | share |\n|---|---|---|\n" + rows +
          f"\n| total | {total / a.steps / 1000:.3f} | 100% |\n")
    write_results("profile", {"machine": m, "batch_size": a.batch_size, "precision": a.precision,
                             "compile": a.compile, "ms_per_step": per_step}, md)


if __name__ == "__main__":
    main()
