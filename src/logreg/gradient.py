"""The closed-form loss and gradient of logistic regression's mean binary cross-entropy, without autograd.

For rows x_i (F,), labels y_i in {0, 1}, logits z_i = x_i . w + b and class-1 weight c (`pos_weight`):

    loss_i = c y_i softplus(-z_i) + (1 - y_i) softplus(z_i)        (BCE on logits; c = 1 is lab 5's loss)
    r_i = d loss_i / d z_i = (1 - y_i) sigmoid(z_i) - c y_i sigmoid(-z_i)     (= sigmoid(z_i) - y_i when c = 1)
    dL/dw = sum_i r_i x_i / B,   dL/db = sum_i r_i / B                  for the mean L over a batch of B rows

One pass over the rows, in blocks of BLOCK_ROWS: each block's logits, residuals, loss and correct predictions are
computed while its rows are in cache, so a large batch reads the features from memory once (autograd reads them
twice: forward, then backward). tests/test_gradient.py checks all of it against torch.autograd.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

BLOCK_ROWS = 1 << 15  # 32k rows of 8 float32 features = 1 MiB: stays in a core's L2 cache between the two passes


class BatchGradient(NamedTuple):
    loss_sum: torch.Tensor  # () sum of loss_i over the batch
    correct: torch.Tensor  # () rows whose prediction (probability >= threshold) equals the label
    weight: torch.Tensor  # (F,) dL/dw of the mean loss
    bias: torch.Tensor  # () dL/db of the mean loss


def _block(
    rows: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    pos_weight: float,
    threshold: float,
    scale: float,
    curvature_sums: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss sum, correct count, and `scale` times the sums of r_i x_i and of r_i, over rows (n, F), labels (n,);
    with `curvature_sums` (X' V X (F, F), X' v (F,), sum v ()), the block's terms of the Hessian added to them."""
    logits = torch.addmv(bias, rows, weight)  # (n,)
    probs = torch.sigmoid(logits)
    if curvature_sums is not None:
        _add_curvature(rows, labels, probs, pos_weight, *curvature_sums)
    if pos_weight == 1.0:
        residuals = probs - labels
        # sum of softplus(z) - y z, where softplus(z) = log(1 + e^z) is computed stably for any z
        loss_sum = F.softplus(logits).sum() - torch.dot(labels, logits)
    else:
        residuals = (1 - labels) * probs - pos_weight * labels * (1 - probs)
        loss_sum = torch.dot(F.softplus(logits), 1 + (pos_weight - 1) * labels) - pos_weight * torch.dot(labels, logits)
    correct = torch.count_nonzero((probs >= threshold) == labels.bool())  # on booleans: faster than on the floats
    if scale != 1.0:
        residuals.mul_(scale)
    return loss_sum, correct, torch.mv(rows.T, residuals), residuals.sum()


def bce_gradient(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    pos_weight: float = 1.0,
    threshold: float = 0.5,
) -> BatchGradient:
    """Loss sum, correct predictions and the gradient of the mean BCE for one batch.

    Args:
        features: (B, F) rows as the weights see them.
        labels: (B,) in {0, 1}, of the features' dtype.
        weight: (F,) and bias: () the logit's coefficients.
        pos_weight: the weight c of class-1 rows in the loss.
        threshold: a row is predicted 1 when its probability is at least this.
    """
    n_rows = len(labels)
    if n_rows <= BLOCK_ROWS:  # a mini-batch: one block, no slicing (every op counts at 64 rows)
        return BatchGradient(*_block(features, labels, weight, bias, pos_weight, threshold, 1 / n_rows))
    loss_sum, correct = torch.zeros_like(bias), torch.zeros((), dtype=torch.int64, device=labels.device)
    grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(bias)
    for start in range(0, n_rows, BLOCK_ROWS):  # one cache-sized block after the other; sums, divided once at the end
        stop = start + BLOCK_ROWS
        block = _block(features[start:stop], labels[start:stop], weight, bias, pos_weight, threshold, 1.0)
        loss_sum += block[0]
        correct += block[1]
        grad_weight += block[2]
        grad_bias += block[3]
    return BatchGradient(loss_sum, correct, grad_weight / n_rows, grad_bias / n_rows)


def _add_curvature(
    rows: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    pos_weight: float,
    gram: torch.Tensor,
    column: torch.Tensor,
    total: torch.Tensor,
) -> None:
    """Add a block's X' V X, X' v and sum v, v_i = (1 + (c - 1) y_i) p_i (1 - p_i), to gram (F, F), column (F,) and
    total ()."""
    curvature = probs * (1 - probs)  # (n,)
    if pos_weight != 1.0:
        curvature.mul_(1 + (pos_weight - 1) * labels)
    weighted = rows.T * curvature  # (F, n): contiguous along the rows for column-major features
    gram.addmm_(weighted, rows)
    column += weighted.sum(1)
    total += curvature.sum()


def bce_gradient_and_hessian(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    pos_weight: float = 1.0,
    threshold: float = 0.5,
) -> tuple[BatchGradient, torch.Tensor]:
    """`bce_gradient`'s result and the (F+1, F+1) Hessian of the mean BCE in (w, b), the bias last, in one pass:
    X~' diag(v) X~ / B for X~ = [X, 1] and v_i = d2 loss_i / d z_i^2 = (1 + (c - 1) y_i) p_i (1 - p_i), in blocks of
    BLOCK_ROWS rows (for Newton's method: every evaluation needs both).

    Args:
        features: (B, F) rows as the weights see them; labels: (B,); weight: (F,); bias: ().
    """
    n_rows, n_features = features.shape
    dtype, device = features.dtype, features.device
    sums = (
        torch.zeros(n_features, n_features, dtype=dtype, device=device),
        torch.zeros(n_features, dtype=dtype, device=device),
        torch.zeros((), dtype=dtype, device=device),
    )
    loss_sum, correct = torch.zeros_like(bias), torch.zeros((), dtype=torch.int64, device=labels.device)
    grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(bias)
    for start in range(0, n_rows, BLOCK_ROWS):
        stop = start + BLOCK_ROWS
        block = _block(features[start:stop], labels[start:stop], weight, bias, pos_weight, threshold, 1.0, sums)
        loss_sum += block[0]
        correct += block[1]
        grad_weight += block[2]
        grad_bias += block[3]
    gram, column, total = sums
    hessian = torch.empty(n_features + 1, n_features + 1, dtype=dtype, device=device)
    hessian[:n_features, :n_features], hessian[n_features, n_features] = gram, total
    hessian[:n_features, n_features], hessian[n_features, :n_features] = column, column
    return BatchGradient(loss_sum, correct, grad_weight / n_rows, grad_bias / n_rows), hessian / n_rows


def bce_hessian(
    features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pos_weight: float = 1.0
) -> torch.Tensor:
    """The (F+1, F+1) Hessian of the mean BCE in (w, b), the bias last (`bce_gradient_and_hessian`'s)."""
    return bce_gradient_and_hessian(features, labels, weight, bias, pos_weight)[1]
