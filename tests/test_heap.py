"""Keeping freed memory (vaekit.heap): what it sets, where it leaves things alone, and that a training epoch
then stops faulting in fresh pages (counted by the kernel, not timed)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import vaekit.heap as heap


class FakeLibc:
    def __init__(self, answer=1):
        self.calls, self.answer = [], answer

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return self.answer


@pytest.fixture
def fresh(monkeypatch):
    """A process where keep_freed_memory has not run yet, malloc untuned by the environment."""
    monkeypatch.setattr(heap, "_done", None)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    for v in heap._USER_SETTINGS:
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


def test_it_raises_both_thresholds_once(fresh):
    libc = FakeLibc()
    fresh.setattr(heap, "_glibc", lambda: libc)
    assert heap.keep_freed_memory() is True
    assert libc.calls == [(-3, 32 << 20), (-1, 64 << 20)]  # M_MMAP_THRESHOLD, then M_TRIM_THRESHOLD
    assert heap.keep_freed_memory() is True and len(libc.calls) == 2  # once per process


def test_a_refused_setting_is_reported(fresh):
    fresh.setattr(heap, "_glibc", lambda: FakeLibc(answer=0))
    assert heap.keep_freed_memory() is False


@pytest.mark.parametrize("name,value", [("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000"),
                                        ("MALLOC_MMAP_THRESHOLD_", "131072"), ("MALLOC_TRIM_THRESHOLD_", "0")])
def test_the_users_own_malloc_settings_win(fresh, name, value):
    libc = FakeLibc()
    fresh.setattr(heap, "_glibc", lambda: libc)
    fresh.setenv(name, value)
    assert heap.keep_freed_memory() is False and libc.calls == []


def test_other_tunables_do_not_count_as_tuning_malloc(fresh):
    fresh.setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F")
    assert not heap.user_tuned()


def test_nothing_to_do_off_linux(fresh):
    fresh.setattr(heap.sys, "platform", "darwin")
    assert heap._glibc() is None and heap.keep_freed_memory() is False


def test_train_keeps_freed_memory(tmp_path, monkeypatch):
    import importlib

    from vaekit.config import RunConfig

    module = importlib.import_module("vaekit.train")  # the module (the package's ``train`` is the function)
    called = []
    monkeypatch.setattr(module, "keep_freed_memory", lambda: called.append(1))
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [8]},
                               "train": {"epochs": 1, "batch_size": 64}})
    module.train(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    assert called == [1]


EPOCH = textwrap.dedent("""
    import json, resource, sys, torch
    from vaekit.config import RunConfig
    from vaekit.heap import keep_freed_memory
    from vaekit.models import build_model
    from vaekit.objectives import ELBO
    from vaekit.train import make_optimizer, train_epoch, training_step
    kept = keep_freed_memory() if sys.argv[1] == "kept" else None
    torch.set_num_threads(1)
    cfg = RunConfig.from_dict({"data": {"name": "binarized-mnist"}, "model": {"latent_dim": 20, "hidden": [400]},
                               "train": {"batch_size": 128}})
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 28, 28))
    opt, obj = make_optimizer(cfg, model), ELBO()
    step = training_step(model, obj, "fp32", False)
    x = torch.empty((128 * 60, 784), dtype=torch.uint8).bernoulli_(0.13)  # no float copy made and freed first
    train_epoch(step, obj, opt, x, 128)  # first touch
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    train_epoch(step, obj, opt, x, 128)
    print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}))
""")


def _epoch_faults(kind: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k != "GLIBC_TUNABLES" and k not in heap._USER_SETTINGS}
    out = subprocess.run([sys.executable, "-c", EPOCH, kind], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(heap._glibc() is None, reason="glibc's malloc only (this C library is another)")
def test_an_epoch_no_longer_faults_in_fresh_pages():
    """An epoch of 60 steps of the 784-400-20 MLP: with glibc as it comes the heap's top is given back and
    faulted in again step after step; with the thresholds raised the second epoch reuses what the first freed."""
    kept = _epoch_faults("kept")
    assert kept["kept"] is True
    assert kept["faults"] < 60 * 10, kept  # measured: 2-4 in all, now and then some hundreds (Python's own arenas)
    as_it_comes = _epoch_faults("glibc")["faults"]  # measured here: about 80 a step
    assert as_it_comes > max(60 * 20, 4 * kept["faults"]), (as_it_comes, kept)
