"""Bad input, round three: no silent wrong answers, and every refusal says the way forward.

Each case is a wrong answer or a weak message a hostile new user found; table-driven where the
cases share a shape. The messages are checked for being one line that names the cause and the fix.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vaekit.checkpoint import LAST_FILE
from vaekit.cli import main
from vaekit.runs import LOCK_FILE

HELPERS = Path(__file__).resolve().parent / "helpers"
TINY = ["--data", "digits", "--hidden", "16", "--latent-dim", "2", "--epochs", "2", "--batch-size", "64",
        "--seed", "3", "--no-progress", "--no-plots"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vaekit: error: ") and "Traceback" not in err, err
    return err


# --- a run killed at any moment of its start-up resumes (and restarts without --force) ---------------------

STAGES = ("folder", "lock", "config", "epoch", "files")


def test_a_run_killed_at_each_moment_of_its_start_up_resumes_to_the_uninterrupted_weights(tmp_path, capsys):
    procs = {}
    for stage in STAGES:  # killed by injection at each stage: in parallel, each in its own process
        procs[stage] = subprocess.Popen([sys.executable, str(HELPERS / "kill_at.py"), stage, "train", *TINY,
                                         "--out", str(tmp_path / stage)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
    assert main(["train", *TINY, "--out", str(tmp_path / "straight")]) == 0
    straight = load_file(tmp_path / "straight" / LAST_FILE)
    left = {}
    for stage, p in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode == -9, (stage, err)
        left[stage] = sorted(f.name for f in (tmp_path / stage).iterdir())
    assert left["folder"] == [] and left["lock"] == [LOCK_FILE]
    assert left["config"] == [LOCK_FILE, "config.json"]
    assert left["files"] == [LOCK_FILE, "config.json", "metrics.jsonl", "model.safetensors"]
    capsys.readouterr()
    for stage in STAGES:
        copy = tmp_path / f"{stage}-plain"
        shutil.copytree(tmp_path / stage, copy)
        assert main(["train", *TINY, "--out", str(tmp_path / stage), "--resume"]) == 0, capsys.readouterr().err
        assert "starts again from epoch 1" in capsys.readouterr().out
        # the same command without --resume: a folder that holds only what start-up wrote needs no --force
        # (one that holds a first epoch's best weights does: they can be evaluated)
        rc = main(["train", *TINY, "--out", str(copy)])
        if stage == "files":
            assert rc == 1 and "--resume to continue it" in one_line(capsys)
            continue
        assert rc == 0, capsys.readouterr().err
        for run in (tmp_path / stage, copy):
            got = load_file(run / LAST_FILE)
            assert got.keys() == straight.keys() and all(torch.equal(got[k], straight[k]) for k in got), run


# --- wrong answers: a folder of mixed sizes, a Bernoulli on dequantised pixels ------------------------------

def test_a_folder_of_mixed_sizes_is_refused_naming_two_files_that_differ(tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(d / f"a{i}.png")
        Image.fromarray(np.full((10, 12), 40 * i, np.uint8)).save(d / f"b{i}.png")  # 12 wide, 10 high
    args = ["train", "--data", "folder", "--data-dir", str(d), "--epochs", "1", "--conv-channels", "4", "--hidden",
            "0", "--latent-dim", "2", "--no-progress", "--no-plots"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 1
    err = one_line(capsys)
    assert "images differ in size" in err and "--image-size" in err
    named = [f.name for f in d.iterdir() if f"{f.name}'" in err]
    assert len(named) == 2 and {n[0] for n in named} == {"a", "b"}, err  # one of each size
    assert not (tmp_path / "run").exists()
    assert main([*args, "--image-size", "8", "--out", str(tmp_path / "run")]) == 0  # the fix it names


LIKELIHOOD_NAMES = ("bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli", "logistic")
# what each likelihood is a distribution over: on grey 17-level digits and on a binary array, which binarization
# and dequantisation leave pixels it is a mass or density over (every other combination must be refused)
ACCEPTED = {
    "grey": {"bernoulli": {("dynamic", "none"), ("static", "none")},
             "logistic": {("none", "none")},
             **{n: {(b, "uniform") for b in ("none", "dynamic", "static")}
                for n in ("gaussian", "gaussian-learned", "continuous-bernoulli")}},
    "binary": {"bernoulli": {(b, "none") for b in ("none", "dynamic", "static")},
               "logistic": set(),
               **{n: {(b, "uniform") for b in ("none", "dynamic", "static")}
                  for n in ("gaussian", "gaussian-learned", "continuous-bernoulli")}},
}


def _normalisation(lik, support: str, levels: int) -> torch.Tensor:
    """Per pixel, the total mass (or the integral of the density) the likelihood gives its support, for
    random decoder outputs."""
    torch.manual_seed(0)
    out = torch.randn(50, lik.params_per_pixel)  # 50 pixels, one value each
    if support == "binary":
        values = torch.tensor([0.0, 1.0])
    elif support == "discrete":
        values = torch.arange(levels) / (levels - 1)
    elif lik.name == "continuous-bernoulli":  # a density on [0, 1]
        values = torch.linspace(0, 1, 60001)
    else:  # on the line: wide enough for a learned sigma of a few units, fine enough for one of 0.3
        values = torch.linspace(-60, 61, 60001)
    lp = lik(out.expand(len(values), 50, lik.params_per_pixel)).log_prob(values.view(-1, 1, 1).expand(-1, 50, 1))
    if support == "continuous":
        return torch.trapezoid(lp.exp(), values, dim=0)
    return lp.exp().sum(0)


@pytest.mark.parametrize("data", ["grey", "binary"])
def test_every_likelihood_binarization_and_dequantization_is_a_true_distribution_or_refused(tmp_path, data):
    from vaekit.config import RunConfig
    from vaekit.errors import VaekitError
    from vaekit.models import build_model
    from vaekit.models.likelihoods import likelihood_class
    from vaekit.runs import load_split

    if data == "grey":
        base = {"name": "digits"}
    else:
        rng = np.random.default_rng(0)
        np.save(tmp_path / "binary.npy", (rng.random((60, 8, 8)) < 0.3).astype(np.float32))
        base = {"name": "array", "data_file": str(tmp_path / "binary.npy")}
    for name in LIKELIHOOD_NAMES:
        for binarize in ("none", "dynamic", "static"):
            for dequantize in ("none", "uniform"):
                d = {"data": {**base, "binarize": binarize, "dequantize": dequantize},
                     "model": {"likelihood": name, "arch": "mlp", "hidden": [8], "latent_dim": 2}}
                ok = (binarize, dequantize) in ACCEPTED[data][name]
                if not ok:
                    with pytest.raises(VaekitError) as e:
                        RunConfig.from_dict(d)
                    assert "\n" not in str(e.value) and "--" in str(e.value), (name, binarize, dequantize)
                    continue
                cfg = RunConfig.from_dict(d)
                x = load_split(cfg, "valid").x.float()
                x = x / 255 if x.max() > 1 else x
                lik = build_model(cfg.model, cfg.data.image_shape, cfg.pixel_levels).decoder.likelihood
                support = likelihood_class(name).accepts
                mass = _normalisation(lik, support, cfg.pixel_levels)
                if support == "continuous":  # a density on the line, over pixels spread inside [0, 1]
                    assert cfg.data.dequantize == "uniform" and ((x > 0) & (x < 1)).float().mean() > 0.99
                    assert torch.allclose(mass, torch.ones(50), atol=1e-3), (name, mass)
                else:  # a mass over exactly the values the model sees
                    grid = torch.arange(cfg.pixel_levels) / (cfg.pixel_levels - 1)
                    assert torch.isin(x, grid).all(), (name, binarize, dequantize)
                    assert torch.allclose(mass, torch.ones(50), atol=1e-5), (name, mass)
