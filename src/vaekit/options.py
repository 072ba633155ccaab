"""Options: a setting declared once, beside what it sets, with its default, help, flag and check.

A part (an architecture, a likelihood, a prior, an objective) lists its :class:`Option` s in
``options``; the run configuration keeps them in the part's own table (``[model.prior] name =
"vamp"``, ``components = 500``), the command line and ``--help`` take their flags from them, and
nothing else names them. A flat key (``prior_components = 500`` in ``[model]``, the flag
``--prior-components``) is the option's ``alias``: the spelling presets, the command line and
config files written before the tables existed use. This module imports nothing of vaekit but its
errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import VaekitError

RESUME_SAME, RESUME_FREE, RESUME_WHERE = "same", "free", "where"  # may a setting change when a run is resumed?


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Option:
    """One setting of a part. ``kind``: the type of the value (of each value, with ``nargs``); ``check``: true for
    a valid value, which ``rule`` words for the error message; ``zero``: the value that ``--flag 0`` stands for
    (``--hidden 0``: no layers); ``resume``: whether it may change when a run is resumed (``same``: it must equal
    the saved value; ``free``: it says only when to stop; ``where``: only where the data are)."""

    key: str
    default: Any
    help: str
    kind: type = float
    alias: str | None = None  # the flat key: [model] prior_components = 500, --prior-components
    flag: str | None = None
    nargs: str | None = None
    metavar: str | None = None
    choices: tuple | None = None
    default_text: str | None = None
    check: Callable[[Any], bool] | None = None
    rule: str = ""
    zero: Any = None
    resume: str = RESUME_SAME

    @property
    def flat(self) -> str:
        return self.alias or self.key

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.flat.replace("_", "-")

    def value(self, v: Any, where: str) -> Any:
        """``v`` as this option holds it (lists as tuples), or a :class:`VaekitError` saying what is valid."""
        if self.nargs:
            v = tuple(v) if isinstance(v, (list, tuple)) else (v,) if v is not None else v
            if self.zero is not None and v in ((0,), tuple(self.zero)):
                return self.zero
            ok = isinstance(v, tuple) and all(self._one(e) for e in v) and (self.nargs != "+" or len(v) >= 1)
        else:
            ok = self._one(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise VaekitError(f"{self.cli_flag} must be a finite number, got {v}"
                              + (f" (its default: {self.default:g})" if isinstance(self.default, float) else ""))
        if not ok or (self.check is not None and v is not None and not self.check(v)):
            raise VaekitError(f"{self.flat} must be {self.rule or self.kind.__name__}, got {v!r} ({self.cli_flag}, "
                              f"in {where})")
        return float(v) if self.kind is float and is_num(v) else v

    def _one(self, v: Any) -> bool:
        if v is None:
            return self.default is None
        if self.kind is float:
            return is_num(v)
        if self.kind is int:
            return is_int(v)
        if self.kind is bool:
            return isinstance(v, bool)
        return isinstance(v, self.kind) and (self.choices is None or v in self.choices)


def options_of(cls) -> tuple[Option, ...]:
    """The options a part declares (none: an empty tuple)."""
    return tuple(getattr(cls, "options", ()))


class PartConfig(Mapping):
    """A part chosen by name with its options, as the run configuration holds it: ``cfg.model.prior.name``,
    ``cfg.model.prior.components``. Compares equal to its name (so a test may compare it with the string) and
    to another PartConfig of the same name and options."""

    __slots__ = ("name", "_values")

    def __init__(self, name: str, values: Mapping[str, Any] | None = None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_values", dict(values or {}))

    def __getattr__(self, key: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if key in values:
            return values[key]
        raise AttributeError(f"the {object.__getattribute__(self, 'name')} part has no option '{key}'")

    def __setattr__(self, key, value):
        raise AttributeError("a part's configuration is frozen: make a new RunConfig with override()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, str):
            return self.name == other
        if isinstance(other, PartConfig):
            return self.name == other.name and self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self._values.items()))))

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"PartConfig({self.name!r}, {self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in self._values.items()}}


def resolve_part(kind: str, registry: Mapping[str, type], given: Any, where: str) -> PartConfig:
    """A part's configuration from its name, its table (``{"name": ..., option: value}``) or a PartConfig: every
    option of the part set (defaults where not given, each value checked), an unknown option refused, then the
    part's own ``check_options`` (rules between its options)."""
    from .errors import unknown_name

    if isinstance(given, PartConfig):
        given = given.to_dict()
    table = {"name": given} if isinstance(given, str) else dict(given) if isinstance(given, Mapping) else None
    if table is None or not isinstance(table.get("name"), str):
        raise VaekitError(f"{where}.{kind} must be a name or a table with a name, got {given!r}")
    name = table.pop("name")
    if name not in registry:
        raise unknown_name(f"{where}.{kind}", name, registry)
    cls = registry[name]
    opts = {o.key: o for o in options_of(cls)}
    for key in table:
        if key not in opts:
            valid = ", ".join(opts) or "none"
            raise VaekitError(f"the {name} {kind} has no option '{key}' (its options: {valid})")
    values = {k: o.value(table.get(k, o.default), f"{where}.{kind}") for k, o in opts.items()}
    part = PartConfig(name, values)
    if hasattr(cls, "check_options"):
        cls.check_options(part)
    return part


__all__ = ["Option", "PartConfig", "RESUME_FREE", "RESUME_SAME", "RESUME_WHERE", "is_int", "is_num", "options_of",
           "resolve_part"]
