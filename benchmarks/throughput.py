"""Training throughput: vaekit vs a hand-written loop (pytorch/examples style) vs pythae,
against the bound set by the step's matrix products alone, all in one run.

    python benchmarks/throughput.py [--data-dir DIR] [--rounds 3] [--batch-size 128] [--device cuda]

Model: MLP 784-400-20, Bernoulli likelihood, Adam 1e-3 (the official example's).
Each round times one full epoch (50,000 images, shuffling included) of each contender,
in turn; the table gives the median over rounds. The bound is that of float32 products;
`vaekit --precision bf16` runs its products in bfloat16 and can pass it (timed only where the
hardware computes bf16 natively, or with --all-precisions). Writes
results/throughput.{json,md} (throughput-cuda.{json,md} with --device cuda). On a GPU the
images stay in CPU memory as vaekit's trainer keeps them: vaekit moves each shuffled epoch to
the GPU at once, the hand-written loop each batch (`data.to(device)`, as the example does).
As `vaekit train` does, the process keeps freed memory for reuse (vaekit.heap.keep_freed_memory; one
setting for the whole process, so every contender runs with it); `--malloc as-it-comes` leaves glibc as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_example import ExampleVAE, make_loader, train_steps  # noqa: E402
from common import (add_device_argument, add_malloc_argument, apply_malloc, gemm_gflops, load_train_images, machine, median,  # noqa: E402
                    mlp_gemm_seconds, sync, where, write_results)

from vaekit.config import RunConfig  # noqa: E402
from vaekit.trainer import auto_compile, auto_precision  # noqa: E402
from vaekit.models import build_model  # noqa: E402
from vaekit.objectives import ELBO  # noqa: E402
from vaekit.train import make_optimizer, train_epoch, training_step  # noqa: E402

LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]  # encoder, joint mu/logvar head, decoder
FLOP_PER_IMAGE = 2 * (sum(i * o for i, o in LAYERS) * 3 - 784 * 400)  # fwd + 2 bwd products, no input grad


def vaekit_epoch(x: torch.Tensor, batch_size: int, state: dict, precision: str = "fp32",
                 compile: bool = False) -> float:
    dev = state["device"]
    if "model" not in state:
        cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"},
                                   "model": {"latent_dim": 20, "hidden": [400]},
                                   "train": {"batch_size": batch_size, "lr": 1e-3}})
        state["model"] = build_model(cfg.model, (1, 28, 28)).to(dev)
        state["opt"] = make_optimizer(cfg, state["model"])
        state["gen"] = torch.Generator().manual_seed(0)
        state["step"] = training_step(state["model"], ELBO(), precision, compile)  # what a run trains with
        if compile:  # compile outside the timed epochs, as a long run would amortise it: both batch
            # shapes an epoch has (full, and the last partial one, which triggers a second compilation)
            warm = 4 * batch_size + x.shape[0] % batch_size
            train_epoch(state["step"], ELBO(), state["opt"], x[:warm].to(dev), batch_size)
    sync(dev)
    t = time.perf_counter()
    xs = x[torch.randperm(x.shape[0], generator=state["gen"])].to(dev)  # what the trainer does each epoch
    train_epoch(state["step"], ELBO(), state["opt"], xs, batch_size)
    sync(dev)
    return x.shape[0] / (time.perf_counter() - t)


def vaekit_compiled_epoch(x: torch.Tensor, batch_size: int, state: dict) -> float:
    return vaekit_epoch(x, batch_size, state, compile=True)


def vaekit_bf16_epoch(x: torch.Tensor, batch_size: int, state: dict) -> float:
    return vaekit_epoch(x, batch_size, state, precision="bf16")


def vaekit_bf16_compiled_epoch(x: torch.Tensor, batch_size: int, state: dict) -> float:
    return vaekit_epoch(x, batch_size, state, precision="bf16", compile=True)


def baseline_epoch(x: torch.Tensor, batch_size: int, state: dict) -> float:
    dev = state["device"]
    if "model" not in state:
        state["model"] = ExampleVAE().to(dev)
        state["opt"] = torch.optim.Adam(state["model"].parameters(), lr=1e-3)
        state["loader"] = make_loader(x, batch_size)
    sync(dev)
    t = time.perf_counter()
    seen = train_steps(state["model"], state["opt"], state["loader"], math.ceil(x.shape[0] / batch_size), dev)
    sync(dev)
    return seen / (time.perf_counter() - t)


def pythae_epoch(x: torch.Tensor, batch_size: int, state: dict) -> float:
    if "trainer" not in state:
        state["trainer"] = _pythae_trainer(x, batch_size)
        state["trainer"].prepare_training()  # what BaseTrainer.train() does before its epochs
    t = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # its per-epoch progress bar
        state["trainer"].train_step(epoch=1)
    return x.shape[0] / (time.perf_counter() - t)


def _pythae_trainer(x: torch.Tensor, batch_size: int):
    """pythae's VAE and BaseTrainer with the example's network (784-400-20, ReLU, Bernoulli/BCE)."""
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.fc1, self.mu, self.lv = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)

        def forward(self, x):
            h = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))
            return ModelOutput(embedding=self.mu(h), log_covariance=self.lv(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))).reshape(-1, 1, 28, 28))

    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    tcfg = BaseTrainerConfig(output_dir="/tmp/pythae-bench", num_epochs=1, learning_rate=1e-3,
                             per_device_train_batch_size=batch_size, optimizer_cls="Adam", train_dataloader_num_workers=0)
    data = BaseDataset(x.reshape(-1, 1, 28, 28), torch.zeros(x.shape[0]))
    return BaseTrainer(model=model, train_dataset=data, training_config=tcfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="binarized MNIST folder (default: ../shared/data/binarized_mnist)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--no-pythae", action="store_true", help="skip pythae even if it is installed")
    ap.add_argument("--all-precisions", action="store_true",
                    help="time the bf16 contenders even where the hardware has no native bf16 (they are emulated)")
    add_malloc_argument(ap)
    add_device_argument(ap)
    a = ap.parse_args()
    freed = apply_malloc(a)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    x, source = load_train_images(a.data_dir)
    contenders = {"hand-written loop (pytorch/examples style)": baseline_epoch, "vaekit": vaekit_epoch,
                  "vaekit --compile": vaekit_compiled_epoch}
    # what `vaekit train` picks by itself here for a 100-epoch run of this model on the 50,000 images
    precision = auto_precision(dev)[0]
    compiled = auto_compile(precision, dev, 100 * x.shape[0])[0]
    if precision == "bf16" or a.all_precisions:  # bf16 without native arithmetic is emulated: 5-10x slower
        contenders.update({"vaekit --precision bf16": vaekit_bf16_epoch,
                           "vaekit --precision bf16 --compile": vaekit_bf16_compiled_epoch})
    default = {("fp32", False): "vaekit", ("fp32", True): "vaekit --compile", ("bf16", False): "vaekit --precision bf16",
               ("bf16", True): "vaekit --precision bf16 --compile"}[(precision, compiled)]
    if not a.no_pythae and dev.type == "cpu":  # its trainer picks the GPU by itself; compared on the CPU only
        try:
            import importlib.metadata

            import pythae  # noqa: F401

            contenders["pythae " + importlib.metadata.version("pythae")] = pythae_epoch
        except ImportError:
            print("pythae is not installed: skipping it (pip install pythae)")
    states = {k: {"device": dev} for k in contenders}
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    bound = []
    for r in range(a.rounds):
        for name, fn in contenders.items():
            rates[name].append(fn(x, a.batch_size, states[name]))
            print(f"round {r + 1}: {name}: {rates[name][-1]:,.0f} img/s", flush=True)
        bound.append(a.batch_size / mlp_gemm_seconds(a.batch_size, LAYERS, backward=True, device=a.device))
    gflops = gemm_gflops(device=a.device)
    gemm_bound = median(bound)
    med = {k: median(v) for k, v in rates.items()}
    base = med["hand-written loop (pytorch/examples style)"]
    py = next((v for k, v in med.items() if k.startswith("pythae")), None)
    vs_py = (lambda v: f" {v / py:.2f}x |") if py else (lambda v: "")
    lines = [f"| contender | images/s (median of {a.rounds}) | rounds | vs hand-written |"
             + (" vs pythae |" if py else "") + " of GEMM bound |",
             "|---|---|---|---|---|" + ("---|" if py else "")]
    for k, v in med.items():
        lines.append(f"| {k}{' (the default here)' if k == default else ''} | {v:,.0f} | {', '.join(f'{x:,.0f}' for x in rates[k])} | {v / base:.2f}x |"
                     f"{vs_py(v)} {v / gemm_bound:.0%} |")
    lines.append(f"| float32 matrix products of one step alone (the bound) | {gemm_bound:,.0f} | "
                 f"{', '.join(f'{x:,.0f}' for x in bound)} | {gemm_bound / base:.2f}x |{vs_py(gemm_bound)} 100% |")
    m = machine()
    place = where(m, dev.type) + ("" if dev.type == "cuda" else f", {m['torch_threads']} torch threads")
    md = (f"### Training throughput, MLP 784-400-20, batch {a.batch_size}, Adam, {dev.type}\n\n"
          f"{place}, PyTorch {m['torch']}, "
          f"{m['date']}; data: {source}.\n\n" + "\n".join(lines) + "\n\n"
          f"{FLOP_PER_IMAGE / 1e6:.2f} MFLOP per image per step; square 1024 float32 GEMM: {gflops:,.0f} GFLOP/s; "
          f"the bound's products ran at {gemm_bound * FLOP_PER_IMAGE / 1e9:.0f} GFLOP/s. \"vaekit\" is float32; "
          f"the default here (`--precision auto`, compile decided for a 100-epoch run): {default}. Freed memory "
          f"{freed}, for every contender in this process.\n")
    others = {k: v for k, v in med.items() if k.startswith("pythae")}
    bf16 = max((v for k, v in med.items() if "bf16" in k), default=None)
    payload = {"machine": m, "device": dev.type, "default": default, "freed_memory_kept": a.kept, "batch_size": a.batch_size, "rounds": rates, "median": med, "gemm_bound": gemm_bound,
               "gemm_bound_rounds": bound, "square_gemm_gflops": gflops, "flop_per_image": FLOP_PER_IMAGE,
               "ratios": {"vaekit_vs_handwritten": med["vaekit"] / base,
                          "vaekit_of_bound": med["vaekit"] / gemm_bound,
                          "vaekit_compiled_of_bound": med["vaekit --compile"] / gemm_bound,
                          "vaekit_default_of_bound": med[default] / gemm_bound,
                          **({"vaekit_bf16_vs_handwritten": bf16 / base} if bf16 else {}),
                          "vaekit_default_vs_handwritten": med[default] / base,
                          **{f"vaekit_vs_{k}": med["vaekit"] / v for k, v in others.items()},
                          **{f"vaekit_bf16_vs_{k}": bf16 / v for k, v in others.items() if bf16}}}
    write_results("throughput" if dev.type == "cpu" else f"throughput-{dev.type}", payload, md)


if __name__ == "__main__":
    main()
