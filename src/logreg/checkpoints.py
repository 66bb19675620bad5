"""Checkpoints: written atomically and never over another run's file; read once, safely, as this project's model and
the DataModule that trained it.

`AtomicCheckpointIO` is the Trainer's checkpoint plugin (train.py adds it): Lightning saves and loads through it, so
`trainer.fit(ckpt_path=...)` reads the file that train.py already read and checked, not a second time.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from logreg.data import DATAMODULES, TabularDataModule
from logreg.errors import CheckpointError, OutputError, UserError
from logreg.model import LogisticRegression

LIGHTNING_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version")


def read_checkpoint(path: str | os.PathLike, trust: bool = False) -> dict[str, Any]:
    """The checkpoint at `path`, loaded with torch's weights-only unpickler (unless `trust`), on the CPU.

    Raises:
        CheckpointError: in one line, for a file that is not a checkpoint of this project (missing, empty,
            truncated, another program's file, another model's checkpoint), or one holding pickled Python objects
            beyond tensors and plain values while `trust` is false (loading those could run code).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file; checkpoints are in logs/runs/<run>/checkpoints/")
    not_ours = f"ckpt_path={path}: not a checkpoint of this project"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive: an empty, truncated or foreign file is not one
        size = path.stat().st_size
        raise CheckpointError(f"{not_ours} ({'an empty file' if size == 0 else 'not a PyTorch checkpoint file'})")
    if not trust:
        foreign = [name for name in pickled_globals(path) if name not in weights_only_globals()]
        if foreign:
            shown = ", ".join(sorted(set(foreign))[:3]) + (", ..." if len(set(foreign)) > 3 else "")
            raise CheckpointError(
                f"ckpt_path={path} holds pickled Python objects ({shown}) beyond tensors and plain values; loading "
                "it would import and run them, so it was refused and nothing was run. trust_checkpoint=true would "
                "run them: only for a file you trust"
            )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as error:  # a damaged archive: zip, pickle or storage errors of every kind
        raise CheckpointError(
            f"{not_ours} (unreadable: {type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    missing = [key for key in LIGHTNING_KEYS if not (isinstance(checkpoint, dict) and key in checkpoint)]
    if missing:
        raise CheckpointError(f"{not_ours} (not a Lightning checkpoint: no {', '.join(missing)})")
    return checkpoint


_TEXT_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPCODES = {"BINGET", "LONG_BINGET", "GET"}
_PUT_OPCODES = {"BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"}
_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # as pickle's fix_imports reads them


def pickled_globals(path: str | os.PathLike) -> list[str]:
    """`module.name` of every global that the pickle inside the checkpoint (its zip's `data.pkl`) would import, read
    from the pickle's opcodes (GLOBAL, INST, STACK_GLOBAL), with nothing imported or run. [] for a file that is not
    such a zip, or whose pickle cannot be read through (torch.load then says what is wrong with it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
            data = archive.read(name) if name else b""
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError):
        return []
    found: list[str] = []
    pushed: list[str | None] = []  # what the last opcodes pushed: a string, or None for anything else
    memo: dict[Any, str | None] = {}
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):  # argument: "module name" (Python 2's module names below 3)
                module, _, attribute = str(argument).partition(" ")
                found.append(f"{_PYTHON2_MODULES.get(module, module)}.{attribute}")
            elif opcode.name == "STACK_GLOBAL":  # the module and the name are the two strings pushed last
                named_module, named = pushed[-2:] if len(pushed) >= 2 else [None, None]
                found.append(f"{named_module}.{named}" if named_module and named else "<a global named at run time>")
            if opcode.name in _TEXT_OPCODES:
                pushed.append(argument if isinstance(argument, str) else None)
            elif opcode.name in _GET_OPCODES:
                pushed.append(memo.get(argument))
            elif opcode.name in _PUT_OPCODES:
                memo[len(memo) if opcode.name == "MEMOIZE" else argument] = pushed[-1] if pushed else None
            else:
                pushed.append(None)
    except Exception:  # a damaged pickle: what was read so far still counts
        pass
    return found


def weights_only_globals() -> set[str]:
    """`module.name` of every global torch's weights-only unpickler loads: its own allowlist (a private function,
    guarded: a rename fails loudly) and what was added with torch.serialization.add_safe_globals."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
    except ImportError as error:  # pragma: no cover - a torch that renamed it
        raise RuntimeError(f"torch changed its weights-only unpickler ({error}); update logreg.checkpoints") from error
    added = {
        f"{item.__module__}.{item.__qualname__}"
        for item in torch.serialization.get_safe_globals()
        if not isinstance(item, tuple) and hasattr(item, "__qualname__")
    }
    added |= {name for item in torch.serialization.get_safe_globals() if isinstance(item, tuple) for name in item[1:]}
    return set(_get_allowed_globals()) | added


