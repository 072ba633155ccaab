"""Devices and multi-process runs on PyTorch's own engine (``torch.distributed``).

``vaekit train`` and ``vaekit evaluate`` run unchanged under ``torchrun``: when the
launcher's environment (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) is present, :func:`setup` joins the process group — ``nccl`` on CUDA,
``gloo`` on the CPU — and every rank gets its slice of each global batch. Only rank 0
writes files and prints. Without that environment everything here is a no-op and a
single process runs exactly as before.
"""

from __future__ import annotations

import atexit
import gc
import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as tdist

from .errors import VaekitError, unknown_name

DEVICES = ("auto", "cpu", "cuda", "mps")
T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- collectives: with one process each returns its input unchanged -------------

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over ranks (in place on a copy on this rank's device)."""
        if not self.distributed:
            return t
        t = t.to(self.device, copy=True)
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def any(self, flag: bool | torch.Tensor) -> bool:
        """True on every rank when ``flag`` is true on any."""
        if not self.distributed:
            return bool(flag)
        t = torch.as_tensor(flag, dtype=torch.float32, device=self.device).reshape(1).clone()
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (any picklable object)."""
        if not self.distributed:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on rank 0 (``None`` elsewhere)."""
        out = self.all_gather(obj)
        return out if self.is_main else None

    def on_main(self, fn: Callable[[], T], share: bool = True) -> T | None:
        """Run ``fn`` on rank 0 alone and hand its result to every rank (``share=False``:
        only rank 0 gets it, the others ``None``). A :class:`VaekitError` it raises is
        raised on every rank, so no rank is left waiting for rank 0."""
        if not self.distributed:
            return fn()
        value, status = None, ("ok", None)
        if self.is_main:
            try:
                value = fn()
            except VaekitError as e:
                status = ("error", e)
            else:
                status = ("ok", value if share else None)
        kind, shared = self.broadcast(status)
        if kind == "error":
            raise self.everywhere(shared)
        return value if self.is_main else shared

    def main_first(self, fn: Callable[[], T], others: Callable[[], T] | None = None) -> T:
        """``fn()`` on rank 0 first (to download, or to check, before anyone else reads), then
        ``others()`` (default: ``fn()``) on the other ranks once it succeeded; its error is
        raised on every rank. Each rank returns its own result."""
        value = self.on_main(fn, share=False)
        return value if self.is_main else (others or fn)()

    def everywhere(self, err: BaseException) -> BaseException:
        """Mark ``err`` as raised by every rank at the same point: rank 0 alone prints it,
        and the ranks leave the process group together (see :func:`teardown`)."""
        if self.distributed:
            err.on_every_rank = True
            if not self.is_main:
                err.reported_by_main = True
        return err

    def barrier(self) -> None:
        if self.distributed:
            tdist.barrier()


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else Apple's MPS, else the CPU. Each process of a
    multi-GPU run takes the GPU of its ``local_rank``."""
    name = str(device)
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise unknown_name("device", name, DEVICES, sort=False)
    if kind == "auto":
        if torch.cuda.is_available():
            kind = "cuda"
        elif _mps_available():
            kind = "mps"
        else:
            kind = "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise VaekitError("--device cuda, but this PyTorch sees no CUDA GPU "
                              f"(torch {torch.__version__}); use --device cpu or a CUDA build of PyTorch")
        if ":" in name:
            return torch.device(name)
        n = torch.cuda.device_count()
        if local_rank >= n:
            raise VaekitError(f"process with local rank {local_rank} has no GPU of its own (this node has {n}); "
                              f"start at most {n} processes per node (torchrun --nproc_per_node={n})")
        return torch.device("cuda", local_rank)
    if kind == "mps":
        if not _mps_available():
            raise VaekitError("--device mps, but MPS is not available here; use --device cpu")
        return torch.device("mps")
    return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise VaekitError(f"environment variable {name}={value!r} is not a whole number; "
                          "launch with torchrun, which sets it") from None


def setup(device: str | torch.device = "auto") -> Context:
    """The :class:`Context` of this process, joining the process group when launched by
    ``torchrun`` with more than one process (once; later calls reuse the group)."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank if world > 1 else 0)
    if world <= 1:
        return Context(device=dev)
    if dev.type == "mps":
        raise VaekitError("several processes on MPS are not supported by torch.distributed; "
                          "run one process (python -m vaekit ...) or use --device cpu")
    if not tdist.is_available():
        raise VaekitError("this PyTorch was built without torch.distributed; run a single process")
    if not tdist.is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise VaekitError(f"WORLD_SIZE={world} but {var} is not set; launch with torchrun "
                                  "(torchrun --nproc_per_node=N -m vaekit ...)")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        tdist.init_process_group(backend=backend, rank=rank, world_size=world,
                                 device_id=dev if dev.type == "cuda" else None)
        atexit.register(teardown)
    elif tdist.get_world_size() != world:
        raise VaekitError(f"the process group holds {tdist.get_world_size()} processes but WORLD_SIZE is {world}")
    return Context(rank=tdist.get_rank(), world_size=tdist.get_world_size(), local_rank=local_rank, device=dev)


def teardown(wait: bool = False) -> None:
    """Leave the process group (harmless when there is none). ``wait``: first wait for
    every rank to get here, for a clean finish; a rank that tears the group down while
    another still talks to it can make that one abort ("terminate called without an
    active exception"). Only wait when every rank is known to be finishing."""
    if tdist.is_available() and tdist.is_initialized():
        # First free what is only held by reference cycles, such as the autograd graph of a step
        # that an exception cut short (kept by its traceback): destroyed after the group, it made
        # a rank abort at exit in about 1 of 10 runs that stopped on a NaN.
        gc.collect()
        if wait:
            tdist.barrier()
        tdist.destroy_process_group()


def shard(n: int, world_size: int, rank: int) -> slice:
    """The contiguous rows ``[start, stop)`` of ``n`` that ``rank`` takes: the first
    ``n % world_size`` ranks take one more, like ``torch.tensor_split``."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def local_rows(n: int, batch_size: int, world_size: int, rank: int) -> torch.Tensor:
    """Positions, in an epoch's order of ``n`` images, of the rows ``rank`` trains on:
    its :func:`shard` of each global batch of ``batch_size`` in turn (the last batch may
    be shorter). ``x[order[local_rows(...)]]`` is all a rank needs on its device."""
    full, rest = divmod(n, batch_size)
    s = shard(batch_size, world_size, rank)
    rows = (torch.arange(full).unsqueeze(1) * batch_size + torch.arange(s.start, s.stop)).reshape(-1)
    if rest:
        t = shard(rest, world_size, rank)
        rows = torch.cat([rows, full * batch_size + torch.arange(t.start, t.stop)])
    return rows


__all__ = ["Context", "DEVICES", "local_rows", "resolve_device", "setup", "shard", "teardown"]
