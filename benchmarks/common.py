"""Shared helpers for the benchmark scripts: data, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "binarized_mnist"


def load_train_images(data_dir: str | None, n: int = 50000) -> tuple[torch.Tensor, str]:
    """Binarized MNIST train images if the folder is there, else random binary images of the same size."""
    from vaekit.data import load_dataset

    folder = Path(data_dir) if data_dir else DEFAULT_DATA
    if folder.is_dir():
        return load_dataset("binarized-mnist", "train", folder).x[:n].flatten(1), f"binarized MNIST train ({folder})"
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((n, 784), 0.13), generator=g), "random binary 784-pixel images (no data dir)"


def load_valid_images(data_dir: str | None, n: int) -> tuple[torch.Tensor, str]:
    """The first ``n`` binarized MNIST valid images ``[n, 784]`` if the folder is there, else random binary
    images of the same size (the speed scripts' cost does not depend on the pixels)."""
    from vaekit.data import load_dataset

    folder = Path(data_dir) if data_dir else DEFAULT_DATA
    if folder.is_dir():
        return load_dataset("binarized-mnist", "valid", folder).x[:n].flatten(1), "binarized MNIST valid"
    return torch.bernoulli(torch.full((n, 784), 0.13)), "random binary images"


def where(m: dict, device: str) -> str:
    """The machine a result was measured on, in words: the GPU and its host, or the CPU."""
    return f"{m['cuda']} (host: {m['cpu']}, {m['cores']} cores)" if device == "cuda" else f"{m['cpu']}, {m['cores']} cores"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table from a header and rows of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(name: str, payload: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {RESULTS / (name + '.json')} and {name}.md")


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (a CUDA GPU runs asynchronously; a CPU has nothing queued)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def add_malloc_argument(ap) -> None:
    ap.add_argument("--malloc", choices=("kept", "as-it-comes"), default="kept",
                    help="kept (default): freed memory kept for reuse, as vaekit train sets it for its process")


def apply_malloc(a) -> str:
    """Keep freed memory for this process unless ``--malloc as-it-comes``; the words a table gives for it."""
    from vaekit.heap import keep_freed_memory

    a.kept = keep_freed_memory() if a.malloc == "kept" else False
    return "kept for reuse (as vaekit train keeps it)" if a.kept else "returned as glibc decides"


def add_device_argument(ap) -> None:
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: where everything runs")


def gemm_gflops(n: int = 1024, repeats: int = 20, device: str = "cpu") -> float:
    """Peak-ish float32 GEMM rate of this machine: a square n x n product, best of ``repeats``."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def mlp_gemm_ops(batch: int, layers: list[tuple[int, int]], backward: bool, device: str = "cpu") -> list:
    """The matrix products of an MLP step at ``batch`` as (a, b, out) for ``torch.mm(a, b, out=out)``.

    ``layers`` are (in, out) sizes. Forward: one product per layer. Backward: the weight
    gradient of every layer and the input gradient of every layer but the first.
    """
    ops = []

    def new(*shape):
        return torch.randn(*shape, device=device)

    for i, (fan_in, fan_out) in enumerate(layers):
        x, w, y = new(batch, fan_in), new(fan_out, fan_in), new(batch, fan_out)
        ops.append((x, w.t(), y))  # y = x @ W^T
        if backward:
            dy, dw = new(batch, fan_out), new(fan_out, fan_in)
            ops.append((dy.t(), x, dw))  # dW = dy^T @ x
            if i > 0:
                dx = new(batch, fan_in)
                ops.append((dy, w, dx))  # dx = dy @ W
    return ops


def mlp_gemm_seconds(batch: int, layers: list[tuple[int, int]], backward: bool, repeats: int = 30,
                     device: str = "cpu") -> float:
    """Time of just the matrix products of an MLP step at ``batch`` (:func:`mlp_gemm_ops`), best of ``repeats``."""
    ops = mlp_gemm_ops(batch, layers, backward, device)
    for a, b, c in ops:
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        for a, b, c in ops:
            torch.mm(a, b, out=c)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best
