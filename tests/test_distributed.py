"""Several processes under torchrun (gloo on the CPU), devices, and the helpers of vaekit.distributed.

The torchrun tests start real processes (`python -m torch.distributed.run --standalone
--nproc_per_node=2`), a few seconds each.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vaekit.distributed import Context, local_rows, resolve_device, setup, shard
from vaekit.errors import VaekitError

HELPERS = Path(__file__).resolve().parent / "helpers"
TINY = ["--data", "digits", "--hidden", "32", "--latent-dim", "2", "--batch-size", "64", "--no-progress"]


def torchrun(*args, nproc=2, script=None, cwd=None):
    """``torchrun --standalone --nproc_per_node=N`` of ``python -m vaekit ARGS`` (or of ``script``)."""
    target = [str(script)] if script else ["-m", "vaekit"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                        *target, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def single(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "vaekit", *args], capture_output=True, text=True, cwd=cwd, env=env,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


# --- helpers, in this process ------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 5, 7, 64, 65])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shard_covers_every_row_once_like_tensor_split(n, world):
    parts = [shard(n, world, r) for r in range(world)]
    rows = [i for p in parts for i in range(n)[p]]
    assert rows == list(range(n))
    assert [p.stop - p.start for p in parts] == [len(t) for t in torch.arange(n).tensor_split(world)]


@pytest.mark.parametrize("n,batch", [(47, 10), (40, 10), (5, 8), (1437, 64)])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_local_rows_are_each_ranks_share_of_every_global_batch(n, batch, world):
    order = torch.arange(n)
    rows = [local_rows(n, batch, world, r) for r in range(world)]
    assert sorted(torch.cat(rows).tolist()) == list(range(n))  # every image once per epoch
    for r in range(world):
        expected = [i + k for i in range(0, n, batch) for k in range(min(batch, n - i))[shard(min(batch, n - i), world, r)]]
        assert order[rows[r]].tolist() == expected


def test_one_process_context_is_a_no_op():
    ctx = setup("cpu")
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main) == (0, 1, False, True)
    t = torch.tensor([1.0, 2.0])
    assert ctx.all_reduce_sum(t) is t and ctx.broadcast("x") == "x" and ctx.all_gather(3) == [3]
    assert ctx.any(torch.tensor(True)) and not ctx.any(False)
    assert ctx.on_main(lambda: 5) == 5 and ctx.main_first(lambda: 6, others=lambda: 7) == 6
    with pytest.raises(VaekitError, match="boom"):
        ctx.on_main(lambda: (_ for _ in ()).throw(VaekitError("boom")))


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")
        with pytest.raises(VaekitError, match="sees no CUDA GPU.*--device cpu"):
            resolve_device("cuda")
    with pytest.raises(VaekitError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_a_half_set_launch_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(VaekitError, match="MASTER_ADDR is not set; launch with torchrun"):
        setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(VaekitError, match="WORLD_SIZE='two' is not a whole number"):
        setup("cpu")


def test_cli_device_errors_are_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, out, err = single("train", *TINY, "--device", "cuda", "--out", "never", cwd=tmp_path)
    assert code == 1 and err.count("\n") == 1 and "sees no CUDA GPU" in err, err
    assert not (tmp_path / "never").exists()


def test_context_is_frozen_and_defaults_to_one_cpu_process():
    ctx = Context()
    assert ctx.device == torch.device("cpu") and not ctx.distributed
    with pytest.raises(AttributeError):
        ctx.rank = 1


# --- two processes -----------------------------------------------------------------------

def test_two_processes_take_the_same_steps_as_one(tmp_path):
    """Noise off (z = mu): the sharded, DDP-averaged steps equal one process's steps on the
    whole batch (up to summation order), and both ranks hold identical weights."""
    code, _, err = single_script(HELPERS / "ddp_steps.py", tmp_path / "one")
    assert code == 0, err
    code, _, err = torchrun(str(tmp_path / "two"), script=HELPERS / "ddp_steps.py")
    assert code == 0, err
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    r0 = load_file(str(tmp_path / "two" / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "two" / "rank1.safetensors"))
    assert r0.keys() == one.keys()
    for k in one:
        assert torch.equal(r0[k], r1[k]), k  # identical weights on every rank
        torch.testing.assert_close(r0[k], one[k], rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)  # the helper's starting weights: the steps did move them
    from vaekit.config import ModelConfig
    from vaekit.models import build_model

    start = build_model(ModelConfig(latent_dim=3, hidden=(16,)), (1, 8, 8)).state_dict()
    assert max((one[k] - start[k]).abs().max().item() for k in one) > 1e-3


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    code, _, err = torchrun(str(tmp_path), "nan", script=HELPERS / "ddp_steps.py")
    assert code == 0, err  # no hang (the run would time out), no crash
    r0, r1 = (tmp_path / "diverged0.txt").read_text(), (tmp_path / "diverged1.txt").read_text()
    assert "step 3" in r0 and "step 3" in r1, (r0, r1)
    assert "the loss became nan" in r1 and "not finite on another process" in r0, (r0, r1)
    assert not list(tmp_path.glob("rank*.safetensors"))


def single_script(script, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 3-epoch run by one process and by two (global batch 64 in both)."""
    root = tmp_path_factory.mktemp("ddp")
    code, out1, err = single("train", *TINY, "--epochs", "3", "--out", str(root / "one"))
    assert code == 0, err
    code, out2, err = torchrun("train", *TINY, "--epochs", "3", "--out", str(root / "two"))
    assert code == 0, err
    return root, out1, out2