def model_from_checkpoint(
    checkpoint: dict[str, Any], ckpt_path: str | os.PathLike = "checkpoint"
) -> LogisticRegression:
    """The LogisticRegression a checkpoint holds (weights, hyperparameters, scaler, threshold), in eval mode."""
    not_ours = f"ckpt_path={ckpt_path}: not a checkpoint of this project"
    try:
        model = LogisticRegression(**checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"], strict=False)
    except (TypeError, RuntimeError, UserError) as error:
        raise CheckpointError(
            f"{not_ours} (its model is not a LogisticRegression: {str(error).splitlines()[0]})"
        ) from None
    unexpected = set(checkpoint["state_dict"]) - set(model.state_dict())
    missing = {"linear.weight", "linear.bias"} - set(checkpoint["state_dict"])
    if unexpected or missing:
        raise CheckpointError(f"{not_ours} (weights {sorted(unexpected or missing)[:3]} do not fit LogisticRegression)")
    return model.eval()


def datamodule_from_checkpoint(
    checkpoint: dict[str, Any], ckpt_path: str | os.PathLike = "checkpoint", **changes: Any
) -> tuple[TabularDataModule, dict]:
    """The DataModule a checkpoint was trained with (its class from this project's allowlist, never imported by
    name), with `changes` to its options (e.g. data_dir on another machine); and the data spec it recorded."""
    name = _datamodule_name(checkpoint)
    if name not in DATAMODULES:
        raise CheckpointError(
            f"ckpt_path={ckpt_path}: records no data this project knows (expected one of {', '.join(DATAMODULES)})"
        )
    options = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    if "test_split" in options:  # checkpoints before data.test_on
        options["test_on"] = options.pop("test_split") or options.get("test_on", "test")
    spec = data_spec(checkpoint)
    if spec.get("header") and spec.get("raw_features") and spec.get("label") is not None:
        # by name, in whatever order the file has them
        changes = {"features": list(spec["raw_features"]), "label_column": spec["label"], **changes}
    datamodule = DATAMODULES[name](**{**options, **changes})
    if spec.get("encoding"):  # the model's features, whatever the rows given now would teach
        datamodule.use_encoding(spec["encoding"])
    return datamodule, spec


def _datamodule_name(checkpoint: dict[str, Any]) -> str:
    names = [name for name in DATAMODULES if name in checkpoint]  # Lightning stores its state under its class name
    return names[0] if names else str(checkpoint.get("datamodule_class", "")).rpartition(".")[2]  # older checkpoints


def data_spec(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What the checkpoint recorded of its training data (`Table.spec`: rows, fingerprint, feature names), or {}."""
    spec = checkpoint.get(_datamodule_name(checkpoint), {})
    return spec if isinstance(spec, dict) else {}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save each checkpoint to a temporary file in the same folder, then rename it into place; load through
    `read_checkpoint`, once per file.

    A crash while saving leaves the previous checkpoint intact, never a truncated one. A file this run did not write
    is never replaced nor deleted (a checkpoint folder shared with an earlier run keeps that run's files). Files are
    not flushed to disk at every save, which costs milliseconds per epoch: a killed process loses nothing the
    operating system holds; `teardown` (the end of the run) flushes them all.

    Args:
        trust: load checkpoints that hold arbitrary pickled objects (trust_checkpoint).
    """

    def __init__(self, trust: bool = False):
        super().__init__()
        self.trust = trust
        self._written: set[Path] = set()
        self._read: dict[Path, dict[str, Any]] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        if path.exists() and path.resolve() not in self._written:
            raise OutputError(
                f"{path}: a checkpoint this run did not write; a run never replaces another's files. Point the "
                "checkpoint callbacks' dirpath at a new folder (the default is inside the run folder)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with partial.open("wb") as file:
                torch.save(checkpoint, file)
            os.replace(partial, path)
        except OSError as error:  # a write names no file: say which checkpoint it was
            raise OSError(error.errno, error.strerror, error.filename or str(path)) from error
        finally:
            partial.unlink(missing_ok=True)
        self._written.add(path.resolve())

    def amend(self, path: str | os.PathLike, extra: dict[str, Any]) -> None:
        """Add the plain values `extra` to a checkpoint this run wrote (read weights-only, written atomically), all
        else as it was; refused, as any save, for a file this run did not write."""
        checkpoint = read_checkpoint(path, trust=self.trust)
        self.save_checkpoint({**checkpoint, **extra}, path)

    def remove_checkpoint(self, path: Any) -> None:
        if Path(path).resolve() in self._written:  # an earlier best of this run; anyone else's file stays
            Path(path).unlink(missing_ok=True)
            self._written.discard(Path(path).resolve())

    def read(self, path: str | os.PathLike) -> dict[str, Any]:
        """The checkpoint at `path` (see `read_checkpoint`), kept for Lightning's own load of the same file."""
        checkpoint = read_checkpoint(path, trust=self.trust)
        self._read[Path(path).resolve()] = checkpoint
        return checkpoint

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        kept = self._read.pop(Path(path).resolve(), None)
        return kept if kept is not None else read_checkpoint(path, trust=self.trust)

    def teardown(self) -> None:
        """Flush this run's checkpoints to disk, so they survive a power loss too."""
        for path in self._written:
            if path.is_file():
                with path.open("rb") as file:
                    os.fsync(file.fileno())
