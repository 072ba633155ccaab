"""The tutorial's VariationalAutoencoder, checked against the behaviour its table states, and its experiment."""

import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit import VaekitError
from vaekit.models.distributions import FixedGaussian
from vaekit.tutorial import VariationalAutoencoder, batch_stream, latent_grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ndims,nlatent,batch", [(784, 2, 16), (64, 3, 5), (10, 1, 1), (30, 20, 7)])
def test_shapes(ndims, nlatent, batch):
    m = VariationalAutoencoder(ndims=ndims, nlatent=nlatent)
    x = np.random.default_rng(0).random((batch, ndims)).astype(np.float32)
    z_mean, z_log_var = m._encoder(x)
    assert z_mean.shape == z_log_var.shape == (batch, nlatent)
    z = m._sample_z(z_mean, z_log_var)
    assert z.shape == (batch, nlatent)
    f = m._decoder(z)
    assert f.shape == (batch, ndims) and ((f > 0) & (f < 1)).all()
    f2, mu2, lv2 = m(torch.from_numpy(x))  # tensors and numpy arrays alike
    assert f2.shape == (batch, ndims) and mu2.shape == lv2.shape == (batch, nlatent)
    for value in (m._latent_loss(z_mean, z_log_var), m._reconstruction_loss(f, x), m.loss(f, x, z_mean, z_log_var)):
        assert value.ndim == 0
    out = m.generate_samples(np.zeros((4, nlatent)))
    assert isinstance(out, np.ndarray) and out.shape == (4, ndims)


