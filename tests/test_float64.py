"""trainer.precision=64-true reads and keeps the features in float64; 32-true runs keep float32, as before."""

import csv

import numpy as np
import pytest

from conftest import LBFGS_OPTIMUM
from logreg.checking import check_config
from logreg.training import build_datamodule


@pytest.fixture
def fine_csv(tmp_path):
    """Features near 1000 that differ in their 7th digit: float32 (spacing 6e-5 there) rounds their differences."""
    rng = np.random.default_rng(2)
    x = 1000 + rng.normal(0, 1e-3, (300, 2))
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-(x[:, 0] - 1000) * 1500))).astype(int)
    path = tmp_path / "fine.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", fmt=["%.12f", "%.12f", "%d"], header="a,b,y", comments="")
    return path


@pytest.mark.parametrize("precision, dtype", [("64-true", np.float64), ("32-true", np.float32)])
def test_features_are_read_in_the_runs_precision(compose, fine_csv, precision, dtype):
    cfg = compose("data=csv", f"data.path={fine_csv}", f"trainer.precision={precision}")

    table = build_datamodule(check_config(cfg)).table

    expected = np.loadtxt(fine_csv, delimiter=",", skiprows=1)[:, :2]  # float64, as the text says
    assert table.features.dtype == dtype
    np.testing.assert_array_equal(table.features, expected.astype(dtype))


def test_a_float64_fit_matches_the_reference_on_the_unrounded_values(run, fine_csv, tmp_path):
    from sklearn.linear_model import LogisticRegression as Reference

    table = np.loadtxt(fine_csv, delimiter=",", skiprows=1)
    features, labels = table[:, :2], table[:, 2]
    exact = Reference(C=np.inf, tol=1e-14, max_iter=100_000).fit(features - 1000, labels).coef_[0]
    rounded = Reference(C=np.inf, tol=1e-14, max_iter=100_000).fit(
        features.astype(np.float32).astype(np.float64) - 1000, labels
    )
    assert not np.allclose(rounded.coef_[0], exact, rtol=1e-3)  # float32's rounding alone moves the optimum

    run(
        "data=csv",
        f"data.path={fine_csv}",
        *LBFGS_OPTIMUM,
    )

    with (tmp_path / "coefficients.csv").open() as file:
        fitted = {row["feature"]: float(row["coefficient"]) for row in csv.DictReader(file)}
    np.testing.assert_allclose([fitted["a"], fitted["b"]], exact, rtol=1e-4)


def test_the_data_fingerprint_does_not_depend_on_the_precision(compose, fine_csv):
    tables = [
        build_datamodule(
            check_config(compose("data=csv", f"data.path={fine_csv}", f"trainer.precision={precision}"))
        ).table
        for precision in ("64-true", "32-true")
    ]

    assert tables[0].labels.dtype == tables[1].labels.dtype == np.float32
    assert tables[0].sha256 == tables[1].sha256  # so eval.py in float32 knows a float64 run's data
