"""A short run of each likelihood on mnist-5k: valid NLL, bits/dim and a picture of its samples.

    python benchmarks/likelihoods.py [--epochs 30] [--iw-samples 1000]

The same model for all (MLP 784-400-20, Adam 1e-3, batch 128, seed 0). Bernoulli trains on the
dynamically binarized images (valid: one fixed binarization), so its numbers are on binary data;
the others on the 256 grey levels: the densities (gaussian, gaussian-learned, continuous-bernoulli)
uniformly dequantised, their bits/dim those of the discrete data (nll + D log 256) / (D log 2); the
logistic as a mass over the levels. Writes results/likelihoods.{json,md} and
docs/images/likelihood-NAME.png (64 samples: means of p(x|z), z ~ N(0, I)).
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
from vaekit.plots import save_samples  # noqa: E402
from vaekit.runs import load_split  # noqa: E402

NAMES = ("bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli", "logistic")
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--iw-samples", type=int, default=1000)
    a = ap.parse_args(argv)
    rows = []
    for name in NAMES:
        cfg = RunConfig.from_dict({"data": {"name": "mnist-5k"},
                                   "model": {"likelihood": name, "latent_dim": 20, "hidden": [400]},
                                   "train": {"epochs": a.epochs}})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = vaekit.train(cfg, Path(tmp) / "r", progress=False, log=lambda m: None)
            seconds = time.perf_counter() - t0
            valid = load_split(cfg, "valid")
            levels = cfg.pixel_levels if cfg.data.dequantize == "uniform" else None
            ev = vaekit.evaluate(res.model, valid.x, iw_samples=a.iw_samples, dequantized_levels=levels)
            save_samples(res.model, IMAGES / f"likelihood-{name}.png", n=64)
        row = {"likelihood": name, "data": cfg.describe_data(), "nll": ev["nll"], "nll_stderr": ev["nll_stderr"],
               "bits_per_dim": ev["bits_per_dim"], "elbo": ev["elbo"], "kl": ev["kl"], "train_seconds": seconds,
               "iw_samples": a.iw_samples}
        rows.append(row)
        print(f"{name}: NLL {row['nll']:.2f} ± {row['nll_stderr']:.2f} nats, {row['bits_per_dim']:.4f} bits/dim, "
              f"KL {row['kl']:.2f}, {seconds:.0f} s")
    table = markdown_table(
        ["likelihood", "data as the model sees it", f"valid NLL (nats, K={a.iw_samples})", "bits/dim", "KL", "train"],
        [[f"`{r['likelihood']}`", r["data"], f"{r['nll']:.2f} ± {r['nll_stderr']:.2f}", f"{r['bits_per_dim']:.4f}",
          f"{r['kl']:.2f}", f"{r['train_seconds']:.0f} s"] for r in rows])
    write_results("likelihoods", {"machine": machine(), "epochs": a.epochs, "rows": rows}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
