"""Checkpoints: written atomically, and read back safely as the model and the DataModule that trained it."""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from logreg.data import TabularDataModule
from logreg.errors import ConfigError
from logreg.model import LogisticRegression


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file in the same folder, flush it to disk, then rename it into place.

    A crash while saving leaves the previous checkpoint intact (plus a stray `.*.part` file), never a truncated one.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with partial.open("wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def load_checkpoint(
    path: str | os.PathLike, trust: bool = False, **data_options
) -> tuple[LogisticRegression, TabularDataModule]:
    """The model of a checkpoint (weights, hyperparameters and scaler) and a DataModule with the data options it was
    trained with, updated by `data_options` (e.g. data_dir on another machine).

    Loads with torch's weights_only unpickler: a checkpoint holding arbitrary Python objects is refused unless
    `trust` is set, since unpickling those can run code.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no such file; checkpoints are in logs/runs/<run>/checkpoints/")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as error:
        raise ConfigError(
            f"ckpt_path={path} holds pickled Python objects beyond tensors and plain values; loading it could run "
            "arbitrary code, so it was refused. If you trust where it came from: trust_checkpoint=true"
        ) from error
    model = LogisticRegression(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    module_name, _, class_name = checkpoint.get("datamodule_class", "logreg.data.CSVDataModule").rpartition(".")
    datamodule_class = getattr(importlib.import_module(module_name), class_name)
    if not issubclass(datamodule_class, TabularDataModule):
        raise ConfigError(f"ckpt_path={path}: its data class {datamodule_class} is not a TabularDataModule")
    options = {**checkpoint.get("datamodule_hyper_parameters", {}), **data_options}
    return model, datamodule_class(**options)
