"""What each latent dimension means: the shapes factors as the generator drew them, traversals of every kind
of model, and `vaekit evaluate --disentanglement` end to end (tiny models; the metrics' own answers are in
test_disentangle.py)."""

import json

import numpy as np
import pytest
from PIL import Image

from vaekit.cli import main
from vaekit.data import shapes


def test_the_shapes_factors_are_the_generators_draws():
    f = shapes.shapes_factors(500)
    g = shapes.generative_factors(f)
    assert g.shape == (500, 6) and np.array_equal(g[:, :2], f[:, :2])
    assert (g[:, 2:] >= -1e-12).all() and (g[:, 2:] <= 1 + 1e-12).all()  # fractions of their ranges
    # the centre's fractions are the uniform draws themselves, whatever the scale
    rng = np.random.default_rng(shapes.SEED)
    draws = shapes._draw(500, rng)
    assert np.allclose(g[:, 4], draws[4]) and np.allclose(g[:, 5], draws[5])
    # a square turned by a quarter turn has the same phase: rotations that look the same score the same
    sq = f[f[:, 0] == 0][:1].copy()
    turned = sq.copy()
    turned[0, 3] = (sq[0, 3] + np.pi / 2) % (2 * np.pi)
    assert shapes.generative_factors(turned)[0, 3] == pytest.approx(shapes.generative_factors(sq)[0, 3])
    # the loader still draws the same images from the same factors
    x, _ = shapes.load_shapes("valid")
    assert np.array_equal(x[:5], shapes.render_shapes(shapes.shapes_factors()[16000:16005]).astype(np.float32) / 255.0)


@pytest.mark.parametrize("k", range(6))
def test_a_factor_is_held_while_the_others_vary(k):
    images, g = shapes.sample_holding(k, 12, np.random.default_rng(k), side=8)
    assert images.shape == (12, 3, 8, 8) and images.dtype == np.float32
    assert np.allclose(g[:, k], g[0, k])
    others = [j for j in range(6) if j != k]
    assert all(len(np.unique(g[:, j])) > 1 for j in others)
    assert np.allclose(shapes.generative_factors(shapes._compose(  # what was drawn is what the factors say
        g[:, 0], g[:, 1], shapes.SCALE[0] + g[:, 2] * np.diff(shapes.SCALE)[0],
        g[:, 3] * shapes.SYMMETRY[g[:, 0].astype(int)], g[:, 4], g[:, 5])), g)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("meaning")
    common = ["--epochs", "1", "--no-plots", "--no-progress", "--batch-size", "256"]
    main(["train", "--data", "shapes", "--image-size", "8", "--arch", "conv", "--conv-channels", "4",
          "--latent-dim", "5", "--out", str(root / "shapes"), *common])
    main(["train", "--data", "digits", "--variant", "hvae", "--z1-dim", "3", "--latent-dim", "4", "--hidden", "16",
          "--out", str(root / "hvae"), *common])
    main(["train", "--data", "digits", "--variant", "cvae", "--latent-dim", "3", "--hidden", "16",
          "--prior", "vamp", "--prior-components", "5", "--out", str(root / "cvae"), *common])
    return root


@pytest.mark.parametrize("name", ["shapes", "hvae", "cvae"])
def test_traversals_of_every_kind_of_model(runs, name, capsys):
    run = runs / name
    assert main(["plot", str(run), "--kind", "traversals", "traversals-gif"]) == 0
    png, gif = Image.open(run / "traversals.png"), Image.open(run / "traversals.gif")
    assert np.asarray(png.convert("L"), dtype=float).var() > 100
    assert gif.n_frames == 2 * 16 - 2  # forth and back through the sweep
    frames = []
    for i in (0, 15):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB"), dtype=float))
    assert np.abs(frames[0] - frames[1]).max() > 0  # the sweep moves the images
    assert main(["plot", str(run), "--kind", "traversals", "--base-image", "3", "--out", str(run / "b")]) == 0
    assert (run / "b" / "traversals.png").is_file()


def test_a_base_image_out_of_range_is_refused(runs, capsys):
    assert main(["plot", str(runs / "hvae"), "--kind", "traversals", "--base-image", "100000"]) != 0
    assert "--base-image 100000" in capsys.readouterr().err


def test_evaluate_measures_disentanglement_on_shapes(runs, capsys):
    assert main(["evaluate", str(runs / "shapes"), "--iw-samples", "2", "--disentanglement", "--json",
                 "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["disentanglement"]
    assert d["factors"] == list(shapes.GENERATIVE)
    values = [d["mig"]["mig"], d["dci"]["completeness"], d["dci"]["informativeness"], d["sap"]["sap"],
              d["factor_vae"]["factor_vae"]]
    assert all(0 <= v <= 1 for v in values)
    assert main(["evaluate", str(runs / "shapes"), "--iw-samples", "2", "--disentanglement", "--no-progress"]) == 0
    assert "MIG" in capsys.readouterr().out


@pytest.mark.parametrize("name,why", [("hvae", "declares no factors"), ("cvae", "conditional model")])
def test_disentanglement_is_refused_where_it_cannot_be_measured(runs, name, why, capsys):
    assert main(["evaluate", str(runs / name), "--iw-samples", "2", "--disentanglement"]) != 0
    err = capsys.readouterr().err
    assert why in err and len(err.strip().splitlines()) == 1
