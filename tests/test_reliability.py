"""Crashes lose nothing, divergence is caught, untrusted files stay harmless."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

import vaekit
from vaekit.checkpoint import LAST_FILE, load
from vaekit.config import RunConfig
from vaekit.errors import CheckpointError, DataError, DivergenceError, VaekitError
from vaekit.kl import gaussian_kl
from .conftest import interruptible

# mnist-5k (dynamically binarized, so the data RNG matters too); epochs of ~0.3 s leave room to kill mid-way
ARGS = ["--data", "mnist-5k", "--hidden", "512", "256", "--latent-dim", "8", "--batch-size", "32", "--no-progress",
        "--no-plots"]


def quiet(_):
    pass


def cli(*args):
    return [sys.executable, "-m", "vaekit", *args]


def epochs_done(run):
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_weights(tmp_path):
    epochs = "8"
    subprocess.run(cli("train", *ARGS, "--epochs", epochs, "--out", str(tmp_path / "straight")), check=True,
                   capture_output=True, timeout=300)
    run = tmp_path / "killed"
    for kill_after in (1, 3, 5):  # kill the real process at several points of training
        if epochs_done(run):
            cmd = cli("train", "--out", str(run), "--resume", "--no-progress", "--no-plots")
        else:
            cmd = cli("train", *ARGS, "--epochs", epochs, "--out", str(run))
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while epochs_done(run) < kill_after and p.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.03 * kill_after)  # somewhere inside the next epoch or a checkpoint write
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, "the process ended before it could be killed"
        print(f"killed after {epochs_done(run)} finished epochs")
        load(run)  # whatever moment it died, the run directory loads
    subprocess.run(cli("train", "--out", str(run), "--resume", "--no-progress"), check=True, capture_output=True,
                   timeout=300)
    assert not [f for f in os.listdir(run) if f.endswith(".tmp")]  # a resume sweeps temporary files of a kill
    a, b = load_file(tmp_path / "straight" / LAST_FILE), load_file(run / LAST_FILE)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, int(epochs) + 1))


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    run = tmp_path / "r"
    p = subprocess.Popen(cli("train", *ARGS, "--epochs", "50", "--out", str(run)), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.time() + 120
    while epochs_done(run) < 2 and time.time() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "continue with --resume" in out
    done = epochs_done(run)
    load(run)
    res = subprocess.run(cli("train", "--out", str(run), "--resume", "--epochs", str(done + 1), "--no-progress"),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert epochs_done(run) == done + 1


def small(epochs=2, **train):
    return RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [16]},
                                "train": {"epochs": epochs, "batch_size": 64, **train}})


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, poison_training):
    undo = poison_training(30)  # the 31st step: epoch 2 (23 steps an epoch)
    with pytest.raises(DivergenceError) as e:
        vaekit.train(small(epochs=3), tmp_path / "r", progress=False, log=quiet)
    msg = str(e.value)
    assert "epoch 2" in msg and "step 31" in msg and "--lr" in msg and "--grad-clip" in msg
    assert "last good checkpoint (epoch 1)" in msg
    undo()
    model = load(tmp_path / "r", checkpoint="last")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_reports_divergence_in_one_line(tmp_path):
    p = subprocess.run(cli("train", "--data", "digits", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "2",
                           "--out", str(tmp_path / "r"), "--no-progress", "--no-plots"),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert "training diverged" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_gradient_clipping_trains(tmp_path):
    res = vaekit.train(small(epochs=2, grad_clip=1.0), tmp_path / "r", progress=False, log=quiet)
    assert all(torch.isfinite(torch.tensor(h["train_elbo"])) for h in res.history)
    with pytest.raises(VaekitError, match="grad_clip"):
        small(grad_clip=-1.0)


def test_extreme_log_variances_and_logits_stay_finite():
    mu = torch.tensor([[0.0, 1e3]])
    for lv in (-1e4, -30.0, 30.0, 80.0):
        assert torch.isfinite(gaussian_kl(mu, torch.full((1, 2), lv))).all() or lv > 80
    torch.manual_seed(0)
    cfg = small()
    from vaekit.models import build_model

    model = build_model(cfg.model, (1, 8, 8))
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.mul_(1e4)  # an encoder gone wild: huge means and log-variances
    x = torch.bernoulli(torch.full((4, 64), 0.5))
    t = model(x)
    assert torch.isfinite(t.elbo).all()
    log_w, _ = model.log_weights(x, 10)
    assert torch.isfinite(vaekit.bounds.iwae_bound(log_w)).all()


def test_a_bit_flip_in_a_checkpoint_is_detected(tmp_path):
    vaekit.train(small(epochs=1), tmp_path / "r", progress=False, log=quiet)
    path = tmp_path / "r" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes; the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load(tmp_path / "r")


def test_untrusted_checkpoints_are_refused(tmp_path):
    vaekit.train(small(epochs=1), tmp_path / "r", progress=False, log=quiet)
    run = tmp_path / "r"
    # a pickle where weights belong
    import pickle

    (run / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="not a safetensors file|damaged"):
        load(run)
    # a config.json with unexpected types
    good = json.loads((run / "config.json").read_text())
    bad = dict(good, model=dict(good["model"], latent_dim="2"))
    (run / "config.json").write_text(json.dumps(bad))
    with pytest.raises(VaekitError, match="latent_dim"):
        load(run)
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(VaekitError):
        load(run)
    # trainer state with metadata of the wrong type
    (run / "config.json").write_text(json.dumps(good))
    tensors = load_file(run / LAST_FILE)
    save_file(tensors, run / LAST_FILE, metadata={"format": "vaekit", "format_version": "1",
                                                  "optimizer_param_groups": "\"not a list\""})
    with pytest.raises(CheckpointError, match="optimizer state"):
        vaekit.train(small(epochs=2), run, resume=True, log=quiet)


def test_grayscale_pixels_with_a_bernoulli_likelihood_say_what_to_do(tmp_path):
    # 'none' on grayscale data is refused when the config is built ...
    with pytest.raises(VaekitError, match="--binarize dynamic"):
        RunConfig.from_dict({"data": {"name": "digits", "binarize": "none"}})
    # ... and the trainer checks the pixels themselves
    from vaekit.runs import load_splits

    cfg = RunConfig.from_dict({"data": {"name": "digits", "binarize": "none"}, "model": {"likelihood": "gaussian"}})
    from vaekit.options import PartConfig

    object.__setattr__(cfg.model, "likelihood", PartConfig("bernoulli"))  # as if a custom config slipped through
    with pytest.raises(DataError, match="binarize"):
        load_splits(cfg)
