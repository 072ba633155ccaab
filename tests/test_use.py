"""Using what you trained: latent codes out (encode), a score per image, a fitted latent sampler, ONNX export and
the model card; for an MLP run on a folder of images, a conv run and a CVAE run, each trained once here on tiny
data."""

import csv
import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.encode import encode
from vaekit.evaluate import evaluate
from vaekit.runs import load_split

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))


def _folder(root, size=(8, 8), mode="L", n=10):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = size if mode == "L" else (*size, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{cls}{i}.png")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs, trained once: an MLP on a folder of 8x8 grey images, a conv VAE and a CVAE on digits."""
    root = tmp_path_factory.mktemp("use")
    import os

    os.environ["VAEKIT_DATA"] = str(root / "cache")
    folder = _folder(root / "images")
    common = ["--epochs", "2", "--no-progress", "--no-plots", "--latent-dim", "3", "--seed", "1"]
    out = {"mlp": root / "mlp", "conv": root / "conv", "cvae": root / "cvae", "folder": folder}
    # a likelihood of the 256 levels as they are (no binarization, no noise): a file's pixels are what the model saw
    assert main(["train", "--data", "folder", "--data-dir", str(folder), "--hidden", "16", "--likelihood", "logistic",
                 "--out", str(out["mlp"]), *common]) == 0
    assert main(["train", "--data", "digits", "--arch", "conv", "--conv-channels", "4", "--hidden", "16",
                 "--out", str(out["conv"]), *common]) == 0
    assert main(["train", "--data", "digits", "--variant", "cvae", "--hidden", "16",
                 "--out", str(out["cvae"]), *common]) == 0
    return out


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["mlp", "conv", "cvae"])
def test_encode_gives_the_posterior_of_every_image(runs, kind, tmp_path):
    codes = encode(runs[kind], split="valid")
    model = vaekit.load(runs[kind])
    ds = load_split(model.config, "valid", model.image_shape)
    q = model.encode(ds.x if ds.x.dtype != torch.uint8 else ds.x.float() / 255,
                     ds.labels if model.conditional else None)
    assert codes["mean"].shape == (len(ds), 3) and codes["logvar"].shape == (len(ds), 3)
    assert np.allclose(codes["mean"], q.mu.detach().numpy(), atol=1e-6)
    assert np.allclose(codes["logvar"], q.logvar.detach().numpy(), atol=1e-6)
    assert list(codes["index"]) == list(range(len(ds)))
    # the command line writes the same, as .npz (arrays kept) and .csv (columns)
    assert main(["encode", str(runs[kind]), "--out", str(tmp_path / "c.npz"), "--samples", "4", "--no-progress"]) == 0
    with np.load(tmp_path / "c.npz") as z:
        assert np.allclose(z["mean"], codes["mean"], atol=1e-6) and z["samples"].shape == (len(ds), 4, 3)
        spread = z["samples"].std(1).mean()  # draws around the mean with the posterior's spread
        assert 0.3 < spread / np.exp(0.5 * z["logvar"]).mean() < 2.0
    assert main(["encode", str(runs[kind]), "--out", str(tmp_path / "c.csv"), "--no-progress"]) == 0
    rows = _rows(tmp_path / "c.csv")
    assert len(rows) == len(ds) and float(rows[1]["mean_2"]) == pytest.approx(float(codes["mean"][1, 2]), abs=1e-6)


def test_encode_of_a_folder_run_traces_each_row_to_its_file(runs, tmp_path):
    assert main(["encode", str(runs["mlp"]), "--split", "train", "--out", str(tmp_path / "c.csv"),
                 "--no-progress"]) == 0
    rows = _rows(tmp_path / "c.csv")
    model = vaekit.load(runs["mlp"])
    for row in rows[:5]:  # the file named in the row, encoded alone, gives the row's code
        img = np.asarray(Image.open(runs["folder"] / row["source"]), dtype=np.float32) / 255
        mu = model.encode(torch.from_numpy(img)[None, None]).mu[0].detach().numpy()
        assert np.allclose(mu, [float(row[f"mean_{j}"]) for j in range(3)], atol=1e-5)
        assert row["label"] == str(("a", "b").index(row["source"].split("/")[0]))


