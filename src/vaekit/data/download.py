"""Files by name with checksums, found locally or downloaded and verified.

The torchvision contract: a data set lists its resources (file name, mirror
URLs, checksum). :func:`fetch` returns a verified local path, downloading only
when the file is not already there; downloads go to a temporary file that is
checked before it is renamed into place, so a broken download never looks valid.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError


@dataclass(frozen=True)
class Resource:
    """A file a data set needs: name, where to get it, and its checksum.

    ``sha256`` or ``md5`` (the MNIST files are published with MD5) pins the
    content of ``filename``; ``alternates`` are other names accepted in its place
    (the file unpacked or gzip-compressed by the user), which are checked by
    their reader, not by hash. With no checksum published the reader's structural
    checks are all there is, and the data set's documentation says so.
    """

    filename: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    alternates: tuple[str, ...] = ()


def default_cache_dir() -> Path:
    """``$VAEKIT_DATA`` or ``$XDG_CACHE_HOME/vaekit`` (``~/.cache/vaekit``)."""
    env = os.environ.get("VAEKIT_DATA")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaekit"


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, res: Resource) -> None:
    """Raise :class:`DataError` if ``path`` does not match the resource's checksum."""
    for algo, want in (("sha256", res.sha256), ("md5", res.md5)):
        if want:
            got = file_digest(path, algo)
            if got != want:
                raise DataError(
                    f"{path}: {algo} checksum mismatch (expected {want}, found {got}); "
                    "the file is damaged or not the right one: delete it and download it again"
                )
            return


def _download(res: Resource, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in res.urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
            verify(Path(tmp), res)
            os.replace(tmp, dest)
            return
        except (urllib.error.URLError, OSError, ValueError, DataError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError("; ".join(errors))


def fetch(resources: list[Resource], root: Path, dataset: str, download: bool = True) -> list[Path]:
    """Local, verified paths of ``resources`` under ``root``, downloading what is missing.

    On failure the error names every missing file and the folder to place it in.
    """
    root = Path(root)
    paths, missing, failures = [], [], []
    for res in resources:
        gz = root / res.filename
        alternates = [root / a for a in res.alternates if (root / a).is_file()]
        if gz.is_file():
            verify(gz, res)
            paths.append(gz)
        elif alternates:
            paths.append(alternates[0])  # placed by the user: its reader validates the content
        elif download:
            try:
                _download(res, gz)
                paths.append(gz)
            except DataError as e:
                missing.append(res.filename)
                failures.append(str(e))
        else:
            missing.append(res.filename)
    if missing:
        why = f" (download failed: {failures[0]})" if failures else ""
        raise DataError(
            f"data set '{dataset}' needs {', '.join(missing)} in {root}{why}; "
            f"place the files there (gzip or unpacked) or pass --data-dir to the folder that holds them"
        )
    return paths