def test_networks_and_initialisation():
    m = VariationalAutoencoder()
    enc = [mod for mod in m.encoder.hidden if isinstance(mod, torch.nn.Linear)]
    dec = [mod for mod in m.decoder.net if isinstance(mod, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in enc] == [(784, 100), (100, 50)]
    assert (m.encoder.z_mean.in_features, m.encoder.z_mean.out_features) == (50, 2)
    assert (m.encoder.z_log_var.in_features, m.encoder.z_log_var.out_features) == (50, 2)
    assert [(lin.in_features, lin.out_features) for lin in dec] == [(2, 50), (50, 100), (100, 784)]
    assert sum(isinstance(mod, torch.nn.Softplus) for mod in m.modules()) == 4
    assert isinstance(m.decoder.net[-1], torch.nn.Sigmoid)
    for lin in [*enc, *dec, m.encoder.z_mean, m.encoder.z_log_var]:
        assert torch.all(lin.bias == 0)
        bound = math.sqrt(6.0 / (lin.in_features + lin.out_features))  # Glorot uniform
        assert lin.weight.abs().max() <= bound
    w = enc[0].weight  # 78,400 draws: the uniform's standard deviation is bound / sqrt(3)
    assert w.std().item() == pytest.approx(math.sqrt(6.0 / 884) / math.sqrt(3), rel=0.02)


def test_losses_match_the_tutorials_formulas():
    rng = np.random.default_rng(1)
    mu, lv = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    f, x = rng.random((8, 20)), rng.random((8, 20))
    m = VariationalAutoencoder(ndims=20, nlatent=3)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    latent = 0.5 * np.mean(np.sum(np.exp(lv) + mu**2 - 1 - lv, axis=1))  # tf.reduce_mean(tf.reduce_sum(..., 1))
    recon = 0.5 * np.sum((f - x) ** 2)  # tf.nn.l2_loss
    assert m._latent_loss(t(mu), t(lv)).item() == pytest.approx(latent, rel=1e-5)
    assert m._reconstruction_loss(t(f), x).item() == pytest.approx(recon, rel=1e-5)
    assert m.loss(t(f), x, t(mu), t(lv)).item() == pytest.approx(latent + recon, rel=1e-5)
    # the L2 term is -log N(x; f, I) without its constant, summed over the batch
    nll = -FixedGaussian(t(f), 1.0).log_prob(t(x)).sum().item()
    assert recon == pytest.approx(nll - 8 * 20 / 2 * math.log(2 * math.pi), rel=1e-5)


def test_sample_moments_and_gradients():
    m = VariationalAutoencoder(ndims=4, nlatent=2)
    n = 200_000
    mu = torch.tensor([1.0, -2.0]).repeat(n, 1).requires_grad_()
    lv = torch.tensor([math.log(4.0), math.log(0.25)]).repeat(n, 1).requires_grad_()
    z = m._sample_z(mu, lv)
    assert z.mean(0).tolist() == pytest.approx([1.0, -2.0], abs=0.02)
    assert z.std(0).tolist() == pytest.approx([2.0, 0.5], rel=0.01)
    z.sum().backward()
    assert torch.all(mu.grad == 1)  # dz/dmu = 1
    eps = (z.detach() - mu.detach()) / torch.exp(0.5 * lv.detach())
    torch.testing.assert_close(lv.grad, 0.5 * torch.exp(0.5 * lv.detach()) * eps)  # dz/dlv = sigma eps / 2


def test_update_op_lowers_the_loss_with_one_optimiser():
    torch.manual_seed(0)
    m = VariationalAutoencoder(ndims=64, nlatent=2)
    x = torch.rand(32, 64)
    opt = m.optimizer

    def loss():
        torch.manual_seed(1)
        return m.loss(*_terms(m, x))

    before = loss().item()
    for i in range(100):
        m.update_op(m.loss(*_terms(m, x)), learning_rate=1e-2 if i < 50 else 1e-3)
        assert m.optimizer is opt and opt.param_groups[0]["lr"] == (1e-2 if i < 50 else 1e-3)
    assert loss().item() < 0.8 * before
    assert len(opt.state) == len(list(m.parameters()))  # one Adam state per parameter, kept across calls


def _terms(m, x):
    f, mu, lv = m(x)
    return f, x, mu, lv


def test_train_step_returns_the_loss_before_the_step():
    torch.manual_seed(3)
    m = VariationalAutoencoder(ndims=16, nlatent=2)
    x = np.random.default_rng(0).random((5, 16)).astype(np.float32)
    torch.manual_seed(7)
    expected = m.loss(*_terms(m, torch.from_numpy(x))).item()
    before = [p.detach().clone() for p in m.parameters()]
    torch.manual_seed(7)
    assert m.train_step(x, learning_rate=1e-3) == pytest.approx(expected, rel=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_as_vae_shares_the_weights_and_scores_in_nats():
    m = VariationalAutoencoder(ndims=16, nlatent=2)
    vae = m.as_vae()
    assert [id(p) for p in vae.parameters()] == [id(p) for p in m.parameters()]
    x = torch.rand(6, 16)
    torch.manual_seed(5)
    got = m.elbo_loss(x).item()
    torch.manual_seed(5)
    f, mu, lv = m(x)
    rec = 0.5 * (f - x).pow(2).sum(1) + 16 / 2 * math.log(2 * math.pi)
    kl = 0.5 * (lv.exp() + mu**2 - 1 - lv).sum(1)
    assert got == pytest.approx((rec + kl).mean().item(), rel=1e-5)
    res = vaekit.evaluate(vae, x, iw_samples=20)
    assert math.isfinite(res["nll"]) and res["nll"] <= -res["elbo"] + 1.0


def test_latent_grid_is_z_y_x_with_one_row_per_x():
    torch.manual_seed(0)
    m = VariationalAutoencoder()
    grid = latent_grid(m, n=5, span=3.0)
    assert grid.shape == (5 * 28, 5 * 28)
    vals = np.linspace(-3, 3, 5)
    for i, j in [(0, 0), (1, 3), (4, 2)]:
        tile = grid[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28]
        expected = m.generate_samples(np.array([[vals[j], vals[i]]])).reshape(28, 28)  # z = [y, x], row i is x_i
        np.testing.assert_allclose(tile, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(VaekitError, match="2-dimensional latent"):
        latent_grid(VariationalAutoencoder(nlatent=3))


def test_batch_stream_is_next_batch():
    stream = batch_stream(10, 4, seed=0)
    batches = [next(stream) for _ in range(5)]  # 20 indices: two whole epochs
    flat = torch.cat(batches)
    assert sorted(flat[:10].tolist()) == list(range(10)) and sorted(flat[10:].tolist()) == list(range(10))
    assert all(b.shape == (4,) for b in batches)


@pytest.mark.parametrize("bad,match", [
    (dict(ndims=0), "ndims"), (dict(nlatent=1.5), "nlatent"), (dict(nlatent=True), "nlatent")])
def test_bad_sizes_are_refused(bad, match):
    with pytest.raises(VaekitError, match=match):
        VariationalAutoencoder(**bad)


def test_bad_inputs_are_refused_with_one_line():
    m = VariationalAutoencoder(ndims=784)
    with pytest.raises(VaekitError, match=r"x must have shape \[batch, 784\], got \(2, 28, 28\)"):
        m._encoder(np.zeros((2, 28, 28)))
    with pytest.raises(VaekitError, match=r"z must have shape \[batch, 2\]"):
        m.generate_samples(np.zeros((3, 5)))
    with pytest.raises(VaekitError, match="learning_rate"):
        m.train_step(np.zeros((2, 784)), learning_rate=-1)


def _run_experiment(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["tutorial_experiment.py", *argv])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "examples" / "tutorial_experiment.py"), run_name="__main__")
    return done.value.code, capsys.readouterr()


def test_experiment_writes_grid_animation_and_summary(tmp_path, monkeypatch, capsys):
    out = tmp_path / "exp"
    code, io = _run_experiment(monkeypatch, capsys, "--steps", "30", "--frame-every", "10", "--evaluate", "5",
                               "--objective", "elbo", "--out", str(out))
    assert code == 0, io.err
    grid = Image.open(out / "latent_space_vae.png")
    assert grid.size == (560, 560) and grid.mode == "L"
    gif = Image.open(out / "vae.gif")
    assert gif.n_frames == 4  # untrained, then steps 10, 20, 30
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["objective"] == "elbo" and summary["data"] == "mnist-5k"
    assert summary["valid"]["n_images"] == 500 and math.isfinite(summary["valid"]["nll"])
    assert 0 <= summary["valid"]["active_dims"] <= 2
    assert "active dims" in io.out


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_experiment_reads_idx_files_from_data_dir(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (40, 28, 28))))
    # plain (unpacked) files a user placed are checked by their reader; gzip files by the published MD5
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 40)))
    code, io = _run_experiment(monkeypatch, capsys, "--data-dir", str(tmp_path), "--split", "test", "--steps", "5",
                               "--frame-every", "5", "--out", str(tmp_path / "out"))
    assert code == 0, io.err
    assert "on mnist test (40 images)" in io.out
    assert (tmp_path / "out" / "vae.gif").is_file()


def test_experiment_reports_missing_files_in_one_line(tmp_path, monkeypatch, capsys):
    code, io = _run_experiment(monkeypatch, capsys, "--data-dir", str(tmp_path), "--steps", "5",
                               "--out", str(tmp_path / "out"))
    assert code == 2
    assert io.err.count("\n") == 1 and "train-images-idx3-ubyte.gz" in io.err and str(tmp_path) in io.err
    assert not (tmp_path / "out").exists()
