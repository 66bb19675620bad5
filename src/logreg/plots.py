"""TensorBoard beyond scalars: confusion matrix, ROC and precision-recall curves, and weight histograms."""

from __future__ import annotations

import lightning as L
import matplotlib

matplotlib.use("Agg")  # render to images, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from torchmetrics import MetricCollection  # noqa: E402
from torchmetrics.classification import BinaryConfusionMatrix, BinaryPrecisionRecallCurve, BinaryROC  # noqa: E402


class EvaluationPlots(L.Callback):
    """Draw how the model separates the classes, into the run's TensorBoard (IMAGES and HISTOGRAMS tabs).

    `val/confusion_matrix`, `val/roc`, `val/pr_curve` at the end of fit (from the last validation epoch), the same for
    `test/` after testing, and `weights/*` histograms every training epoch. The curves are torchmetrics, computed over
    all processes' rows; rank zero draws them. `confusion_matrix[stage]` keeps the last 2x2 counts [[tn, fp], [fn, tp]].

    Args:
        threshold: probability at or above which a row counts as predicted 1 in the confusion matrix.
    """

    def __init__(self, threshold: float = 0.5):
        self.curves = {
            stage: MetricCollection({
                "confusion_matrix": BinaryConfusionMatrix(threshold, validate_args=False),
                "roc": BinaryROC(validate_args=False),  # shares its stored predictions with pr_curve
                "pr_curve": BinaryPrecisionRecallCurve(validate_args=False),
            })
            for stage in ("val", "test")
        }
        self.confusion_matrix: dict = {}

    @staticmethod
    def _tensorboard(trainer: L.Trainer):
        return next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        self.curves[stage] = self.curves[stage].to(pl_module.device)
        self.curves[stage].reset()

    def _update(self, stage: str, outputs) -> None:
        probs, labels = outputs  # (B,), (B,) in {0, 1}
        self.curves[stage].update(probs, labels.long())

    def _draw(self, stage: str, trainer: L.Trainer) -> None:
        curves = self.curves[stage]
        if not curves["confusion_matrix"].update_called:
            return
        results = curves.compute()  # every rank takes part: the states are gathered across processes
        self.confusion_matrix[stage] = results["confusion_matrix"].tolist()
        writer = self._tensorboard(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        for name, metric in curves.items():
            figure, _ = metric.plot(results[name], **({} if name == "confusion_matrix" else {"score": True}))
            writer.add_figure(f"{stage}/{name}", figure, global_step=trainer.global_step)
            plt.close(figure)

    def on_validation_epoch_start(self, trainer, pl_module):
        self._start("val", pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update("val", outputs)

    def on_train_end(self, trainer, pl_module):
        self._draw("val", trainer)

    def on_test_epoch_start(self, trainer, pl_module):
        self._start("test", pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update("test", outputs)

    def on_test_epoch_end(self, trainer, pl_module):
        self._draw("test", trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        writer = self._tensorboard(trainer)
        if writer is not None and trainer.is_global_zero:
            for name, parameter in pl_module.named_parameters():
                writer.add_histogram(f"weights/{name}", parameter.detach(), global_step=trainer.global_step)
