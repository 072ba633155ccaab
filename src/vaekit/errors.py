"""The one error type users see.

Every problem caused by user input (a bad option, a missing or corrupt file, an
unknown name) raises :class:`VaekitError`. It subclasses ``ValueError`` so that
generic code catching ``ValueError`` still works; the command line prints its
message as one line and exits non-zero, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VaekitError(ValueError):
    """A user-facing error: the message says what was wrong and how to fix it."""


class DataError(VaekitError):
    """A data file is missing, truncated, corrupt or holds values of the wrong kind."""


class DivergenceError(VaekitError):
    """Training produced a NaN or infinite loss or gradient."""


class CheckpointError(VaekitError):
    """A run directory or checkpoint is missing, damaged or does not match."""


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
