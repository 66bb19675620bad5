"""The fast path is exact: the closed-form loss and gradient equal autograd's, and training with it follows the
autograd path (lab 5's code) step for step."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_table, sampled, write_table
from logreg.gradient import BLOCK_ROWS, bce_gradient


def autograd_reference(features, labels, weight, bias, pos_weight=1.0, threshold=0.5):
    """Loss sum, correct predictions and the mean loss's gradient, by autograd on BCE with logits, in float64."""
    weight = weight.double().clone().requires_grad_(True)
    bias = bias.double().clone().requires_grad_(True)
    logits = features.double() @ weight + bias
    losses = F.binary_cross_entropy_with_logits(
        logits, labels.double(), pos_weight=torch.tensor(pos_weight, dtype=torch.float64), reduction="none"
    )
    losses.mean().backward()
    correct = ((torch.sigmoid(logits) >= threshold).double() == labels.double()).sum()
    return losses.sum().item(), correct.item(), weight.grad, bias.grad


@pytest.mark.parametrize("n_rows", [1, 64, 1000, BLOCK_ROWS + 17])  # one row, a mini-batch, several blocks
@pytest.mark.parametrize("pos_weight", [1.0, 3.5, 0.25])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_closed_form_gradient_equals_autograds(n_rows, pos_weight, seed):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n_rows, 7, generator=generator) * 3  # (N, F)
    labels = (torch.rand(n_rows, generator=generator) < 0.3).float()
    weight, bias = torch.randn(7, generator=generator), torch.randn((), generator=generator)

    result = bce_gradient(features, labels, weight, bias, pos_weight, threshold=0.4)

    loss_sum, correct, grad_weight, grad_bias = autograd_reference(features, labels, weight, bias, pos_weight, 0.4)
    tolerance = 1e-5 if n_rows <= 1000 else 1e-4  # float32 sums over 32k rows against float64: rounding grows
    assert result.loss_sum.item() == pytest.approx(loss_sum, rel=tolerance)
    assert result.correct.item() == correct
    torch.testing.assert_close(result.weight.double(), grad_weight, rtol=tolerance, atol=1e-6)
    torch.testing.assert_close(result.bias.double(), grad_bias, rtol=tolerance, atol=1e-6)


def test_saturated_logits_give_finite_losses_and_gradients():
    features = torch.tensor([[100.0], [-100.0], [100.0]])
    labels = torch.tensor([1.0, 0.0, 0.0])  # the last row: wrong with all the confidence a float32 has

    result = bce_gradient(features, labels, torch.ones(1), torch.zeros(()))

    assert result.loss_sum.item() == pytest.approx(100.0, rel=1e-6)  # -log(1 - sigmoid(100))
    assert torch.isfinite(result.weight).all() and torch.isfinite(result.bias)


def test_float64_weights_give_a_float64_gradient():
    features, labels = torch.randn(10, 3, dtype=torch.float64), torch.ones(10, dtype=torch.float64)

    result = bce_gradient(features, labels, torch.zeros(3, dtype=torch.float64), torch.zeros((), dtype=torch.float64))

    assert result.weight.dtype == result.loss_sum.dtype == torch.float64


def final_weights(run, tmp_path, csv, gradient: str, *options: str) -> torch.Tensor:
    run(
        "data=csv",
        f"data.path={csv}",
        "epochs=4",
        f"model.gradient={gradient}",
        "logger=none",
        "~callbacks.plots",
        "callbacks.last_checkpoint.every_seconds=0",
        *options,
        run_dir=tmp_path / gradient,
    )
    state = torch.load(tmp_path / gradient / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return torch.cat([state["linear.weight"].flatten(), state["linear.bias"]])


@sampled(
    "options",
    [
        ("data.batch_size=16", "optimizer=sgd", "lr=0.5", "model.optimizer.momentum=0.9"),
        ("data.batch_size=7", "optimizer=adam", "lr=0.05", "data.batches_per_step=3"),
        # L-BFGS's line search turns float32's rounding into different steps: compare them in float64
        ("optimizer=lbfgs", "model.optimizer.max_iter=5", "trainer.precision=64-true"),
        ("data.batch_size=32", "model.pos_weight=balanced", "lr=0.5"),
    ],
    every=2,
    ids=["sgd-momentum-minibatches", "adam-odd-batches-chunked", "lbfgs-full-batch", "balanced-class-weight"],
)
def test_training_with_the_closed_form_follows_the_autograd_path(run, tmp_path, options):
    features, labels = make_table(n_rows=300, n_features=4, seed=3)
    csv = write_table(tmp_path / "rows.csv", features * np.array([1, 10, 0.1, 5], dtype=np.float32), labels)
    options = (*options, "data.standardize=true")  # the chain rule through the scaler, too

    analytic = final_weights(run, tmp_path, csv, "analytic", *options)
    autograd = final_weights(run, tmp_path, csv, "autograd", *options)

    torch.testing.assert_close(analytic, autograd, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(analytic, torch.zeros_like(analytic))  # it trained
