"""Robust standard errors: inference.cov_type=HC0|HC1|HC2|HC3|cluster, matched to statsmodels (Logit, and GLM with
var_weights for a class-weighted loss), on generated tables; through train.py too."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from logreg.errors import ConfigError, DataError
from logreg.inference import infer


def generated(seed: int = 1, n_rows: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """features (N, 3), labels (N,) and cluster ids (N,) of 25 clusters that share a random effect."""
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 25, size=n_rows)
    features = rng.normal(size=(n_rows, 3))
    logits = features @ [1.0, -1.0, 0.5] + rng.normal(size=25)[clusters]
    labels = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return features, labels, clusters


def statsmodels_fit(features, labels, pos_weight: float, cov_type: str, clusters=None):
    """Logit (pos_weight 1) or a Binomial GLM with var_weights c_i (the weighted loss), to 1e-12; intercept first."""
    import statsmodels.api as sm

    design = sm.add_constant(features)
    options = {"cov_type": cov_type, **({"cov_kwds": {"groups": clusters}} if clusters is not None else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pos_weight == 1.0:
            return sm.Logit(labels, design).fit(method="newton", tol=1e-12, disp=0, **options)
        weights = np.where(labels == 1, pos_weight, 1.0)
        return sm.GLM(labels, design, family=sm.families.Binomial(), var_weights=weights).fit(tol=1e-12, **options)


def std_errors(result) -> np.ndarray:
    return np.roll([c.std_error for c in result.coefficients], 1)  # the intercept first, as statsmodels


@pytest.mark.parametrize("pos_weight", [1.0, 3.0], ids=["plain", "class-weighted"])
@pytest.mark.parametrize("cov_type", ["HC0", "cluster"])
def test_sandwich_errors_match_statsmodels(cov_type, pos_weight):
    features, labels, clusters = generated()
    groups = clusters if cov_type == "cluster" else None
    reference = statsmodels_fit(features, labels, pos_weight, cov_type, groups)

    result = infer(
        features,
        labels,
        reference.params[1:],
        reference.params[0],
        ["a", "b", "c"],
        pos_weight=pos_weight,
        cov_type=cov_type,
        clusters=groups,
    )

    assert result.valid, result.reason
    np.testing.assert_allclose(std_errors(result), reference.bse, rtol=1e-7)
    np.testing.assert_allclose(np.roll([c.p_value for c in result.coefficients], 1), reference.pvalues, rtol=1e-6)
    effects = reference.get_margeff(at="overall") if pos_weight == 1.0 else None
    if effects is not None:  # the marginal effects' errors take the same covariance
        np.testing.assert_allclose([c.marginal_effect_std_error for c in result.coefficients[:-1]], effects.margeff_se)


@pytest.mark.parametrize("cov_type, power", [("HC1", None), ("HC2", 0.5), ("HC3", 1.0)])
def test_small_sample_sandwiches_match_statsmodels_scores_and_leverages(cov_type, power):
    """statsmodels' Logit returns HC0 for HC1..HC3 (it has no cov_HCx for it), so the reference is assembled from its
    parts: the nonrobust covariance, the rows' scores and the GLM's leverages (hat matrix diagonal)."""
    import statsmodels.api as sm

    features, labels, _ = generated(seed=2, n_rows=150)
    reference = statsmodels_fit(features, labels, 1.0, "nonrobust")
    bread = reference.cov_params()  # (K, K) A^-1
    scores = reference.model.score_obs(reference.params)  # (N, K)
    n, k = scores.shape
    if power is None:
        meat, factor = scores.T @ scores, n / (n - k)
    else:
        glm = sm.GLM(labels, sm.add_constant(features), family=sm.families.Binomial()).fit(tol=1e-12)
        adjusted = scores / ((1 - glm.get_influence().hat_matrix_diag) ** power)[:, None]
        meat, factor = adjusted.T @ adjusted, 1.0
    expected = np.sqrt(np.diag(bread @ meat @ bread * factor))

    result = infer(features, labels, reference.params[1:], reference.params[0], ["a", "b", "c"], cov_type=cov_type)

    np.testing.assert_allclose(std_errors(result), expected, rtol=1e-7)


def test_a_class_weighted_fit_without_a_sandwich_still_has_no_standard_errors():
    features, labels, _ = generated()
    reference = statsmodels_fit(features, labels, 3.0, "nonrobust")

    result = infer(features, labels, reference.params[1:], reference.params[0], ["a", "b", "c"], pos_weight=3.0)

    assert not result.valid and "inference.cov_type=HC0" in result.reason


def test_cluster_ids_must_come_with_cov_type_cluster():
    features, labels, clusters = generated()
    with pytest.raises(ConfigError, match="clusters: expected one cluster id per row with cov_type=cluster"):
        infer(features, labels, np.zeros(3), 0.0, ["a", "b", "c"], cov_type="HC0", clusters=clusters)


# --------------------------------------------------------------------------------------------------- through train.py


def write_clustered(path, header: list[str], ids) -> Path:
    """The generated table's features (to 4 decimals), a cluster id column (`ids`, one per row), then the label."""
    features, labels, _ = generated()
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row, group, label in zip(features.round(4), ids, labels):
            writer.writerow([*row, group, int(label)])
    return path


