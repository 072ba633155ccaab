"""What the ``vaekit`` subcommands share: the parser class, the flags several take (declared once), and the
checks of a run directory, a count and an output file. No subcommand lives here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import SOURCES, RunConfig
from .distributed import DEVICES
from .errors import VaekitError, os_error_line


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``vaekit train: error: ... (see --help)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, unless the help says it already or there is none to say
    (argparse's own would add "(default: None)" after "(default: the run's)")."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if action.default is None or "(default" in text else super()._get_help_string(action)


def abs_dir(path: str | None) -> str | None:
    """Data folders are saved absolute, so a run can be evaluated from anywhere."""
    return str(Path(path).expanduser().resolve()) if path else None


# flags several subcommands take, defined once: (flags, argparse keyword arguments); a subcommand may reword
# the help (``add_shared(p, ("split", "split to evaluate"))``)
SHARED = {
    "run_dir": (("run_dir",), {"metavar": "RUN_DIR", "help": "a run directory written by 'vaekit train'"}),
    "data": (("--data",), {"choices": None, "default": None, "help": "data set (default: the run's)"}),
    "data_file": (("--data-file",), {"metavar": "FILE", "default": None,
                                     "help": "array file of the data (default: the run's)"}),
    "data_dir": (("--data-dir",), {"metavar": "DIR", "default": None,
                                   "help": "folder of the data files (default: the run's)"}),
    "split": (("--split",), {"choices": ("train", "valid", "test"), "default": "valid", "help": "split to use"}),
    "seed": (("--seed",), {"type": int, "default": 0, "help": "random seed"}),
    "device": (("--device",), {"choices": DEVICES, "default": "auto", "help": "auto: cuda, then mps, then cpu"}),
    "no_progress": (("--no-progress",), {"action": "store_true", "help": "no progress bar"}),
    "n": (("-n",), {"type": int, "default": 64, "help": "number of images"}),
    "keep_classes": (("--keep-classes",), {"nargs": "+", "metavar": "K", "default": None,
                                           "help": "labelled data: only the images of these classes, or 'all' "
                                                   "(default: the classes the run was trained on)"}),
    "batch_size": (("--batch-size",), {"type": int, "metavar": "N", "default": 100, "help": "images per batch"}),
}


def add_shared(p, *names) -> None:
    """Add the shared flags ``names`` (a name, or ``(name, help)`` to reword its help) to the parser ``p``."""
    from .data import DATASETS

    for name in names:
        name, help = name if isinstance(name, tuple) else (name, None)
        flags, kw = SHARED[name]
        kw = dict(kw, **({"help": help} if help else {}))
        if name == "data":
            kw["choices"] = sorted(DATASETS) + list(SOURCES)
        p.add_argument(*flags, **kw)


def positive(value: int, name: str) -> None:
    if value < 1:
        raise VaekitError(f"{name} must be >= 1, got {value}")


def keep_classes_given(values: list[str] | None):
    """``--keep-classes`` as given to a command that reads a run: None (the run's), () for 'all', or the classes."""
    if values is None:
        return None
    if [v.lower() for v in values] == ["all"]:
        return ()
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise VaekitError(f"--keep-classes takes class numbers or 'all', got {' '.join(values)}") from None


def run_config_for_data(run_dir: str, data: str | None, data_dir: str | None,
                        data_file: str | None = None, keep_classes: list[str] | None = None) -> RunConfig:
    """The run's config, pointed at other data if asked (binarization re-resolved), and at other classes."""
    from .checkpoint import load_run_config

    cfg = load_run_config(run_dir)
    keep = keep_classes_given(keep_classes)
    if keep is not None:
        cfg = cfg.override(data={"keep_classes": keep or None})
    if data or data_dir or data_file:
        override = {}
        if data:
            override["name"] = data
            if data != cfg.data.name:
                override["data_dir"] = data_dir
                override["data_file"] = data_file
        if data_dir:
            override["data_dir"] = data_dir
        if data_file:
            override["data_file"] = str(Path(data_file).resolve())
        cfg = cfg.override(data=override)
    return cfg


def out_path(out: str | None, run_dir: str, default: str) -> Path:
    path = Path(out) if out else Path(run_dir) / default
    if path.is_dir():
        raise VaekitError(f"--out '{path}' is a folder; name a .png file, such as '{path / default}'")
    if path.suffix.lower() != ".png":
        raise VaekitError(f"--out must name a .png file, got '{path}'")
    if not path.parent.exists():
        raise VaekitError(f"folder '{path.parent}' does not exist; create it or choose another --out")
    return path


def writing(where: Path, fn, *args, **kwargs):
    """Call ``fn``, which writes pictures into ``where`` (a file, or a folder); a file there that cannot be
    written ends in one line naming it and what to do (not the hidden temporary file written first)."""
    try:
        return fn(*args, **kwargs)
    except OSError as e:
        target = Path(e.filename or "").resolve()
        if e.filename and (target == where.resolve() or where.resolve() in target.parents):
            raise VaekitError(f"{os_error_line(e, 'write')} (--out chooses where)") from None
        raise


def check_run_dir(path: str) -> str:
    """A run directory given to evaluate, sample, reconstruct or plot, checked before anything is done."""
    from .checkpoint import load_run_config

    load_run_config(path)  # says what is wrong: missing, not a run, no config
    return path
