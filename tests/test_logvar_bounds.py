"""The networks' bounds on the Gaussian heads' log-variance (--logvar-min/--logvar-max; Tomczak & Welling's
hardtanh to [-6, 2]): every head of every network keeps to them, and a wrong pair is refused in one line."""

from __future__ import annotations

import pytest
import torch

from vaekit.config import RunConfig
from vaekit.errors import VaekitError
from vaekit.models import build_model, describe


def model_of(arch="mlp", variant=None, **bounds):
    m = {"arch": arch, "latent_dim": 3, "hidden": [8], **bounds}
    if arch == "conv":
        m["conv_channels"] = [4]
    if variant:
        m["variant"] = {"name": variant, "z1_dim": 2}
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": m})
    torch.manual_seed(0)
    return cfg, build_model(cfg.model, (1, 8, 8))


@pytest.mark.parametrize("arch,variant", [("mlp", None), ("gated-mlp", "hvae"), ("conv", "hvae")])
def test_every_gaussian_head_keeps_to_the_bounds(arch, variant):
    cfg, model = model_of(arch, variant, logvar_min=-6, logvar_max=2)
    with torch.no_grad():
        for net in model.modules():
            if hasattr(net, "logvar_bounds"):
                assert net.logvar_bounds == (-6.0, 2.0)
        for p in model.parameters():  # larger weights: without the bounds the heads would leave [-6, 2]
            p.mul_(5)
        x = torch.rand(16, 1, 8, 8)
        q = model.encode(x)
        assert q.logvar.min() >= -6 and q.logvar.max() <= 2
        assert (q.logvar.min() == -6 or q.logvar.max() == 2)  # the bounds were reached, so they were tested
        if variant:
            z2 = q.rsample()
            for q1 in model._lower(x.flatten(1), z2):  # q(z1|x, z2) and p(z1|z2)
                assert q1.logvar.min() >= -6 and q1.logvar.max() <= 2
    assert "log-variance in [-6, 2]" in describe(cfg.model, (1, 8, 8), None, model)


def test_the_default_bounds_leave_the_model_as_it_was():
    cfg, model = model_of()
    assert model.encoder.logvar_bounds == (-30.0, 20.0)
    assert "log-variance" not in describe(cfg.model, (1, 8, 8), None, model)


@pytest.mark.parametrize("bounds,message", [({"logvar_min": 2, "logvar_max": -6}, "must be below --logvar-max"),
                                            ({"logvar_min": -100}, "logvar_min must be a number in")])
def test_wrong_bounds_are_refused_in_one_line(bounds, message):
    with pytest.raises(VaekitError, match=message) as e:
        model_of(**bounds)
    assert "\n" not in str(e.value)
