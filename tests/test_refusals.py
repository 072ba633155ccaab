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


# --- every count, size or K is checked against its cost before the work starts ------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    return run


def test_counts_sizes_and_k_are_refused_before_the_work_with_the_limit_and_why(tmp_path, tiny_run, capsys,
                                                                               monkeypatch):
    from vaekit import limits

    cases = [
        (["sample", str(tiny_run), "-n", "100000000"], "at most 1,104,672 fit in one"),  # 8x8 tiles: 81 pixels each
        (["evaluate", str(tiny_run), "--iw-samples", "10000000"], "at most 1,000,000 importance samples"),
        (["train", "--data", "shapes", "--image-size", "100000", "--out", str(tmp_path / "r")], "try --image-size"),
        (["train", *TINY, "--hidden", "100000", "100000", "--out", str(tmp_path / "r")], "parameters with their"),
        (["train", *TINY, "--n-samples", "100000", "--batch-size", "1000", "--out", str(tmp_path / "r")],
         "decoder outputs at once"),
    ]
    for args, match in cases:
        assert main(args) == 1, args
        err = one_line(capsys)
        assert match in err, err
    assert not (tmp_path / "r").exists()
    np.save(tmp_path / "x.npy", np.zeros((10, 8, 8), np.uint8))
    assert main(["train", "--data", "array", "--data-file", str(tmp_path / "x.npy"), "--image-size", "200000",
                 "--out", str(tmp_path / "r")]) == 1
    assert "try --image-size" in one_line(capsys) and not (tmp_path / "r").exists()
    # the limits a tiny run cannot reach, made small
    monkeypatch.setattr(limits, "MAX_PICTURE_PIXELS", 81 * 20)
    assert main(["reconstruct", str(tiny_run), "-n", "16"]) == 1
    assert "at most 10 fit in one" in one_line(capsys)
    monkeypatch.setattr(limits, "MAX_DECODER_OUTPUTS", 64 * 50)
    assert main(["evaluate", str(tiny_run), "--batch-size", "100", "--iw-samples", "2"]) == 1
    assert "use --batch-size 50 or fewer" in one_line(capsys)
    assert main(["evaluate", str(tiny_run), "--batch-size", "50", "--iw-samples", "2", "--json"]) == 0


def test_the_manifold_grid_shrinks_to_fit_a_picture():
    from vaekit.limits import MAX_PICTURE_PIXELS, grid_side

    assert grid_side((1, 28, 28), 20) == 20
    side = grid_side((3, 1024, 1024), 20)
    assert 2 <= side < 20 and side ** 2 * 1025 ** 2 <= MAX_PICTURE_PIXELS
    assert grid_side((3, 1024, 1024), 10, panels=10) < side


# --- weak messages: each one line that names the cause and the fix ------------------------------------------

@pytest.mark.parametrize("flag", ["--lr", "--beta", "--free-bits", "--max-minutes", "--grad-clip", "--sigma",
                                  "--sigma-min", "--logistic-balance", "--dropout", "--valid-fraction"])
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_non_finite_numbers_are_refused_in_the_options_own_words_and_leave_no_folder(tmp_path, capsys, flag, value):
    assert main(["train", *TINY, f"{flag}={value}", "--out", str(tmp_path / "r")]) == 1
    assert f"{flag} must be a finite number, got {value}" in one_line(capsys)
    assert not (tmp_path / "r").exists()


def test_bad_array_files_say_what_they_hold(tmp_path):
    from vaekit.data.sources import read_array
    from vaekit.errors import DataError

    x = np.full((4, 8, 8), 0.5, np.float32)
    x[0, 0, 0], x[1, 2, 3], x[2, 0, 0] = np.nan, np.nan, np.inf
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match=r"holds 2 NaN pixels and 1 infinite pixel; every pixel must be a number"):
        read_array(tmp_path / "nan.npy")
    (tmp_path / "text.npy").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(DataError, match=r"is not a numpy array file \(.npy or .npz\)") as e:
        read_array(tmp_path / "text.npy")
    assert "pickle" not in str(e.value)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects .* vaekit never loads"):
        read_array(tmp_path / "objects.npy")


def test_an_idx_header_with_a_wrong_dimension_count_is_called_invalid(tmp_path):
    import struct

    from vaekit.data import read_idx
    from vaekit.errors import DataError

    pixels = np.random.default_rng(0).integers(1, 255, (5, 4, 3), dtype=np.uint8)
    for ndim in (2, 4):
        raw = bytearray(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 4, 3) + pixels.tobytes())
        raw[3] = ndim
        (tmp_path / "x.idx").write_bytes(bytes(raw))
        with pytest.raises(DataError, match=r"IDX header is invalid: its dimension count says "
                                            rf"{ndim} .* the data fit 3 dimensions \(5, 4, 3\)"):
            read_idx(tmp_path / "x.idx")


