"""Choosing --sigma-min, the learned Gaussian's floor: valid bits/dim against the floor, on mnist-5k.

    python benchmarks/sigma_min.py [--epochs 40] [--floors 0.0001 0.001 0.003 0.01 0.03 0.1]

Each floor trains the same model (MLP 784-400-20, Adam 1e-3, batch 128, seed 0) on mnist-5k's
256 grey levels, uniformly dequantised, and is scored on the 500 valid images: the
importance-weighted NLL (K = 200) as bits/dim of the discrete data, and the train-valid gap
of the ELBO. Writes results/sigma_min.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, machine, write_results  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import RunConfig  # noqa: E402
from vaekit.runs import load_split  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--floors", type=float, nargs="+", default=[1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one run per floor and seed")
    a = ap.parse_args(argv)
    rows = []
    for floor, seed in [(f, s) for f in a.floors for s in a.seeds]:
        cfg = RunConfig.from_dict({"data": {"name": "mnist-5k"},
                                   "model": {"likelihood": "gaussian-learned", "sigma_min": floor,
                                             "latent_dim": 20, "hidden": [400]},
                                   "train": {"epochs": a.epochs, "seed": seed}})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            try:
                res = vaekit.train(cfg, Path(tmp) / "r", progress=False, log=lambda m: None)
            except vaekit.DivergenceError as e:
                rows.append({"sigma_min": floor, "seed": seed, "diverged": str(e)[:120]})
                print(f"sigma_min {floor:g}: diverged")
                continue
            seconds = time.perf_counter() - t0
            valid = load_split(cfg, "valid")
            ev = vaekit.evaluate(res.model, valid.x, iw_samples=200, dequantized_levels=cfg.pixel_levels)
            last = res.history[-1]
            best = max(res.history, key=lambda h: h["valid_elbo"])
        row = {"sigma_min": floor, "seed": seed, "valid_bits_per_dim": ev["bits_per_dim"], "valid_nll": ev["nll"],
               "nll_stderr": ev["nll_stderr"], "best_epoch": best["epoch"], "train_elbo": last["train_elbo"],
               "valid_elbo": last["valid_elbo"], "gap": last["train_elbo"] - last["valid_elbo"],
               "seconds": round(seconds, 1)}
        rows.append(row)
        print(f"sigma_min {floor:g}, seed {seed}: valid {row['valid_bits_per_dim']:.4f} bits/dim (best valid ELBO at epoch "
              f"{row['best_epoch']}), train-valid ELBO gap {row['gap']:.1f} nats, {seconds:.0f} s")
    table = markdown_table(
        ["sigma_min", "seed", "valid bits/dim (K=200)", "valid NLL (nats, density)", "best epoch", "train − valid ELBO"],
        [[f"{r['sigma_min']:g}", str(r["seed"]), "diverged", "", "", ""] if "diverged" in r else
         [f"{r['sigma_min']:g}", str(r["seed"]), f"{r['valid_bits_per_dim']:.4f}",
          f"{r['valid_nll']:.1f} ± {r['nll_stderr']:.1f}", str(r["best_epoch"]), f"{r['gap']:.1f}"] for r in rows])
    write_results("sigma_min", {"machine": machine(), "epochs": a.epochs, "rows": rows}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
