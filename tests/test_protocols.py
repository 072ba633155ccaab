"""The part protocols: a toy prior, a toy likelihood, a conditional part and a toy objective, each
defined here, plug into vaekit (config, command-line names, training, evaluation, pictures) without
touching vaekit's code."""

import gzip
import math

import pytest
import torch
from torch import nn

import vaekit
from vaekit.config import RunConfig
from vaekit.models import LIKELIHOODS, PRIORS, REGISTRIES, register
from vaekit.models.distributions import LOG_2PI, DiagonalNormal
from vaekit.models.likelihoods import CONTINUOUS
from vaekit.objectives import BatchTerms
from vaekit.runs import load_split


def quiet(_):
    pass


@pytest.fixture
def registered():
    """Parts registered by a test are removed afterwards."""
    from vaekit.objectives import OBJECTIVES

    every = {**REGISTRIES, "objective": OBJECTIVES}
    before = {kind: dict(reg) for kind, reg in every.items()}
    yield
    for kind, reg in every.items():
        reg.clear()
        reg.update(before[kind])


class ShiftedNormal:
    """N(shift, I) over ``dim`` dimensions: a distribution as a prior returns it."""

    def __init__(self, shift: torch.Tensor):
        self.shift = shift

    @property
    def mean(self):
        return self.shift

    def sample(self, shape=()):
        return self.shift + torch.randn(*shape, *self.shift.shape)

    def log_prob(self, z):
        return -0.5 * ((z - self.shift).pow(2) + LOG_2PI).sum(-1)


def test_a_toy_prior_with_a_learned_mean(tmp_path, registered):
    @register("prior", "shifted")
    class ShiftedPrior(nn.Module):  # a learned mean; no closed-form KL known to vaekit: Monte Carlo is used
        def __init__(self, latent_dim):
            super().__init__()
            self.latent_dim = latent_dim
            self.shift = nn.Parameter(torch.full((latent_dim,), 0.5))

        @classmethod
        def from_config(cls, cfg, encoder=None):
            return cls(cfg.latent_dim)

        def forward(self):
            return ShiftedNormal(self.shift)

    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"prior": "shifted", "hidden": [16]},
                               "train": {"epochs": 2, "batch_size": 64}})
    res = vaekit.train(cfg, tmp_path / "r", progress=False, log=quiet)
    assert res.model.prior.shift.data.ne(0.5).any()  # the prior's parameter was trained
    valid = load_split(cfg, "valid")
    out = vaekit.evaluate(vaekit.load(tmp_path / "r"), valid.x, iw_samples=20)
    assert math.isfinite(out["nll"]) and out["nll"] > 0
    assert "shifted" in PRIORS


class Laplace:
    """Independent Laplace pixels with a location and a log-scale per pixel."""

    def __init__(self, loc, log_scale):
        self.loc, self.log_scale = loc, log_scale.clamp(-7, 5)

    @property
    def mean(self):
        return self.loc

    def sample(self, shape=()):
        return torch.distributions.Laplace(self.loc, self.log_scale.exp()).sample(shape)

    def log_prob(self, x):
        return (-(x - self.loc).abs() / self.log_scale.exp() - self.log_scale - math.log(2)).sum(-1)


def test_a_toy_likelihood_with_two_outputs_per_pixel(tmp_path, registered):
    @register("likelihood", "laplace")
    class LaplaceLikelihood:
        name, accepts, params_per_pixel = "laplace", CONTINUOUS, 2

        @classmethod
        def from_config(cls, cfg):
            return cls()

        def __call__(self, out):
            loc, log_scale = out.chunk(2, dim=-1)
            return Laplace(loc, log_scale)

        def describe(self):
            return "Laplace with a learned scale"

    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"likelihood": "laplace", "hidden": [16]},
                               "train": {"epochs": 1, "batch_size": 64}})
    assert cfg.data.binarize == "none"  # its declaration (continuous pixels) decided the binarization
    res = vaekit.train(cfg, tmp_path / "r", progress=False, log=quiet)
    assert res.model.decoder.net[-1].out_features == 2 * 64  # two numbers per pixel
    out = vaekit.evaluate(res.model, load_split(cfg, "valid").x, iw_samples=10)
    assert math.isfinite(out["nll"])
    assert res.model.sample(3).shape == (3, 1, 8, 8)
    assert "laplace" in LIKELIHOODS


