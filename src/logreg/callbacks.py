"""A Lightning callback that keeps an interrupted run recoverable: it says how to resume after Ctrl-C or SIGTERM.

(Stopping a diverging run is the model's own job: `LogisticRegression` refuses to go on once its loss or weights are
not finite, before a checkpoint can store them.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException


class ResumeHint(L.Callback):
    """After Ctrl-C or SIGTERM, say which checkpoint resumes the run (Lightning has stopped it cleanly)."""

    def on_exception(self, trainer: L.Trainer, pl_module: Any, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or not trainer.is_global_zero:
            return
        # The latest epoch's checkpoint: that of a checkpoint callback with no metric to monitor (last.ckpt).
        paths = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor is None and c.best_model_path]
        last = Path(paths[0]) if paths else None
        if last is not None and last.is_file():
            epoch = trainer.current_epoch - 1
            print(f"\nInterrupted after epoch {epoch}. Resume with: ckpt_path={last}", file=sys.stderr)
        else:
            print("\nInterrupted before the first checkpoint was written: nothing to resume.", file=sys.stderr)
