import pytest
import torch

from vaekit.config import ModelConfig
from vaekit.models import build_model


@pytest.mark.parametrize("arch", ["mlp", "gated-mlp"])
def test_gradients_flow_to_encoder_and_decoder(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(20, 10)), (1, 4, 4))
    x = torch.bernoulli(torch.full((8, 16), 0.3))
    (-model(x).elbo.mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_shapes_and_sampling():
    model = build_model(ModelConfig(latent_dim=2, hidden=(8,)), (1, 3, 3))
    x = torch.bernoulli(torch.full((5, 9), 0.5))
    t = model(x, n_samples=4)
    assert t.elbo.shape == t.kl.shape == t.reconstruction.shape == (5,)
    torch.testing.assert_close(t.elbo, t.reconstruction - t.kl)
    log_w, log_px = model.log_weights(x, 6)
    assert log_w.shape == log_px.shape == (6, 5)
    s = model.sample(7)
    assert s.shape == (7, 1, 3, 3) and s.min() >= 0 and s.max() <= 1  # images, not rows of pixels
    assert set(model.sample(3, mean=False).unique().tolist()) <= {0.0, 1.0}
    assert model.reconstruct(x).shape == (5, 1, 3, 3)
    assert model.latent_code(x).shape == (5, 2)


def test_images_and_rows_of_pixels_give_the_same_terms():
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=2, hidden=(8,)), (1, 3, 3))
    images = torch.bernoulli(torch.full((5, 1, 3, 3), 0.5))
    torch.manual_seed(1)
    a = model(images, n_samples=3)
    torch.manual_seed(1)
    b = model(images.reshape(5, 9), n_samples=3)
    assert all(torch.equal(u, v) for u, v in zip(a[:3], b[:3]))
    assert torch.equal(model.reconstruct(images), model.reconstruct(images.reshape(5, 9)))


def test_gaussian_likelihood_model():
    model = build_model(ModelConfig(latent_dim=2, hidden=(8,), likelihood="gaussian", sigma=0.5), (1, 2, 2))
    x = torch.rand(3, 4)
    t = model(x)
    assert torch.isfinite(t.elbo).all()
    # with sigma=0.5 a perfect fit would have log p = -D log(0.5 sqrt(2 pi)) > 0 per image
    assert model.sample(2).shape == (2, 1, 2, 2)


@pytest.mark.parametrize("arch", ["mlp", "gated-mlp"])
def test_dropout_acts_while_training_only_and_is_refused_for_conv(arch):
    from vaekit.errors import VaekitError

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(32, 16), dropout=0.5), (1, 4, 4))
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 4  # after each hidden layer, both nets
    plain = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(32, 16)), (1, 4, 4))
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())  # 0: the same modules as before
    x = torch.bernoulli(torch.full((8, 16), 0.3))
    model.train()
    a, b = model.encode(x).mu, model.encode(x).mu
    assert not torch.equal(a, b)  # units dropped at random
    model.eval()
    a, b = model.encode(x).mu, model.encode(x).mu
    assert torch.equal(a, b)
    with pytest.raises(VaekitError, match="dropout is for the MLP networks"):
        ModelConfig(arch="conv", dropout=0.1)
    with pytest.raises(VaekitError, match=r"dropout must be in \[0, 1\)"):
        ModelConfig(dropout=1.0)
