"""vaekit explore: the server's API and its safety, the page in a real browser (Debian's chromium driven by
Playwright, no browser download), and the exported page that runs the model itself."""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from .conftest import interruptible
from vaekit.explore import Explorer, export_page, make_server

CHROMIUM = os.environ.get("VAEKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
try:
    import playwright.sync_api  # noqa: F401
    HAS_PLAYWRIGHT = True
except ImportError:
    HAS_PLAYWRIGHT = False
needs_browser = pytest.mark.skipif(not (CHROMIUM and HAS_PLAYWRIGHT),
                                   reason="needs Debian's chromium (apt-get install chromium) and Playwright's Python "
                                          "package (pip install playwright); no browser is downloaded")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    os.environ["VAEKIT_DATA"] = str(root / "cache")
    common = ["--epochs", "2", "--no-progress", "--no-plots", "--seed", "1"]
    out = {"mlp": root / "mlp", "cvae": root / "cvae", "colour": root / "colour"}
    assert main(["train", "--data", "digits", "--latent-dim", "2", "--hidden", "32", "--out", str(out["mlp"]),
                 *common]) == 0
    assert main(["train", "--data", "digits", "--variant", "cvae", "--arch", "gated-mlp", "--latent-dim", "3",
                 "--hidden", "16", "--prior", "vamp", "--prior-components", "5", "--out", str(out["cvae"]),
                 *common]) == 0
    assert main(["train", "--data", "shapes", "--image-size", "8", "--arch", "conv", "--conv-channels", "4",
                 "--hidden", "16", "--latent-dim", "4", "--epochs", "1", "--no-progress", "--no-plots",
                 "--out", str(out["colour"])]) == 0
    return out


@pytest.fixture
def serving(runs):
    servers = []

    def start(kind):
        server = make_server(Explorer(runs[kind]))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def request(port, method, path, body=None, host=None, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    out = r.status, r.read()
    c.close()
    return out[0], json.loads(out[1]) if out[1] else None


def pixels(b64, shape):
    return np.frombuffer(base64.b64decode(b64), dtype=np.uint8).reshape(shape)


def test_the_api_decodes_with_the_runs_model(runs, serving):
    port = serving("mlp")
    status, info = request(port, "GET", "/api/info")
    assert status == 200 and info["latent_dim"] == 2 and info["image_shape"] == [1, 8, 8]
    assert info["plane"]["kind"] == "dims" and len(info["points"]["uv"]) == len(info["points"]["labels"]) > 0
    assert sorted(info["order"]) == [0, 1] and info["summary"]["valid_elbo"] < 0
    z = [[0.5, -1.0], [2.0, 0.25]]
    status, out = request(port, "POST", "/api/decode", {"z": z})
    model = vaekit.load(runs["mlp"])
    want = (model.decode(torch.tensor(z)).mean.reshape(2, 1, 8, 8).clamp(0, 1) * 255).round().byte().numpy()
    assert status == 200 and np.array_equal(pixels(out["pixels"], (2, 1, 8, 8)), want)
    status, img = request(port, "GET", "/api/image?i=3")
    assert status == 200 and len(img["mean"]) == 2 and img["label"] in range(10)
    drawn = [0.0] * 64
    drawn[27] = drawn[28] = 1.0
    status, enc = request(port, "POST", "/api/encode", {"x": drawn})
    assert status == 200 and len(enc["uv"]) == 2 and len(enc["cov_uv"]) == 2
    status, s = request(port, "POST", "/api/sample", {"n": 5, "seed": 3})
    assert status == 200 and len(pixels(s["pixels"], (5, 1, 8, 8))) == 5


def test_a_conditional_model_decodes_given_a_label(runs, serving):
    port = serving("cvae")
    _, info = request(port, "GET", "/api/info")
    assert info["conditional"] and info["classes"] == 10 and info["plane"]["kind"] == "pca"
    z = [[0.1, 0.2, -0.3]] * 2
    _, a = request(port, "POST", "/api/decode", {"z": z, "y": [1, 7]})
    both = pixels(a["pixels"], (2, 1, 8, 8))
    assert not np.array_equal(both[0], both[1])  # the label changes the image
    assert request(port, "POST", "/api/decode", {"z": z, "y": [1, 12]})[0] == 400


@pytest.mark.parametrize("case", [
    ("POST", "/api/decode", b"not json", "not JSON"),
    ("POST", "/api/decode", b"[1, 2]", "JSON object"),
    ("POST", "/api/decode", json.dumps({"z": [[1.0]]}).encode(), "list of 2 numbers"),
    ("POST", "/api/decode", json.dumps({"z": [[1e9, 0]]}).encode(), "within"),
    ("POST", "/api/decode", json.dumps({"z": [[float("nan"), 0]]}).encode(), "finite"),
    ("POST", "/api/decode", json.dumps({"z": [[0, 0]] * 5000}).encode(), "1 to 1024"),
    ("POST", "/api/decode", json.dumps({"z": [["a", 0]]}).encode(), "numbers"),
    ("POST", "/api/encode", json.dumps({"x": [2.0] * 64}).encode(), "[0, 1]"),
    ("POST", "/api/sample", json.dumps({"n": 10 ** 6}).encode(), "1..256"),
    ("GET", "/api/image?i=../../etc/passwd", None, "whole number"),
    ("GET", "/api/image?i=100000", None, "must be 0.."),
], ids=lambda c: c[1] + ":" + c[3])
def test_malformed_requests_get_a_400_and_the_server_keeps_serving(runs, serving, case):
    port = serving("mlp")
    method, path, raw, words = case
    status, out = request(port, method, path, raw=raw)
    assert status == 400 and words in out["error"]
    assert request(port, "GET", "/api/info")[0] == 200


def test_the_server_refuses_other_hosts_bodies_too_large_and_paths(runs, serving):
    port = serving("mlp")
    status, out = request(port, "GET", "/api/info", host="attacker.example:80")  # DNS rebinding
    assert status == 403
    assert request(port, "GET", "/api/info", host=f"localhost:{port}")[0] == 200
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a body announced too large: refused unread
    c.putrequest("POST", "/api/decode", skip_host=True)
    c.putheader("Host", f"127.0.0.1:{port}")
    c.putheader("Content-Length", str(3 << 20))
    c.endheaders()
    assert c.getresponse().status == 400
    c.close()
    assert request(port, "GET", "/../../etc/passwd")[0] == 404
    assert request(port, "GET", "/page.html")[0] == 404  # nothing is served from files by name
    status, page = 200, None
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/", headers={"Host": f"127.0.0.1:{port}"})
    r = c.getresponse()
    assert r.status == 200 and b"vaekit explore" in r.read() and r.getheader("Content-Security-Policy")


def test_the_command_prints_its_address_and_stops_cleanly_on_ctrl_c(runs):
    proc = subprocess.Popen([sys.executable, "-m", "vaekit", "explore", str(runs["mlp"])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=interruptible)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert request(port, "GET", "/api/info")[0] == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # reads both pipes: a full stderr pipe cannot hold the process up
        assert proc.returncode == 0, err[-2000:]
        assert "stopped" in out
    finally:
        proc.kill()


def test_export_is_refused_for_a_conv_model_in_one_line(runs, tmp_path, capsys):
    assert main(["explore", str(runs["colour"]), "--export", str(tmp_path / "p.html")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vaekit explore RUN" in err
    assert not (tmp_path / "p.html").exists()


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                              "--disable-dev-shm-usage"])


def _open(page, url):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    return errors


def _canvas(page, sel):
    return page.evaluate(f"""() => {{ const c = document.querySelector('{sel}');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }}""")


def _explore_in_browser(page, model, y=None):
    box = page.locator("#plane").bounding_box()
    before = _canvas(page, "#decoded")
    page.mouse.move(box["x"] + 60, box["y"] + 60)
    page.mouse.move(box["x"] + 460, box["y"] + 470, steps=8)
    page.wait_for_timeout(300)
    assert _canvas(page, "#decoded") != before  # the decoded image follows the pointer
    slider = page.locator("#sliders input").first
    shown = _canvas(page, "#decoded")
    slider.fill(str(float(slider.get_attribute("max")) * 0.9))
    page.wait_for_timeout(300)
    assert _canvas(page, "#decoded") != shown  # a slider moves z
    page.mouse.click(box["x"] + 100, box["y"] + 100)
    page.mouse.click(box["x"] + 400, box["y"] + 420)
    page.wait_for_function("() => document.getElementById('interpinfo').textContent.startsWith('A to B')")
    d = page.locator("#draw").bounding_box()
    page.mouse.move(d["x"] + 80, d["y"] + 20)
    page.mouse.down()
    page.mouse.move(d["x"] + 84, d["y"] + 150, steps=10)
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('drawinfo').textContent.startsWith('encoded')")
    page.click("#sample")
    page.wait_for_timeout(300)
    # the page's decoded pixels are Python's
    z = [[0.3] * model.latent_dim, [-1.2] * model.latent_dim]
    got = page.evaluate(f"async () => Array.from(await vaekitBackend.decode({json.dumps(z)}, {y or 0}))")
    labels = torch.full((2,), y or 0) if getattr(model, "conditional", False) else None
    want = (model.images(model.decode(torch.tensor(z), labels).mean).clamp(0, 1) * 255).round().flatten().tolist()
    assert np.abs(np.array(got) - np.array(want)).max() <= 1


@needs_browser
@pytest.mark.parametrize("kind", ["mlp", "cvae", "colour"])
def test_the_page_in_a_real_browser(runs, serving, kind):
    from playwright.sync_api import sync_playwright

    port = serving(kind)
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors = _open(page, f"http://127.0.0.1:{port}/")
        _explore_in_browser(page, vaekit.load(runs[kind]), y=3 if kind == "cvae" else None)
        assert page.evaluate("vaekitBench(20)") > 5
        browser.close()
    assert errors == []


@needs_browser
@pytest.mark.parametrize("kind", ["mlp", "cvae"])
def test_the_exported_page_runs_the_model_from_disk(runs, kind, tmp_path):
    from playwright.sync_api import sync_playwright

    path = export_page(runs[kind], tmp_path / "page.html")
    model = vaekit.load(runs[kind])
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.route("**/*", lambda r: r.abort() if not r.request.url.startswith("file:") else r.continue_())
        errors = _open(page, path.as_uri())
        _explore_in_browser(page, model, y=3 if kind == "cvae" else None)
        z = torch.randn(4, model.latent_dim)
        y = torch.tensor([0, 3, 5, 9])
        for i in range(4):
            yi = int(y[i]) if model.conditional else 0
            got = page.evaluate(f"vaekitDecodeFloat({json.dumps(z[i].tolist())}, {yi})")
            want = model.images(model.decode(z[i : i + 1], y[i : i + 1] if model.conditional else None).mean)
            assert np.abs(np.array(got) - want.flatten().detach().numpy()).max() < 1e-4
        x = torch.rand(64).round()
        enc = page.evaluate(f"vaekitEncodeFloat({json.dumps(x.tolist())}, 2)")
        q = model.encode(x.reshape(1, 1, 8, 8), torch.tensor([2]) if model.conditional else None)
        assert np.abs(np.array(enc["mean"]) - q.mu[0].detach().numpy()).max() < 1e-4
        browser.close()
    assert errors == []
