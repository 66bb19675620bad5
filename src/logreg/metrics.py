"""What is measured on held-out rows, and the decision threshold chosen on them.

`evaluation_metrics` turns one stage's logits and labels into every number the model logs for it (the names are
`logreg.metric_names.STAGE_METRICS`); `choose_threshold` picks the probability cut that maximizes a criterion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_auroc, binary_calibration_error, binary_stat_scores

CALIBRATION_BINS = 15  # equal-width probability bins for the expected calibration error and the reliability diagram


def evaluation_metrics(logits: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """Every metric of a validation or test stage, from logits (N,) and labels (N,) in {0, 1}.

    loss is the mean log-loss (whatever pos_weight training used, so runs compare), brier the mean squared error of
    the probabilities, ece the expected calibration error over CALIBRATION_BINS bins; acc, f1, precision and recall
    count a row as predicted 1 when its probability is at least `threshold`.
    """
    probs, targets = torch.sigmoid(logits), labels.long()
    # The predicted labels, made here as everywhere else (p >= threshold): torchmetrics thresholds probabilities with
    # p > threshold, which counts the rows at a tuned threshold (always one of the probabilities) as predicted 0.
    predicted = (probs >= threshold).long()
    # The counts from torchmetrics, the ratios here in the logits' dtype (torchmetrics' own are float32 whatever the
    # input: under 64-true they would round F1 and the rest to 7 digits); 0/0 counts as 0, as torchmetrics does.
    tp, fp, tn, fn, _ = binary_stat_scores(predicted, targets, validate_args=False).to(logits.dtype)
    return {
        "loss": F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)),
        "acc": (tp + tn) / (tp + fp + tn + fn),
        "auroc": binary_auroc(probs, targets, validate_args=False),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "brier": torch.mean((probs - labels.to(probs.dtype)) ** 2),
        "ece": binary_calibration_error(probs, targets, n_bins=CALIBRATION_BINS, validate_args=False),
    }


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    return numerator / denominator if denominator > 0 else torch.zeros_like(numerator)


def choose_threshold(probs: torch.Tensor, labels: torch.Tensor, criterion: str, cost_ratio: float = 1.0) -> float:
    """The threshold t that, predicting 1 where probs >= t, maximizes `criterion`; t is one of `probs`, or just above
    them all (predict no row 1), whichever scores best:

    - "f1": 2 TP / (2 TP + FP + FN);
    - "youden": Youden's J, TPR - FPR (sensitivity + specificity - 1);
    - "cost": -(cost_ratio * FP + FN), the cost of the errors counted in false negatives.

    Among thresholds that tie, the largest (the fewest rows predicted 1). O(N log N): the counts at every candidate
    come from one sort; tests/test_statistics.py checks it against trying every candidate.

    The threshold returned is not the chosen probability itself but the float32 number halfway between it and the
    next lower probability (where one fits strictly between them in float32): the same rows are on each side
    whether the model and its threshold run in float32 or in float64 (a checkpoint trained at 64-true, loaded in
    float32), and a probability recomputed a few ulps off does not cross it.
    """
    probs, labels = probs.detach().double().flatten(), labels.detach().double().flatten()  # (N,), (N,)
    order = torch.argsort(probs, descending=True)
    sorted_probs, sorted_labels = probs[order], labels[order]
    last_of_value = torch.ones_like(sorted_probs, dtype=torch.bool)  # the last row of each run of equal probs
    last_of_value[:-1] = sorted_probs[1:] != sorted_probs[:-1]
    # Predicting 1 for every row down to each candidate; the first candidate, above every probability, predicts none.
    zero = torch.zeros(1, dtype=probs.dtype)
    true_positives = torch.cat([zero, torch.cumsum(sorted_labels, 0)[last_of_value]])
    false_positives = torch.cat([zero, torch.cumsum(1 - sorted_labels, 0)[last_of_value]])
    # The next float32 above the top probability: above it in float32 too, where the model's threshold buffer keeps
    # it (float64's next number would round back to the top probability there, and predict its rows 1).
    top = sorted_probs[:1].float()
    above_all = torch.nextafter(top, torch.full_like(top, 2.0)).double().clamp(max=1.0)
    candidates = torch.cat([above_all, sorted_probs[last_of_value]])  # descending
    positives, negatives = labels.sum(), len(labels) - labels.sum()
    false_negatives = positives - true_positives
    if criterion == "f1":
        score = 2 * true_positives / (2 * true_positives + false_positives + false_negatives)
    elif criterion == "youden":
        score = true_positives / positives.clamp(min=1) - false_positives / negatives.clamp(min=1)
    elif criterion == "cost":
        score = -(cost_ratio * false_positives + false_negatives)
    else:
        raise ValueError(f"criterion={criterion!r}: expected f1, youden or cost")
    best = int(torch.argmax(torch.nan_to_num(score, nan=-torch.inf)))  # argmax takes the first: the largest threshold
    threshold = float(candidates[best])
    if best > 0:  # a probability was chosen: move to the middle of the gap below it
        lower = float(candidates[best + 1]) if best + 1 < len(candidates) else 0.0
        middle = torch.tensor((threshold + lower) / 2, dtype=torch.float32)
        lower32 = torch.tensor(lower, dtype=torch.float32)
        if lower < float(middle) <= threshold and bool(lower32 < middle):
            threshold = float(middle)
    return min(max(threshold, torch.finfo(torch.float32).tiny), 1.0)
