"""TensorBoard beyond scalars: confusion matrix, ROC, precision-recall and reliability curves, and weight histograms.

The images need matplotlib (the `plots` extra): it is not a base dependency because torchmetrics imports it at start-up
whenever it is installed (0.4 s of every run). Without it the callback says so once and still writes the histograms.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torchmetrics.functional.classification import binary_precision_recall_curve, binary_roc

from logreg.metrics import CALIBRATION_BINS
from logreg.report import confusion_matrix

log = logging.getLogger(__name__)


def reliability(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = CALIBRATION_BINS
) -> list[tuple[float, float, int]]:
    """(mean predicted probability, observed share of class 1, rows) of each non-empty equal-width probability bin."""
    index = torch.clamp((probs * bins).long(), max=bins - 1)  # (N,) bin of each row; p = 1 goes to the last bin
    points = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count:
            points.append((float(probs[members].mean()), float(labels[members].float().mean()), count))
    return points


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
        import matplotlib

        matplotlib.use("Agg")  # render to images, no display needed
        import matplotlib.pyplot as plt

        probs, labels = outputs
        threshold = pl_module.decision_threshold()
        for kind, figure in self.figures(plt, probs, labels, threshold).items():
            writer.add_figure(f"{name}/{kind}", figure, global_step=trainer.global_step)
            plt.close(figure)

    @staticmethod
    def figures(plt: Any, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, Any]:
        """The images of one stage's probabilities (N,) and labels (N,), by name (drawn with matplotlib's `plt`)."""
        targets = labels.long()
        figures = {}
        figure, axes = plt.subplots(figsize=(4, 4))
        matrix = confusion_matrix(probs.numpy(), labels.numpy(), threshold)
        axes.imshow(matrix, cmap="Blues")
        for (row, column), count in ((rc, matrix[rc[0]][rc[1]]) for rc in ((0, 0), (0, 1), (1, 0), (1, 1))):
            axes.text(column, row, str(count), ha="center", va="center")
        axes.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xlabel="predicted",
            ylabel="true",
            title=f"Confusion matrix (threshold {threshold:.3g})",
        )
        figures["confusion_matrix"] = figure
        false_positive_rate, true_positive_rate, _ = binary_roc(probs, targets)
        figure, axes = plt.subplots(figsize=(4, 4))
        axes.plot(false_positive_rate, true_positive_rate)
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        figures["roc"] = figure
        precision, recall, _ = binary_precision_recall_curve(probs, targets)
        figure, axes = plt.subplots(figsize=(4, 4))
        axes.plot(recall, precision)
        axes.set(xlabel="recall", ylabel="precision", title="Precision-recall")
        figures["pr_curve"] = figure
        figure, axes = plt.subplots(figsize=(4, 4))
        points = reliability(probs, labels)
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.plot([p for p, _, _ in points], [o for _, o, _ in points], marker="o")
        axes.set(
            xlabel="mean predicted probability",
            ylabel="observed share of class 1",
            title="Reliability",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        figures["reliability"] = figure
        return figures

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._draw(trainer, pl_module, "val", "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._draw(trainer, pl_module, "test", pl_module.test_prefix)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        writer = self._tensorboard(trainer)
        if self.histograms and writer is not None and trainer.is_global_zero:
            for name, parameter in pl_module.named_parameters():
                writer.add_histogram(f"weights/{name}", parameter.detach(), global_step=trainer.global_step)
