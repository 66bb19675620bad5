"""The evaluation charts drawn over kept layers are the charts a full draw gives, pixel for pixel."""

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

from logreg import charts  # noqa: E402


def rows(case: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Generated rows: sizes from 1 to 400, skewed and tied probabilities, 0 and 1 exactly, one class only."""
    generator = torch.Generator().manual_seed(case)
    n = [1, 2, 7, 60, 400][case % 5]
    probs = torch.rand(n, generator=generator) ** [1, 3, 0.3][case % 3]
    if case % 4 == 1:
        probs = torch.round(probs * 4) / 4  # ties, and probabilities of exactly 0 and 1
    labels = (torch.rand(n, generator=generator) < probs).float()
    if case % 7 == 3:
        labels = torch.full((n,), float(case % 2))  # one class only
    return probs, labels, [0.5, 0.3, 0.71234, 0.05][case % 4]


CASES = range(8)  # every size, skew and threshold, ties, and one class only


@pytest.mark.filterwarnings("ignore:No (positive|negative) samples (in|found in) target:UserWarning")  # one class
@pytest.mark.parametrize("kind", charts.KINDS)
def test_a_chart_over_its_kept_layer_is_the_full_draw_of_a_new_figure(kind):
    kept = charts.Chart(charts.FILLS[kind])
    for case in CASES:
        probs, labels, threshold = rows(case)
        image = kept.image(probs, labels, threshold)
        reference = charts.Chart(charts.FILLS[kind]).image(probs, labels, threshold, fresh=True)
        assert image.dtype == np.uint8 and image.shape == reference.shape == (3, 400, 400), case
        assert np.array_equal(image, reference), (kind, case, int((image != reference).sum()))


def test_a_chart_keeps_at_most_a_bounded_number_of_layers():
    chart = charts.Chart(charts.FILLS["confusion_matrix"])
    probs, labels, _ = rows(3)
    for n in range(charts.LAYOUTS_KEPT + 3):  # each threshold is its own title, so its own layout
        chart.image(probs, labels, 0.1 + n / 100)
    assert len(chart.layers) == charts.LAYOUTS_KEPT
