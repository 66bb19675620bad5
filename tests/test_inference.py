"""logreg.inference: standard errors, tests and intervals of a fitted logistic regression, checked against statsmodels'
Logit, given statsmodels' own estimates so that only the formulas are compared; and the cases where they are not valid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import make_table
from logreg.errors import ConfigError, DataError
from logreg.inference import INTERCEPT, Inference, infer

PER_COEFFICIENT = ["std_error", "z", "p_value", "ci_low", "ci_high", "odds_ratio_low", "odds_ratio_high"]


def statsmodels_fit(features: np.ndarray, labels: np.ndarray):
    """statsmodels' Logit with the constant first, fitted by Newton's method to 1e-12."""
    import statsmodels.api as sm

    return sm.Logit(labels, sm.add_constant(features, has_constant="add")).fit(method="newton", tol=1e-12, disp=0)


def infer_at(reference, features: np.ndarray, labels: np.ndarray, **options) -> Inference:
    """infer() at statsmodels' estimates: params[0] is the constant, our bias."""
    names = [f"x{i}" for i in range(features.shape[1])]
    return infer(features, labels, reference.params[1:], reference.params[0], names, **options)


def column(result: Inference, field: str) -> np.ndarray:
    """One field of every coefficient in statsmodels' order, the intercept first."""
    return np.roll([getattr(c, field) for c in result.coefficients], 1)


def assert_invalid(result: Inference, reason_start: str) -> None:
    """Not valid for `reason_start`; the estimates are reported, their uncertainty is NaN."""
    assert not result.valid
    assert result.reason.startswith(reason_start), result.reason
    assert all(math.isfinite(c.estimate) for c in result.coefficients)
    assert all(math.isnan(getattr(c, field)) for c in result.coefficients for field in PER_COEFFICIENT)


@pytest.fixture(params=["diabetes", "generated"])
def table(request) -> tuple[np.ndarray, np.ndarray]:
    """features (N, F) and labels (N,) in float64: the lab's 759 x 8, or a generated 300 x 3."""
    if request.param == "diabetes":
        data = np.loadtxt(request.getfixturevalue("diabetes_csv"), delimiter=",")
        return data[:, :-1], data[:, -1]
    features, labels = make_table(n_rows=300, n_features=3, seed=1)
    return features.astype(np.float64), labels.astype(np.float64)


@pytest.fixture
def generated() -> tuple[np.ndarray, np.ndarray]:
    """A generated 300 x 3 table in float64, with both classes overlapping (an optimum exists)."""
    features, labels = make_table(n_rows=300, n_features=3, seed=1)
    return features.astype(np.float64), labels.astype(np.float64)


def test_coefficients_match_statsmodels(table):
    features, labels = table
    reference = statsmodels_fit(features, labels)
    result = infer_at(reference, features, labels)

    assert result.valid and result.reason == ""
    low, high = reference.conf_int().T
    expected = {
        "estimate": reference.params,
        "std_error": reference.bse,
        "z": reference.tvalues,
        "p_value": reference.pvalues,
        "ci_low": low,
        "ci_high": high,
        "odds_ratio": np.exp(reference.params),
        "odds_ratio_low": np.exp(low),
        "odds_ratio_high": np.exp(high),
    }
    for field, values in expected.items():
        np.testing.assert_allclose(column(result, field), values, rtol=1e-9, err_msg=field)


def test_model_level_numbers_match_statsmodels(table):
    features, labels = table
    reference = statsmodels_fit(features, labels)
    result = infer_at(reference, features, labels)

    assert result.n_rows == len(labels) and result.lr_df == reference.df_model == features.shape[1]
    expected = {
        "log_likelihood": reference.llf,
        "null_log_likelihood": reference.llnull,  # statsmodels fits it numerically; ours is the closed form
        "lr_statistic": reference.llr,
        "lr_p_value": reference.llr_pvalue,
        "aic": reference.aic,
        "bic": reference.bic,
        "pseudo_r2": reference.prsquared,
    }
    for field, value in expected.items():
        np.testing.assert_allclose(getattr(result, field), value, rtol=1e-7, err_msg=field)


def test_average_marginal_effects_match_statsmodels_get_margeff_overall(table):
    features, labels = table
    reference = statsmodels_fit(features, labels)
    effects = reference.get_margeff(at="overall", method="dydx")

    result = infer_at(reference, features, labels)

    ours = result.coefficients[:-1]  # the features; the intercept has none
    np.testing.assert_allclose([c.marginal_effect for c in ours], effects.margeff, rtol=1e-9)
    np.testing.assert_allclose([c.marginal_effect_std_error for c in ours], effects.margeff_se, rtol=1e-6)
    assert math.isnan(result.coefficients[-1].marginal_effect)


