"""Training speed with one process and with several under torchrun, on this machine.

    python benchmarks/distributed.py [--data-dir DIR] [--epochs 3] [--batch-size 128 1024] [--nproc 2]
                                     [--device cpu] [--precision fp32]

Runs the real command, `vaekit train` (MLP 784-400-20 on static binarized MNIST, no
pictures), as: one process with all threads; one process with one thread; and
`torchrun --standalone --nproc_per_node=N` with one thread per process (torchrun's
default). The global batch is the same in all. Images/s is the training part of each
epoch (validation and checkpoints excluded), read from the run's metrics.jsonl; the
table gives the best epoch after the first (which pays for warm-up). Writes
results/distributed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, machine, write_results  # noqa: E402


def run(cmd: list[str], threads: int, out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_second"] for r in rows]
    return {"rates": rates, "best": max(rates[1:] or rates), "valid_elbo": rows[-1]["valid_elbo"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA), help="binarized MNIST folder")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[128, 1024], help="global batch sizes")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    a = ap.parse_args()
    if not Path(a.data_dir).is_dir():
        sys.exit(f"no data in {a.data_dir}: pass --data-dir, the folder of binarized_mnist_*.amat")
    threads = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="vaekit-dist-"))
    m = machine()
    tables, payload = [], {"machine": m, "args": vars(a), "results": {}}
    for bs in a.batch_size:
        train = ["train", "--data", "binarized-mnist", "--data-dir", a.data_dir, "--latent-dim", "20", "--hidden",
                 "400", "--epochs", str(a.epochs), "--batch-size", str(bs), "--device", a.device,
                 "--precision", a.precision, "--no-plots", "--no-progress"]
        setups = {
            f"1 process, {threads} threads": ([sys.executable, "-m", "vaekit"], threads),
            "1 process, 1 thread": ([sys.executable, "-m", "vaekit"], 1),
            f"{a.nproc} processes (torchrun), 1 thread each": (
                [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={a.nproc}",
                 "-m", "vaekit"], 1),
        }
        results = {}
        for i, (name, (launcher, nthreads)) in enumerate(setups.items()):
            out = tmp / f"run{bs}-{i}"
            results[name] = run([*launcher, *train, "--out", str(out)], nthreads, out)
            print(f"batch {bs}: {name}: {results[name]['best']:,.0f} img/s (epochs: "
                  f"{', '.join(f'{r:,.0f}' for r in results[name]['rates'])})", flush=True)
        base = results[f"1 process, {threads} threads"]["best"]
        lines = [f"| global batch {bs} | images/s (best epoch after the first) | every epoch | vs 1 process, "
                 f"{threads} threads | valid ELBO after {a.epochs} epochs |", "|---|---|---|---|---|"]
        for name, r in results.items():
            lines.append(f"| {name} | {r['best']:,.0f} | {', '.join(f'{x:,.0f}' for x in r['rates'])} | "
                         f"{r['best'] / base:.2f}x | {r['valid_elbo']:.2f} |")
        tables.append("\n".join(lines))
        payload["results"][str(bs)] = results
    md = (f"### `vaekit train` with 1 and {a.nproc} processes, MLP 784-400-20, {a.device}, {a.precision}\n\n"
          f"{m['cpu']}, {m['cores']} cores, PyTorch {m['torch']}, {m['date']}; "
          f"data: binarized MNIST train (50,000 images), static binarization.\n\n" + "\n\n".join(tables) + "\n")
    write_results("distributed", payload, md)

if __name__ == "__main__":
    main()
