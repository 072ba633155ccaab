"""The one error type users see.

Every problem caused by user input (a bad option, a missing or corrupt file, an
unknown name) raises :class:`VaekitError`. It subclasses ``ValueError`` so that
generic code catching ``ValueError`` still works; the command line prints its
message as one line and exits non-zero, without a traceback.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class VaekitError(ValueError):
    """A user-facing error: the message says what was wrong and how to fix it."""


class DataError(VaekitError):
    """A data file is missing, truncated, corrupt or holds values of the wrong kind."""


class DivergenceError(VaekitError):
    """Training produced a NaN or infinite loss or gradient."""


class CheckpointError(VaekitError):
    """A run directory or checkpoint is missing, damaged or does not match."""


def require(cond: bool, msg: str) -> None:
    """Raise :class:`VaekitError` with ``msg`` unless ``cond`` (never ``assert``, which ``python -O`` strips)."""
    if not cond:
        raise VaekitError(msg)


def suggest(name: str, valid: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str], sort: bool = True,
                 shown: str | None = None) -> VaekitError:
    """The one error for a name that is not one of the valid ones (a registry's, a list of choices):
    ``unknown KIND 'NAME' (did you mean 'X'?); choose one of: A, B, C`` (``shown``: NAME as written there)."""
    valid = sorted(valid) if sort else list(valid)
    hint = suggest(str(name), valid)
    return VaekitError(f"unknown {kind} '{shown or name}'{hint}; choose one of: {', '.join(valid)}")


_OS_HINTS = {errno.EACCES: "choose a place you can write to", errno.EPERM: "choose a place you can write to",
             errno.EROFS: "it is on a read-only file system: choose another place",
             errno.ENOSPC: "free some space, then run it again", errno.EISDIR: "it is a folder: name a file instead",
             errno.ENOTDIR: "a part of the path is a file, not a folder",
             errno.ENOENT: "check that the path is right and that its folder takes new files"}


def os_error_line(e: OSError, action: str = "use") -> str:
    """An operating-system error as one line for a person: what could not be done to which path, the cause,
    what to do; never the exception's class name."""
    cause = e.strerror or str(e)
    hint = _OS_HINTS.get(e.errno, "check the path")
    return f"cannot {action} '{e.filename}': {cause}; {hint}" if e.filename else f"{cause}; {hint}"
