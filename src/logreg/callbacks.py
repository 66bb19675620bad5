"""Lightning callbacks that keep an interrupted run recoverable: `last.ckpt` kept current without slowing short
epochs, and, after Ctrl-C or SIGTERM, the command that resumes the run.

(Stopping a diverging run is the model's own job: `LogisticRegression` refuses to go on once its loss or weights are
not finite, before a checkpoint can store them.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class ResumeHint(L.Callback):
    """After Ctrl-C or SIGTERM, say which checkpoint resumes the run (Lightning has stopped it cleanly)."""

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not trainer.is_global_zero:
            return
        last = next((c.path for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)), None)
        if last is not None and last.is_file():
            epoch = trainer.current_epoch - 1
            print(f"\nInterrupted after epoch {epoch}. Resume with: ckpt_path={last}", file=sys.stderr)
        else:
            print("\nInterrupted before the first checkpoint was written: nothing to resume.", file=sys.stderr)


class LastCheckpoint(Checkpoint):
    """`last.ckpt`: the latest state of training, for resuming. Written at the end of an epoch once `every_seconds`
    have passed since it was last written, at the last epoch, and at the end of training (early stopping, max_steps,
    max_time), so a run killed at any moment loses at most about `every_seconds` of training; 0 writes it every
    epoch. Lab 5's epochs take a millisecond: a write each (1 to 2 ms) would double the run.

    Args:
        dirpath: the folder; the file is `<filename>.ckpt` there, always this one file.
        filename: the file's name without `.ckpt`.
        every_seconds: the least time between two writes within a run.
    """

    def __init__(self, dirpath: str, filename: str = "last", every_seconds: float = 1.0):
        if not 0 <= every_seconds < float("inf"):
            raise ValueError(f"callbacks.last_checkpoint.every_seconds={every_seconds}: expected a number >= 0")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.every_seconds = every_seconds
        self._written_at, self._written_step = -float("inf"), -1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        last_epoch = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if last_epoch or time.monotonic() - self._written_at >= self.every_seconds:
            self._write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.global_step != self._written_step:  # stopped before an epoch the schedule would have written
            self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        # Trainer.fast_dev_run is set outside the class (trainer/setup.py), so Lightning's types do not declare it
        fast_dev_run = trainer.fast_dev_run  # type: ignore[attr-defined]
        if fast_dev_run or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path)  # every process takes part; rank zero writes
        self._written_at, self._written_step = time.monotonic(), trainer.global_step