def test_a_run_without_a_finished_epoch_says_how_to_continue_it(tmp_path, tiny_run, capsys):
    run = tmp_path / "unfinished"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run / "config.json")
    (run / LOCK_FILE).write_text("")
    for args in (["evaluate", str(run)], ["sample", str(run)], ["plot", str(run)], ["reconstruct", str(run)]):
        assert main(args) == 1, args
        err = one_line(capsys)
        assert "has no finished epoch yet" in err and f"vaekit train --out {run} --resume" in err, err
    assert main(["train", "--out", str(run), "--resume", "--no-progress", "--no-plots"]) == 0  # as it says
    assert main(["sample", str(run), "-n", "4"]) == 0


def test_a_missing_run_directory_is_named_as_such(tmp_path, capsys):
    for cmd in ("plot", "evaluate", "sample", "reconstruct"):
        assert main([cmd, str(tmp_path / "no-such-run"), *(["--out", str(tmp_path / "figs")] if cmd == "plot"
                                                           else [])]) == 1
        assert f"run directory '{tmp_path / 'no-such-run'}' not found" in one_line(capsys)
    assert not (tmp_path / "figs").exists()  # nothing made for a run that is not there


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc and /sys")
def test_an_unwritable_or_folder_out_names_the_path_given(tmp_path, tiny_run, capsys):
    folder = tmp_path / "pictures.png"
    folder.mkdir()
    assert main(["sample", str(tiny_run), "--out", str(folder)]) == 1
    assert "is a folder; name a .png file" in one_line(capsys)
    for path in ("/proc/samples.png", "/sys/samples.png"):
        assert main(["sample", str(tiny_run), "--out", path]) == 1
        err = one_line(capsys)
        assert f"cannot write '{path}'" in err and ".tmp" not in err and "Error" not in err, err
    for path in ("/proc/run", "/sys/run"):
        assert main(["train", *TINY, "--out", path]) == 1
        err = one_line(capsys)
        assert f"cannot create the run directory '{path}'" in err and "--out" in err and "Error" not in err, err
    assert main(["plot", str(tiny_run), "--kind", "samples", "--out", "/proc/figures"]) == 1
    err = one_line(capsys)
    assert "cannot create the folder '/proc/figures'" in err and "Error" not in err, err


def test_a_read_only_folder_is_named_with_the_file_asked_for(tmp_path, tiny_run, capsys, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir", "?"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    out = tmp_path / "s.png"
    assert main(["sample", str(tiny_run), "--out", str(out)]) == 1
    err = one_line(capsys)
    assert f"cannot write '{out}': Read-only file system; it is on a read-only file system" in err, err


def test_empty_splits_name_the_option_that_emptied_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (40, 8, 8), dtype=np.uint8))
    array = ["--data", "array", "--data-file", str(tmp_path / "x.npy"), "--conv-channels", "4", "--hidden", "0",
             "--latent-dim", "2", "--epochs", "1", "--no-progress", "--no-plots"]
    assert main(["train", *array, "--valid-fraction", "0", "--out", str(tmp_path / "r")]) == 1
    assert "--valid-fraction 0 leaves" in (err := one_line(capsys)) and "--valid-fraction 0.1" in err
    assert not (tmp_path / "r").exists()
    assert main(["train", *array, "--test-fraction", "0", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r"), "--split", "test"]) == 1
    err = one_line(capsys)
    assert "made with --test-fraction 0" in err and "--split valid" in err, err


def test_the_learned_gaussians_floor_has_one_default():
    from vaekit.config import ModelConfig
    from vaekit.models import LearnedGaussianLikelihood, make_likelihood

    assert make_likelihood("gaussian-learned").sigma_min == \
        ModelConfig(likelihood="gaussian-learned").likelihood.sigma_min == LearnedGaussianLikelihood().sigma_min


def test_the_training_split_is_evaluated_on_the_pixels_its_likelihood_is_over(tmp_path, tiny_run, capsys):
    """evaluate/reconstruct --split train of a dynamically binarized run score one fixed binary sample (before:
    the stored grey levels, under a Bernoulli: a number that bounded nothing)."""
    import json

    from vaekit.checkpoint import load_run_config
    from vaekit.runs import load_split

    cfg = load_run_config(tiny_run)
    assert cfg.data.binarize == "dynamic"
    fixed, stored = load_split(cfg, "train"), load_split(cfg, "train", training=True)
    assert torch.isin(fixed.x, torch.tensor([0.0, 1.0])).all() and not torch.isin(stored.x, torch.tensor([0.0, 1.0])).all()
    assert torch.equal(fixed.x, load_split(cfg, "train").x)  # one fixed sample, the same each time
    capsys.readouterr()
    assert main(["evaluate", str(tiny_run), "--split", "train", "--iw-samples", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_images"] == len(fixed) and res["nll"] > 0