def test_another_confidence_level_matches_statsmodels(generated):
    features, labels = generated
    reference = statsmodels_fit(features, labels)
    result = infer_at(reference, features, labels, level=0.9)

    low, high = reference.conf_int(alpha=0.1).T
    np.testing.assert_allclose(column(result, "ci_low"), low, rtol=1e-9)
    np.testing.assert_allclose(column(result, "ci_high"), high, rtol=1e-9)


def test_a_feature_in_large_units_is_still_valid(generated):
    features, labels = generated
    features = features * [1e4, 1.0, 1e-3]  # the information's diagonal spans 1e14: scaled away before inverting
    reference = statsmodels_fit(features, labels)
    result = infer_at(reference, features, labels)

    assert result.valid, result.reason
    np.testing.assert_allclose(column(result, "std_error"), reference.bse, rtol=1e-8)


def test_float32_coefficients_still_match_statsmodels(diabetes_csv):
    data = np.loadtxt(diabetes_csv, delimiter=",")
    reference = statsmodels_fit(data[:, :-1], data[:, -1])
    features, labels = data[:, :-1].astype(np.float32), data[:, -1].astype(np.float32)  # as the model stores them

    result = infer(
        features,
        labels,
        reference.params[1:].astype(np.float32),
        np.float32(reference.params[0]),
        [f"x{i}" for i in range(8)],
    )

    assert result.valid, result.reason
    for field, values in {"std_error": reference.bse, "z": reference.tvalues, "p_value": reference.pvalues}.items():
        np.testing.assert_allclose(column(result, field), values, rtol=1e-4, err_msg=field)
    np.testing.assert_allclose(result.log_likelihood, reference.llf, rtol=1e-4)
    np.testing.assert_allclose(result.lr_p_value, reference.llr_pvalue, rtol=1e-4)


def test_tensors_are_taken_like_arrays(generated):
    features, labels = generated
    reference = statsmodels_fit(features, labels)
    weight = torch.tensor(reference.params[1:], requires_grad=True)  # as a model's parameter would be

    result = infer(
        torch.from_numpy(features),
        torch.from_numpy(labels),
        weight,
        torch.tensor([reference.params[0]]),
        ["a", "b", "c"],
    )

    np.testing.assert_allclose(column(result, "std_error"), reference.bse, rtol=1e-9)


def test_zero_coefficients_are_not_converged(generated):
    features, labels = generated

    result = infer(features, labels, np.zeros(3), 0.0, ["a", "b", "c"])

    assert_invalid(result, "not converged: gradient norm")
    assert "> tolerance 1.0e-04" in result.reason and "optimizer=newton" in result.reason
    assert result.gradient_norm > 1e-4
    assert result.log_likelihood == pytest.approx(len(labels) * math.log(0.5), rel=1e-12)  # still reported


def test_weight_decay_makes_standard_errors_invalid(generated):
    features, labels = generated
    reference = statsmodels_fit(features, labels)

    result = infer_at(reference, features, labels, weight_decay=0.01)

    assert_invalid(result, "regularized fit (weight_decay=0.01)")
    assert result.log_likelihood == pytest.approx(reference.llf, rel=1e-12)  # the model-level numbers stay


def test_pos_weight_makes_standard_errors_invalid(generated):
    features, labels = generated
    reference = statsmodels_fit(features, labels)

    result = infer_at(reference, features, labels, pos_weight=2.5)

    assert_invalid(result, "weighted loss (pos_weight=2.5)")
    assert result.aic == pytest.approx(reference.aic, rel=1e-12)


COLLINEAR = {  # an added column d, and the columns (with it) that a dependency leaves without standard errors
    "constant": (lambda x: np.full(len(x), 3.0), ["d", INTERCEPT], "d is a linear combination of (intercept)"),
    "duplicate": (lambda x: x[:, 0], ["a", "d"], "d is a linear combination of a"),
    "sum": (lambda x: x[:, 0] + x[:, 1], ["a", "b", "d"], "d is a linear combination of a, b"),
    "sum-rounded": (lambda x: np.round(x[:, 0] + x[:, 1], 5), ["a", "b", "d"], "d is a linear combination of a, b"),
    "sum-and-offset": (lambda x: 2 * x[:, 2] - 1.5, ["c", "d", INTERCEPT], "d is a linear combination of c, (int"),
}