@pytest.fixture
def clustered_csv(tmp_path):
    """The generated table with a header and the cluster id as a column ("group") before the label."""
    return write_clustered(tmp_path / "clustered.csv", ["a", "b", "c", "group", "label"], generated()[2])


def test_a_run_with_inference_cov_type_cluster_matches_statsmodels(run, clustered_csv, tmp_path):
    run(
        "experiment=optimum",
        "data=csv",
        f"data.path={clustered_csv}",
        "inference.cov_type=cluster",
        "inference.cluster=group",
        "model.pos_weight=2",
        "logger=none",
        "~callbacks.plots",
    )

    table = np.loadtxt(clustered_csv, delimiter=",", skiprows=1)
    features, labels = table[:, :4], table[:, -1]  # the group column is a feature here (data.exclude takes it out)
    reference = statsmodels_fit(features, labels, 2.0, "cluster", table[:, 3])
    with (tmp_path / "coefficients.csv").open() as file:
        ours = np.roll([float(row["std_error"]) for row in csv.DictReader(file)], 1)
    inference = json.loads((tmp_path / "inference.json").read_text())
    assert inference["valid"] is True and inference["cov_type"] == "cluster" and inference["cluster"] == "group"
    np.testing.assert_allclose(ours, reference.bse, rtol=1e-5)


def test_a_cluster_column_the_file_lacks_is_refused_before_training(run, clustered_csv, tmp_path):
    with pytest.raises(DataError, match=r"inference\.cluster='school': the header has no column of that name"):
        run(
            "experiment=optimum",
            "data=csv",
            f"data.path={clustered_csv}",
            "inference.cov_type=cluster",
            "inference.cluster=school",
            "logger=none",
        )
    assert not (tmp_path / "checkpoints").exists()


def test_cov_type_cluster_without_a_column_is_refused_naming_the_key(compose, clustered_csv):
    from logreg.checking import check_config

    cfg = compose("data=csv", f"data.path={clustered_csv}", "inference.cov_type=cluster")
    with pytest.raises(ConfigError, match=r"^inference\.cluster=null: expected the column of the rows' cluster ids"):
        cfg = check_config(cfg)


def test_cluster_ids_may_be_text_in_a_column_left_out_of_the_features(run, tmp_path):
    """data.exclude takes the id column out of the features; its text ids still group the rows."""
    features, labels, clusters = generated()
    schools = [f"school-{group}" for group in clusters]
    path = write_clustered(tmp_path / "schools.csv", ["f1", "f2", "f3", "school", "y"], schools)
    run(
        "experiment=optimum",
        "data=csv",
        f"data.path={path}",
        "data.exclude=[school]",
        "inference.cov_type=cluster",
        "inference.cluster=school",
        "logger=none",
        "~callbacks.plots",
    )

    reference = statsmodels_fit(features.round(4), labels, 1.0, "cluster", clusters)
    with (tmp_path / "coefficients.csv").open() as file:
        ours = np.roll([float(row["std_error"]) for row in csv.DictReader(file)], 1)
    np.testing.assert_allclose(ours, reference.bse, rtol=1e-5)
