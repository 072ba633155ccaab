import os
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


def shared_data(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(f"{path} is not here (only the project's machines have ../shared/data)")
    return path


os.environ.setdefault("MPLBACKEND", "Agg")