def test_labels_reach_a_conditional_part(tmp_path, registered):
    seen = []

    @register("prior", "per-label")
    class PerLabelPrior(nn.Module):  # p(z|y): a learned mean per class
        conditional = True

        def __init__(self, latent_dim):
            super().__init__()
            self.latent_dim = latent_dim
            self.means = nn.Parameter(torch.zeros(10, latent_dim))

        @classmethod
        def from_config(cls, cfg, encoder=None):
            return cls(cfg.latent_dim)

        def forward(self, y):
            seen.append(y)
            return DiagonalNormal(self.means[y], torch.zeros_like(self.means[y]))

    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"prior": "per-label", "hidden": [16]},
                               "train": {"epochs": 1, "batch_size": 64}})
    res = vaekit.train(cfg, tmp_path / "r", progress=False, log=quiet)
    assert res.model.conditional and seen and all(y.dtype == torch.int64 for y in seen)
    assert res.model.prior.means.detach().abs().sum() > 0  # trained through the labels
    three = res.model.sample(4, y=torch.full((4,), 3))
    assert three.shape == (4, 1, 8, 8)
    folder = tmp_path / "bm"  # binarized MNIST has no labels: a conditional model is refused on it
    folder.mkdir()
    rows = torch.bernoulli(torch.full((20, 784), 0.2)).int().tolist()
    for split in ("train", "valid"):
        text = "".join(" ".join(map(str, r)) + "\n" for r in rows)
        (folder / f"binarized_mnist_{split}.amat.gz").write_bytes(gzip.compress(text.encode()))
    with pytest.raises(vaekit.VaekitError, match="has none"):
        vaekit.train(cfg.override(data={"name": "binarized-mnist", "data_dir": str(folder)}),
                     tmp_path / "r2", progress=False, log=quiet)
    assert not (tmp_path / "r2").exists()  # refused before anything was written


def test_a_toy_objective_trains_through_vaekit_train(tmp_path):
    class SquaredError:  # not a bound: a plain autoencoder's loss on the decoder's mean, KL reported only
        kl_weight = 0.0

        def terms(self, model, x, y=None):
            t = model(x)
            return BatchTerms(t.elbo.sum(), t.elbo.sum(), t.reconstruction.sum(), t.kl.sum())

        def loss(self, terms, n_images):
            return -terms.reconstruction / n_images

        def with_kl_weight(self, w):
            return self

    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"hidden": [16]},
                               "train": {"epochs": 2, "batch_size": 64}})
    res = vaekit.train(cfg, tmp_path / "r", progress=False, objective=SquaredError(), log=quiet)
    rows = res.history
    assert len(rows) == 2 and rows[-1]["kl_weight"] == 0.0
    assert rows[-1]["train_reconstruction"] > rows[0]["train_reconstruction"]


def test_the_architecture_page_example_runs(tmp_path, registered, capsys):
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) <= 45 for b in blocks)
    for block in blocks:  # a prior with an option, trained; an architecture with one, registered
        exec(compile(block, "docs/architecture.md", "exec"), {"EPOCHS": 1, "OUT": tmp_path / "r", "__name__": "doc"})
    assert "learned-gaussian" in PRIORS and (tmp_path / "r" / "model.safetensors").is_file()
    assert "tensor(" in capsys.readouterr().out
    saved = (tmp_path / "r" / "config.json").read_text()
    assert '"init_logvar": -1.0' in saved
    from vaekit.cli import main
    from vaekit.models import ARCHITECTURES

    assert "bottleneck" in ARCHITECTURES
    assert main(["train", "--data", "digits", "--arch", "bottleneck", "--bottleneck-width", "5", "--prior",
                 "learned-gaussian", "--prior-init-logvar", "-1", "--epochs", "1", "--no-plots", "--no-progress",
                 "--out", str(tmp_path / "cli")]) == 0
    assert vaekit.load(tmp_path / "cli").encoder.net[0].out_features == 5


# --- parts with options of their own, each one class, trained from the command line with its own flag -------

