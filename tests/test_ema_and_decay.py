"""Regularisers of the optimisation: weight averaging (--ema: its arithmetic, what a run validates and keeps, exact
resume, bad input) and weight decay (--weight-decay: decoupled for Adam, exact resume)."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import vaekit
from vaekit.averaging import PREFIX, WeightAverage, averaged
from vaekit.checkpoint import BEST_FILE, LAST_FILE, load
from vaekit.errors import CheckpointError, VaekitError
from vaekit.evaluate import elbo_sums
from vaekit.runs import LOCK_FILE

from .test_train_checkpoint import cfg, quiet  # the same tiny digits config and silent log


def test_the_average_follows_its_formula_and_the_swap_restores_the_raw_weights_exactly():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    avg = WeightAverage(net, 0.9)
    start = [p.detach().clone() for p in net.parameters()]
    expected = [s.clone() for s in start]
    for t in range(1, 30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.9, (1 + t) / (10 + t))  # the shorter memory at the start
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, net.parameters())]
        avg.update()
    assert avg.updates == 29
    for e, s in zip(expected, avg.shadow):
        assert torch.allclose(e, s, atol=1e-6)
    raw = [p.detach().clone() for p in net.parameters()]
    with averaged(avg):
        for p, s in zip(net.parameters(), avg.shadow):
            assert torch.equal(p, s)
    for p, r in zip(net.parameters(), raw):
        assert torch.equal(p, r)  # bit for bit, not round-tripped through arithmetic
    with averaged(None):  # no averaging: nothing changes
        for p, r in zip(net.parameters(), raw):
            assert torch.equal(p, r)


def test_a_run_with_ema_validates_and_keeps_the_average_and_trains_the_raw_weights(tmp_path, monkeypatch):
    from vaekit import trainer

    seen = []

    def spy(model, *a, **k):  # what validation sees: the weights in the model at that moment
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return elbo_sums(model, *a, **k)

    monkeypatch.setattr(trainer, "elbo_sums", spy)
    vaekit.train(cfg(epochs=1, ema=0.99), tmp_path / "run", progress=False, log=quiet)
    last = load_file(tmp_path / "run" / LAST_FILE)
    best = load_file(tmp_path / "run" / BEST_FILE)
    ema = {k[len(PREFIX):]: v for k, v in last.items() if k.startswith(PREFIX)}
    raw = {k[len("model."):]: v for k, v in last.items() if k.startswith("model.")}
    assert ema.keys() == raw.keys() == seen[0].keys() and ema
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)  # two sets of weights, not one
    for k in ema:  # validated and kept as the best: the average; resumed from: the raw weights as well
        assert torch.equal(seen[0][k], ema[k]), k
        assert torch.equal(best[k], ema[k]), k
    model = load(tmp_path / "run")  # what a user gets: the average
    for k, v in model.state_dict().items():
        assert torch.equal(v, ema[k]), k


def test_a_run_with_ema_resumes_bit_identically(tmp_path):
    vaekit.train(cfg(epochs=3, ema=0.95), tmp_path / "full", progress=False, log=quiet)
    vaekit.train(cfg(epochs=1, ema=0.95), tmp_path / "split", progress=False, log=quiet)
    vaekit.train(cfg(epochs=3, ema=0.95), tmp_path / "split", resume=True, progress=False, log=quiet)
    a, b = load_file(tmp_path / "full" / LAST_FILE), load_file(tmp_path / "split" / LAST_FILE)
    assert a.keys() == b.keys() and any(k.startswith(PREFIX) for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for name in (BEST_FILE,):
        x, y = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        for k in x:
            assert torch.equal(x[k], y[k]), k


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "high"])
def test_a_decay_outside_zero_to_one_is_refused(bad):
    with pytest.raises(VaekitError, match="ema"):
        cfg(ema=bad)


def test_ema_may_not_change_on_resume_and_a_checkpoint_without_the_average_is_refused(tmp_path):
    vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)
    def files():  # what the run wrote (the lock file says who holds the directory: each attempt rewrites it)
        return {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file() and p.name != LOCK_FILE}

    before = files()
    with pytest.raises(VaekitError, match="ema"):
        vaekit.train(cfg(epochs=2, ema=0.99), tmp_path / "run", resume=True, log=quiet)
    assert files() == before
    avg = WeightAverage(load(tmp_path / "run"), 0.99)
    with pytest.raises(CheckpointError, match="saved without --ema"):
        avg.load(load_file(tmp_path / "run" / LAST_FILE), 0, tmp_path / "run" / LAST_FILE)


def test_the_cli_takes_ema_and_refuses_a_bad_one_in_one_line(tmp_path):
    run = [sys.executable, "-m", "vaekit", "train", "--data", "digits", "--epochs", "1", "--hidden", "16",
           "--out", str(tmp_path / "run")]
    bad = subprocess.run(run + ["--ema", "1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "ema" in bad.stderr and "[0, 1)" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "run").exists()
    ok = subprocess.run(run + ["--ema", "0.99", "--no-plots"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "weight averaging: decay 0.99" in ok.stdout + ok.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["ema"] == 0.99


def test_weight_decay_is_decoupled_for_adam_and_shrinks_each_weight_by_lr_times_decay():
    from vaekit.optim import make_optimizer

    for name in ("adam", "adam-normgrad", "sgd"):
        c = cfg(optimizer=name, weight_decay=0.1, lr=0.01)
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3)
        opt = make_optimizer(c, net)
        before = net.weight.detach().clone()
        net.weight.grad = torch.zeros_like(net.weight)  # no gradient: only the decay moves the weight
        net.bias.grad = torch.zeros_like(net.bias)
        opt.step()
        assert torch.allclose(net.weight, before * (1 - 0.01 * 0.1), atol=1e-7), name
    assert make_optimizer(cfg(), torch.nn.Linear(2, 2)).param_groups[0]["weight_decay"] == 0


def test_a_run_with_weight_decay_resumes_bit_identically_and_a_negative_decay_is_refused(tmp_path):
    vaekit.train(cfg(epochs=2, weight_decay=0.05), tmp_path / "full", progress=False, log=quiet)
    vaekit.train(cfg(epochs=1, weight_decay=0.05), tmp_path / "split", progress=False, log=quiet)
    vaekit.train(cfg(epochs=2, weight_decay=0.05), tmp_path / "split", resume=True, progress=False, log=quiet)
    a, b = load_file(tmp_path / "full" / LAST_FILE), load_file(tmp_path / "split" / LAST_FILE)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(VaekitError, match="weight_decay"):
        cfg(weight_decay=-1)
