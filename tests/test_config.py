import json

import pytest

from vaekit.config import RunConfig, load_config
from vaekit.errors import VaekitError


def test_defaults_are_the_tutorial_model_and_resolve_binarization():
    cfg = RunConfig()
    assert cfg.model.latent_dim == 2 and cfg.model.arch == "mlp" and cfg.data.name == "mnist-5k"
    assert cfg.data.binarize == "dynamic"  # named in the saved config, never silent
    assert RunConfig.from_dict({"model": {"likelihood": "gaussian"}}).data.binarize == "none"
    assert RunConfig.from_dict({"data": {"name": "binarized-mnist"}}).data.binarize == "none"


def test_round_trip_through_json():
    cfg = RunConfig.from_dict({"model": {"hidden": [300, 200], "latent_dim": 8}, "train": {"lr": 3e-4}})
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.model.hidden == (300, 200)


@pytest.mark.parametrize("d,match", [
    ({"modle": {}}, "unknown table 'modle' \\(did you mean 'model'\\?\\)"),
    ({"model": {"latent": 3}}, "unknown key 'model.latent' \\(did you mean 'latent_dim'\\?\\)"),
    ({"model": {"likelihood": "bernouli"}}, "did you mean 'bernoulli'"),
    ({"model": {"prior": "vampire"}}, "unknown model.prior 'vampire' \\(did you mean 'vamp'\\?\\)"),
    ({"data": {"name": "fashion"}}, "unknown data set 'fashion'"),
    ({"train": {"lr": 0}}, "lr .* must be > 0"),
    ({"train": {"lr": -1e-3}}, "must be > 0"),
    ({"train": {"batch_size": 0}}, "batch_size must be"),
    ({"train": {"epochs": 0}}, "epochs must be"),
    ({"train": {"epochs": 2.5}}, "epochs must be"),
    ({"model": {"latent_dim": 0}}, "latent_dim must be"),
    ({"model": {"hidden": [400, 0]}}, "hidden must be"),
    ({"model": {"sigma": 0}}, "sigma"),
    ({"train": {"optimizer": "adamw"}}, "did you mean 'adam'"),
    ({"data": {"binarize": "yes"}}, "unknown binarize"),
    ({"data": {"binarize": "none"}}, "needs binary pixels .* --binarize dynamic"),
    ({"data": {"name": "binarized-mnist", "binarize": "dynamic"}}, "already binary"),
    ({"format_version": 99}, "format_version"),
    ({"train": 3}, "must be a table"),
])
def test_bad_configs_are_clear_errors(d, match):
    with pytest.raises(VaekitError, match=match):
        RunConfig.from_dict(d)


def test_toml_preset(tmp_path):
    p = tmp_path / "preset.toml"
    p.write_text('[data]\nname = "digits"\n[model]\nlatent_dim = 4\nhidden = [32]\n[train]\nepochs = 2\n')
    cfg = load_config(p)
    assert cfg.data.name == "digits" and cfg.model.hidden == (32,) and cfg.train.epochs == 2
    p.write_text("[data\n")
    with pytest.raises(VaekitError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(VaekitError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_shipped_presets_are_valid():
    from pathlib import Path

    presets = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert presets
    for p in presets:
        load_config(p)


def test_building_a_config_reads_no_file_only_from_dict_resolves_your_data(tmp_path, monkeypatch):
    """RunConfig() itself reads nothing: your folder or array is scanned once, by from_dict."""
    import numpy as np

    from vaekit.config import DataConfig
    from vaekit.data import user

    np.save(tmp_path / "x.npy", np.zeros((20, 8, 8), np.uint8))
    data = DataConfig(name="array", data_file=str(tmp_path / "x.npy"))
    with pytest.raises(VaekitError, match="not resolved yet: build it with RunConfig.from_dict"):
        RunConfig(data=data)
    scans = []
    real = user.source_spec
    monkeypatch.setattr(user, "source_spec", lambda dc: scans.append(dc) or real(dc))
    cfg = RunConfig.from_dict({"data": {"name": "array", "data_file": str(tmp_path / "x.npy")}})
    assert cfg.data.image_shape == (1, 8, 8) and cfg.model.arch == "conv" and len(scans) == 1
    RunConfig(data=cfg.data, model=cfg.model)  # a resolved config builds with no scan
    assert len(scans) == 1
