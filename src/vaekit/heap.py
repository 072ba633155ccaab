"""Keep freed memory for the next step, so a step does not pay the kernel for fresh pages.

Every training step frees and allocates the same few megabytes of activations and gradients.
glibc's ``malloc`` may hand them back to the kernel each time: a block above its ``mmap`` threshold
(128 KiB at first, raised only when such a block under 32 MiB is freed, so a run's own history
decides) is unmapped when freed, and a free stretch at the top of the heap above the trim threshold
is given back. The next step then gets fresh pages, and each 4 KiB page costs a page fault and a
zeroing in the kernel: 70-120 faults a step for the 784-400-20 benchmark and a ``vaekit train`` of
binarized MNIST, a 6% slower float32 step on a 2-core CPU (``benchmarks/heap.py``; figures in
docs/benchmarks.md). With both thresholds fixed high the blocks stay in the process and the next
step reuses them: no faults.

:func:`keep_freed_memory` does that for the process; :func:`vaekit.train.train` and
``vaekit evaluate`` call it. The cost is memory the process keeps instead of returning: blocks
under :data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD` of free heap is
kept at its top. It changes nothing where the C library is not glibc (macOS, Windows, musl) or
where the user has tuned glibc's malloc already (``GLIBC_TUNABLES`` or ``MALLOC_*_`` variables):
their settings win.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 32 << 20  # blocks under 32 MiB come from the heap (glibc's own ceiling for its sliding threshold)
TRIM_THRESHOLD = 64 << 20  # up to 64 MiB free at the top of the heap stays (twice the above, as glibc pairs them)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_done: bool | None = None  # what the first call did; later calls return it


def _glibc():
    """The process's C library when it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version  # only glibc has it
        version.restype = ctypes.c_char_p
        version()
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


def user_tuned() -> bool:
    """Whether the environment already sets glibc's malloc thresholds (then they are left as they are)."""
    return ("glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
            or any(v in os.environ for v in _USER_SETTINGS))


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB for reuse; True when it now does.

    Called once per process (later calls return the first one's answer). False, changing
    nothing, on a C library other than glibc or where the environment tunes malloc itself.
    """
    global _done
    if _done is None:
        libc = None if user_tuned() else _glibc()
        _done = bool(libc is not None
                     and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                     and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
