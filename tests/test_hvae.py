"""The hierarchical VAE (--variant hvae): its importance-weighted estimate against log p(x) by quadrature on a
model small enough to integrate, every prior and objective, exact resume, and what it refuses."""

import math

import numpy as np
import pytest
import torch

import vaekit
from vaekit.checkpoint import _load_tensors
from vaekit.cli import main
from vaekit.config import RunConfig
from vaekit.evaluate import evaluate
from vaekit.runs import load_split


def quiet(_):
    pass


def cfg(**train):
    return RunConfig.from_dict({"data": {"name": "digits"},
                                "model": {"variant": {"name": "hvae", "z1_dim": 1}, "latent_dim": 1, "hidden": [12]},
                                "train": {"epochs": 3, "seed": 0, "precision": "fp32", **train}})


@torch.inference_mode()
def log_px_by_quadrature(model, x: torch.Tensor, n: int = 301) -> torch.Tensor:
    """log p(x) = log int int p(x|z1,z2) p(z1|z2) N(z2; 0, 1) dz1 dz2 on a grid: z2 over [-7, 7], and for each z2,
    z1 over the mean of p(z1|z2) +- 9 of its standard deviations (1-D layers)."""
    z2 = torch.linspace(-7, 7, n)
    p1 = model.lower_prior(z2[:, None])
    m, s = p1.mu[:, 0], (0.5 * p1.logvar[:, 0]).exp()
    u = torch.linspace(-9, 9, n)
    z1 = m[:, None] + s[:, None] * u[None, :]  # [n(z2), n(z1)]
    log_p1 = -0.5 * (u[None, :] ** 2 + math.log(2 * math.pi)) - torch.log(s)[:, None]
    log_p2 = -0.5 * (z2 ** 2 + math.log(2 * math.pi))
    cell = math.log(14 / (n - 1)) + torch.log(s * 18 / (n - 1))  # dz2 * dz1 at each z2
    px = model.decoder(z2[:, None, None].expand(n, n, 1), cond=z1[..., None])  # logits [n, n, D]
    out = []
    for xi in x.reshape(len(x), -1):
        lp = px.log_prob(xi.expand(n, n, -1))  # [n, n]
        out.append(torch.logsumexp((lp + log_p1 + log_p2[:, None] + cell[:, None]).flatten(), 0))
    return torch.stack(out)


def test_the_importance_weighted_nll_agrees_with_quadrature(tmp_path):
    res = vaekit.train(cfg(epochs=4), tmp_path / "r", progress=False, log=quiet)
    model = res.model
    ds = load_split(model.config, "valid", model.image_shape)
    x = ds.x[:12]
    exact = -log_px_by_quadrature(model, x)
    est = evaluate(model, x, iw_samples=5000, seed=0, per_image=True)
    nll, elbo = est["per_image"]["nll"], est["per_image"]["elbo"]
    # K = 5000 samples estimate the bound, which lies at or just above the true -log p(x): per image within a few
    # hundredths of a nat either way (measured: at most 0.032), on average not below it; the ELBO well below
    diff = nll - exact.double().numpy()
    assert np.abs(diff).max() < 0.06, (nll, exact)
    assert diff.mean() > -0.01, diff
    assert np.all(-elbo >= exact.numpy() - 0.05)


@pytest.mark.parametrize("prior", ["standard", "mog", "vamp"])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_every_prior_and_objective_trains_and_evaluates(tmp_path, prior, objective, capsys):
    run = tmp_path / "r"
    args = ["train", "--data", "digits", "--variant", "hvae", "--latent-dim", "2", "--z1-dim", "3", "--hidden", "8",
            "--prior", prior, "--objective", objective, "--epochs", "1", "--no-progress", "--no-plots",
            "--out", str(run)]
    if prior != "standard":
        args += ["--prior-components", "4"]
    if objective == "iwae":
        args += ["--n-samples", "3"]
    assert main(args) == 0
    capsys.readouterr()
    model = vaekit.load(run)
    assert type(model).__name__ == "HVAE" and model.latent_dim == 2 and model.z1_dim == 3
    res = evaluate(model, load_split(model.config, "valid", model.image_shape), iw_samples=20)
    assert np.isfinite(res["nll"]) and res["nll"] <= -res["elbo"] + 0.5
    assert vaekit.encode(model, split="valid")["mean"].shape[1] == 2  # the top layer is the model's latent


def test_free_bits_and_warm_up_train(tmp_path):
    res = vaekit.train(cfg(epochs=2, objective={"name": "elbo", "free_bits": 0.1}, warmup_epochs=2),
                       tmp_path / "r", progress=False, log=quiet)
    assert all(math.isfinite(h["valid_elbo"]) for h in res.history)


def test_resume_is_bit_identical(tmp_path):
    vaekit.train(cfg(epochs=3), tmp_path / "straight", progress=False, log=quiet)
    vaekit.train(cfg(epochs=1), tmp_path / "resumed", progress=False, log=quiet)
    vaekit.train(cfg(epochs=3), tmp_path / "resumed", resume=True, progress=False, log=quiet)
    a, _ = _load_tensors(tmp_path / "straight" / "last.safetensors")
    b, _ = _load_tensors(tmp_path / "resumed" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_conv_form_handles_a_colour_size(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (60, 10, 12, 3), dtype=np.uint8))
    run = tmp_path / "c"
    assert main(["train", "--data", "array", "--data-file", str(tmp_path / "x.npy"), "--variant", "hvae", "--arch",
                 "conv", "--conv-channels", "4", "8", "--hidden", "16", "--latent-dim", "2", "--z1-dim", "3",
                 "--epochs", "1", "--no-progress", "--no-plots", "--out", str(run)]) == 0
    capsys.readouterr()
    model = vaekit.load(run)
    assert type(model.lower_encoder).__name__ == "ConvEncoder" and model.image_shape == (3, 10, 12)
    assert model.decode(torch.zeros(2, 2)).mean.shape[-1] == 3 * 10 * 12
    res = evaluate(model, load_split(model.config, "valid", model.image_shape), iw_samples=4)
    assert np.isfinite(res["nll"])


def test_what_the_hvae_refuses_says_so_in_one_line(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--variant", "hvae", "--z1-dim", "0", "--out", str(tmp_path / "z")]) == 1
    assert "z1_dim" in capsys.readouterr().err


def test_downstream_sees_the_top_layer(tmp_path):
    """The explorer's server, the fitted prior and the pictures take the top layer; the exported page refuses."""
    from vaekit.explore import Explorer, export_page
    from vaekit.fitted import fit_prior

    run = tmp_path / "r"
    res = vaekit.train(cfg(epochs=1), run, progress=False, log=quiet)
    ex = Explorer(run)
    info = ex.info()
    assert info["latent_dim"] == 1 and len(info["points"]["uv"]) == len(ex.data)
    assert ex.decode({"z": [[0.5], [-0.5]]})["n"] == 2
    prior = fit_prior(res.model, load_split(res.model.config, "train"), components=2)
    assert np.isfinite(evaluate(res.model, load_split(res.model.config, "valid"), iw_samples=5, prior=prior)["nll"])
    with pytest.raises(vaekit.VaekitError, match="explore it with the server"):
        export_page(run, tmp_path / "p.html")
