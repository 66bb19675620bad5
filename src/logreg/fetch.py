"""A local, verified copy of a data file: found where the user keeps it, or downloaded and checked before use."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from logreg.errors import DataError


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(path: str, data_dir: str, url: str | None = None, sha256: str | None = None) -> Path:
    """Return a local, verified copy of the file `path`.

    Looks for `path` as given, then inside `data_dir`; if neither exists and `url` is set, downloads it into
    `data_dir` under a temporary name, checks `sha256`, and only then renames it into place, so an interrupted or
    corrupt download never passes for the real file. A local copy whose checksum differs is refused, never deleted.
    """
    given = Path(path).expanduser()
    target = given if given.is_absolute() else Path(data_dir).expanduser() / given
    for candidate in (given, target):
        if candidate.is_dir():
            raise DataError(f"{candidate}: is a folder; data.path names a CSV file")
    local = next((p for p in (given, target) if p.is_file()), None)
    if local is not None:
        if sha256 and (actual := sha256_of(local)) != sha256:
            raise DataError(
                f"{local}: sha256 is {actual}, expected {sha256}; the file is not the expected dataset. "
                f"Delete it to download a fresh copy{f' from {url}' if url else ''}."
            )
        return local
    if url is None:
        raise DataError(f"{path}: file not found (looked in {Path.cwd()} and {Path(data_dir).expanduser()})")

    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=30) as response, partial.open("wb") as file:
            while chunk := response.read(1 << 20):
                file.write(chunk)
        if sha256 and (actual := sha256_of(partial)) != sha256:
            raise DataError(f"{url}: downloaded file has sha256 {actual}, expected {sha256}; it was discarded")
        partial.replace(target)  # atomic on one filesystem: readers see no file or the whole verified file
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"could not download {url} ({error}). Put a copy of {given.name} at {target}, "
            "or point data.data_dir (or the LOGREG_DATA_DIR environment variable) at a folder that holds it."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return target
