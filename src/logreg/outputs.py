"""Every file an entry script writes goes through here, so none can replace a file it did not create in this run.

- A run folder is claimed before anything is written into it, Hydra's own `.hydra/` and log included: `ClaimRunFolder`
  (a Hydra callback) creates the claim file `run.json` with O_EXCL in a new or empty folder, so two processes can
  never share a folder, and a folder that holds anything else is refused.
- A file outside the run folder (predictions, an exported model) is written by `write_output`: never over an input
  of the run, never over a folder, over an existing file only with `overwrite=true` and only when that file is an
  earlier output of the same kind; written to a temporary file in the same folder, then put in place under a name
  claimed exclusively (a hard link), so of two writers of one new output only one can succeed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from logreg.errors import OutputError, as_user_error, exit_on

CLAIM = "run.json"  # the claim file: which process, command and time own the folder


def process_rank() -> int:
    """The global rank of this process in a distributed launch (torchrun, SLURM, Lightning's launcher), else 0."""
    for name in ("RANK", "SLURM_PROCID"):
        if name in os.environ:
            return int(os.environ[name])
    return int(os.environ.get("NODE_RANK", 0)) * 1000 + int(os.environ.get("LOCAL_RANK", 0))


def claim_folder(folder: str | os.PathLike, key: str = "hydra.run.dir") -> Path:
    """Make `folder` this process's own: create it (or take it empty) and write the claim file, atomically. `key` is
    the config key that named the folder, for the messages.

    Raises:
        OutputError: the folder holds anything already (another run, or any file), or cannot be created.
    """
    folder = Path(folder)
    owner = next((place for place in Path(folder).absolute().parents if (place / CLAIM).is_file()), None)
    if owner is not None:
        raise OutputError(
            f"{key}={folder}: inside the folder of another run ({owner / CLAIM} exists); a run never writes into "
            f"another's folder. Leave {key} at its default (a new timestamped folder) or name a new one"
        )
    folder.mkdir(parents=True, exist_ok=True)
    claim = folder / CLAIM
    try:
        descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise OutputError(
            f"{folder}: already the folder of another run ({claim} exists); a run never writes into another's "
            f"folder. Leave {key} at its default (a new timestamped folder) or name a new one"
        ) from None
    with os.fdopen(descriptor, "w") as file:
        json.dump({"pid": os.getpid(), "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, file)
        file.write("\n")
    others = sorted(path.name for path in folder.iterdir() if path.name != CLAIM)
    if others:  # not ours to write into: give the folder back as we found it
        claim.unlink()
        raise OutputError(
            f"{folder}: not empty ({', '.join(others[:5])}{', ...' if len(others) > 5 else ''}); a run only writes "
            f"into a new or empty folder. Leave {key} at its default or name a new one"
        )
    return folder


def wait_for_claim(folder: str | os.PathLike, seconds: float = 120.0) -> None:
    """In a process of rank > 0 sharing rank zero's folder: wait until rank zero has claimed it (or the sweep folder
    holding it, for a trial of a sweep)."""
    deadline = time.monotonic() + seconds
    folder = Path(folder).absolute()
    while not any((place / CLAIM).is_file() for place in (folder, *folder.parents)):
        if time.monotonic() > deadline:
            raise OutputError(f"{folder}: rank zero did not claim this run folder within {seconds:.0f} s")
        time.sleep(0.1)


class ClaimRunFolder(Callback):
    """Hydra callback: claim the run folder (or the sweep folder) before Hydra writes `.hydra/` and the log there.

    Processes of rank > 0 share rank zero's folder: Lightning's DDP launcher starts them once rank zero has claimed
    it; under torchrun or SLURM every process starts at once, and those of rank > 0 wait for rank zero's claim.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._claim(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _claim(folder: str, key: str) -> None:
        try:
            if process_rank() == 0:
                claim_folder(folder, key)
            else:
                wait_for_claim(folder)
        except Exception as error:  # raised, Hydra would only warn and write into the folder anyway
            exit_on(as_user_error(error) or OutputError(f"{folder}: could not claim the run folder: {error!r}"))


def record_failure(folder: str | os.PathLike, message: str) -> None:
    """A run that failed keeps its folder, with the reason: `run.json` gets `"status": "failed"` and the error line,
    and the run's log file (train.log) the same line. Only in a folder this process claimed; a failure to record
    (a full disk) leaves the console line as the record."""
    claim = Path(folder) / CLAIM
    try:
        record = json.loads(claim.read_text()) if claim.is_file() else {}
        if record.get("pid") != os.getpid():  # not a folder this process claimed (predict.py, a DDP worker, a trial)
            return
        record |= {"status": "failed", "error": message, "ended": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        partial = claim.with_name(f".{CLAIM}.{os.getpid()}.part")
        partial.write_text(json.dumps(record) + "\n")
        os.replace(partial, claim)
    except (OSError, ValueError):
        return
    line = logging.LogRecord("logreg", logging.ERROR, __file__, 0, f"error: {message}", None, None)
    for handler in logging.getLogger().handlers:  # the run's log file; the console has the line already
        if isinstance(handler, logging.FileHandler):
            handler.handle(line)
            handler.flush()


# ------------------------------------------------------------------------------------------------- single files


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    same_kind: Callable[[Path], bool] | None = None,
    key: str = "output",
) -> Path:
    """Refuse an output path that would destroy something; return it as a Path.

    Args:
        path: where the output goes; a missing parent folder is created when the file is written.
        inputs: files this run reads: never replaced, whatever `overwrite` says.
        overwrite: whether an existing file may be replaced (only one for which `same_kind` is true).
        same_kind: tells an earlier output of the same kind (e.g. a predictions CSV) from any other file.
        key: the config key that named the path, for messages.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{key}={path}: is a folder; name a file (e.g. {key}={path / 'out'})")
    for source in inputs:
        if Path(source).exists() and path.exists() and os.path.samefile(path, source):
            raise OutputError(f"{key}={path}: is an input of this run ({source}); an output never replaces an input")
    if path.exists():
        if not overwrite:
            raise OutputError(f"{key}={path}: exists; name a new file, or overwrite=true to replace an earlier output")
        if same_kind is None or not same_kind(path):
            raise OutputError(f"{key}={path}: exists and is not an earlier output of this kind; it is left alone")
    return path


@contextmanager
def write_output(path: str | os.PathLike, *, named: bool = True, **checks: Any) -> Iterator[Path]:
    """Within: a temporary path beside `path` to write to. After: the finished file is put in place as `path`,
    claiming the name exclusively (a hard link, which fails if any file holds the name by then), so two writers of
    one new output can never both succeed; an existing file is replaced only as `check_output(path, **checks)`
    allows, checked again at that moment. A failure leaves `path` as it was and no temporary file.

    An OSError names `path` (with its config key, `output=...`, unless `named` is false: a run's own report files),
    never the temporary file.
    """
    path = check_output(path, **checks)
    shown = f"{checks.get('key', 'output')}={path}" if named else str(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield partial
        _put_in_place(partial, path, **checks)
    except OSError as error:
        raise OSError(error.errno, error.strerror, shown) from error
    finally:
        if os.path.lexists(partial):  # (unlink would fail anew where the folder itself is missing)
            partial.unlink()


_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS)


def _put_in_place(
    partial: Path,
    path: Path,
    *,
    overwrite: bool = False,
    same_kind: Callable[[Path], bool] | None = None,
    key: str = "output",
    **_: Any,
) -> None:
    """Give the finished file `partial` the name `path`: created exclusively, or (overwrite) replacing an earlier
    output of the same kind, checked now, not when writing began."""
    try:
        try:
            os.link(partial, path)  # the name is claimed and filled in one step; it fails if the name is taken
            return
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            # a filesystem without hard links: claim the name with an empty file, created exclusively, then fill it
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            os.replace(partial, path)
            return
    except FileExistsError:
        pass
    if not overwrite:
        raise OutputError(
            f"{key}={path}: was created by another process while this one wrote it; it is left alone: name a new "
            "file, or overwrite=true to replace an earlier output"
        )
    if same_kind is None or not same_kind(path):
        raise OutputError(f"{key}={path}: exists and is not an earlier output of this kind; it is left alone")
    os.replace(partial, path)


def write_text(path: str | os.PathLike, text: str, **checks: Any) -> Path:
    """Write a whole text file through `write_output` (a run's report files: metrics.json, coefficients.csv, ...)."""
    with write_output(path, named=False, **checks) as partial:
        partial.write_text(text)
    return Path(path)
