"""TensorBoard beyond scalars: confusion matrix, ROC, precision-recall and reliability curves, and weight histograms.

The images need matplotlib (the `plots` extra): it is not a base dependency because torchmetrics imports it at start-up
whenever it is installed (0.4 s of every run). Without it the callback says so once and still writes the histograms.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

log = logging.getLogger(__name__)


class EvaluationPlots(L.Callback):
    """Draw how the model separates the classes into the run's TensorBoard (IMAGES and HISTOGRAMS tabs).

    `val/confusion_matrix`, `val/roc`, `val/pr_curve`, `val/reliability` at the end of fit (the last validation epoch),
    the same for the test rows after testing (under the name the model logs its test metrics by), and `weights/*`
    histograms every training epoch. The curves come from the model's outputs over all processes' rows; rank zero draws.

    Args:
        histograms: write the weights' histograms every epoch.
    """

    def __init__(self, histograms: bool = False):
        self.histograms = histograms
        self.can_draw = importlib.util.find_spec("matplotlib") is not None
        self._said = False

    @staticmethod
    def _tensorboard(trainer: L.Trainer) -> Any:
        return next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def _draw(self, trainer: L.Trainer, pl_module: Any, stage: str, name: str) -> None:
        outputs, writer = pl_module.outputs(stage), self._tensorboard(trainer)
        if outputs is None or writer is None or not trainer.is_global_zero:
            return
        if not self.can_draw:
            if not self._said:
                log.warning("TensorBoard images need matplotlib: pip install 'logreg[plots]'")
                self._said = True
            return
        from logreg.charts import add_images

        probs, labels = outputs
        add_images(writer, name, probs, labels, pl_module.decision_threshold(), trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._draw(trainer, pl_module, "val", "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._draw(trainer, pl_module, "test", pl_module.test_prefix)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        writer = self._tensorboard(trainer)
        if self.histograms and writer is not None and trainer.is_global_zero:
            for name, parameter in pl_module.named_parameters():
                writer.add_histogram(f"weights/{name}", parameter.detach(), global_step=trainer.global_step)
