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
from dataclasses import dataclass, field
from typing import Any

from dataclasses import fields

from .errors import VaekitError, unknown_name

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


def option(default: Any = None, help: str = "", flag: str | None = None, metavar: str | None = None,
           choices: Any = None, nargs: str | None = None, default_text: str | None = None, kind: type | None = None,
           check=None, rule: str = "", resume: str = RESUME_SAME, cli: bool = True, what: str = "") -> Any:
    """A config field that is also a ``vaekit train`` option, declared once with its help, its check (``check``:
    true for a valid value; ``rule`` words it, ``what`` names the field there) and whether it may change on
    resume (``resume``)."""
    return field(default=default, metadata={"cli": cli, "help": help, "flag": flag, "metavar": metavar,
                                            "choices": choices, "nargs": nargs, "default_text": default_text,
                                            "kind": kind, "check": check, "rule": rule, "resume": resume,
                                            "what": what})


def part(kind: str, default: str, help: str) -> Any:
    """A field naming a registered part of ``kind``; its value is the part with its options (a PartConfig)."""
    return field(default=default, metadata={"part": kind, "help": help})


def check_fields(obj: Any, section: str) -> None:
    """Every field's declared check, NaN and infinities refused first in the option's own words."""
    for f in fields(obj):
        v, meta = getattr(obj, f.name), f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-") if meta.get("cli") else f"{section}.{f.name}"
        if isinstance(v, float) and not math.isfinite(v):
            default = f" (its default: {f.default:g})" if isinstance(f.default, float) else ""
            raise VaekitError(f"{flag} must be a finite number, got {v}{default}")
        if meta.get("check") and not (v is None and f.default is None) and not meta["check"](v):
            raise VaekitError(f"{meta.get('what') or f.name} must be {meta['rule']}, got {v!r}")
        choices = meta.get("choices")
        if isinstance(choices, tuple) and v is not None and v not in choices:
            raise unknown_name(f.name, v, choices, sort=False)


def num(lo: float, hi: float = math.inf, lo_open: bool = False):
    return lambda v: is_num(v) and (v > lo if lo_open else v >= lo) and v < hi


def whole(lo: int):
    return lambda v: is_int(v) and v >= lo


def path_string(v: Any) -> bool:
    return isinstance(v, str)


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


class PartSection:
    """A config section (a frozen dataclass with ``init=False``) whose fields name parts (their metadata holds
    ``part``: the kind) beside plain fields: built from part names, their tables, or the flat keys of the parts'
    options (``prior_components = 500``), each checked by the part. Subclasses set ``_section`` (its name) and
    ``_registry`` (kind -> the registered parts)."""

    def __init__(self, **given: Any):
        name = self._section
        plain = {f.name: f for f in fields(self) if "part" not in f.metadata}
        kinds = {f.name: f.metadata["part"] for f in fields(self) if "part" in f.metadata}
        tables = {k: given.pop(k, getattr(type(self), k)) for k in kinds}
        for k, t in tables.items():
            if isinstance(t, PartConfig):
                tables[k] = t.to_dict()
            elif isinstance(t, str):
                tables[k] = {"name": t}
            elif isinstance(t, dict):
                tables[k] = dict(t)
            else:
                raise VaekitError(f"{name}.{k} must be a name or a table with a name, got {t!r}")
        for f, kind in kinds.items():  # names first: an unknown one is the error to report
            if tables[f].get("name") not in self._registry(kind):
                raise unknown_name(f"{name}.{f}", tables[f].get("name"), self._registry(kind))
        for key in [k for k in given if k not in plain]:  # flat keys: aliases of the chosen parts' options
            value = given.pop(key)
            owners = [(f, o) for f, kind in kinds.items()
                      for o in options_of(self._registry(kind)[tables[f]["name"]]) if o.flat == key]
            if owners:
                for f, o in owners:
                    tables[f][o.key] = value
                continue
            _refuse_alias(self._registry, name, key, value, kinds, tables, list(plain) + list(kinds))
        for f, kind in kinds.items():
            object.__setattr__(self, f, resolve_part(kind, self._registry(kind), tables[f], name))
        for key, f in plain.items():
            object.__setattr__(self, key, given.get(key, f.default))
        self.__post_init__()

    def __getattr__(self, key: str) -> Any:  # read access by the flat key: cfg.model.hidden
        for f in fields(type(self)):
            if "part" in f.metadata:
                chosen = object.__getattribute__(self, f.name)
                for o in options_of(self._registry(f.metadata["part"]).get(chosen.name)):
                    if o.flat == key:
                        return chosen[o.key]
        raise AttributeError(f"{type(self).__name__} has no setting '{key}'")


def _refuse_alias(registry, section: str, key: str, value: Any, kinds: dict[str, str], tables: dict,
                  valid: list[str]) -> None:
    """A flat key that is not an option of the chosen parts: an unknown key is an error; an option of another part
    of its kind is ignored (a preset's ``prior_components`` under ``--prior standard``, every key of a config
    file written before the tables), unless the chosen part refuses it (``refuses``: key -> why) and it is set."""
    owners = [(kind, o) for kind in kinds.values() for cls in registry(kind).values() for o in options_of(cls)
              if o.flat == key]
    if not owners:
        names = valid + sorted({o.flat for kind in kinds.values() for c in registry(kind).values()
                                for o in options_of(c)})
        raise unknown_name("key", key, names, sort=False, shown=f"{section}.{key}")
    as_list = list if isinstance(value, (list, tuple)) else lambda v: [v]
    if value is None or any(value == o.default or (o.nargs and list(o.default or ()) == as_list(value))
                            for _, o in owners):
        return
    owners[0][1].value(value, f"{section}, for the {owners[0][0]} that has it")  # a bad value is still refused
    for f, kind in kinds.items():
        why = getattr(registry(kind)[tables[f]["name"]], "refuses", {}).get(key)
        if why:
            raise VaekitError(why)


__all__ = ["Option", "PartConfig", "PartSection", "RESUME_FREE", "RESUME_SAME", "RESUME_WHERE", "check_fields", "is_int",
           "is_num", "num", "option", "options_of", "part", "path_string", "resolve_part", "whole"]