def test_only_rank_0_writes_and_prints(runs):
    root, out1, out2 = runs
    two = root / "two"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in (root / "one").iterdir())
    assert not list(two.glob(".*.tmp")) and not list((two / "frames").glob(".*.tmp"))
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 3
    assert out2.count("done in") == 1 and out2.count("epoch   3/3") == 1, out2
    assert "2 processes on cpu: 64 images per step in all, 32-32 per process" in out2


def test_two_processes_agree_with_one(runs):
    """Same global batch, same data order and binarization; only the sampling noise differs
    (each rank draws its own), so the curves agree within noise: 1 nat here."""
    root, _, _ = runs
    rows = {k: [json.loads(line) for line in (root / k / "metrics.jsonl").read_text().splitlines()]
            for k in ("one", "two")}
    for a, b in zip(rows["one"], rows["two"]):
        assert a["step"] == b["step"]  # 1437 images in steps of 64 globally: 23 per epoch in both
        assert abs(a["valid_elbo"] - b["valid_elbo"]) < 1.0, (a["valid_elbo"], b["valid_elbo"])
        assert abs(a["train_elbo"] - b["train_elbo"]) < 1.0, (a["train_elbo"], b["train_elbo"])


def test_evaluate_splits_images_across_ranks(runs):
    root, _, _ = runs
    run = str(root / "two")
    code, out, err = single("evaluate", run, "--iw-samples", "100", "--json")
    assert code == 0, err
    code, out2, err = torchrun("evaluate", run, "--iw-samples", "100", "--json")
    assert code == 0, err
    a, b = json.loads(out), json.loads(out2)  # rank 0 alone prints: exactly one JSON line
    assert (a["processes"], b["processes"], a["n_images"], b["n_images"]) == (1, 2, 180, 180)
    assert b["kl"] == pytest.approx(a["kl"], abs=1e-5)  # analytic: no noise
    assert b["nll"] == pytest.approx(a["nll"], abs=0.05)  # the halves are sampled with other seeds


def test_resume_under_torchrun_is_exact(runs, tmp_path):
    """1 epoch, then resume to 3, by two processes: the same weights as 3 straight epochs."""
    root, _, _ = runs
    code, _, err = torchrun("train", *TINY, "--epochs", "1", "--no-plots", "--out", str(tmp_path / "r"))
    assert code == 0, err
    code, out, err = torchrun("train", "--resume", "--epochs", "3", "--no-progress", "--no-plots",
                              "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "resuming" in out
    straight = load_file(str(root / "two" / "last.safetensors"))
    resumed = load_file(str(tmp_path / "r" / "last.safetensors"))
    for k in straight:
        if k.startswith(("model.", "optim.")):
            assert torch.equal(straight[k], resumed[k]), k


def test_bad_input_under_torchrun_fails_once_on_every_rank(runs):
    root, _, _ = runs
    code, out, err = torchrun("train", *TINY, "--out", str(root / "two"))  # exists: refused, nothing touched
    assert code != 0
    assert err.count("already exists; pass --resume") == 1, err  # rank 0 says it; no rank hangs
    assert len((root / "two" / "metrics.jsonl").read_text().splitlines()) == 3
    code, out, err = torchrun("train", *TINY, "--batch-size", "1", "--out", str(root / "tiny-batch"))
    assert code != 0 and "batch size 1 is smaller than the 2 processes" in err
    assert not (root / "tiny-batch").exists()


def test_divergence_under_torchrun_stops_every_rank_cleanly(tmp_path):
    code, out, err = torchrun("train", *TINY, "--epochs", "2", "--lr", "1e12", "--no-plots", "--out", str(tmp_path / "r"))
    assert code != 0
    assert err.count("vaekit: error: training diverged: the loss became") == 1, err
    assert "terminate called" not in err and "exitcode  : -6" not in err, err  # no rank aborted at exit


def test_one_process_resumes_a_two_process_run_and_says_so(runs, tmp_path):
    import shutil

    run = tmp_path / "moved"
    shutil.copytree(runs[0] / "two", run)
    code, out, err = single("train", "--resume", "--epochs", "4", "--no-progress", "--no-plots", "--out", str(run))
    assert code == 0, err
    assert "saved by 2 process(es) and resumes with 1" in out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4


def test_your_own_images_train_under_torchrun(tmp_path):
    """A folder of colour PNGs (uint8 in memory, converted per batch on each rank) with two processes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("red", "blue"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(20):
            a = np.zeros((8, 8, 3), np.uint8)
            a[..., 0 if c == "red" else 2] = rng.integers(60, 255)
            Image.fromarray(a).save(tmp_path / "imgs" / c / f"{i}.png")
    args = ("train", "--data", "folder", "--data-dir", str(tmp_path / "imgs"), "--epochs", "2", "--batch-size", "8",
            "--conv-channels", "4", "--hidden", "0", "--no-plots", "--no-progress")
    code, out, err = torchrun(*args, "--out", str(tmp_path / "two"))
    assert code == 0, err
    assert "2 processes on cpu" in out and "3x8x8" in out
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["valid_elbo"]) for r in rows)
