"""What each latent dimension means on `shapes`, and what a beta costs: the beta-VAE (Higgins et al. 2017)
at several betas, each trained for the same minutes, scored with the NLL and every disentanglement metric.

    python benchmarks/disentanglement.py --betas 1 4 8 --minutes 3 --out runs/disentanglement

Each run is `vaekit train --config configs/shapes.toml --latent-dim 10 --beta B --max-minutes M` (the conv
network of the preset, 10 latent dimensions as in the beta-VAE papers), then `vaekit evaluate --split valid
--iw-samples K --disentanglement --json`. Writes benchmarks/results/disentanglement.{json,md} and copies each
run's traversals into docs/images/shapes-beta-B-traversals.png.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import ROOT, machine, markdown_table, write_results


def run(argv: list[str]) -> str:
    done = subprocess.run([sys.executable, "-m", "vaekit", *argv], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"vaekit {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget of each run")
    ap.add_argument("--latent-dim", type=int, default=10)
    ap.add_argument("--iw-samples", type=int, default=100)
    ap.add_argument("--out", default="runs/disentanglement")
    ap.add_argument("--no-images", action="store_true", help="leave docs/images alone")
    a = ap.parse_args(argv)
    from vaekit.trainer import CPU_BF16_FLAGS, _cpu_flags

    rows, results = [], []
    for beta in a.betas:
        out = Path(a.out) / f"beta-{beta:g}"
        run(["train", "--config", str(ROOT / "configs" / "shapes.toml"), "--latent-dim", str(a.latent_dim),
             "--beta", str(beta), "--max-minutes", str(a.minutes), "--out", str(out), "--force", "--no-progress"])
        ev = json.loads(run(["evaluate", str(out), "--split", "valid", "--iw-samples", str(a.iw_samples),
                             "--disentanglement", "--json", "--no-progress"]).strip().splitlines()[-1])
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        d = ev["disentanglement"]
        results.append({"beta": beta, "epochs": len(history), "seconds": history[-1]["elapsed_seconds"],
                        "evaluation": ev, "run_dir": str(out)})
        rows.append([f"{beta:g}", str(len(history)), f"{ev['elbo']:.1f}", f"{ev['nll']:.1f} ± {ev['nll_stderr']:.1f}",
                     f"{ev['bits_per_dim']:.3f}", f"{d['mig']['mig']:.3f}", f"{d['dci']['disentanglement']:.3f}",
                     f"{d['dci']['completeness']:.3f}", f"{d['dci']['informativeness']:.3f}", f"{d['sap']['sap']:.3f}",
                     f"{d['factor_vae']['factor_vae']:.3f}", str(d["factor_vae"]["active_dims"])])
        if not a.no_images:
            shutil.copyfile(out / "traversals.png", ROOT / "docs" / "images" / f"shapes-beta-{beta:g}-traversals.png")
        print(f"beta {beta:g}: {rows[-1]}", flush=True)
    m = machine()
    m["cpu_flags"] = sorted(_cpu_flags() & {*CPU_BF16_FLAGS, "avx512f", "avx2"})
    header = ["beta", "epochs", "valid ELBO", f"NLL (K={a.iw_samples})", "bits/dim", "MIG", "DCI D", "DCI C",
              "DCI I", "SAP", "FactorVAE", "dims with sd > 0.05"]
    md = (f"shapes valid split (2,000 images, 8-bit colour, discretised logistic), conv 32-64-128, "
          f"{a.latent_dim} latent dimensions, {a.minutes:g} minutes each on {m['cpu']} "
          f"({', '.join(m['cpu_flags'])}), {m['date']}:\n\n" + markdown_table(header, rows))
    write_results("disentanglement", {"machine": m, "minutes": a.minutes, "latent_dim": a.latent_dim,
                                      "results": results}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
