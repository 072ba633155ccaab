"""SHA-256 of every tensor in a run directory's checkpoints, independent of parameter names.

Used to show that a refactoring changes no behaviour: train the same command with the same seed
before and after, then compare the digests (tensors are matched by content, so renamed
parameters still compare).

    python benchmarks/digests.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from safetensors.torch import load_file


def tensor_digest(t) -> str:
    t = t.contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(-1).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def run_digests(run_dir: Path) -> dict[str, str]:
    out = {}
    for name in ("model.safetensors", "last.safetensors"):
        tensors = load_file(str(run_dir / name))
        # model.*/optim.* of last.safetensors and the best weights; the rng states too
        each = sorted(tensor_digest(t) for t in tensors.values())
        out[name] = hashlib.sha256("".join(each).encode()).hexdigest()
        out[name + " tensors"] = str(len(each))
    return out


def main(argv: list[str]) -> int:
    for run in argv:
        for k, v in run_digests(Path(run)).items():
            print(f"{run}  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