def _train_cli(tmp_path, *args):
    import json

    from vaekit.cli import main

    out = tmp_path / "r"
    assert main(["train", "--data", "digits", "--hidden", "16", "--epochs", "2", "--batch-size", "128",
                 "--no-plots", "--no-progress", "--out", str(out), *args]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return json.loads((out / "config.json").read_text()), rows, out


def test_a_prior_with_an_option_of_its_own(tmp_path, registered):
    from vaekit.options import Option

    @register("prior", "wide")
    class WidePrior(nn.Module):  # N(0, s^2 I): the width s is the prior's own option
        options = (Option("width", 1.0, "standard deviation of the wide prior", alias="prior_width",
                          check=lambda s: s > 0, rule="> 0"),)

        def __init__(self, latent_dim, width):
            super().__init__()
            self.latent_dim, self.width = latent_dim, width
            self.register_buffer("_anchor", torch.zeros(0), persistent=False)

        @classmethod
        def from_config(cls, cfg, encoder=None):
            return cls(cfg.latent_dim, cfg.prior.width)

        def forward(self):
            z = torch.zeros(self.latent_dim, device=self._anchor.device)
            return DiagonalNormal(z, z + 2 * math.log(self.width))

    saved, rows, out = _train_cli(tmp_path, "--prior", "wide", "--prior-width", "3")
    assert saved["model"]["prior"] == {"name": "wide", "width": 3.0}
    assert vaekit.load(out).prior.width == 3.0 and math.isfinite(rows[-1]["valid_elbo"])
    from vaekit.cli import _parser

    helptext = _parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--prior-width" in helptext and "standard deviation of the wide prior" in helptext  # from the class
    with pytest.raises(vaekit.VaekitError, match="prior_width must be > 0"):
        RunConfig.from_dict({"model": {"prior": "wide", "prior_width": -1}})


def test_a_new_architecture_with_an_option_of_its_own(tmp_path, registered):
    from vaekit.models import MLPDecoder, MLPEncoder
    from vaekit.options import Option

    @register("arch", "bottleneck")
    class Bottleneck:  # an MLP whose one hidden layer is as wide as the option says
        options = (Option("width", 12, "the bottleneck networks' hidden width", kind=int, alias="bottleneck_width",
                          check=lambda w: w >= 1, rule="a whole number >= 1"),)

        @classmethod
        def from_config(cls, cfg, image_shape, likelihood, cond_dim=0):
            d, w = math.prod(image_shape), cfg.arch.width
            encoder = MLPEncoder(d, (w,), cfg.latent_dim, cond_dim)
            encoder.input_shape = tuple(image_shape)
            return encoder, MLPDecoder(cfg.latent_dim, (w,), d * likelihood.params_per_pixel, likelihood, cond_dim)

        @classmethod
        def describe(cls, cfg, image_shape):
            return f"bottleneck {math.prod(image_shape)}-{cfg.arch.width}-{cfg.latent_dim}"

    saved, rows, out = _train_cli(tmp_path, "--arch", "bottleneck", "--bottleneck-width", "7")
    assert saved["model"]["arch"] == {"name": "bottleneck", "width": 7}
    assert vaekit.load(out).encoder.net[0].out_features == 7 and len(rows) == 2


def test_a_toy_objective_reports_a_new_term_into_the_metrics(tmp_path, registered):
    from vaekit.objectives import ELBO
    from vaekit.options import Option

    @register("objective", "elbo-and-rate")
    class ELBOAndRate(ELBO):  # the ELBO, reporting the rate (KL) in bits too, weighted by its own option
        options = (*ELBO.options, Option("rate_unit", 2.0, "log base of the reported rate", alias="rate_base",
                                         check=lambda b: b > 1, rule="> 1"),)

        @classmethod
        def from_config(cls, part):
            obj = cls(beta=part.beta, free_bits=part.free_bits, n_samples=part.n_samples)
            object.__setattr__(obj, "base", part.rate_unit)
            return obj

        def report(self, terms):
            return {"rate_bits": terms.kl / math.log(self.base)}

    saved, rows, _ = _train_cli(tmp_path, "--objective", "elbo-and-rate", "--rate-base", "2")
    assert saved["train"]["objective"]["name"] == "elbo-and-rate" and saved["train"]["objective"]["rate_unit"] == 2.0
    for row in rows:  # the new term lands in metrics.jsonl beside the ELBO's
        assert row["train_rate_bits"] == pytest.approx(row["train_kl"] / math.log(2), rel=1e-6)


def test_a_vae_and_a_cvae_take_the_same_batches():
    """One data contract: batches() hands every model images [B, C, H, W] in [0, 1] (uint8 converted per batch)
    and labels only when given; the training step and the objective take the same Batch for a VAE and a CVAE."""
    from vaekit.config import ModelConfig
    from vaekit.data import Batch, batches
    from vaekit.models import build_model
    from vaekit.objectives import ELBO
    from vaekit.train import make_step

    x = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 1, 0])
    got = list(batches(x, y, batch_size=2))
    assert [len(b.x) for b in got] == [2, 2, 1] and all(isinstance(b, Batch) for b in got)
    assert torch.equal(torch.cat([b.x for b in got]), x.float() / 255)
    assert torch.equal(torch.cat([b.y for b in got]), y)
    assert all(b.y is None for b in batches(x, None, 2))
    torch.manual_seed(0)
    for variant, labels in (("vae", None), ("cvae", y)):
        model = build_model(ModelConfig(variant=variant, latent_dim=2, hidden=(8,)), (1, 4, 4), classes=3)
        step = make_step(model, ELBO())
        for b in batches(x, labels, batch_size=5):
            terms = step(b)
            assert torch.isfinite(terms.elbo) and terms.elbo < 0
            assert torch.allclose(terms.elbo, terms.reconstruction - terms.kl, atol=1e-4)
    with pytest.raises(vaekit.VaekitError, match="resolve \"auto\" first"):
        make_step(model, ELBO(), precision="auto")
