"""Compute docs/tutorial.md: run its blocks, write what they print under them, draw its figures.

    python examples/tutorial_page.py            # full size, rewrites docs/tutorial.md and docs/images/tutorial-*
    python examples/tutorial_page.py --check    # small size (as the tests run it), writes nothing

The page's ```python blocks run top to bottom in one namespace; the ```text block after each
receives what it printed. Its ```bash blocks are commands of examples/tutorial_experiment.py,
run in a scratch folder; their output goes under them too, their pictures into docs/images/,
and the table between the <!-- comparison --> markers is made from their summaries.
Takes about a minute and a half on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "tutorial.md"
IMAGES = ROOT / "docs" / "images"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```\n(?:\n```text\n(.*?)```\n)?", re.S)
COMPARISON = re.compile(r"<!-- comparison -->\n.*?<!-- /comparison -->\n|COMPARISON_TABLE\n", re.S)
QUICK_ARGS = ["--steps", "20", "--frame-every", "10"]  # what --check appends to each experiment command
RAN: dict = {}  # the namespace of the last run of the page's blocks


def blocks(text: str) -> list[tuple[str, str, re.Match]]:
    """The page's runnable blocks in order: ``(language, code, match)``."""
    return [(m.group(1), m.group(2), m) for m in BLOCK.finditer(text)]


def run_python(code: str, namespace: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/tutorial.md", "exec"), namespace)
    return out.getvalue()


def run_bash(code: str, workdir: Path, quick: bool) -> str:
    """Run each ``python examples/tutorial_experiment.py ...`` line in ``workdir`` (in this process); return
    the output, each command's under a ``$`` line when there are several."""
    import runpy

    experiment = runpy.run_path(str(ROOT / "examples" / "tutorial_experiment.py"), run_name="tutorial_experiment")
    commands = [line for line in code.splitlines() if line.strip()]
    parts = []
    for line in commands:
        argv = shlex.split(line)
        if argv[:2] != ["python", "examples/tutorial_experiment.py"]:
            raise SystemExit(f"docs/tutorial.md: don't know how to run {line!r}")
        args = argv[2:]
        if quick:
            args += QUICK_ARGS + (["--evaluate", "5"] if "--evaluate" in args else [])
        out = io.StringIO()
        with contextlib.chdir(workdir), contextlib.redirect_stdout(out):
            code_ = experiment["main"](args)
        if code_ != 0:
            raise SystemExit(f"docs/tutorial.md: {line!r} failed with exit code {code_}")
        parts.append((f"$ {line}\n" if len(commands) > 1 else "") + out.getvalue())
    return "".join(parts)


def comparison_table(workdir: Path) -> str:
    rows = ["| objective | latent dims | KL | valid ELBO | valid −log p(x) (K = 5,000) | active dims | train time |",
            "|---|---|---|---|---|---|---|"]
    for name in ("tutorial-loss", "tutorial-elbo", "tutorial-loss-20", "tutorial-elbo-20"):
        s = json.loads((workdir / "runs" / name / "summary.json").read_text())
        v = s["valid"]
        what = "tutorial's loss" if s["objective"] == "tutorial" else "vaekit's ELBO"
        rows.append(f"| {what} | {s['nlatent']} | {v['kl']:.2f} | {v['elbo']:.2f} | {v['nll']:.2f} ± "
                    f"{v['nll_stderr']:.2f} | {v['active_dims']} of {s['nlatent']} | {s['train_seconds']:.1f} s |")
    return "<!-- comparison -->\n" + "\n".join(rows) + "\n<!-- /comparison -->\n"


def kl_figure(ns: dict, path: Path) -> None:
    """The tutorial's Figure 1 from the page's own numbers: two normals and the integrands of both KLs."""
    import numpy as np
    from matplotlib.figure import Figure

    from vaekit.plots.grids import save_figure

    x, log_p, log_q = ns["grid"], ns["log_p"], ns["log_q"]
    keep = (x > -4) & (x < 5)
    x, log_p, log_q = x[keep], log_p[keep], log_q[keep]
    p, q = np.exp(log_p), np.exp(log_q)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (a, b, la, lb, kl) in zip(axes, ((p, q, "p", "q", ns["numeric_pq"]), (q, p, "q", "p", ns["numeric_qp"]))):
        ax.plot(x, p, color="#1f77b4", label="p = N(0, 1)")
        ax.plot(x, q, color="#d62728", label="q = N(2, 0.5²)")
        integrand = a * (np.log(a) - np.log(b))
        ax.fill_between(x, integrand, color="#999999", alpha=0.5,
                        label=f"{la} log({la}/{lb}): area = KL({la} || {lb}) = {kl:.3f} nats")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(f"KL({la} || {lb}) = {kl:.3f} nats")
        ax.set_xlabel("x")
        ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)


def side_by_side(left: Path, right: Path, out: Path) -> None:
    from PIL import Image

    a, b = Image.open(left).convert("L"), Image.open(right).convert("L")
    pad = 12
    canvas = Image.new("L", (a.width + b.width + pad, max(a.height, b.height)), 128)
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + pad, 0))
    canvas.save(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="run every block at a small size and write nothing")
    ap.add_argument("--size", type=float, default=None, help="VAEKIT_TUTORIAL_SIZE (default 1, or 0.01 with --check)")
    args = ap.parse_args(argv)
    size = args.size if args.size is not None else (0.01 if args.check else 1.0)
    os.environ["VAEKIT_TUTORIAL_SIZE"] = str(size)
    os.environ.setdefault("MPLBACKEND", "Agg")
    text = PAGE.read_text()
    namespace: dict = {"__name__": "tutorial_page"}
    RAN["namespace"] = namespace  # what the blocks computed, for the tests to check
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pieces, pos = [], 0
        for lang, code, m in blocks(text):
            t0 = time.perf_counter()
            out = run_python(code, namespace) if lang == "python" else run_bash(code, work, args.check)
            line = text[: m.start()].count("\n") + 1
            print(f"{lang} block at line {line}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            if m.group(3) is None:
                if out:
                    raise SystemExit(f"docs/tutorial.md line {line}: the block prints but no ```text block follows it")
                continue
            pieces += [text[pos : m.start(3)], out]
            pos = m.end(3)
        pieces.append(text[pos:])
        new = "".join(pieces)
        if args.check:
            print(f"every block ran (size {size}) in {time.perf_counter() - start:.0f} s; nothing written")
            return 0
        new = COMPARISON.sub(lambda _: comparison_table(work), new)
        IMAGES.mkdir(parents=True, exist_ok=True)
        kl_figure(namespace, IMAGES / "tutorial-kl-normals.png")
        shutil.copyfile(work / "runs" / "tutorial" / "latent_space_vae.png", IMAGES / "tutorial-latent-space.png")
        shutil.copyfile(work / "runs" / "tutorial" / "vae.gif", IMAGES / "tutorial-vae.gif")
        side_by_side(work / "runs" / "tutorial-loss" / "latent_space_vae.png",
                     work / "runs" / "tutorial-elbo" / "latent_space_vae.png", IMAGES / "tutorial-loss-vs-elbo.png")
    PAGE.write_text(new)
    print(f"wrote {PAGE.relative_to(ROOT)} and docs/images/tutorial-* in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
