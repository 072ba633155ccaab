"""Convolutional networks for any image shape, and the conditional VAE (issue: conv + CVAE)."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
import vaekit.plots
from vaekit.plots.callbacks import Pictures
from vaekit.cli import main
from vaekit.config import ModelConfig, RunConfig
from vaekit.data import DATASETS, DatasetSpec
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.models.conv import max_levels
from vaekit.runs import load_split


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 8), (3, 30, 45), (1, 9, 17)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic"])
def test_the_conv_decoder_gives_back_the_input_size(shape, likelihood):
    levels = min(3, max_levels(*shape[1:]))
    cfg = ModelConfig(arch="conv", latent_dim=3, hidden=(0,), conv_channels=(4,), conv_levels=levels,
                      likelihood=likelihood)
    model = build_model(cfg, shape, levels=256)
    x = torch.rand(2, *shape)
    assert model.reconstruct(x).shape == (2, *shape)
    params = model.decoder.net(model.decoder.dense(torch.zeros(1, 3)).reshape(1, *model.decoder.start))
    assert params.shape == (1, model.decoder.likelihood.params_per_pixel * shape[0], *shape[1:])
    assert torch.isfinite(model(x, n_samples=2).elbo).all()


def test_conv_levels_and_channels():
    from vaekit.models import ConvNetworks

    cfg = ModelConfig(arch="conv", conv_channels=(8,), conv_levels=3)
    assert ConvNetworks.channels_per_level(cfg.arch) == (8, 16, 32)
    assert ConvNetworks.channels_per_level(ModelConfig(arch="conv", conv_channels=(8, 12)).arch) == (8, 12)
    with pytest.raises(VaekitError, match="one channel count per level or a single one"):
        ModelConfig(arch="conv", conv_channels=(8, 16), conv_levels=3)
    with pytest.raises(VaekitError, match="allow at most 2 conv levels"):
        build_model(ModelConfig(arch="conv", conv_channels=(4, 4, 4)), (1, 8, 8))
    with pytest.raises(VaekitError, match="conv_levels must be a whole number >= 1"):
        ModelConfig(arch="conv", conv_levels=0)


def tiny(variant, arch, prior="standard", objective="elbo", **train):
    return RunConfig.from_dict({
        "data": {"name": "digits"},
        "model": {"variant": variant, "arch": arch, "hidden": [16], "latent_dim": 3, "conv_channels": [4, 8],
                  "prior": prior, "prior_components": 6},
        "train": {"epochs": 1, "batch_size": 256, "objective": objective, **train}})


@pytest.mark.parametrize("variant,arch", [("vae", "conv"), ("cvae", "mlp"), ("cvae", "conv")])
@pytest.mark.parametrize("prior,objective,train", [("standard", "elbo", {}), ("vamp", "elbo", {}),
                                                   ("standard", "iwae", {"n_samples": 3})])
def test_conv_and_cvae_train_and_evaluate_with_priors_and_objectives(tmp_path, variant, arch, prior, objective,
                                                                      train):
    c = tiny(variant, arch, prior, objective, **train)
    res = vaekit.train(c, tmp_path / "r", progress=False, log=lambda m: None)
    assert math.isfinite(res.history[-1]["valid_elbo"])
    model = vaekit.load(tmp_path / "r")
    valid = load_split(c, "valid")
    y = valid.labels[:20] if variant == "cvae" else None
    out = vaekit.evaluate(model, valid.x[:20], iw_samples=8, y=y)
    assert math.isfinite(out["nll"]) and out["conditional"] == (variant == "cvae")
    if variant == "cvae":
        assert model.sample(4, y=torch.tensor([0, 3, 3, 9])).shape == (4, 1, 8, 8)
        with pytest.raises(VaekitError, match="pass the images' labels"):
            vaekit.evaluate(model, valid.x[:20], iw_samples=2)
        with pytest.raises(VaekitError, match="labels must be class numbers 0..9; got values from 0 to 10"):
            vaekit.evaluate(model, valid.x[:2], iw_samples=2, y=torch.tensor([0, 10]))
        with pytest.raises(VaekitError, match="give one label per image: 2 images"):
            vaekit.evaluate(model, valid.x[:2], iw_samples=2, y=torch.tensor([0, 1, 2]))


def test_the_cvae_is_refused_for_data_without_labels():
    with pytest.raises(VaekitError, match="has none; choose one with labels .* or --variant vae"):
        RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"variant": "cvae"}})


def test_a_cvae_draws_the_digit_asked_for(tmp_path):
    """Trained on mnist-5k, a CVAE's samples for label k are labelled k by a classifier trained on the same data."""
    c = RunConfig.from_dict({"data": {"name": "mnist-5k"},
                             "model": {"variant": "cvae", "hidden": [256], "latent_dim": 2},
                             "train": {"epochs": 12, "batch_size": 100, "lr": 2e-3}})
    res = vaekit.train(c, tmp_path / "cvae", progress=False, log=lambda m: None)
    train = load_split(c, "train", training=True)  # the stored grey digits, for the classifier
    x, y = train.x.reshape(len(train), -1), train.labels
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(clf.parameters(), 1e-3)
    for _ in range(15):
        for idx in torch.randperm(len(x)).split(100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(clf(x[idx]), y[idx]).backward()
            opt.step()
    valid = load_split(c, "valid")
    assert (clf(valid.x.reshape(len(valid), -1)).argmax(1) == valid.labels).float().mean() > 0.85  # it reads digits
    for k in range(10):
        samples = res.model.sample(100, y=torch.full((100,), k))
        share = (clf(samples.reshape(100, -1)).argmax(1) == k).float().mean().item()
        assert share >= 0.8, f"only {share:.0%} of the samples for label {k} read as {k}"


def test_the_cvae_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--variant", "cvae", "--hidden", "16", "--epochs", "1", "--no-progress",
                 "--out", str(out)]) == 0
    for name in ("manifold.png", "samples.png", "reconstructions.png", "interpolation.png", "training.gif"):
        assert (out / name).is_file(), name
    capsys.readouterr()
    assert main(["sample", str(out), "--label", "3", "-n", "8", "--out", str(tmp_path / "threes.png")]) == 0
    assert Image.open(tmp_path / "threes.png").size[0] > 0
    assert main(["sample", str(out), "--label", "10"]) == 1
    assert "--label 10: this model's labels are 0..9" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--iw-samples", "4"]) == 0
    assert "log p(x | y)" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--iw-samples", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["conditional"] is True
    plain = tmp_path / "plain"
    assert main(["train", "--data", "digits", "--hidden", "16", "--epochs", "1", "--no-progress", "--no-plots",
                 "--out", str(plain)]) == 0
    capsys.readouterr()
    assert main(["sample", str(plain), "--label", "3"]) == 1
    assert "--label needs a conditional model" in capsys.readouterr().err
    assert main(["train", "--data", "binarized-mnist", "--variant", "cvae", "--out", str(tmp_path / "no")]) == 1
    assert "has none; choose one with labels" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def _tiny_colour(split, data_dir, download):
    """48 coloured squares on grey, 12x12, whose colour is the label."""
    rng = np.random.default_rng({"train": 0, "valid": 1, "test": 2}[split])
    n = 48
    x = np.full((n, 3, 12, 12), 0.5, dtype=np.float32)
    y = rng.integers(0, 3, n)
    for i in range(n):
        r, c = rng.integers(0, 6, 2)
        x[i, :, r : r + 6, c : c + 6] = 0.0
        x[i, y[i], r : r + 6, c : c + 6] = 1.0
    return np.round(x * 255) / 255, y


