"""Training, saving, loading and resuming runs (small models on scikit-learn's digits)."""

import json

import pytest
import torch
from safetensors.torch import load_file

import vaekit
from vaekit import checkpoint as ckpt
from vaekit.models import build_model
from vaekit.checkpoint import LAST_FILE, atomic_write_text, load
from vaekit.config import RunConfig
from vaekit.errors import CheckpointError, VaekitError
from vaekit.plots.callbacks import Pictures
from vaekit.runs import LOCK_FILE


def cfg(epochs=2, **train):
    return RunConfig.from_dict({
        "data": {"name": "digits"},
        "model": {"latent_dim": 2, "hidden": [32]},
        "train": {"epochs": epochs, "batch_size": 64, **train},
    })


def quiet(_msg):
    pass


def test_train_writes_a_complete_run_directory(tmp_path):
    res = vaekit.train(cfg(), tmp_path / "run", progress=False, callbacks=[Pictures()], log=quiet)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "model.safetensors", "last.safetensors", "metrics.jsonl",
            "samples.png", "reconstructions.png"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_elbo", "train_kl", "train_reconstruction", "valid_elbo", "valid_kl", "valid_reconstruction"):
        assert all(isinstance(r[key], float) for r in rows)
    assert rows[-1]["valid_elbo"] > rows[0]["valid_elbo"] - 5  # learning, not diverging
    assert res.best_valid_elbo == max(r["valid_elbo"] for r in rows)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["binarize"] == "dynamic" and saved["model"]["arch"]["hidden"] == [32]


def test_load_round_trip_gives_the_same_model(tmp_path):
    res = vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)
    model = load(tmp_path / "run")
    x = torch.bernoulli(torch.full((5, 64), 0.3))
    for a, b in zip(res.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(res.model.reconstruct(x), model.reconstruct(x))
    assert not model.training
    last = load(tmp_path / "run", checkpoint="last")
    assert last.latent_dim == 2
    # nothing is pickled: plain safetensors with vaekit metadata
    assert "model.encoder.net.0.weight" in load_file(tmp_path / "run" / LAST_FILE)


def test_resume_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path):
    vaekit.train(cfg(epochs=3), tmp_path / "full", progress=False, log=quiet)
    vaekit.train(cfg(epochs=1), tmp_path / "split", progress=False, log=quiet)
    vaekit.train(cfg(epochs=3), tmp_path / "split", resume=True, progress=False, log=quiet)
    a, b = load_file(tmp_path / "full" / LAST_FILE), load_file(tmp_path / "split" / LAST_FILE)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


