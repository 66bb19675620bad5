"""optimizer=newton: Newton's method with a line search, inside Lightning, reaches scikit-learn's optimum to 1e-6 and a
gradient of at most 1e-8 on generated well-posed tables (features in large units, standardized, class-weighted,
under DDP), and says in one line when it does not converge."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import warm

from conftest import OPTIMUM, REPO, write_table
from logreg.errors import ConfigError
from logreg.gradient import bce_hessian
from logreg.newton import Newton


def generated(n_rows: int, scales: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A well-posed table: the classes overlap (labels drawn from the model's probabilities)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, len(scales))) * np.array(scales)  # (N, F)
    logits = (features / np.array(scales)) @ np.linspace(1.5, -1.0, len(scales)) + 0.3
    labels = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return features, labels


def sklearn_fit(features: np.ndarray, labels: np.ndarray, pos_weight: float = 1.0) -> np.ndarray:
    """scikit-learn's unpenalized fit (newton-cholesky to 1e-12) as [weights..., intercept]; the file's 9 digits."""
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(
        C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000, class_weight={0: 1.0, 1: pos_weight}
    ).fit(features, labels)
    return np.append(reference.coef_.ravel(), reference.intercept_)


def coefficients(folder: Path) -> np.ndarray:
    with (folder / "coefficients.csv").open() as file:
        return np.array([float(row["coefficient"]) for row in csv.DictReader(file)])


CASES = {
    "plain": ([1.0, 1.0, 1.0], ()),
    "large-units": ([1e4, 1.0, 1e-3], ()),
    "standardized": ([50.0, 1.0, 0.1], ("data.standardize=true",)),
    "class-weighted": ([1.0, 2.0, 1.0], ("model.pos_weight=3",)),
}


@pytest.mark.parametrize("scales, options", CASES.values(), ids=CASES.keys())
def test_newton_reaches_scikit_learns_optimum_and_a_gradient_of_1e_8(run, tmp_path, scales, options):
    features, labels = generated(400, scales, seed=len(options) + len(scales))
    path = write_table(tmp_path / "table.csv", features, labels)
    features = np.loadtxt(path, delimiter=",")[:, :-1]  # what the run reads: 6 digits
    pos_weight = 3.0 if "model.pos_weight=3" in options else 1.0

    run(*OPTIMUM, f"data.path={path}", *options)

    expected = sklearn_fit(features, labels, pos_weight)
    np.testing.assert_allclose(coefficients(tmp_path), expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())
    # inference.json's gradient is the fit's objective's (the weighted loss's with pos_weight), per raw unit
    assert json.loads((tmp_path / "inference.json").read_text())["gradient_norm"] <= 1e-8


def test_newton_that_hits_its_iteration_limit_says_so_in_one_line(run, tmp_path, capfd):
    features, labels = generated(300, [1.0, 1.0], seed=3)
    labels = (features[:, 0] > 0).astype(np.float64)  # perfectly separated: the optimum is at infinity
    path = write_table(tmp_path / "table.csv", features, labels)

    run(*OPTIMUM, f"data.path={path}", "model.optimizer.max_iter=5")

    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("newton:")]
    assert len(lines) == 1 and "not converged" in lines[0] and "max_iter=5" in lines[0], lines


def test_newton_is_refused_under_float32_naming_the_key(compose, tiny_csv):
    from logreg.checking import check_config

    cfg = compose(*OPTIMUM, f"data.path={tiny_csv}", "trainer.precision=32-true")
    with pytest.raises(ConfigError, match=r"^trainer\.precision=32-true: expected 64-true with optimizer=newton"):
        cfg = check_config(cfg)


def test_newton_is_refused_above_its_feature_limit_in_favour_of_lbfgs():
    from logreg.model import LogisticRegression

    with pytest.raises(ConfigError, match=r"more than 2000.*use optimizer=lbfgs"):
        LogisticRegression(n_features=2001, optimizer={"name": "newton"})


def test_closed_form_hessian_equals_autograds():
    torch.manual_seed(0)
    features, labels = torch.randn(70, 4, dtype=torch.float64), torch.randint(0, 2, (70,)).double()
    theta = torch.randn(5, dtype=torch.float64)

    def loss(parameters: torch.Tensor) -> torch.Tensor:
        logits = features @ parameters[:4] + parameters[4]
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, pos_weight=torch.tensor(2.5))

    expected = torch.autograd.functional.hessian(loss, theta)
    torch.testing.assert_close(bce_hessian(features, labels, theta[:4], theta[4], 2.5), expected, rtol=1e-12, atol=0)


def test_newton_optimizer_on_a_quadratic_takes_one_step():
    parameter = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float64))
    matrix = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    optimizer = Newton([parameter])

    def closure() -> torch.Tensor:
        parameter.grad = matrix @ parameter.detach()
        return 0.5 * parameter.detach() @ matrix @ parameter.detach()

    optimizer.step(closure, hessian=lambda: matrix)

    assert optimizer.result["converged"] and optimizer.result["iterations"] == 1
    assert parameter.detach().abs().max() < 1e-12


@pytest.mark.slow
def test_newton_under_ddp_reaches_the_single_process_optimum(tmp_path):
    features, labels = generated(400, [1.0, 3.0, 0.5], seed=11)
    path = write_table(tmp_path / "table.csv", features, labels)
    features = np.loadtxt(path, delimiter=",")[:, :-1]
    run_dir = tmp_path / "run"
    result = warm.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "trainer=ddp_cpu",
            *OPTIMUM,
            f"data.path={path}",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    np.testing.assert_allclose(coefficients(run_dir), sklearn_fit(features, labels), rtol=1e-6)
    assert json.loads((run_dir / "inference.json").read_text())["gradient_norm"] <= 1e-8