def test_a_conv_vae_on_colour_images_draws_in_colour(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "tiny-colour", DatasetSpec("tiny-colour", _tiny_colour, (3, 12, 12), 256, "colour",
                                                            "made by the test", ("red", "green", "blue")))
    c = RunConfig.from_dict({"data": {"name": "tiny-colour"},
                             "model": {"arch": "conv", "likelihood": "logistic", "latent_dim": 4, "hidden": [0],
                                       "conv_channels": [8, 16]},
                             "train": {"epochs": 2, "batch_size": 16}})
    vaekit.train(c, tmp_path / "r", progress=False, log=lambda m: None,
                 callbacks=[Pictures()])
    model = vaekit.load(tmp_path / "r")
    assert model.sample(3).shape == (3, 3, 12, 12)
    out = vaekit.evaluate(model, load_split(c, "valid").x, iw_samples=4)
    assert math.isfinite(out["nll"]) and out["bits_per_dim"] > 0
    for name in ("samples.png", "manifold.png", "interpolation.png", "training.gif"):
        assert (tmp_path / "r" / name).is_file(), name
    img = np.asarray(Image.open(tmp_path / "r" / "reconstructions.png").convert("RGB")).astype(int)
    assert (np.abs(img[..., 0] - img[..., 1]) > 100).any()  # the red and green squares are drawn in colour
    grid = vaekit.plots.image_grid(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(2, 3, 4, 4), (3, 4, 4))
    assert grid.shape == (6, 11, 3) and grid[1, 1].tolist() == [1.0, 0.0, 0.0]
    frame = vaekit.plots.render_frame(grid, "label")
    scale = frame.width // grid.shape[1]
    assert frame.mode == "RGB" and frame.getpixel((2 * scale, 24 + 2 * scale)) == (255, 0, 0)