def test_new_data_of_another_size_or_channels_is_refused_in_one_line(runs, tmp_path, capsys):
    big = _folder(tmp_path / "big", size=(12, 12))
    colour = _folder(tmp_path / "colour", mode="RGB")
    for folder, what in ((big, "other size"), (colour, "other channels")):
        assert main(["encode", str(runs["mlp"]), "--data", "folder", "--data-dir", str(folder), "--split", "train",
                     "--out", str(tmp_path / "c.npz")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "(1, 8, 8)" in err and what in err, err
    assert not (tmp_path / "c.npz").exists()
    # the Python form checks tensors too: grey levels for a model of binary pixels are refused
    with pytest.raises(vaekit.VaekitError, match="binary pixels"):
        encode(runs["conv"], torch.rand(4, 1, 8, 8))
    # images of the run's kind, prepared alike, encode
    same = _folder(tmp_path / "same")
    assert main(["encode", str(runs["mlp"]), "--data", "folder", "--data-dir", str(same), "--split", "train",
                 "--out", str(tmp_path / "ok.csv"), "--no-progress"]) == 0


def test_per_image_scores_add_up_to_the_summary(runs, tmp_path, capsys):
    for kind in ("conv", "cvae"):
        out = tmp_path / f"{kind}.csv"
        assert main(["evaluate", str(runs[kind]), "--iw-samples", "20", "--per-image", str(out), "--json",
                     "--no-progress"]) == 0
        res = json.loads(capsys.readouterr().out)
        rows = _rows(out)
        assert len(rows) == res["n_images"]
        nll = np.array([float(r["nll"]) for r in rows])
        elbo = np.array([float(r["elbo"]) for r in rows])
        rec, kl = (np.array([float(r[k]) for r in rows]) for k in ("reconstruction", "kl"))
        assert nll.mean() == pytest.approx(res["nll"], abs=1e-4)
        assert elbo.mean() == pytest.approx(res["elbo"], abs=1e-4)
        assert np.allclose(elbo, rec - kl, atol=1e-5)
        assert nll.mean() <= -elbo.mean() + 0.05  # the IWAE bound is at least as tight as the ELBO, on average
        bpd = np.array([float(r["bits_per_dim"]) for r in rows])
        assert np.allclose(bpd, nll / (64 * np.log(2)), rtol=1e-6)
        assert {r["label"] for r in rows} <= {str(k) for k in range(10)}


def test_keep_classes_trains_on_some_and_scores_the_others(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--keep-classes", "0", "1", "--hidden", "16", "--latent-dim", "2",
                 "--epochs", "1", "--no-progress", "--no-plots", "--out", str(run)]) == 0
    model = vaekit.load(run)
    assert set(load_split(model.config, "train").labels.tolist()) == {0, 1}
    assert main(["evaluate", str(run), "--iw-samples", "5", "--keep-classes", "all", "--per-image",
                 str(tmp_path / "all.csv"), "--no-progress"]) == 0
    rows = _rows(tmp_path / "all.csv")
    assert {r["label"] for r in rows} == {str(k) for k in range(10)}
    assert main(["evaluate", str(run), "--iw-samples", "5", "--keep-classes", "7", "--per-image",
                 str(tmp_path / "seven.csv"), "--no-progress"]) == 0
    seven = _rows(tmp_path / "seven.csv")
    by_index = {r["index"]: r for r in rows}
    assert seven and all(by_index[r["index"]]["label"] == "7" for r in seven)  # the same images, traced
    capsys.readouterr()
    assert main(["train", "--data", "digits", "--keep-classes", "12", "--out", str(tmp_path / "bad")]) == 1
    assert "classes 0..9" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_fit_prior_on_every_kind_of_run(runs, kind, tmp_path):
    assert main(["fit-prior", str(runs[kind]), "--components", "2", "--covariance", "diag", "--codes", "mean"]) == 0
    model = vaekit.load(runs[kind])
    prior = vaekit.fitted.load_fitted_prior(runs[kind], model)
    assert prior.covariance == "diag" and prior.info["codes"] == "mean"
    ds = load_split(model.config, "valid", model.image_shape)
    assert np.isfinite(evaluate(model, ds, iw_samples=5, prior=prior)["nll"])
    assert main(["sample", str(runs[kind]), "--sampler", "fitted", "-n", "4", "--out", str(tmp_path / "s.png")]) == 0


def test_a_fitted_prior_samples_and_scores_honestly(runs, tmp_path, capsys):
    run = runs["cvae"]
    assert main(["evaluate", str(run), "--prior", "fitted"]) == 1
    assert "vaekit fit-prior" in capsys.readouterr().err
    assert main(["fit-prior", str(run), "--components", "3"]) == 0
    assert "3 components" in capsys.readouterr().out
    model = vaekit.load(run)
    prior = vaekit.fitted.load_fitted_prior(run, model)
    assert prior.means.shape == (3, 3) and prior.covariances.shape == (3, 3, 3)
    ds = load_split(model.config, "valid", model.image_shape)
    own = evaluate(model, ds, iw_samples=20)
    fitted = evaluate(model, ds, iw_samples=20, prior=prior)
    assert np.isfinite(fitted["nll"]) and fitted["kl_form"] == "Monte Carlo"
    assert abs(fitted["nll"] - own["nll"]) < 0.5 * own["nll"]  # the same model, another p(z): the same scale
    x = model.sample(6, y=torch.arange(6) % 10, prior=prior)
    assert x.shape == (6, *model.image_shape) and torch.isfinite(x).all()
    assert main(["sample", str(run), "--sampler", "fitted", "-n", "10", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 8
    # a mixture fitted to other weights is refused
    other = vaekit.load(run, checkpoint="last")
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    with pytest.raises(vaekit.VaekitError, match="fitted to other weights"):
        vaekit.fitted.load_fitted_prior(run, other)


@pytest.mark.skipif(not HAS_ONNX, reason="onnx, onnxruntime and onnxscript are not installed "
                                         "(pip install 'vaekit[export]')")
@pytest.mark.parametrize("kind", ["mlp", "conv", "cvae"])
def test_the_onnx_graphs_give_pytorchs_numbers(runs, kind, tmp_path, capsys):
    import onnxruntime as ort

    assert main(["export", str(runs[kind]), "--out", str(tmp_path / "onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out
    model = vaekit.load(runs[kind])
    x = torch.rand(5, *model.image_shape).round()
    y = torch.tensor([0, 3, 1, 9, 2]) if kind == "cvae" else None
    feed = {"x": x.numpy(), **({"y": y.numpy()} if y is not None else {})}
    mean, logvar = ort.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx")).run(None, feed)
    q = model.encode(x, y)
    assert np.abs(mean - q.mu.detach().numpy()).max() < 1e-4
    assert np.abs(logvar - q.logvar.detach().numpy()).max() < 1e-4
    z = torch.randn(7, 3)
    yz = torch.arange(7) % 10 if kind == "cvae" else None
    outs = ort.InferenceSession(str(tmp_path / "onnx" / "decoder.onnx")).run(
        None, {"z": z.numpy(), **({"y": yz.numpy()} if yz is not None else {})})
    px = model.decode(z, yz)
    assert outs[0].shape == (7, *model.image_shape)
    assert np.abs(outs[0] - model.images(px.mean).detach().numpy()).max() < 1e-4
    names = json.loads((tmp_path / "onnx" / "onnx.json").read_text())["graphs"]["decoder"]["outputs"]
    assert names[0] == "mean" and len(names) == len(outs) > 1
    for name, got in zip(names[1:], outs[1:]):  # the likelihood's own parameters, by their names
        assert np.abs(got - getattr(px, name).detach().numpy()).max() < 1e-4, name


def test_export_without_the_extra_says_what_to_install(runs, monkeypatch, capsys):
    import builtins

    real = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime", "onnxscript"):
            raise ImportError(f"No module named '{name}'", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    assert main(["export", str(runs["mlp"])]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'vaekit[export]'" in err


def test_the_model_card_names_the_runs_own_figures(runs, capsys):
    run = runs["conv"]
    card = (run / "README.md").read_text()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["valid_elbo"])
    assert f"best valid ELBO {best['valid_elbo']:.2f} nats" in card and f"epoch {best['epoch']}" in card
    assert "digits" in card and "conv" in card and f'vaekit.load("{run}")' in card
    assert "not measured yet" in card
    assert main(["evaluate", str(run), "--iw-samples", "10", "--record", "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    card = (run / "README.md").read_text()
    assert f"NLL {res['nll']:.2f} ± {res['nll_stderr']:.2f} nats" in card and "K = 10" in card
    assert "not measured yet" not in card