@pytest.mark.parametrize("make, unidentified, named", COLLINEAR.values(), ids=COLLINEAR.keys())
def test_a_rank_deficient_design_counts_df_by_rank_and_names_the_dependent_columns(
    generated, make, unidentified, named
):
    features, labels = generated
    reference = statsmodels_fit(features, labels)  # the design without the dependent column: its optimum is ours
    weight, bias = np.append(reference.params[1:], 0.0), reference.params[0]

    result = infer(np.column_stack([features, make(features)]), labels, weight, bias, ["a", "b", "c", "d"])

    assert result.valid and result.gradient_norm < 1e-7
    assert result.unidentified == unidentified and named in result.note, result.note
    assert result.lr_df == reference.df_model == 3
    np.testing.assert_allclose(
        [result.aic, result.bic, result.lr_statistic], [reference.aic, reference.bic, reference.llr], rtol=1e-9
    )
    by_name = {c.name: c for c in result.coefficients}
    for name, se in zip([INTERCEPT, "a", "b", "c"], reference.bse):
        if name in unidentified:
            assert math.isnan(by_name[name].std_error) and math.isnan(by_name[name].p_value), name
        else:  # an identified coefficient's uncertainty is that of the model without the dependent column
            assert by_name[name].std_error == pytest.approx(se, rel=1e-6), name
    assert math.isnan(by_name["d"].std_error)