def test_resume_refuses_changed_settings(tmp_path):
    vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)
    with pytest.raises(VaekitError, match="train.lr"):
        vaekit.train(cfg(epochs=2, lr=0.1), tmp_path / "run", resume=True, log=quiet)
    # when to stop is not part of the model: it may change
    res = vaekit.train(cfg(epochs=2, patience=5, max_minutes=10), tmp_path / "run", resume=True,
                       progress=False, log=quiet)
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_segments_cut_by_the_time_budget_resume_exactly(tmp_path):
    """A run stopped by --max-minutes and resumed ends with the weights of an uninterrupted run."""
    vaekit.train(cfg(epochs=3), tmp_path / "full", progress=False, log=quiet)
    vaekit.train(cfg(epochs=3, max_minutes=1e-6), tmp_path / "seg", progress=False, log=quiet)
    vaekit.train(cfg(epochs=3), tmp_path / "seg", resume=True, progress=False, log=quiet)
    a, b = load_file(tmp_path / "full" / LAST_FILE), load_file(tmp_path / "seg" / LAST_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_stopped_inside_its_first_epoch_resumes_from_the_start(tmp_path):
    vaekit.train(cfg(epochs=2), tmp_path / "full", progress=False, log=quiet)
    run = tmp_path / "run"
    vaekit.train(cfg(epochs=1), run, progress=False, log=quiet)
    (run / LAST_FILE).unlink()  # as a kill between the first metrics row and the first checkpoint leaves it
    said = []
    vaekit.train(cfg(epochs=2), run, resume=True, progress=False, log=said.append)
    assert any("starts again from epoch 1" in m for m in said)
    a, b = load_file(tmp_path / "full" / LAST_FILE), load_file(run / LAST_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(VaekitError, match="different settings"):  # its saved settings still hold
        (run / LAST_FILE).unlink()
        vaekit.train(cfg(epochs=2, seed=9), run, resume=True, progress=False, log=quiet)


def test_existing_run_directory_is_refused_unless_force(tmp_path):
    vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(VaekitError, match="already exists"):
        vaekit.train(cfg(epochs=1), tmp_path / "run", log=quiet)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    vaekit.train(cfg(epochs=1, seed=5), tmp_path / "run", force=True, progress=False, log=quiet)


def test_damaged_checkpoints_are_detected(tmp_path):
    vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)
    path = tmp_path / "run" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load(tmp_path / "run")
    path.write_bytes(b"\x80\x04not a checkpoint")  # e.g. a pickle
    with pytest.raises(CheckpointError):
        load(tmp_path / "run")


def test_architecture_mismatch_is_detected(tmp_path):
    vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)
    d = json.loads((tmp_path / "run" / "config.json").read_text())
    d["model"]["hidden"] = [16]
    atomic_write_text(tmp_path / "run" / "config.json", json.dumps(d))
    with pytest.raises(CheckpointError, match="shape"):
        load(tmp_path / "run")


def test_missing_run_directory(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "nope")


def test_sgd_and_gaussian_likelihood_train(tmp_path):
    c = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"hidden": [16], "likelihood": "gaussian",
                                                                     "sigma": 0.2},
                             "train": {"epochs": 1, "optimizer": "sgd", "lr": 1e-3, "n_samples": 2}})
    res = vaekit.train(c, tmp_path / "run", progress=False, log=quiet)
    assert c.data.binarize == "none"
    assert torch.isfinite(torch.tensor(res.history[-1]["valid_elbo"]))


def test_a_failing_forced_restart_loses_nothing(tmp_path):
    vaekit.train(cfg(epochs=1), tmp_path / "run", progress=False, log=quiet)

    def files():  # the run's files; the lock names its latest holder (to the second), which is not run data
        return {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.name != LOCK_FILE}

    before = files()
    (tmp_path / "empty").mkdir()
    bad = RunConfig.from_dict({"data": {"name": "mnist", "data_dir": str(tmp_path / "empty")}})
    with pytest.raises(VaekitError, match="train-images-idx3-ubyte.gz"):
        vaekit.train(bad, tmp_path / "run", force=True, log=quiet)
    assert files() == before and (tmp_path / "run" / LOCK_FILE).exists()
    assert not (tmp_path / "new").exists()
    with pytest.raises(VaekitError):
        vaekit.train(bad, tmp_path / "new", log=quiet)
    assert not (tmp_path / "new").exists()  # a run that cannot start leaves no empty folder


def test_the_best_valid_elbo_travels_with_the_trainer_state(tmp_path):
    """Resume decides whether to replace model.safetensors from the checkpoint, not from metrics.jsonl."""
    from safetensors import safe_open

    res = vaekit.train(cfg(epochs=2), tmp_path / "run", progress=False, log=quiet)
    with safe_open(str(tmp_path / "run" / LAST_FILE), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["best_valid_elbo"]) == pytest.approx(res.best_valid_elbo)
    assert json.loads(meta["epoch"]) == 2
    (tmp_path / "run" / "metrics.jsonl").unlink()
    res = vaekit.train(cfg(epochs=3), tmp_path / "run", resume=True, progress=False, log=quiet)
    assert [h["epoch"] for h in res.history] == [3]


