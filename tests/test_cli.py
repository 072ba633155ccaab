"""Every subcommand, run as a user would, in a temporary directory."""

import gzip
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from vaekit.cli import main

TINY = ["--data", "digits", "--hidden", "16", "--epochs", "2", "--no-progress"]


def run_cli(*args, cwd=None):
    """The real console entry point in a fresh process: exit code, stdout, stderr."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, "-m", "vaekit", *args], capture_output=True, text=True, cwd=cwd,
                       env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def test_train_writes_the_run(run_dir):
    for f in ("config.json", "model.safetensors", "last.safetensors", "metrics.jsonl", "samples.png",
              "reconstructions.png"):
        assert (run_dir / f).is_file(), f


def test_evaluate_json(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--split", "valid", "--iw-samples", "50", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("elbo", "kl", "reconstruction", "nll", "bits_per_dim", "iw_samples", "n_images", "split", "data"):
        assert key in res
    assert res["n_images"] == 180 and res["iw_samples"] == 50 and res["split"] == "valid" and res["data"] == "digits"
    assert res["nll"] <= -res["elbo"] + 0.5  # the IW bound is tighter than the ELBO (up to MC noise)
    assert res["bits_per_dim"] > 0


def test_evaluate_table(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--split", "test", "--iw-samples", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "NLL" in out and "bits/dim" in out and "ELBO" in out


def test_sample_and_reconstruct(run_dir, tmp_path):
    assert main(["sample", str(run_dir), "-n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["reconstruct", str(run_dir), "--split", "test", "-n", "8", "--out", str(tmp_path / "r.png")]) == 0
    for f in ("s.png", "r.png"):
        img = Image.open(tmp_path / f)
        assert img.size[0] > 100 and img.size[1] > 50


def test_resume_extends_a_finished_run(run_dir, capsys):
    assert main(["train", "--out", str(run_dir), "--resume", "--epochs", "3", "--no-progress"]) == 0
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


def test_config_file_and_overrides(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[data]\nname = "digits"\n[model]\nhidden = [8]\nlatent_dim = 3\n[train]\nepochs = 1\n')
    assert main(["train", "--config", str(preset), "--latent-dim", "4", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["model"]["latent_dim"] == 4 and saved["model"]["arch"]["hidden"] == [8]


def test_help_lists_every_subcommand_and_option():
    code, out, _ = run_cli("--help")
    assert code == 0 and all(c in out for c in ("train", "evaluate", "sample", "reconstruct"))
    code, out, _ = run_cli("train", "--help")
    for opt in ("--config", "--data", "--data-dir", "--latent-dim", "--hidden", "--likelihood", "--epochs",
                "--batch-size", "--lr", "--optimizer", "--seed", "--out", "--resume"):
        assert opt in out, opt
    assert "default" in out


@pytest.mark.parametrize("args,needle", [
    (["train", "--data", "mnst"], "invalid choice: 'mnst'"),
    (["train", "--lr", "0"], "lr (learning rate) must be > 0"),
    (["train", "--batch-size", "-3"], "batch_size must be"),
    (["train", "--epochs", "0"], "epochs must be"),
    (["train", "--latent-dim", "0"], "latent_dim must be"),
    (["train", "--config", "missing.toml"], "config file 'missing.toml' not found"),
    (["train", "--data", "mnist", "--data-dir", "empty"], "needs train-images-idx3-ubyte.gz"),
    (["train", "--data", "binarized-mnist", "--data-dir", "broken"], "line 1 has 3 values"),
    (["train", "--data", "binarized-mnist", "--data-dir", "tampered"], "sha256 checksum mismatch"),
    (["train", "--data", "mnist-5k", "--binarize", "none"], "needs binary pixels"),
    (["train", "--resume"], "--resume needs --out"),
    (["evaluate", "no-such-run"], "run directory 'no-such-run' not found"),
    (["evaluate", "no-such-run", "--iw-samples", "0"], "--iw-samples must be >= 1"),
    (["sample", "no-such-run"], "not found"),
])
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(tmp_path, args, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "binarized_mnist_train.amat.gz").write_bytes(gzip.compress(b"0 1 0\n"))
    (tmp_path / "tampered").mkdir()
    (tmp_path / "tampered" / "binarized_mnist_train.amat").write_text("0 1 0\n")
    env_cache = tmp_path / "cache"
    os.environ["VAEKIT_DATA"] = str(env_cache)
    code, out, err = run_cli(*args, cwd=tmp_path)
    assert code != 0
    assert needle in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_existing_run_directory_is_refused(run_dir):
    code, _, err = run_cli("train", *TINY, "--out", str(run_dir))
    assert code == 1 and "already exists" in err and "--resume" in err


def test_corrupt_checkpoint_is_reported(tmp_path, run_dir):
    import shutil

    broken = tmp_path / "broken-run"
    shutil.copytree(run_dir, broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    code, _, err = run_cli("evaluate", str(broken), "--iw-samples", "2")
    assert code == 1 and "damaged" in err and "Traceback" not in err


def test_every_config_option_reaches_the_saved_config(tmp_path, capsys):
    """The train options are built from the config fields: each one lands in config.json."""
    from vaekit.cli import _parser
    from vaekit.cli import cli_options

    helptext = _parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert all(flag in helptext for _, _, flag, _ in cli_options())
    out = tmp_path / "r"
    assert main(["train", "--data", "digits", "--arch", "gated-mlp", "--latent-dim", "3", "--hidden", "8", "4",
                 "--logvar-min", "-6", "--epochs", "1", "--lr", "0.002", "--warmup-epochs", "2", "--no-plots", "--no-progress",
                 "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["arch"] == {"name": "gated-mlp", "hidden": [8, 4], "dropout": 0.0, "logvar_min": -6.0,
                                      "logvar_max": 20.0, "init": "default", "encoder_noise": 0.0}
    assert saved["model"]["latent_dim"] == 3 and saved["train"]["lr"] == 0.002
    assert saved["train"]["warmup_epochs"] == 2 and saved["data"]["image_shape"] == [1, 8, 8]
