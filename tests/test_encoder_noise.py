"""--encoder-noise: the inference networks see noisy images while training, the likelihood the clean ones, so the
trained objective still bounds log p(x); evaluation sees no noise; bad values are refused in one line."""

import numpy as np
import torch

import vaekit
from vaekit.cli import main
from vaekit.config import RunConfig
from vaekit.evaluate import evaluate
from vaekit.models.distributions import Bernoulli
from vaekit.runs import load_split

from .test_hvae import log_px_by_quadrature, quiet  # the exact log p(x) of a 1-D/1-D hvae, a silent log


def _hvae(tmp_path, noise=0.5, **model):
    c = RunConfig.from_dict({"data": {"name": "digits"},
                             "model": {"variant": {"name": "hvae", "z1_dim": 1}, "latent_dim": 1, "hidden": [12],
                                       "encoder_noise": noise, **model},
                             "train": {"epochs": 2, "seed": 0, "precision": "fp32"}})
    return vaekit.train(c, tmp_path / "r", progress=False, log=quiet).model


def test_the_encoders_see_noise_while_training_and_the_likelihood_the_clean_images(tmp_path, monkeypatch):
    model = _hvae(tmp_path, prior="vamp", prior_components=3)
    x = load_split(model.config, "valid", model.image_shape).x[:16]
    seen = {"top": [], "lower": [], "scored": []}
    top, lower, score = model.encoder.forward, model.lower_encoder.forward, Bernoulli.log_prob
    monkeypatch.setattr(model.encoder, "forward", lambda v, *a, **k: seen["top"].append(v) or top(v, *a, **k))
    monkeypatch.setattr(model.lower_encoder, "forward",
                        lambda v, *a, **k: seen["lower"].append(v) or lower(v, *a, **k))
    monkeypatch.setattr(Bernoulli, "log_prob", lambda self, v: seen["scored"].append(v) or score(self, v))
    model.train()
    for run in (lambda: model(x), lambda: model(x, n_samples=3, log_weights=True)):  # the ELBO's path, the IWAE's
        run()
        pixels = x.reshape(len(x), -1)
        batch = [v for v in seen["top"] if v.shape[0] == len(x)]  # the images (the others: the pseudo-inputs)
        assert len(batch) == 1 and not torch.equal(batch[0].reshape(len(x), -1), pixels)
        noise = batch[0].reshape(len(x), -1) - pixels
        assert 0.4 < noise.std().item() < 0.6  # the spread asked for, 0.5
        pseudo = [v for v in seen["top"] if v.shape[0] != len(x)]
        assert pseudo and all(torch.equal(v, model.prior.pseudo_inputs()) for v in pseudo)  # the prior: clean
        lower_x = seen["lower"][0][..., :pixels.shape[1]]  # q(z1|x, z2) sees the same noisy images
        assert torch.equal(lower_x.reshape(-1, len(x), pixels.shape[1])[0], batch[0].reshape(len(x), -1))
        assert all(torch.equal(v.reshape(-1, len(x), pixels.shape[1])[0], pixels) for v in seen["scored"])
        for v in seen.values():
            v.clear()
    model.eval()
    assert model.noisy(x) is x  # evaluation: nothing added


def test_the_noisy_objective_still_bounds_the_exact_log_likelihood(tmp_path):
    model = _hvae(tmp_path)
    x = load_split(model.config, "valid", model.image_shape).x[:12]
    exact = log_px_by_quadrature(model, x)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = torch.stack([model(x).elbo for _ in range(400)]).mean(0)  # over the noise and the samples of z
    assert torch.all(elbo <= exact + 0.2), (elbo, exact)  # within Monte Carlo error of 400 draws


def test_evaluation_is_the_same_with_and_without_the_option(tmp_path):
    model = _hvae(tmp_path)
    x = load_split(model.config, "valid", model.image_shape).x[:20]
    with_noise = evaluate(model, x, iw_samples=50, seed=3)
    model.encoder_noise = 0.0
    without = evaluate(model, x, iw_samples=50, seed=3)
    assert with_noise["nll"] == without["nll"] and with_noise["elbo"] == without["elbo"]


def test_the_option_trains_says_so_and_refuses_bad_values(tmp_path, capsys):
    run = tmp_path / "v"
    assert main(["train", "--data", "digits", "--latent-dim", "2", "--hidden", "16", "--encoder-noise", "0.3",
                 "--epochs", "1", "--no-progress", "--no-plots", "--out", str(run)]) == 0
    assert "encoder noise 0.3" in capsys.readouterr().out
    model = vaekit.load(run)
    assert model.encoder_noise == 0.3
    res = evaluate(model, load_split(model.config, "valid", model.image_shape), iw_samples=10)
    assert np.isfinite(res["nll"])
    for bad in ("-0.1", "nan", "11"):
        assert main(["train", "--data", "digits", "--encoder-noise", bad, "--out", str(tmp_path / "bad")]) == 1
        err = capsys.readouterr().err.strip()
        assert "encoder" in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
