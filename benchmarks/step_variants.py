"""What else the float32 training step could be, timed in one run against the bound of its matrix products:
vaekit's step (eager; compiled as it was until 2026-12-07, forward and backward as two graphs run by autograd
with torch.optim.Adam's step; and as it is now, one compiled graph that returns the gradients with Adam's fused
kernel called directly), the whole step compiled (forward, backward through compiled autograd, and the
optimiser), and a hand-derived step with no autograd at all (the same model and ELBO, gradients written into
preallocated buffers, the same fused Adam): how far the step is from its bound, and how much of the gap is
autograd's.

    python benchmarks/step_variants.py [--rounds 40] [--batch-size 128] [--steps 25]
    python benchmarks/step_variants.py --config configs/quality.toml --steps 80 --rounds 7   # a preset

Model: MLP 784-400-20, Bernoulli likelihood, standard normal prior, Adam 1e-3, random binary images.
Each round runs ``--steps`` steps of each variant in turn, then the bound's products for as many steps, each
timed as a whole (these machines are shared, and their speed changes from one half minute to the next: short
bursts in turn see the same machine). The table gives each variant's images/s over all rounds, its share of the
bound's (the ratio of the total times), and the median of the per-round shares. Writes
results/step-variants.{json,md} (with --config, vaekit's eager and compiled float32 steps of that preset, at
its batch size, no bound: results/step-variants-PRESET.{json,md}). As `vaekit train` does, the process keeps freed
memory for reuse (vaekit.heap.keep_freed_memory, for every variant; `--malloc as-it-comes` leaves glibc as it is).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_malloc_argument, apply_malloc, machine, median, mlp_gemm_ops, write_results  # noqa: E402

from vaekit.config import RunConfig  # noqa: E402
from vaekit.data import batch  # noqa: E402
from vaekit.models import build_model  # noqa: E402
from vaekit.objectives import ELBO  # noqa: E402
from vaekit.train import make_optimizer, make_step, train_epoch, training_step  # noqa: E402

LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]


class _AdamStepped(torch.optim.Adam):
    """torch.optim.Adam under another name: the loop then calls its ``step()`` (vaekit.optim.fused_adam_step
    takes only the plain class), as it did until 2026-12-07."""


def vaekit_variant(x: torch.Tensor, b: int, compile: bool, as_before: bool = False):
    cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"latent_dim": 20, "hidden": [400]},
                               "train": {"batch_size": b, "lr": 1e-3}})
    return preset_variant(cfg, x, compile, as_before)


def preset_variant(cfg, x: torch.Tensor, compile: bool, as_before: bool = False):
    from vaekit.trainer import make_objective

    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt, obj = make_optimizer(cfg, model), make_objective(cfg)
    step = make_step(model, obj, "fp32", compile) if as_before else training_step(model, obj, "fp32", compile)
    if as_before and type(opt) is torch.optim.Adam:
        opt.__class__ = _AdamStepped
    return lambda: train_epoch(step, obj, opt, x, cfg.train.batch_size)


def whole_step_compiled(x: torch.Tensor, b: int):
    """Forward, backward (compiled autograd) and the optimiser's step in one compiled function."""
    import torch._dynamo

    cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"latent_dim": 20, "hidden": [400]},
                               "train": {"batch_size": b, "lr": 1e-3}})
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt, obj = make_optimizer(cfg, model), ELBO()

    @torch.compile
    def one(xb):
        terms = obj.terms(model, xb)
        obj.loss(terms, xb.shape[0]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return terms.elbo

    def run():
        with torch._dynamo.config.patch(compiled_autograd=True):
            for i in range(0, x.shape[0], b):
                one(batch(x[i:i + b]).x)
    return run


def hand_derived(x: torch.Tensor, b: int, optimiser: bool = True, alone: bool = False):
    """The ELBO's gradients by hand (ReLU MLPs, Bernoulli logits, analytic KL to N(0, I)), no autograd.
    ``optimiser=False``: without Adam's step; ``alone=True``: Adam's step alone, as many times (what it costs
    where its 0.65 million parameters, gradients and moments stay in cache)."""
    torch.manual_seed(0)
    lin = [torch.nn.Linear(i, o) for i, o in LAYERS]
    params = [t.detach() for m in lin for t in (m.weight, m.bias)]
    grads = [torch.zeros_like(p) for p in params]
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    steps = [torch.zeros(()) for _ in params]
    w1, b1, w2, b2, w3, b3, w4, b4 = params
    L = 20

    def step(xu: torch.Tensor) -> None:
        xb = xu.float()
        h1 = torch.addmm(b1, xb, w1.t()).relu_()
        e = torch.addmm(b2, h1, w2.t())
        mu, lv = e[:, :L], e[:, L:]
        std = (0.5 * lv).exp()
        eps = torch.randn_like(std)
        z = torch.addcmul(mu, std, eps)
        h3 = torch.addmm(b3, z, w3.t()).relu_()
        logits = torch.addmm(b4, h3, w4.t())
        F.binary_cross_entropy_with_logits(logits, xb, reduction="sum")  # the reconstruction term, as reported
        g = torch.sigmoid(logits).sub_(xb).div_(xb.shape[0])  # d(-ELBO / B) / d logits
        torch.mm(g.t(), h3, out=grads[6])
        torch.sum(g, 0, out=grads[7])
        gh3 = torch.mm(g, w4).mul_(h3 > 0)
        torch.mm(gh3.t(), z, out=grads[4])
        torch.sum(gh3, 0, out=grads[5])
        gz = torch.mm(gh3, w3)
        ge = torch.cat([gz + mu / xb.shape[0], gz * eps * std * 0.5 + 0.5 * (std * std - 1) / xb.shape[0]], 1)
        torch.mm(ge.t(), h1, out=grads[2])
        torch.sum(ge, 0, out=grads[3])
        gh1 = torch.mm(ge, w2).mul_(h1 > 0)
        torch.mm(gh1.t(), xb, out=grads[0])
        torch.sum(gh1, 0, out=grads[1])
        if optimiser:
            adam()

    def adam() -> None:
        torch._fused_adam_(params, grads, m, v, [], steps, lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.0,
                           eps=1e-8, amsgrad=False, maximize=False)

    def run():
        for i in range(0, x.shape[0], b):
            adam() if alone else step(x[i:i + b])
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--config", default=None, help="a preset for 28x28 binary images: its eager and compiled steps")
    add_malloc_argument(ap)
    a = ap.parse_args()
    a.freed = apply_malloc(a)
    cfg = None
    if a.config:
        from vaekit.config import load_config

        cfg = load_config(a.config)
        a.batch_size = cfg.train.batch_size
    b = a.batch_size
    x = torch.bernoulli(torch.full((b * a.steps, 784), 0.13), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8)
    if cfg is not None:
        return compare_preset(a, cfg, x)
    ops = mlp_gemm_ops(b, LAYERS, backward=True)  # the bound: one step's products into preallocated outputs

    def bound():
        for _ in range(a.steps):
            for p, q, out in ops:
                torch.mm(p, q, out=out)

    variants = {"vaekit, eager": vaekit_variant(x, b, False),
                "vaekit compiled as until 2026-12-07 (forward and backward as two graphs run by autograd; "
                "torch.optim.Adam's step)": vaekit_variant(x, b, True, as_before=True),
                "vaekit compiled now (one graph that returns the gradients; Adam's fused kernel called directly): "
                "the default of a long float32 run on a CPU": vaekit_variant(x, b, True),
                "the whole step compiled (compiled autograd, the optimiser inside)": whole_step_compiled(x, b),
                "hand-derived gradients, no autograd (a reference, not vaekit)": hand_derived(x, b),
                "the hand-derived step without the optimiser's step": hand_derived(x, b, optimiser=False),
                "the optimiser's step alone (fused Adam, 0.65 million parameters)": hand_derived(x, b, alone=True),
                BOUND: bound}
    for name, run in variants.items():  # compilation (both batch shapes) and first touch outside the timed rounds
        t = time.perf_counter()
        run()
        run()
        print(f"{name}: first passes {time.perf_counter() - t:.1f} s", flush=True)
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(a.rounds):
        for name, run in variants.items():
            t = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t)
        if (r + 1) % 10 == 0:
            print(f"round {r + 1}: " + ", ".join(f"{x.shape[0] / v[-1]:,.0f}" for v in seconds.values()), flush=True)
    ref = seconds[BOUND]
    rows = []
    for k, v in seconds.items():
        share = sum(ref) / sum(v)
        per_round = median([t0 / t for t0, t in zip(ref, v)])
        rows.append(f"| {k} | {1e3 * sum(v) / (a.rounds * a.steps):.3f} | {a.rounds * x.shape[0] / sum(v):,.0f} | "
                    f"{share:.0%} | {per_round:.0%} |")
    m = machine()
    md = (f"### The float32 step and its variants, MLP 784-400-20, batch {b}\n\n"
          f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, PyTorch {m['torch']}, {m['date']}; "
          f"{a.rounds} rounds of {a.steps} steps of each in turn, random binary images; freed memory "
          f"{a.freed}.\n\n"
          "| step | ms a step | images/s (all rounds) | of the bound (total times) | of the bound (median of the "
          "rounds) |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    write_results("step-variants", {"machine": m, "freed_memory_kept": a.kept, "batch_size": b, "steps": a.steps, "seconds": seconds}, md)


BOUND = "float32 matrix products of one step alone (the bound)"


def compare_preset(a, cfg, x: torch.Tensor) -> None:
    variants = {"eager": preset_variant(cfg, x, False),
                "compiled as until 2026-12-07 (two graphs run by autograd; the optimiser's step)": preset_variant(cfg, x, True, True),
                "compiled now (the default)": preset_variant(cfg, x, True)}
    for name, run in variants.items():
        t = time.perf_counter()
        run()
        print(f"{name}: first pass {time.perf_counter() - t:.1f} s", flush=True)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(a.rounds):
        for name, run in variants.items():
            t = time.perf_counter()
            run()
            rates[name].append(x.shape[0] / (time.perf_counter() - t))
        print(f"round {r + 1}: " + ", ".join(f"{v[-1]:,.0f}" for v in rates.values()), flush=True)
    m, label = machine(), Path(a.config).stem
    base = median(rates["eager"])
    rows = "\n".join(f"| {k} | {median(v):,.0f} | {max(v):,.0f} | {median(v) / base:.2f}x |" for k, v in rates.items())
    md = (f"### {label}: the float32 step, eager and compiled, batch {a.batch_size}\n\n"
          f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, PyTorch {m['torch']}, {m['date']}; "
          f"{a.rounds} rounds of {a.steps} steps, random binary images; freed memory "
          f"{a.freed}.\n\n"
          "| step | images/s (median) | best round | vs eager |\n|---|---|---|---|\n" + rows + "\n")
    write_results(f"step-variants-{label}", {"machine": m, "config": a.config, "rounds": rates}, md)


if __name__ == "__main__":
    main()
