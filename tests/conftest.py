import os
import signal
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed_and_cache(tmp_path, monkeypatch):
    """Deterministic tests that never touch the user's data cache."""
    torch.manual_seed(0)
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "vaekit-cache"))
    yield


@pytest.fixture
def poison_training(monkeypatch):
    """``poison_training(n)``: from the (n+1)-th training forward pass on, the reconstruction is NaN (a diverging
    run); it returns a function that undoes it."""
    from vaekit.models import VAE

    original = VAE.forward

    def after(n: int):
        calls = {"n": 0}

        def poisoned(self, x, n_samples=1):
            terms = original(self, x, n_samples)
            calls["n"] += self.training
            if self.training and calls["n"] > n:
                return terms._replace(reconstruction=terms.reconstruction * float("nan"))
            return terms

        monkeypatch.setattr(VAE, "forward", poisoned)
        return lambda: monkeypatch.setattr(VAE, "forward", original)

    return after


def shared_data(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"{path} is not here (only the project's machines have ../shared/data)")
    return path


os.environ.setdefault("MPLBACKEND", "Agg")


def interruptible():
    """``preexec_fn`` for a child a test will Ctrl-C: SIGINT at its default in the child. A suite started in the
    background by a shell (``pytest &``) runs with SIGINT ignored, and a child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
