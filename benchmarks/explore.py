"""vaekit explore in headless Chromium: decodes per second as a live hover asks for them, and screenshots.

    python benchmarks/explore.py [--epochs 30] [--chromium /usr/bin/chromium]

Three pages: the server on the main job's model (MLP 784-400-2 on mnist-5k), the server on a conv model
(mnist-5k, 4x4 convolutions 32-64, 16-D latent), and the exported page of the main job's model (the decoder run
by the page's JavaScript, no server). Each: one point decoded at a time, each request awaited before the next
(``vaekitBench(n)`` in the page), the median of 3 rounds of 200. The screenshots (a grey model and a colour one,
shapes 32x32 with a conv VAE) go to docs/images/explore-*.png. Writes results/explore.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, machine, where, write_results  # noqa: E402

from vaekit.explore import Explorer, export_page, make_server  # noqa: E402

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def vaekit(*args: str) -> None:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vaekit", *args], check=True, capture_output=True)
    print(f"  vaekit {' '.join(args)}  ({time.perf_counter() - t:.0f} s)", flush=True)


def serve(run: Path):
    server = make_server(Explorer(run))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def measure(browser, url: str, shot: Path | None = None) -> float:
    page = browser.new_page(viewport={"width": 1500, "height": 1050})
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=60000)
    rates = [page.evaluate("vaekitBench(200)") for _ in range(3)]
    if shot is not None:
        box = page.locator("#plane").bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.45)
        page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.7)
        page.click("#sample")
        d = page.locator("#draw").bounding_box()
        page.mouse.move(d["x"] + d["width"] * 0.35, d["y"] + d["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(d["x"] + d["width"] * 0.6, d["y"] + d["height"] * 0.8, steps=12)
        page.mouse.up()
        page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.38)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shot), full_page=True)
    page.close()
    return statistics.median(rates)


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    a = ap.parse_args()
    m = machine()
    rows = []
    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        tmp = Path(d)
        vaekit("train", "--epochs", str(a.epochs), "--no-plots", "--no-progress", "--out", str(tmp / "main"))
        vaekit("evaluate", str(tmp / "main"), "--iw-samples", "1000", "--record", "--no-progress")
        vaekit("train", "--arch", "conv", "--conv-channels", "32", "64", "--hidden", "256", "--latent-dim", "16",
               "--epochs", str(max(3, a.epochs // 3)), "--no-plots", "--no-progress", "--out", str(tmp / "conv"))
        vaekit("train", "--data", "shapes", "--arch", "conv", "--conv-channels", "32", "64", "--hidden", "256",
               "--latent-dim", "8", "--epochs", "8", "--no-plots", "--no-progress", "--out", str(tmp / "colour"))
        browser = p.chromium.launch(executable_path=a.chromium, args=["--no-sandbox", "--disable-gpu"])
        IMAGES.mkdir(parents=True, exist_ok=True)
        for name, run, shot in (("server: main job, MLP 784-400-2", tmp / "main", IMAGES / "explore-grey.png"),
                                ("server: conv 32-64, 16-D latent", tmp / "conv", None),
                                ("server: colour shapes, conv, 8-D latent", tmp / "colour",
                                 IMAGES / "explore-colour.png")):
            server, url = serve(run)
            rows.append({"page": name, "decodes_per_second": measure(browser, url, shot)})
            server.shutdown()
            server.server_close()
            print(f"  {rows[-1]}", flush=True)
        page = export_page(tmp / "main", tmp / "main.html")
        rows.append({"page": "exported page: main job, decoded in JavaScript", "decodes_per_second":
                     measure(browser, page.as_uri()), "bytes": page.stat().st_size})
        print(f"  {rows[-1]}", flush=True)
        browser.close()
    md = (f"Measured on {where(m, 'cpu')} with headless Chromium, PyTorch {m['torch']}, {m['date']}: one point "
          "decoded at a time, each awaited before the next, median of 3 rounds of 200.\n\n"
          + markdown_table(["page", "decodes per second"], [[r["page"], f"{r['decodes_per_second']:.0f}"]
                                                            for r in rows]))
    write_results("explore", {"machine": m, "rows": rows}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