def test_kl_warmup_and_cosine_schedule():
    from vaekit.objectives import ELBO, kl_warmup
    from vaekit.train import learning_rate

    def kl_weight(c, e):
        return kl_warmup(ELBO(), e, c.train.warmup_epochs).kl_weight

    c = RunConfig.from_dict({"train": {"epochs": 10, "warmup_epochs": 4, "lr_schedule": "cosine", "lr": 1e-3}})
    assert [kl_weight(c, e) for e in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]
    assert learning_rate(c, 1) == pytest.approx(1e-3) and learning_rate(c, 6) == pytest.approx(5e-4)
    assert learning_rate(c, 10) < 3e-5
    assert kl_weight(cfg(), 1) == 1.0 and learning_rate(cfg(), 7) == 1e-3


def test_warmup_trains_and_reports_the_true_elbo(tmp_path):
    res = vaekit.train(cfg(epochs=2, warmup_epochs=4), tmp_path / "r", progress=False, log=quiet)
    row = res.history[0]
    assert row["kl_weight"] == 0.25
    assert row["train_elbo"] == pytest.approx(row["train_reconstruction"] - row["train_kl"], abs=1e-3)
    # the IWAE under warm-up: the weight is the warm-up's, the bound reported is the true one (weight 1)
    res = vaekit.train(cfg(epochs=2, warmup_epochs=4, objective={"name": "iwae", "k": 3}), tmp_path / "i",
                       progress=False, log=quiet)
    assert [r["kl_weight"] for r in res.history] == [0.25, 0.5]
    assert all(r["train_iwae_bound"] >= r["train_elbo"] for r in res.history)


def test_early_stopping_and_time_budget(tmp_path):
    res = vaekit.train(cfg(epochs=60, lr=1e-12, patience=2), tmp_path / "p", progress=False, log=quiet)
    assert len(res.history) < 60
    best = max(range(len(res.history)), key=lambda i: res.history[i]["valid_elbo"])
    assert len(res.history) - 1 - best == 2  # stopped exactly `patience` epochs after the best
    res = vaekit.train(cfg(epochs=50, max_minutes=1e-6), tmp_path / "t", progress=False, log=quiet)
    assert len(res.history) == 1 and res.history[0]["elapsed_seconds"] > 0


def test_bf16_training_keeps_float32_weights_and_numbers(tmp_path):
    res32 = vaekit.train(cfg(epochs=3, precision="fp32"), tmp_path / "a", progress=False, log=quiet)
    res16 = vaekit.train(cfg(epochs=3, precision="bf16"), tmp_path / "b", progress=False, log=quiet)
    assert all(p.dtype == torch.float32 for p in res16.model.parameters())
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["precision"] == "bf16"
    a, b = res32.history[-1]["valid_elbo"], res16.history[-1]["valid_elbo"]
    assert abs(a - b) < 1.0, (a, b)  # same model and data, products in bfloat16: close, not equal
    with pytest.raises(VaekitError, match="did you mean 'bf16'"):
        cfg(precision="bf61")


