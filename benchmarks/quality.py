"""Time to quality: train the preset configs/quality.toml and record the valid NLL (importance-weighted,
nats, static binarization) against training wall-clock, for one precision/compile setting per call.

    python benchmarks/quality.py --label default [--data-dir DIR] [--checkpoints 2 4 10] [--k 1000 5000 5000]
    python benchmarks/quality.py --label fp32 --precision fp32 --no-compile --k 1000
    python benchmarks/quality.py --label bf16 --precision bf16 --no-compile --k 1000
    python benchmarks/quality.py --plot default fp32 bf16
    python benchmarks/quality.py --label cuda --device cuda --checkpoints 2 4
    python benchmarks/quality.py --label fp32-budget --precision fp32 --schedule-clock budget --checkpoints 10 --k 5000

On the epochs clock (the default here) training runs in segments that stop at each checkpoint's minute mark (``max_minutes``; a resumed run
ends with exactly the weights of an uninterrupted one, so the segments change nothing but the time
each resumed segment spends starting, compilation included, which counts); on the budget clock each mark is a
run of its own, whose schedule anneals within that mark's minutes. After each segment the
best-so-far model is scored on the 10,000 valid images with the K given for that mark (one K for
all, or one per mark), in float32; evaluation time is not training time. Without --precision and
--compile the run takes the defaults (``precision = "auto"``, compile decided by the run's length).
Writes results/quality-LABEL.{json,md}; ``--plot`` draws those labels' curves into
docs/images/quality-curves.png and writes results/quality.md with all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, ROOT, machine, where, write_results  # noqa: E402

import vaekit  # noqa: E402
from vaekit.config import load_config  # noqa: E402
from vaekit.data import load_dataset  # noqa: E402


def table(points: list[dict]) -> str:
    rows = "\n".join(f"| {p['minutes_budget']:g} | {p['train_minutes']:.2f} | {p['epochs']} | "
                     f"{p['best_valid_elbo']:.2f} | {p['valid_nll']:.2f} ± {p['nll_stderr']:.2f} | {p['iw_samples']} |"
                     for p in points)
    return ("| budget (min) | training minutes | epochs | best valid ELBO (nats) | valid NLL (nats) | K |\n"
            "|---|---|---|---|---|---|\n" + rows + "\n")


def run(a) -> None:
    base = load_config(a.config).override(data={"name": "binarized-mnist", "data_dir": a.data_dir})
    if a.precision:
        base = base.override(train={"precision": a.precision})
    ks = a.k if len(a.k) == len(a.checkpoints) else [a.k[0]] * len(a.checkpoints)
    valid = load_dataset("binarized-mnist", "valid", a.data_dir).x
    out = Path(a.out) / a.label
    lines: list[str] = []
    points = []
    segments = a.schedule_clock == "epochs"  # one run cut at each mark; on the budget clock, one run per mark
    for i, (minutes, k) in enumerate(zip(a.checkpoints, ks)):
        cfg = base.override(train={"max_minutes": minutes, "schedule_clock": a.schedule_clock})
        where_ = out if segments else out / f"{minutes:g}min"
        res = vaekit.train(cfg, where_, resume=segments and i > 0, force=not segments or i == 0, progress=False,
                           compile=a.compile, device=a.device, log=lambda m: (lines.append(m), print(m, flush=True)))
        hist = [json.loads(x) for x in (where_ / "metrics.jsonl").read_text().splitlines()]
        t = time.perf_counter()
        ev = vaekit.evaluate(res.model, valid, iw_samples=k)
        points.append({"minutes_budget": minutes, "train_minutes": hist[-1]["elapsed_seconds"] / 60,
                       "epochs": hist[-1]["epoch"], "best_valid_elbo": max(h["valid_elbo"] for h in hist),
                       "best_epoch": max(hist, key=lambda h: h["valid_elbo"])["epoch"],
                       "valid_nll": ev["nll"], "nll_stderr": ev["nll_stderr"], "iw_samples": k,
                       "eval_seconds": time.perf_counter() - t})
        print(points[-1], flush=True)
    out = where_
    saved = json.loads((out / "config.json").read_text())
    how = (f"precision {saved['train']['precision']}, compile "
           f"{'on' if any(m.startswith('compile: on') for m in lines) or a.compile else 'off'}, "
           f"{a.schedule_clock} clock")
    m = machine()
    dev = next(res.model.parameters()).device.type
    md = (f"### Time to quality: `{Path(a.config).name}`, {a.label} ({how}, {dev})\n\n"
          f"{where(m, dev)}, PyTorch {m['torch']}, {m['date']}. Statically binarized MNIST, valid "
          "split, 10,000 images; NLL from the importance-weighted bound (float32) of the best-valid-ELBO "
          "checkpoint so far; training minutes include data loading and compilation, not evaluation.\n\n"
          + table(points))
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [{"minutes": h["elapsed_seconds"] / 60, "valid_elbo": h["valid_elbo"]} for h in hist]
    write_results(f"quality-{a.label}", {"machine": m, "device": dev, "label": a.label, "how": how, "config": saved,
                                         "points": points, "elbo_curve": curve}, md)


def plot(labels: list[str]) -> None:
    from matplotlib.figure import Figure

    from vaekit.plots import save_figure

    results = [json.loads((RESULTS / f"quality-{label}.json").read_text()) for label in labels]
    fig = Figure(figsize=(11, 5.4))
    left, right = fig.subplots(1, 2, gridspec_kw={"wspace": 0.3})
    fig.subplots_adjust(bottom=0.22)
    for r in results:
        name = f"{r['label']} ({r['how']})"
        line = right.plot([c["minutes"] for c in r["elbo_curve"]], [c["valid_elbo"] for c in r["elbo_curve"]],
                          label=name)[0]
        pts = r["points"]
        left.errorbar([p["train_minutes"] for p in pts], [p["valid_nll"] for p in pts],
                      yerr=[p["nll_stderr"] for p in pts], marker="o", capsize=3, color=line.get_color(), label=name)
        for p in pts:
            left.annotate(f"K={p['iw_samples']}", (p["train_minutes"], p["valid_nll"]), fontsize=7,
                          xytext=(4, 4), textcoords="offset points")
    for ax, what in ((left, "valid NLL (nats, lower is better)"), (right, "valid ELBO (nats)")):
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    for y, when in ((89.0, 4), (87.5, 10)):  # the targets of the time-to-quality issue
        left.axhline(y, color="grey", ls=":", lw=1)
        left.annotate(f"target at {when} min: {y}", (0, y), xycoords=("axes fraction", "data"), fontsize=7,
                      color="grey", xytext=(3, 2), textcoords="offset points")
    lows = [max(c["valid_elbo"] for c in r["elbo_curve"]) for r in results]
    right.set_ylim(min(lows) - 8, max(lows) + 1)
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("configs/quality.toml on statically binarized MNIST (valid split)")
    save_figure(fig, ROOT / "docs" / "images" / "quality-curves.png")
    md = "\n".join(f"### {r['label']} ({r['how']})\n\n" + table(r["points"]) for r in results)
    (RESULTS / "quality.md").write_text(md)
    print(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="default", help="names the results file and the run folder")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--config", default=str(ROOT / "configs" / "quality.toml"))
    ap.add_argument("--out", default="runs/quality-benchmark")
    ap.add_argument("--checkpoints", type=float, nargs="+", default=[2, 4, 10], help="minute marks")
    ap.add_argument("--k", type=int, nargs="+", default=[1000, 5000, 5000],
                    help="importance samples per mark (one value: the same for all)")
    ap.add_argument("--precision", default=None, help="fp32, bf16, ... (default: the config's)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="default: as vaekit train decides")
    ap.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu or cuda")
    ap.add_argument("--schedule-clock", choices=("epochs", "budget"), default="epochs",
                    help="epochs: one run cut at each mark (the schedule follows --epochs, so the cuts change "
                         "nothing); budget: a fresh run per mark, its schedule fitted to that mark's minutes")
    ap.add_argument("--plot", nargs="+", metavar="LABEL", help="draw the curves of these results and stop")
    a = ap.parse_args()
    if a.plot:
        plot(a.plot)
    else:
        if len(a.k) not in (1, len(a.checkpoints)):
            ap.error("--k takes one value, or one per checkpoint")
        run(a)


if __name__ == "__main__":
    main()
