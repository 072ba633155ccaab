"""Using what you trained, measured: per-image scores as outlier scores, and the fitted latent sampler.

    python benchmarks/use.py [--epochs 50] [--bm-epochs 30] [--iw-samples 1000] [--data-dir DIR]

1. Outliers: a VAE (MLP 784-400-20, Bernoulli, standard prior) trained on the mnist-5k digits 0-8 only
   (``--keep-classes 0 ... 8``; dynamically binarized, valid: one fixed binarization), then every valid image of
   all ten digits scored (``vaekit evaluate --per-image``); the AUROC of the NLL, of -ELBO and of
   -reconstruction as scores that should rank the 9s (unseen) above the 0-8s.
2. Fitted prior: a VAE (MLP 784-400-20) trained on statically binarized MNIST (Larochelle & Murray), then a
   Gaussian mixture fitted to its training codes (``vaekit fit-prior``, 10 components, full covariance; fitted
   to draws z ~ q(z|x) and, separately, to the posterior means); valid NLL with the trained N(0, I) prior and
   with each fitted mixture, K importance samples; 64 samples of each, side by side
   (docs/images/fitted-prior.png). Also for the tutorial's 2-D latent on mnist-5k.

Every number comes from the vaekit commands a user runs. Writes results/use.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, markdown_table, machine, where, write_results  # noqa: E402

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def vaekit(*args: str) -> str:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vaekit", *args], check=True, capture_output=True, text=True).stdout
    print(f"  vaekit {' '.join(args)}  ({time.perf_counter() - t:.0f} s)", flush=True)
    return out


def evaluate_json(*args: str) -> dict:
    return json.loads(vaekit("evaluate", *args, "--json", "--no-progress").strip().splitlines()[-1])


def outliers(tmp: Path, epochs: int, k: int) -> dict:
    from sklearn.metrics import roc_auc_score

    run = tmp / "digits0-8"
    t0 = time.perf_counter()
    vaekit("train", "--keep-classes", *map(str, range(9)), "--latent-dim", "20", "--hidden", "400", "--epochs",
           str(epochs), "--no-plots", "--no-progress", "--out", str(run))
    train_s = time.perf_counter() - t0
    scores = tmp / "scores.csv"
    res = evaluate_json(str(run), "--keep-classes", "all", "--iw-samples", str(k), "--per-image", str(scores))
    with open(scores) as f:
        rows = list(csv.DictReader(f))
    nine = np.array([r["label"] == "9" for r in rows])
    out = {"train_seconds": round(train_s, 1), "epochs": epochs, "iw_samples": k, "n_inliers": int((~nine).sum()),
           "n_outliers": int(nine.sum()), "valid_nll_all": res["nll"], "auroc": {}}
    for name, sign in (("nll", 1), ("elbo", -1), ("reconstruction", -1)):
        s = sign * np.array([float(r[name]) for r in rows])  # higher: more unusual
        out["auroc"][name] = float(roc_auc_score(nine, s))
        out[f"mean_{name}_inliers"] = float(sign * s[~nine].mean())
        out[f"mean_{name}_nines"] = float(sign * s[nine].mean())
    return out


def fitted(tmp: Path, name: str, train_args: list[str], k: int, draws: list[str]) -> dict:
    run = tmp / name
    t0 = time.perf_counter()
    vaekit("train", *train_args, "--no-plots", "--no-progress", "--out", str(run))
    out = {"train_seconds": round(time.perf_counter() - t0, 1), "iw_samples": k, "rows": []}
    trained = evaluate_json(str(run), "--iw-samples", str(k))
    out["rows"].append({"prior": "trained N(0, I)", "nll": trained["nll"], "nll_stderr": trained["nll_stderr"],
                        "elbo": trained["elbo"], "kl": trained["kl"]})
    vaekit("sample", str(run), "--out", str(tmp / f"{name}-prior.png"), "-n", "64", "--seed", "1")
    for codes in draws:
        vaekit("fit-prior", str(run), "--components", "10", "--codes", codes)
        r = evaluate_json(str(run), "--iw-samples", str(k), "--prior", "fitted")
        out["rows"].append({"prior": f"fitted mixture (10 full, codes: {codes})", "nll": r["nll"],
                            "nll_stderr": r["nll_stderr"], "elbo": r["elbo"], "kl": r["kl"]})
        vaekit("sample", str(run), "--sampler", "fitted", "--out", str(tmp / f"{name}-fitted-{codes}.png"), "-n", "64",
               "--seed", "1")
    out["pictures"] = [str(tmp / f"{name}-prior.png"), *(str(tmp / f"{name}-fitted-{c}.png") for c in draws)]
    return out


def side_by_side(paths: list[str], titles: list[str], dest: Path) -> None:
    from PIL import Image, ImageDraw

    ims = [Image.open(p).convert("RGB") for p in paths]
    h = max(i.height for i in ims)
    canvas = Image.new("RGB", (sum(i.width for i in ims) + 10 * (len(ims) - 1), h + 24), "white")
    x = 0
    for im, title in zip(ims, titles):
        canvas.paste(im, (x, 24))
        ImageDraw.Draw(canvas).text((x + 6, 6), title, fill="black")
        x += im.width + 10
    canvas.save(dest)


def markdown(result: dict) -> str:
    m, o = result["machine"], result["outliers"]
    se = 0.5 / (o["n_outliers"] ** 0.5)  # a bound on the AUROC's standard error with this few outliers
    md = [f"Measured on {where(m, 'cpu')}, PyTorch {m['torch']}, {m['date']} (the training times are not speed "
          "figures: other jobs shared the CPU).\n\n",
          f"**Outliers** (mnist-5k, dynamically binarized; valid: one fixed binarization). Trained on digits 0-8 only "
          f"({o['epochs']} epochs, MLP 784-400-20), then every valid image scored, K = {o['iw_samples']}: "
          f"{o['n_inliers']} images of 0-8 against {o['n_outliers']} nines (so an AUROC is known to about "
          f"±{se:.2f}).\n\n",
          markdown_table(["score (higher: more unusual)", "AUROC, nines vs 0-8", "its mean on 0-8", "on the nines"],
                         [[label, f"{o['auroc'][n]:.3f}", f"{o[f'mean_{n}_inliers']:.2f}",
                           f"{o[f'mean_{n}_nines']:.2f}"]
                          for n, label in (("nll", "NLL (nats)"), ("elbo", "−ELBO (nats; means: the ELBO)"),
                                           ("reconstruction", "−reconstruction (means: E_q log p(x|z))"))])]
    for key, title in (("fitted_bm", "statically binarized MNIST, MLP 784-400-20"),
                       ("fitted_2d", "mnist-5k dynamically binarized, the tutorial's 2-D latent")):
        f = result[key]
        md += [f"\n**Fitted prior**, {title}, valid split, K = {f['iw_samples']} (the same encoder and decoder; "
               "only p(z) differs):\n\n",
               markdown_table(["p(z)", "NLL (nats)", "ELBO", "KL"],
                              [[r["prior"], f"{r['nll']:.2f} ± {r['nll_stderr']:.2f}", f"{r['elbo']:.2f}",
                                f"{r['kl']:.2f}"] for r in f["rows"]])]
    return "".join(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=50, help="epochs of the mnist-5k runs")
    ap.add_argument("--bm-epochs", type=int, default=30, help="epochs of the binarized-MNIST run")
    ap.add_argument("--iw-samples", type=int, default=1000)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA), help="binarized MNIST folder")
    a = ap.parse_args()
    m = machine()
    result = {"machine": m}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("outliers: mnist-5k digits 0-8 vs 9", flush=True)
        result["outliers"] = outliers(tmp, a.epochs, a.iw_samples)
        print("fitted prior: binarized MNIST, 20-D latent", flush=True)
        result["fitted_bm"] = fitted(tmp, "bm", ["--data", "binarized-mnist", "--data-dir", a.data_dir, "--latent-dim",
                                                 "20", "--hidden", "400", "--epochs", str(a.bm_epochs)],
                                     a.iw_samples, ["sample", "mean"])
        print("fitted prior: mnist-5k, the tutorial's 2-D latent", flush=True)
        result["fitted_2d"] = fitted(tmp, "2d", ["--epochs", str(a.epochs)], a.iw_samples, ["sample"])
        IMAGES.mkdir(parents=True, exist_ok=True)
        side_by_side(result["fitted_bm"]["pictures"], ["z ~ N(0, I)", "z ~ fitted (draws)", "z ~ fitted (means)"],
                     IMAGES / "fitted-prior.png")
        side_by_side(result["fitted_2d"]["pictures"], ["z ~ N(0, I)", "z ~ fitted mixture"],
                     IMAGES / "fitted-prior-2d.png")
    write_results("use", result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
