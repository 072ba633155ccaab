"""`--data folder` and `--data array`: the user's own images through train, evaluate, sample, plot, resume."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.config import RunConfig
from vaekit.errors import VaekitError
from vaekit.runs import load_split

TINY = ["--epochs", "1", "--no-progress", "--conv-channels", "4", "--hidden", "0", "--latent-dim", "3",
        "--batch-size", "16"]


def make_folder(root, classes=("red", "blue"), n=12, size=(10, 12), splits=False, fmt="PNG"):
    rng = np.random.default_rng(0)
    for s in ("train", "valid") if splits else ("",):
        for c in classes:
            folder = root / s / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = np.zeros((*size, 3), np.uint8)
                a[..., 0 if c == "red" else 2] = rng.integers(60, 255)
                Image.fromarray(a).save(folder / f"{i}.{'jpg' if fmt == 'JPEG' else 'png'}", format=fmt)
    return root


def test_a_folder_trains_evaluates_samples_and_plots(tmp_path, capsys):
    data = make_folder(tmp_path / "imgs")
    (data / "README.txt").write_text("not an image")
    run = tmp_path / "run"
    assert main(["train", "--data", "folder", "--data-dir", str(data), *TINY, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "3x10x12" in out and "conv" in out and "discretised logistic over 256 levels" in out  # the defaults
    assert "1 file is not an image" in out
    cfg = json.loads((run / "config.json").read_text())["data"]
    assert cfg["class_names"] == ["blue", "red"] and cfg["n_files"] == 24 and cfg["digest"]
    assert main(["evaluate", str(run), "--iw-samples", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert math.isfinite(res["nll"]) and res["bits_per_dim"] > 0
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    for name in ("samples.png", "reconstructions.png", "scatter.png", "training.gif", "report.html"):
        assert (run / name).is_file(), name
    # the split is fixed and saved: a later load sees the same images, as uint8 kept small in memory
    c = vaekit.load(run).config
    a, b = load_split(c, "valid"), load_split(c, "valid")
    assert a.x.dtype == torch.uint8
    assert np.array_equal(a.x.numpy(), b.x.numpy()) and len(a) == 2
    # a changed folder is refused, naming what changed; nothing is written
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(data / "red" / "new.png")
    assert main(["evaluate", str(run), "--iw-samples", "4"]) == 1
    assert "has changed since the run: 24 images then, 25 now" in capsys.readouterr().err
    assert main(["train", "--data", "folder", "--data-dir", str(data), *TINY, "--epochs", "2", "--out", str(run),
                 "--resume"]) == 1
    assert "has changed since the run" in capsys.readouterr().err
    # sample and plot need no data: they still work
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s2.png")]) == 0


def test_split_folders_image_size_and_grey(tmp_path):
    data = make_folder(tmp_path / "imgs", splits=True, size=(14, 9), fmt="JPEG")
    c = RunConfig.from_dict({"data": {"name": "folder", "data_dir": str(data), "image_size": [8], "channels": 1},
                             "model": {"hidden": [0], "conv_channels": [4], "latent_dim": 2},
                             "train": {"epochs": 1, "batch_size": 8}})
    assert c.data.image_shape == (1, 8, 8) and c.model.arch == "conv" and c.model.likelihood == "logistic"
    train, valid = load_split(c, "train"), load_split(c, "valid")
    assert len(train) == 24 - round(24 * 0.1) and len(valid) == 24  # valid/ is the valid split; test cut from train
    assert train.x.shape[1:] == (1, 8, 8) and train.labels is not None
    res = vaekit.train(c, tmp_path / "run", progress=False, log=lambda m: None)
    assert math.isfinite(res.history[-1]["valid_elbo"])


def test_an_array_in_every_layout_trains(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x=x, y=rng.integers(0, 3, 40))
    c = RunConfig.from_dict({"data": {"name": "array", "data_file": str(tmp_path / "a.npz")},
                             "model": {"variant": "cvae", "hidden": [0], "conv_channels": [4], "latent_dim": 2},
                             "train": {"epochs": 1, "batch_size": 8}})
    assert c.data.layout == "NHWC" and c.data.image_shape == (3, 8, 8) and c.data.classes == 3
    res = vaekit.train(c, tmp_path / "run", progress=False, log=lambda m: None)
    assert math.isfinite(res.history[-1]["valid_elbo"])
    np.save(tmp_path / "b.npy", (x[..., 0] > 128).astype(np.float32))  # binary floats: a Bernoulli model by default
    c = RunConfig.from_dict({"data": {"name": "array", "data_file": str(tmp_path / "b.npy")}})
    assert c.data.levels == 2 and c.model.likelihood == "bernoulli" and c.data.image_shape == (1, 8, 8)


def test_bad_user_data_is_one_line_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--data", "folder", "--data-dir", str(empty)], "no images"),
        (["--data", "folder"], "needs --data-dir"),
        (["--data", "array"], "needs --data-file"),
        (["--data", "array", "--data-file", str(tmp_path / "none.npy")], "not found"),
        (["--data", "mnist-5k", "--image-size", "8"], "has a fixed size"),
        (["--data", "folder", "--data-dir", str(empty), "--channels", "2"], "channels must be 1"),
        (["--data", "folder", "--data-dir", str(empty), "--valid-fraction", "0.6", "--test-fraction", "0.5"],
         "must leave images to train on"),
    ]
    for args, match in cases:
        assert main(["train", *args, "--out", str(tmp_path / "run")]) == 1, args
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert not (tmp_path / "run").exists()
    data = make_folder(tmp_path / "imgs", n=4, splits=True)
    (data / "train" / "red" / "0.png").write_bytes(b"\x89PNG broken")
    assert main(["train", "--data", "folder", "--data-dir", str(data), *TINY, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "cannot read image" in err and "0.png" in err and "--skip-bad-images" in err
    assert main(["train", "--data", "folder", "--data-dir", str(data), *TINY, "--skip-bad-images",
                 "--out", str(tmp_path / "run2")]) == 0
    assert "skipped 1 unreadable image file" in capsys.readouterr().out


def test_the_memory_estimate_refuses_before_decoding(tmp_path, monkeypatch):
    from vaekit import limits

    data = make_folder(tmp_path / "imgs", n=4)
    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    c = RunConfig.from_dict({"data": {"name": "folder", "data_dir": str(data)}})
    with pytest.raises(VaekitError, match=r"need .* GiB decoded, more than half .* try --image-size 8"):
        load_split(c, "train")


def test_shapes_at_64(tmp_path):
    c = RunConfig.from_dict({"data": {"name": "shapes", "image_size": [64]}})
    assert c.data.image_shape == (3, 64, 64) and c.model.arch == "conv" and c.model.likelihood == "logistic"
    with pytest.raises(VaekitError, match="shapes are drawn square"):
        RunConfig.from_dict({"data": {"name": "shapes", "image_size": [64, 32]}})
