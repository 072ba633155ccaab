"""The pieces of Tomczak & Welling's code that vaekit offers as options: Adam on per-tensor normalised gradients
(--optimizer adam-normgrad), He-initialised linear layers (--init he) and pseudo-inputs clipped to [0, 1]
(--pseudo-inputs clipped)."""

import math

import pytest
import torch

import vaekit
from vaekit.checkpoint import _load_tensors
from vaekit.config import RunConfig
from vaekit.models import build_model
from vaekit.optim import AdamNormGrad


def quiet(_):
    pass


def test_adam_normgrad_is_adam_on_unit_norm_gradients():
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(4))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    ours, ref = AdamNormGrad(a, lr=0.01), torch.optim.Adam(b, lr=0.01)
    for t in range(5):
        g = [torch.randn(5, 3) * 10 ** t, torch.randn(4) * 1e-3]  # gradients of very different sizes
        for p, q, gi in zip(a, b, g):
            p.grad, q.grad = gi.clone(), gi / (gi.norm() + AdamNormGrad.EPS)
        ours.step()
        ref.step()
        for p, q in zip(a, b):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    # scaling the loss changes nothing (up to the 1e-7 in the denominator)
    c = [torch.nn.Parameter(p.detach().clone()) for p in a]
    d = [torch.nn.Parameter(p.detach().clone()) for p in a]
    oc, od = AdamNormGrad(c, lr=0.01), AdamNormGrad(d, lr=0.01)
    for p, q in zip(c, d):
        g = torch.randn_like(p)
        p.grad, q.grad = g.clone(), 1000 * g
    oc.step()
    od.step()
    for p, q in zip(c, d):
        torch.testing.assert_close(p, q)


def cfg(**over):
    train = {"epochs": 2, "seed": 0, "precision": "fp32", "optimizer": "adam-normgrad", **over.pop("train", {})}
    return RunConfig.from_dict({"data": {"name": "digits"},
                                "model": {"latent_dim": 2, "hidden": [16], "arch": "gated-mlp", "init": "he",
                                          "prior": "vamp", "prior_components": 4, "pseudo_inputs": "clipped",
                                          **over},
                                "train": train})


def test_the_paper_parts_train_and_resume_bit_identically(tmp_path):
    vaekit.train(cfg(train={"epochs": 3}), tmp_path / "straight", progress=False, log=quiet)
    vaekit.train(cfg(train={"epochs": 1}), tmp_path / "resumed", progress=False, log=quiet)
    res = vaekit.train(cfg(train={"epochs": 3}), tmp_path / "resumed", resume=True, progress=False, log=quiet)
    a, _ = _load_tensors(tmp_path / "straight" / "last.safetensors")
    b, _ = _load_tensors(tmp_path / "resumed" / "last.safetensors")
    assert "model.prior.pseudo_values" in a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(math.isfinite(h["valid_elbo"]) for h in res.history)
    model = vaekit.load(tmp_path / "resumed")
    u = model.prior.pseudo_inputs()
    assert u.min() >= 0 and u.max() <= 1


def test_he_init_and_the_default_start():
    he = build_model(cfg().model, (1, 8, 8))
    default = build_model(cfg(init="default").model, (1, 8, 8))
    for m_he, m_def in zip(he.modules(), default.modules()):
        if isinstance(m_he, torch.nn.Linear) and m_he.weight.numel() >= 256:
            n = m_he.in_features
            assert m_he.weight.std().item() == pytest.approx(math.sqrt(2 / n), rel=0.15)
            assert m_def.weight.std().item() == pytest.approx(1 / math.sqrt(3 * n), rel=0.15)  # PyTorch's uniform


def test_clipped_pseudo_inputs_start_near_black_and_stop_at_the_edges():
    torch.manual_seed(0)
    model = build_model(cfg().model, (1, 8, 8))
    prior = model.prior
    u = prior.pseudo_inputs()
    assert u.mean().item() == pytest.approx(0.05, abs=0.005) and u.std().item() == pytest.approx(0.01, rel=0.2)
    with torch.no_grad():
        prior.pseudo_values[0].fill_(-0.5)
        prior.pseudo_values[1].fill_(1.5)
    u = prior.pseudo_inputs()
    assert torch.all(u[0] == 0) and torch.all(u[1] == 1)
    u.sum().backward()
    g = prior.pseudo_values.grad
    assert torch.all(g[:2] == 0) and torch.all(g[2:] == 1)  # hardtanh: no gradient outside [0, 1]
    sig = build_model(cfg(pseudo_inputs="sigmoid").model, (1, 8, 8)).prior
    assert hasattr(sig, "pseudo_logits") and not hasattr(sig, "pseudo_values")
