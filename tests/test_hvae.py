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


def cfg(inputs="joined", **train):
    return RunConfig.from_dict({"data": {"name": "digits"},
                                "model": {"variant": {"name": "hvae", "z1_dim": 1, "inputs": inputs}, "latent_dim": 1,
                                          "hidden": [12]},
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


@pytest.mark.parametrize("inputs", ["joined", "separate"])
def test_the_importance_weighted_nll_agrees_with_quadrature(tmp_path, inputs):
    res = vaekit.train(cfg(inputs, epochs=4), tmp_path / "r", progress=False, log=quiet)
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
    assert main(["train", "--data", "digits", "--variant", "hvae", "--hvae-inputs", "separate", "--hidden", "0",
                 "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--hvae-inputs separate" in err and "--hidden" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["train", "--data", "digits", "--variant", "hvae", "--hvae-inputs", "apart", "--out", str(tmp_path / "a")])
    assert "joined" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["mlp", "gated-mlp", "conv"])
def test_separate_inputs_give_each_input_its_own_first_layer(tmp_path, arch, capsys):
    """--hvae-inputs separate: in q(z1|x, z2) and p(x|z1, z2) each input has its own first hidden layer, which
    sees that input alone; p(z1|z2) and q(z2|x) (one input each) are as in the joined form; it trains, resumes and
    evaluates like the joined form, and a run directory without the option loads as joined."""
    from vaekit.models.encoders import SplitInput

    run = tmp_path / "r"
    extra = ["--conv-channels", "4", "8"] if arch == "conv" else []
    assert main(["train", "--data", "digits", "--variant", "hvae", "--arch", arch, "--hvae-inputs", "separate",
                 "--latent-dim", "2", "--z1-dim", "3", "--hidden", "10", "6", "--epochs", "1", "--no-progress",
                 "--no-plots", "--precision", "fp32", "--out", str(run), *extra]) == 0
    capsys.readouterr()
    model = vaekit.load(run)
    assert model.config.model.variant.inputs == "separate"
    lower = model.lower_encoder.dense if arch == "conv" else model.lower_encoder.net
    top = model.decoder.dense if arch == "conv" else model.decoder.net
    for net, cond, width in ((lower, 2, 10), (top, 3, 6)):  # q(z1|x, z2): z2 beside x; p(x|z1, z2): z1 beside z2
        # (the decoder's widths are the encoders' reversed)
        split = net[0]
        assert isinstance(split, SplitInput)
        assert sum(p.shape[-1] for n, p in split.second.named_parameters() if n.endswith("weight")) == cond
        a = torch.randn(4, split.at)
        out1 = split(torch.cat([a, torch.randn(4, cond)], -1))
        out2 = split(torch.cat([a, torch.randn(4, cond)], -1))
        half = out1.shape[-1] // 2
        assert out1.shape[-1] == 2 * width and torch.equal(out1[:, :half], out2[:, :half])  # the first input's layer alone
        assert not torch.equal(out1[:, half:], out2[:, half:])
    assert not any(isinstance(m, SplitInput) for m in model.lower_prior.modules())
    res = evaluate(model, load_split(model.config, "valid", model.image_shape), iw_samples=8)
    assert np.isfinite(res["nll"]) and res["nll"] <= -res["elbo"] + 0.5
    # the joined form is what a run directory without the option has
    joined = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"variant": {"name": "hvae"}}})
    assert joined.model.variant.inputs == "joined"


def test_separate_inputs_resume_bit_identically(tmp_path):
    vaekit.train(cfg("separate", epochs=3), tmp_path / "straight", progress=False, log=quiet)
    vaekit.train(cfg("separate", epochs=1), tmp_path / "resumed", progress=False, log=quiet)
    vaekit.train(cfg("separate", epochs=3), tmp_path / "resumed", resume=True, progress=False, log=quiet)
    a, _ = _load_tensors(tmp_path / "straight" / "last.safetensors")
    b, _ = _load_tensors(tmp_path / "resumed" / "last.safetensors")
    assert any("second" in k for k in a) and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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
    from vaekit.plots.grids import samples_figure
    title = samples_figure(res.model, n=4).axes[0].get_title().replace("\n", " ")
    assert title == "4 samples from the prior (mean of p(x|z1, z2), z2 ~ N(0, I), z1 = mean of p(z1|z2))"
    from vaekit.plots import curves_figure
    from vaekit.checkpoint import read_metrics
    panels = [ax.get_title() for ax in curves_figure(read_metrics(run), terms=res.model.terms_text).axes]
    assert panels[1:] == ["reconstruction E_q[log p(x|z1, z2)] (nats)", "KL(q(z1, z2|x) || p(z1, z2)) (nats)"]


def test_the_paper_preset_has_the_papers_networks():
    """configs/hvae-vamp.toml builds Tomczak & Welling's HVAE: counted layer by layer from their networks (gated
    layers of 300 with two matrices each, every two-input network with a first gated layer per input, linear
    mean and log-variance heads, 500 pseudo-inputs of 784 pixels), their model has 2,823,024 parameters."""
    from pathlib import Path

    from vaekit.config import load_config
    from vaekit.models import build_model

    def gated(a, b):
        return 2 * (a * b + b)

    def heads(a, z):
        return 2 * (a * z + z)

    d, h, z = 784, 300, 40
    q_z2 = gated(d, h) + gated(h, h) + heads(h, z)
    q_z1 = gated(d, h) + gated(z, h) + gated(2 * h, h) + heads(h, z)
    p_z1 = gated(z, h) + gated(h, h) + heads(h, z)
    p_x = 2 * gated(z, h) + gated(2 * h, h) + (h * d + d)
    pseudo = 500 * d
    assert q_z2 + q_z1 + p_z1 + p_x + pseudo == 2_823_024
    c = load_config(Path(__file__).parents[1] / "configs" / "hvae-vamp.toml")
    model = build_model(c.model, (1, 28, 28), levels=2)
    assert sum(p.numel() for p in model.parameters()) == 2_823_024
    assert (c.model.arch.logvar_min, c.model.arch.logvar_max) == (-6.0, 2.0)