@pytest.mark.parametrize("flags,expected", [({"fpu", "avx512f", "avx512_bf16"}, "bf16"), ({"amx_bf16", "sse2"}, "bf16"),
                                            ({"avx512f", "avx2"}, "fp32"), (set(), "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, flags, expected):
    from vaekit import trainer

    monkeypatch.setattr(trainer, "_cpu_flags", lambda: flags)
    precision, why = trainer.auto_precision("cpu")
    assert precision == expected and why
    assert trainer.auto_precision("meta")[0] == "fp32"  # a device it knows nothing of: float32


def test_auto_precision_is_saved_resolved_and_a_resumed_run_keeps_what_it_was_saved_with(tmp_path, monkeypatch):
    from vaekit import trainer

    lines = []
    monkeypatch.setattr(trainer, "_cpu_flags", lambda: set())
    assert cfg().train.precision == "auto"  # the default
    vaekit.train(cfg(epochs=1), tmp_path / "r", progress=False, log=lines.append)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["precision"] == "fp32"
    assert "precision: fp32 (auto: no native bf16 found on this CPU)" in lines
    monkeypatch.setattr(trainer, "_cpu_flags", lambda: {"avx512_bf16"})  # the same run resumed on another CPU
    lines.clear()
    res = vaekit.train(cfg(epochs=2), tmp_path / "r", resume=True, progress=False, log=lines.append)
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert "precision: fp32 (auto: as saved when the run started)" in lines
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["precision"] == "fp32"
    vaekit.train(cfg(epochs=1), tmp_path / "n", progress=False, log=quiet)  # a new run there: bf16
    assert json.loads((tmp_path / "n" / "config.json").read_text())["train"]["precision"] == "bf16"
    with pytest.raises(VaekitError, match="train.precision"):  # an explicit, different precision is refused
        vaekit.train(cfg(epochs=3, precision="fp32"), tmp_path / "n", resume=True, progress=False, log=quiet)


def test_auto_compile_only_where_it_was_measured_to_pay(monkeypatch):
    from vaekit import trainer

    big = trainer.COMPILE_MIN_IMAGES
    monkeypatch.setattr(trainer.shutil, "which", lambda name: "/usr/bin/" + name)
    assert trainer.auto_compile("bf16", "cpu", big)[0]
    assert trainer.auto_compile("fp16", "cpu", 2 * big)[0]
    assert trainer.auto_compile("fp32", "cpu", big)[0]  # +7-15% measured on an AVX2 CPU
    off = [trainer.auto_compile("fp32", "cuda", 10 * big), trainer.auto_compile("bf16", "cpu", big - 1),
           trainer.auto_compile("bf16", "meta", big)]
    assert not any(on for on, _ in off) and all(why for _, why in off)
    assert "under the 5,000,000" in off[1][1]
    monkeypatch.setattr(trainer.shutil, "which", lambda name: None)
    on, why = trainer.auto_compile("bf16", "cpu", big)
    assert not on and "no C++ compiler" in why


def test_compiled_bf16_training_runs_and_resumes(tmp_path):
    vaekit.train(cfg(epochs=1, precision="bf16"), tmp_path / "r", progress=False, compile=True,
                 log=quiet)
    res = vaekit.train(cfg(epochs=2, precision="bf16"), tmp_path / "r", resume=True, progress=False,
                       compile=True, log=quiet)
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert all(abs(h["valid_elbo"]) < 1e3 for h in res.history)


def test_fp16_with_a_gradient_scaler_matches_fp32_and_resumes_exactly(tmp_path):
    """float16 products (CPU autocast here; meant for GPUs without bf16) with a gradient
    scaler: float32 weights, an ELBO close to float32's, and the scaler's state in
    last.safetensors so that resume is exact."""
    res32 = vaekit.train(cfg(epochs=3, precision="fp32"), tmp_path / "a", progress=False, log=quiet)
    res16 = vaekit.train(cfg(epochs=3, precision="fp16"), tmp_path / "b", progress=False, log=quiet)
    assert all(p.dtype == torch.float32 for p in res16.model.parameters())
    a, b = res32.history[-1]["valid_elbo"], res16.history[-1]["valid_elbo"]
    assert abs(a - b) < 1.0, (a, b)
    _, meta = ckpt.load_training_state(tmp_path / "b" / "last.safetensors", build_model(cfg().model, (1, 8, 8)),
                                       torch.optim.Adam(build_model(cfg().model, (1, 8, 8)).parameters()))
    assert meta["grad_scaler"]["scale"] > 0
    vaekit.train(cfg(epochs=1, precision="fp16"), tmp_path / "c", progress=False, log=quiet)
    vaekit.train(cfg(epochs=3, precision="fp16"), tmp_path / "c", resume=True, progress=False, log=quiet)
    straight, _ = ckpt._load_tensors(tmp_path / "b" / "last.safetensors")
    resumed, _ = ckpt._load_tensors(tmp_path / "c" / "last.safetensors")
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_compiled_fp32_training_matches_eager(tmp_path):
    """torch.compile changes no number beyond rounding. Compiled code draws its noise with
    its own generator; fallback_random makes it draw eager PyTorch's, so the runs compare."""
    import torch._inductor.config

    # the config's own patch restores the setting (monkeypatch would delete it, breaking torch.export later)
    with torch._inductor.config.patch(fallback_random=True):
        eager = vaekit.train(cfg(epochs=2, precision="fp32"), tmp_path / "e", progress=False, log=quiet)
        compiled = vaekit.train(cfg(epochs=2, precision="fp32"), tmp_path / "c", progress=False, compile=True,
                                log=quiet)
    for a, b in zip(eager.history, compiled.history):  # same noise, fused kernels: equal up to rounding
        assert abs(a["valid_elbo"] - b["valid_elbo"]) < 0.01, (a["valid_elbo"], b["valid_elbo"])
        assert abs(a["train_elbo"] - b["train_elbo"]) < 0.01, (a["train_elbo"], b["train_elbo"])


def _fake_clock(monkeypatch):
    """The trainer's clock advanced one second per reading: runs whose time budget is exact."""
    from vaekit import trainer

    ticks = iter(range(10**6))
    monkeypatch.setattr(trainer, "_now", lambda: float(next(ticks)))


def test_the_budget_clock_fits_the_schedule_to_the_time_budget(tmp_path, monkeypatch):
    """--max-minutes with a cosine schedule and warm-up: the rate anneals over the epochs that fit the budget
    (each epoch takes 2 s of the fake clock, so 6 fit in 12 s), not over --epochs; the epochs clock would
    still be near the peak when the budget stops it."""
    _fake_clock(monkeypatch)
    said = []
    c = cfg(epochs=100, max_minutes=0.2, lr_schedule="cosine", warmup_epochs=10)
    res = vaekit.train(c, tmp_path / "b", progress=False, log=said.append)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["schedule_clock"] == "budget"
    assert any(m.startswith("schedule: the budget clock drives") for m in said)
    assert any(m.startswith("time budget:") for m in said)
    lrs, kls = [r["lr"] for r in res.history], [r["kl_weight"] for r in res.history]
    assert len(lrs) == 6 and lrs == sorted(lrs, reverse=True)
    assert lrs[0] == 1e-3 and lrs[-1] < 0.1 * 1e-3  # annealed within the budget
    # the warm-up counts epochs (1/10 after the first) but ends by half the budget: the 3rd of the 6 epochs
    assert kls[0] == pytest.approx(0.1) and 0.2 < kls[1] < 1.0 and kls[2:] == [1.0] * 4
    assert res.history[-1]["progress"] == 1.0
    _fake_clock(monkeypatch)
    res = vaekit.train(cfg(epochs=100, max_minutes=0.2, lr_schedule="cosine", schedule_clock="epochs"),
                       tmp_path / "e", progress=False, log=quiet)
    assert len(res.history) == 6 and res.history[-1]["lr"] > 0.99 * 1e-3  # stopped by the budget, unannealed


def test_a_run_on_the_budget_clock_resumes_exactly(tmp_path, monkeypatch):
    """The time used and the last epoch's seconds are saved: interrupted in its fourth epoch and resumed, a run
    on the budget clock ends with the weights, rates and KL weights of an uninterrupted one."""
    c = cfg(epochs=100, max_minutes=0.2, lr_schedule="cosine", warmup_epochs=30)
    _fake_clock(monkeypatch)
    full = vaekit.train(c, tmp_path / "full", progress=False, log=quiet)

    class Interrupt:
        def on_epoch(self, view, row):
            if row["epoch"] == 4:
                raise KeyboardInterrupt

    _fake_clock(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        vaekit.train(c, tmp_path / "cut", progress=False, log=quiet, callbacks=[Interrupt()])
    resumed = vaekit.train(c, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert [(r["lr"], r["kl_weight"]) for r in resumed.history] == [(r["lr"], r["kl_weight"]) for r in full.history]
    a, b = load_file(tmp_path / "full" / LAST_FILE), load_file(tmp_path / "cut" / LAST_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)
