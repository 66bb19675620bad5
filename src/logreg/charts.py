"""The four evaluation charts (confusion matrix, ROC, precision-recall, reliability) as RGB images for TensorBoard.

Drawing a chart afresh costs about 0.1 s of CPU, almost all of it matplotlib laying out and drawing the axes' ticks,
labels and title, and a run draws eight (validation and test rows). Those do not change with the rows while the axes'
limits and title stay the same, so each chart's figure is built once per process and its fixed layer (background,
ticks, labels, title) drawn once per layout and kept; each image then restores that layer and draws only the artists
that hold the rows (lines, the matrix and its counts) and the frame over them, in the order a full draw does. The
image is the full draw's, pixel for pixel (tests/test_charts.py compares them on generated rows).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import binary_precision_recall_curve, binary_roc

from logreg.metrics import CALIBRATION_BINS
from logreg.report import confusion_matrix

KINDS = ("confusion_matrix", "roc", "pr_curve", "reliability")
LAYOUTS_KEPT = 8  # fixed layers kept per chart (400 x 400 RGBA each, 0.6 MB): the precision-recall chart's y-limits
# follow the rows, so a sweep's trials may need several


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


class Chart:
    """One chart's figure, built once: `fill(axes, probs, labels, threshold)` sets its artists' data (creating them
    the first time), `image()` draws it."""

    def __init__(self, fill: Callable[[Any, torch.Tensor, torch.Tensor, float], None]):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 4))
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.subplots()
        self.fill = fill
        self.layers: OrderedDict[tuple, Any] = OrderedDict()  # layout -> its fixed layer, drawn

    def image(self, probs: torch.Tensor, labels: torch.Tensor, threshold: float, fresh: bool = False) -> np.ndarray:
        """The chart of probabilities (N,) and labels (N,) as a (3, H, W) uint8 image; `fresh`: draw everything, as
        a new figure would (the reference the kept layers are tested against)."""
        axes, canvas = self.axes, self.canvas
        self.fill(axes, probs, labels, threshold)
        axes.relim()
        axes.autoscale_view()
        if fresh:
            canvas.draw()
        else:
            data = [*axes.images, *axes.lines, *axes.texts, *axes.spines.values()]
            layout = (tuple(axes.get_xlim()), tuple(axes.get_ylim()), axes.get_title())
            layer = self.layers.get(layout)
            if layer is None:
                try:
                    for artist in data:
                        artist.set_visible(False)
                    canvas.draw()
                finally:  # a failed draw must not leave the next image without its rows
                    for artist in data:
                        artist.set_visible(True)
                self.layers[layout] = canvas.copy_from_bbox(self.figure.bbox)
                while len(self.layers) > LAYOUTS_KEPT:
                    self.layers.popitem(last=False)
            else:
                canvas.restore_region(layer)
                self.layers.move_to_end(layout)
            # a full draw's order: by zorder, ties in the order the axes holds its children
            order = {id(artist): n for n, artist in enumerate(axes.get_children())}
            for artist in sorted(sorted(data, key=lambda a: order[id(a)]), key=attrgetter("zorder")):
                axes.draw_artist(artist)
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4)
        return np.ascontiguousarray(rgba[..., :3].transpose(2, 0, 1))


def _confusion(axes: Any, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> None:
    matrix = np.asarray(confusion_matrix(probs.numpy(), labels.numpy(), threshold))
    cells = ((0, 0), (0, 1), (1, 0), (1, 1))
    if not axes.images:
        axes.imshow(matrix, cmap="Blues")
        for row, column in cells:
            axes.text(column, row, "", ha="center", va="center")
        axes.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="true")
    image = axes.images[0]
    image.set_data(matrix)
    image.set_clim(matrix.min(), matrix.max())  # as imshow scales a new image's colours
    for text, (row, column) in zip(axes.texts, cells, strict=True):
        text.set_text(str(matrix[row][column]))
    axes.set_title(f"Confusion matrix (threshold {threshold:.3g})")


def _roc(axes: Any, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> None:
    false_positive_rate, true_positive_rate, _ = binary_roc(probs, labels.long())
    if not axes.lines:
        axes.plot([], [])
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    axes.lines[0].set_data(false_positive_rate.numpy(), true_positive_rate.numpy())


def _pr_curve(axes: Any, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> None:
    precision, recall, _ = binary_precision_recall_curve(probs, labels.long())
    if not axes.lines:
        axes.plot([], [])
        axes.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    axes.lines[0].set_data(recall.numpy(), precision.numpy())


def _reliability(axes: Any, probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> None:
    points = reliability(probs, labels)
    if not axes.lines:
        axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
        axes.plot([], [], marker="o")
        axes.set(
            xlabel="mean predicted probability",
            ylabel="observed share of class 1",
            title="Reliability",
            xlim=(0, 1),
            ylim=(0, 1),
        )
    axes.lines[1].set_data([p for p, _, _ in points], [o for _, o, _ in points])


FILLS = {"confusion_matrix": _confusion, "roc": _roc, "pr_curve": _pr_curve, "reliability": _reliability}
_charts: dict[str, Chart] = {}  # this process's, by kind


def chart(kind: str) -> Chart:
    """This process's chart of `kind` (one of KINDS), built on first use. Needs matplotlib."""
    if kind not in _charts:
        _charts[kind] = Chart(FILLS[kind])
    return _charts[kind]


def images(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, np.ndarray]:
    """Each chart of one stage's probabilities (N,) and labels (N,), by kind: (3, H, W) uint8 RGB images."""
    return {kind: chart(kind).image(probs, labels, threshold) for kind in KINDS}


def add_images(writer: Any, name: str, probs: torch.Tensor, labels: torch.Tensor, threshold: float, step: int) -> None:
    """Each chart of one stage into TensorBoard's `writer` (a SummaryWriter), as `<name>/<kind>` at `step`."""
    for kind, image in images(probs, labels, threshold).items():
        writer.add_image(f"{name}/{kind}", image, global_step=step)
