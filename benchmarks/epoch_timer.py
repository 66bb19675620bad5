"""A Lightning callback for benchmarks: each process's wall and CPU seconds per training epoch, into a JSON file.

    python train.py +callbacks.epoch_timer._target_=epoch_timer.EpochTimer +callbacks.epoch_timer.folder=DIR ...

(with benchmarks/ on PYTHONPATH) writes DIR/epochs-<global rank>.json: [[wall, cpu], ...], one pair per epoch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L


class EpochTimer(L.Callback):
    def __init__(self, folder: str):
        self.folder, self.epochs, self.start = Path(folder), [], (0.0, 0.0)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append([time.perf_counter() - self.start[0], time.process_time() - self.start[1]])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"epochs-{trainer.global_rank}.json").write_text(json.dumps(self.epochs))
