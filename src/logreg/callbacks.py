"""Lightning callbacks that keep a run's results safe: stop on divergence, say how to resume after an interruption."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from logreg.errors import TrainingDiverged


class StopOnNonFinite(L.Callback):
    """Stop training when the weights stop being finite numbers, before a checkpoint can store them.

    Checked once per epoch (one device sync), before validation and before the end-of-epoch checkpoint, so the
    checkpoints on disk are all from epochs whose weights were finite.
    """

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if all(torch.isfinite(p).all() for p in pl_module.parameters()):  # (one sync per parameter: w and b)
            return
        optimizer = dict(pl_module.hparams.get("optimizer", {}))
        raise TrainingDiverged(
            f"the weights became NaN or infinite during epoch {trainer.current_epoch}; the learning rate "
            f"(lr={optimizer.get('lr')}, optimizer {optimizer.get('name')}) is the likely cause: try a smaller lr, "
            f"e.g. lr={optimizer.get('lr', 1) / 10:g}. Checkpoints of earlier epochs are kept."
        )

    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == "fit":  # validation inside fit runs before this epoch's checkpoint is written
            self._check(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._check(trainer, pl_module)


class ResumeHint(L.Callback):
    """After Ctrl-C or SIGTERM, say which checkpoint resumes the run (Lightning has stopped it cleanly)."""

    def on_exception(self, trainer, pl_module, exception):
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