def quasi_separated(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Generated tables with quasi-separation: an indicator whose rows are all of class 1, or a feature at whose
    boundary value both classes meet while every row above is class 1 and every row below class 0."""
    rng = np.random.default_rng(5)
    features = rng.normal(size=(400, 2))
    labels = (rng.uniform(size=400) < 1 / (1 + np.exp(-features[:, 1]))).astype(np.float64)
    if kind == "indicator":
        indicator = (rng.uniform(size=400) < 0.1).astype(np.float64)
        labels[indicator == 1] = 1
        return np.column_stack([features, indicator]), labels
    boundary = np.round(features[:, 0])  # integers: many rows at exactly 0
    labels = np.where(boundary > 0, 1.0, np.where(boundary < 0, 0.0, labels))
    return np.column_stack([boundary, features[:, 1]]), labels


@pytest.mark.parametrize("kind", ["indicator", "boundary"])
def test_quasi_separated_classes_are_named_with_no_standard_errors(kind):
    import warnings

    import statsmodels.api as sm

    features, labels = quasi_separated(kind)
    with warnings.catch_warnings():  # statsmodels warns that it does not converge, or of perfect prediction
        warnings.simplefilter("ignore")
        reference = sm.Logit(labels, sm.add_constant(features)).fit(method="newton", maxiter=100, disp=0)
    assert reference.bse.max() > 1e3  # statsmodels' fit: what it reports as standard errors

    result = infer_at(reference, features, labels)

    assert_invalid(result, "quasi-separated classes: along a direction of")
    assert result.gradient_norm < 1e-6  # converged as far as float64 goes: training longer cannot help


@pytest.mark.parametrize("strength", [4.0, 8.0])
def test_a_well_posed_table_with_confident_rows_is_not_called_separated(strength):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(500, 3))
    labels = (rng.uniform(size=500) < 1 / (1 + np.exp(-strength * features[:, 0]))).astype(np.float64)
    reference = statsmodels_fit(features, labels)

    result = infer_at(reference, features, labels)

    assert result.valid, result.reason
    np.testing.assert_allclose(column(result, "std_error"), reference.bse, rtol=1e-8)


def test_a_fit_worse_than_the_intercept_only_model_is_flagged_without_negative_statistics(generated):
    features, labels = generated
    reference = statsmodels_fit(features, labels)
    theta = -3 * reference.params  # a diverged fit: its loss is far above the intercept-only model's

    result = infer(features, labels, theta[1:], theta[0], ["a", "b", "c"])

    assert result.log_likelihood < result.null_log_likelihood
    assert_invalid(result, "not converged")
    assert "below the intercept-only model's, so there is no likelihood-ratio test or pseudo-R2" in result.reason
    assert math.isnan(result.lr_statistic) and math.isnan(result.lr_p_value) and math.isnan(result.pseudo_r2)


def test_perfectly_separated_classes_are_invalid():
    rng = np.random.default_rng(0)
    features = rng.uniform(-1, 1, size=(400, 2))  # (N, 2)
    features = features[np.abs(features.sum(axis=1)) > 0.2]  # a gap between the classes
    labels = (features.sum(axis=1) > 0).astype(np.float64)

    for scale in (5.0, 1e3):  # far from, and at, saturation (there, every p (1 - p) underflows to 0)
        result = infer(features, labels, np.array([scale, scale]), 0.0, ["a", "b"])
        assert_invalid(result, "perfectly separated classes")


def test_saturated_probabilities_give_a_finite_log_likelihood(generated):
    features, labels = generated
    reference = statsmodels_fit(features, labels)
    theta = reference.params * 1e4  # every probability rounds to 0 or 1, and some rows are on the wrong side

    result = infer(features, labels, theta[1:], theta[0], ["a", "b", "c"])

    logits = torch.from_numpy(features @ theta[1:] + theta[0])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels), reduction="sum")
    assert math.isfinite(result.log_likelihood) and result.log_likelihood < -1e3
    assert result.log_likelihood == pytest.approx(-loss.item(), rel=1e-12)


def test_the_gradient_norm_is_the_largest_gradient_of_the_mean_log_loss(generated):
    features, labels = generated
    theta = torch.tensor([0.5, -1.0, 2.0, 0.3], dtype=torch.float64, requires_grad=True)  # weight (3,), bias
    logits = torch.from_numpy(features) @ theta[:3] + theta[3]
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels)).backward()

    result = infer(features, labels, theta[:3].detach().numpy(), theta[3].item(), ["a", "b", "c"])

    assert result.gradient_norm == pytest.approx(theta.grad.abs().max().item(), rel=1e-12)


def test_rows_and_summary_have_the_documented_keys(generated):
    features, labels = generated
    result = infer_at(statsmodels_fit(features, labels), features, labels)

    rows = result.rows()
    assert [row["feature"] for row in rows] == ["x0", "x1", "x2", INTERCEPT]
    assert list(rows[0]) == [
        "feature",
        "coefficient",
        "std_error",
        "z",
        "p_value",
        "ci_low",
        "ci_high",
        "odds_ratio",
        "odds_ratio_low",
        "odds_ratio_high",
        "marginal_effect",
        "marginal_effect_std_error",
    ]
    assert rows[-1]["coefficient"] == result.coefficients[-1].estimate
    summary = result.summary()
    assert set(summary) == {
        "log_likelihood",
        "null_log_likelihood",
        "lr_statistic",
        "lr_df",
        "lr_p_value",
        "aic",
        "bic",
        "pseudo_r2",
        "gradient_norm",
        "n_rows",
    }
    assert summary["n_rows"] == 300 and summary["lr_df"] == 3


def test_an_odds_ratio_past_float64_range_is_infinite(generated):
    features, labels = generated

    result = infer(features, labels, np.array([800.0, 0.0, 0.0]), 0.0, ["a", "b", "c"])

    assert result.coefficients[0].odds_ratio == math.inf


def valid_arguments() -> dict:
    features, labels = make_table(n_rows=20, n_features=3)
    return {"features": features, "labels": labels, "weight": np.zeros(3), "bias": 0.0, "names": ["a", "b", "c"]}


def with_value(name: str, index, value) -> dict:
    arguments = valid_arguments()
    arguments[name] = arguments[name].copy()
    arguments[name][index] = value
    return arguments


BAD_INPUTS = {
    "features 1-D": ({**valid_arguments(), "features": np.zeros(20)}, DataError, r"features: .*got \(20,\)"),
    "features NaN": (with_value("features", (4, 2), np.nan), DataError, r"features: row 4, column 2 is nan"),
    "labels too short": ({**valid_arguments(), "labels": np.zeros(19)}, DataError, r"labels: expected shape \(20,\)"),
    "label 2": (with_value("labels", 7, 2.0), DataError, r"labels: row 7 is 2.0; expected 0 or 1"),
    "label NaN": (with_value("labels", 3, np.nan), DataError, r"labels: row 3 is nan"),
    "one class": ({**valid_arguments(), "labels": np.ones(20)}, DataError, r"labels: all 20 rows are 1"),
    "weight shape": ({**valid_arguments(), "weight": np.zeros((1, 3))}, DataError, r"weight: .*got \(1, 3\)"),
    "weight inf": (with_value("weight", 1, np.inf), DataError, r"weight: entry 1 is inf"),
    "bias NaN": ({**valid_arguments(), "bias": math.nan}, DataError, r"bias: nan"),
    "names count": ({**valid_arguments(), "names": ["a", "b"]}, DataError, r"names: expected 3 .* got 2"),
    "weight_decay": ({**valid_arguments(), "weight_decay": -0.1}, ConfigError, r"weight_decay=-0.1"),
    "pos_weight": ({**valid_arguments(), "pos_weight": 0.0}, ConfigError, r"pos_weight=0.0"),
    "tolerance": ({**valid_arguments(), "tolerance": math.nan}, ConfigError, r"tolerance=nan"),
    "level": ({**valid_arguments(), "level": 95}, ConfigError, r"level=95: expected a number strictly between 0"),
}


@pytest.mark.parametrize("arguments, error, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_naming_the_value(arguments, error, message):
    with pytest.raises(error, match=message):
        infer(**arguments)
