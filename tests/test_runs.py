"""A run directory has one owner (an OS lock), resumes with the command that started it, and keeps its
previous checkpoint when a save fails."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import vaekit
import vaekit.files
from vaekit import checkpoint as ckpt
from vaekit.cli import main
from vaekit.config import RunConfig
from vaekit.errors import CheckpointError
from vaekit.runs import LOCK_FILE

ARGS = ["--data", "mnist-5k", "--hidden", "256", "--latent-dim", "8", "--batch-size", "32", "--epochs", "20",
        "--no-progress", "--no-plots"]


def epochs_done(run):
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_a_second_process_is_refused_and_the_first_run_is_undisturbed(tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "vaekit", "train", *ARGS, "--out", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while epochs_done(run) < 1 and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, "the first run ended before the second could try"
    for extra in ([], ["--force"], ["--resume"]):  # a plain start, a forced restart, a resume: all refused at once
        t0 = time.time()
        assert main(["train", *ARGS, "--out", str(run), *extra]) == 1
        err = capsys.readouterr().err
        assert f"in use by process {first.pid}" in err and "vaekit train" in err and err.count("\n") == 1, err
        assert time.time() - t0 < 10
    assert main(["evaluate", str(run), "--iw-samples", "5", "--json"]) == 0  # reading it is fine meanwhile
    capsys.readouterr()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    alone = tmp_path / "alone"
    subprocess.run([sys.executable, "-m", "vaekit", "train", *ARGS, "--out", str(alone)], check=True,
                   capture_output=True, timeout=300)
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == \
        list(range(1, 21))
    a, b = load_file(run / ckpt.LAST_FILE), load_file(alone / ckpt.LAST_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the lock went with the process: the run can be resumed now
    assert main(["train", *ARGS[:-4], "--epochs", "21", "--no-progress", "--no-plots", "--out", str(run),
                 "--resume"]) == 0


def test_the_command_that_started_a_run_resumes_it(tmp_path, capsys):
    run = str(tmp_path / "r")
    start = ["train", "--data", "digits", "--hidden", "16", "--seed", "3", "--no-plots", "--no-progress", "--out", run]
    assert main([*start, "--epochs", "2"]) == 0
    assert main([*start, "--epochs", "4", "--resume"]) == 0  # the first command, with --resume and more epochs
    assert [json.loads(x)["epoch"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    capsys.readouterr()
    assert main([*start, "--epochs", "5", "--seed", "4", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "train.seed (saved 3, given 4)" in err and err.count("\n") == 1
    assert main([*start, "--epochs", "5", "--data-dir", str(tmp_path), "--device", "cpu", "--resume"]) == 0
    out = capsys.readouterr().out  # where and how fast: notes, not refusals
    assert "note: data.data_dir was None" in out and "note: --device cpu says only where" in out


def small(epochs):
    return RunConfig.from_dict({"data": {"name": "digits"}, "model": {"hidden": [16]},
                                "train": {"epochs": epochs, "batch_size": 64}})


@pytest.mark.parametrize("where,error", [("os.fsync", errno.ENOSPC), ("tempfile.mkstemp", errno.EROFS)])
def test_a_full_disk_or_read_only_folder_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where, error):
    module, name = where.split(".")
    target = getattr(vaekit.files, module)
    real = getattr(target, name)
    broken = {"on": False}

    def failing(*args, **kwargs):
        if broken["on"]:
            raise OSError(error, os.strerror(error), str(tmp_path / "r" / "x.tmp"))
        return real(*args, **kwargs)

    class BreakTheDiskAtEpoch2:
        def on_epoch(self, run, row):
            broken["on"] = row["epoch"] == 2

    monkeypatch.setattr(target, name, failing)
    with pytest.raises(CheckpointError) as e:
        vaekit.train(small(3), tmp_path / "r", progress=False, callbacks=[BreakTheDiskAtEpoch2()], log=lambda m: None)
    msg = str(e.value)
    assert "could not save epoch 2" in msg and os.strerror(error) in msg and "epoch 1 is intact" in msg
    assert "\n" not in msg and "--resume" in msg
    monkeypatch.setattr(target, name, real)
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]
    assert ckpt.load(tmp_path / "r", checkpoint="last") is not None
    # once the disk is back, the run resumes to exactly the weights of an uninterrupted one
    vaekit.train(small(3), tmp_path / "r", resume=True, progress=False, log=lambda m: None)
    vaekit.train(small(3), tmp_path / "u", progress=False, log=lambda m: None)
    a, b = load_file(tmp_path / "r" / ckpt.LAST_FILE), load_file(tmp_path / "u" / ckpt.LAST_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_refused_run_leaves_no_folder_and_no_lock(tmp_path):
    cfg = small(1).override(data={"name": "binarized-mnist", "data_dir": str(tmp_path / "missing")})
    with pytest.raises(vaekit.VaekitError):
        vaekit.train(cfg, tmp_path / "new", progress=False, log=lambda m: None)
    assert not (tmp_path / "new").exists()
    vaekit.train(small(1), tmp_path / "r", progress=False, log=lambda m: None)
    assert (tmp_path / "r" / LOCK_FILE).is_file()  # the lock file stays; the lock itself went with the run
    vaekit.train(small(2), tmp_path / "r", resume=True, progress=False, log=lambda m: None)
