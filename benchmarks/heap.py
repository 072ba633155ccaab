"""What keeping freed memory (vaekit.heap.keep_freed_memory) is worth to the training step: page faults and
time a step, with glibc's malloc as it comes and with the thresholds vaekit sets, in processes that take turns.

    python benchmarks/heap.py [--pairs 6] [--rounds 4] [--steps 400] [--precision fp32]

The setting is one per process, so each measurement is a fresh process: ``--pairs`` pairs of them, one of each
kind, in alternating order. Each process trains vaekit's step as a long run does (MLP 784-400-20, batch 128,
compiled, Adam) for ``--rounds`` epochs of ``--steps`` steps (51,200 random binary images at the defaults, about
the size of MNIST's training set), each epoch followed by the float32 matrix products of as many steps (the
bound, as in step_variants.py), and counts the minor page faults of the epochs. (Faults come with the size of
the data: over a few steps' worth of images the trimmed heap was not seen to regrow.) The
table gives per kind the median over its processes of: the step's share of the bound (ratio of total times),
images/s, ms a step and faults a step; and the median over pairs of the ratio of the two kinds' shares.
Writes results/heap-PRECISION.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median, mlp_gemm_ops, write_results  # noqa: E402

KINDS = {"glibc": "glibc's malloc as it comes (thresholds that slide)",
         "kept": "vaekit.heap.keep_freed_memory() (what vaekit train and evaluate set)"}
LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]


def child(kind: str, rounds: int, steps: int, b: int, precision: str) -> dict:
    from vaekit.config import RunConfig
    from vaekit.heap import keep_freed_memory
    from vaekit.models import build_model
    from vaekit.objectives import ELBO
    from vaekit.train import make_optimizer, train_epoch, training_step

    kept = keep_freed_memory() if kind == "kept" else False
    cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"latent_dim": 20, "hidden": [400]},
                               "train": {"batch_size": b, "lr": 1e-3}})
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt, obj = make_optimizer(cfg, model), ELBO()
    step = training_step(model, obj, precision, True)
    x = torch.bernoulli(torch.full((b * steps, 784), 0.13), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8)
    ops = mlp_gemm_ops(b, LAYERS, backward=True)

    def bound():
        for _ in range(steps):
            for p, q, out in ops:
                torch.mm(p, q, out=out)

    for _ in range(2):  # compilation and first touch
        train_epoch(step, obj, opt, x, b)
        bound()
    t_step, t_bound, faults = 0.0, 0.0, 0
    for _ in range(rounds):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        train_epoch(step, obj, opt, x, b)
        t_step += time.perf_counter() - t
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        t = time.perf_counter()
        bound()
        t_bound += time.perf_counter() - t
    n = rounds * steps
    return {"kind": kind, "kept": kept, "share": t_bound / t_step, "ms_per_step": 1e3 * t_step / n,
            "images_per_s": n * b / t_step, "faults_per_step": faults / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--child", choices=tuple(KINDS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.rounds, a.steps, a.batch_size, a.precision)))
        return
    results: dict[str, list[dict]] = {k: [] for k in KINDS}
    for p in range(a.pairs):
        for kind in (("glibc", "kept") if p % 2 == 0 else ("kept", "glibc")):
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--rounds", str(a.rounds),
                                  "--steps", str(a.steps), "--batch-size", str(a.batch_size),
                                  "--precision", a.precision], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if kind == "kept" and not r["kept"]:
                sys.exit("keep_freed_memory() changed nothing here (not glibc, or malloc tuned by the environment)")
            results[kind].append(r)
            print(f"pair {p + 1}, {kind}: {r['share']:.0%} of the bound, {r['images_per_s']:,.0f} images/s, "
                  f"{r['faults_per_step']:.1f} faults a step", flush=True)
    ratios = [k["share"] / g["share"] for g, k in zip(results["glibc"], results["kept"])]
    rows = "\n".join(
        f"| {KINDS[k]} | {median([r['share'] for r in v]):.0%} | {median([r['images_per_s'] for r in v]):,.0f} | "
        f"{median([r['ms_per_step'] for r in v]):.3f} | {median([r['faults_per_step'] for r in v]):.1f} |"
        for k, v in results.items())
    m = machine()
    md = (f"### Keeping freed memory: the {a.precision} compiled step, MLP 784-400-20, batch {a.batch_size}\n\n"
          f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, PyTorch {m['torch']}, {m['date']}; "
          f"{a.pairs} pairs of processes in alternating order, each {a.rounds} epochs of {a.steps} steps and the "
          "float32 bound's products after each epoch; medians over the processes of each kind.\n\n"
          "| malloc | of the bound | images/s | ms a step | page faults a step |\n|---|---|---|---|---|\n" + rows +
          f"\n\nKept against as it comes, the ratio of the shares of the bound, pair by pair: median "
          f"{median(ratios):.3f} (from {min(ratios):.3f} to {max(ratios):.3f}).\n")
    write_results(f"heap-{a.precision}", {"machine": m, "args": vars(a), "results": results, "ratios": ratios}, md)


if __name__ == "__main__":
    main()
