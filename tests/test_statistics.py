"""Results you can trust: cross-validation, statistical inference at the optimum, calibration, the tuned decision
threshold and class weights, each checked against an independent computation (the package API trained by hand,
statsmodels, scikit-learn, a brute-force search) on tiny tables or the lab's data.

Runs that several tests read are trained once per module (`once`), in a folder of their own.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as sk

from conftest import event_entries, hparams, make_table, scalars, write_table
from logreg.checking import check_config
from logreg.checkpoints import datamodule_from_checkpoint, model_from_checkpoint, read_checkpoint
from logreg.data import CSVDataModule
from logreg.errors import ConfigError
from logreg.metric_names import STAGE_METRICS
from logreg.metrics import choose_threshold, evaluation_metrics
from logreg.model import LogisticRegression

FOLDS = 3
TINY = ("data=csv", "epochs=3")  # with data.path=<200 rows, 3 features>: 160 train, 20 val, 20 test rows
QUICK = ("logger=none", "~callbacks.plots")  # for runs whose TensorBoard output no test reads


# ------------------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def _trained() -> dict[str, Any]:
    return {}


@pytest.fixture
def once(_trained, run, tmp_path_factory) -> Callable[..., Path]:
    """once(name, *overrides) -> the run folder of `train.py data.path=<a tiny CSV> *overrides`, trained the first
    time a test of this module asks for `name`; the CSV is `<folder>/../tiny.csv`."""

    def _once(name: str, *overrides: str) -> Path:
        if name not in _trained:
            folder = tmp_path_factory.mktemp(name)
            csv_path = write_table(folder / "tiny.csv", *make_table())
            run(f"data.path={csv_path}", *overrides, run_dir=folder / "run")
            _trained[name] = folder / "run"
        return _trained[name]

    return _once


@pytest.fixture
def cv_run(once) -> Path:
    """A cross-validated run on the tiny CSV: FOLDS folds of 3 epochs, then the refit."""
    return once("cv", *TINY, f"cv.folds={FOLDS}")


@pytest.fixture
def tuned_run(once) -> Path:
    """A run on the tiny CSV whose decision threshold is tuned for F1 on the validation rows."""
    return once("tuned", *TINY, "model.tune_threshold=f1")


@pytest.fixture
def plain_run(once) -> Path:
    """A plain run on the tiny CSV, with TensorBoard scalars and images."""
    return once("plain", *TINY)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def read_coefficients(folder: Path) -> list[dict[str, Any]]:
    """coefficients.csv: one dict per row (the features, then the intercept), numbers as floats."""
    with (folder / "coefficients.csv").open() as file:
        return [{k: v if k == "feature" else float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def load(ckpt_path: Path, **changes: Any) -> tuple[LogisticRegression, CSVDataModule]:
    checkpoint = read_checkpoint(ckpt_path)
    return model_from_checkpoint(checkpoint), datamodule_from_checkpoint(checkpoint, **changes)[0]


def probabilities(ckpt_path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's model on one split of the rows it trained with: probabilities (N,) float32, labels (N,)."""
    model, datamodule = load(ckpt_path)
    features, labels = datamodule.rows(split)
    with torch.no_grad():
        return model(features).numpy(), labels.numpy()


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Equal-width bins; |mean probability - share of class 1| of each, weighted by its share of the rows."""
    probs, labels = probs.astype(np.float64), labels.astype(np.float64)
    index = np.minimum((probs * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += members.sum() * abs(probs[members].mean() - labels[members].mean())
    return error / len(probs)


def score(criterion: str, cost_ratio: float, labels: np.ndarray, predicted: np.ndarray) -> float:
    """The criterion of predicting `predicted` (N,) bool for `labels` (N,); an F1 of 0/0 counts as the worst."""
    actual = labels > 0.5
    tp, fp = float(np.sum(predicted & actual)), float(np.sum(predicted & ~actual))
    fn, tn = float(np.sum(~predicted & actual)), float(np.sum(~predicted & ~actual))
    if criterion == "f1":
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else -math.inf
    if criterion == "youden":  # a rate of a class that is absent counts as 0
        return (tp / (tp + fn) if tp + fn else 0.0) - (fp / (fp + tn) if fp + tn else 0.0)
    return -(cost_ratio * fp + fn)


def brute_force_threshold(
    probs: np.ndarray, labels: np.ndarray, criterion: str, cost_ratio: float = 1.0
) -> tuple[float | None, np.ndarray]:
    """Every distinct probability and "above all" (None: predict no row 1), largest first; predict 1 where p >= t;
    the best score, ties to the largest threshold. Returns that threshold and its predictions."""
    best = None
    for threshold in [None, *sorted(set(probs.tolist()), reverse=True)]:
        predicted = np.zeros(len(probs), bool) if threshold is None else probs >= threshold
        value = score(criterion, cost_ratio, labels, predicted)
        if best is None or value > best[0]:
            best = (value, threshold, predicted)
    return best[1], best[2]


# -------------------------------------------------------------------------------------------- cross-validation


def test_cross_validation_trains_each_fold_and_the_refit_in_run_folders_of_their_own(cv_run):
    assert sorted(p.name for p in cv_run.iterdir() if p.is_dir()) == [*(f"fold_{k}" for k in range(FOLDS)), "refit"]
    for k in range(FOLDS):
        fold = cv_run / f"fold_{k}"
        assert len(scalars(fold)["val/loss"]) == 3, fold  # its own TensorBoard events: one value per epoch
        checkpoints = sorted(p.name for p in (fold / "checkpoints").iterdir())
        assert checkpoints == ["best-epoch=002.ckpt", "last.ckpt"], fold
        assert (fold / "metrics.json").is_file() and (fold / "coefficients.csv").is_file()
    assert len(scalars(cv_run / "refit")["train/loss"]) == 3
    assert (cv_run / "refit" / "checkpoints" / "last.ckpt").is_file()


def test_cv_metrics_are_the_mean_and_sample_std_of_the_folds_val_metrics(cv_run):
    metrics = read_json(cv_run / "metrics.json")
    folds = [read_json(cv_run / f"fold_{k}" / "metrics.json") for k in range(FOLDS)]

    for name in STAGE_METRICS["val"]:
        values = np.array([fold[f"val/{name}"] for fold in folds])
        assert metrics[f"cv/val/{name}"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-15), name
        assert metrics[f"cv/val/{name}_std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15), name
    assert np.ptp([fold["val/loss"] for fold in folds]) > 0  # the folds differ: the spread measures something


def test_each_fold_gives_the_numbers_of_training_that_fold_alone_with_the_package_api(cv_run):
    csv_path = cv_run.parent / "tiny.csv"

    for k in range(FOLDS):
        L.seed_everything(1, verbose=False)
        datamodule = CSVDataModule(str(csv_path), standardize=True, seed=1, folds=FOLDS, fold=k, test_on="val")
        mean, std = datamodule.scaler()
        model = LogisticRegression(n_features=3, feature_mean=mean, feature_std=std)  # SGD at lr=1, as the run
        trainer = L.Trainer(
            max_epochs=3,
            accelerator="cpu",
            devices=1,
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(model, datamodule=datamodule)

        recorded = read_json(cv_run / f"fold_{k}" / "metrics.json")
        for name in STAGE_METRICS["val"]:
            alone = trainer.callback_metrics[f"val/{name}"].item()
            assert recorded[f"val/{name}"] == pytest.approx(alone, abs=1e-6), (k, name)


def test_folds_are_disjoint_cover_the_non_test_rows_and_never_hold_a_test_row(tiny_csv):
    def folds(seed: int) -> list[dict[str, np.ndarray]]:
        modules = [CSVDataModule(str(tiny_csv), seed=seed, folds=FOLDS, fold=k) for k in range(FOLDS)]
        return [{split: dm.split_rows(split) for split in ("train", "val", "test")} for dm in modules]

    cut = folds(seed=1)

    test = cut[0]["test"]
    everything = np.arange(200)
    plain = CSVDataModule(str(tiny_csv), seed=1)  # no folds: the held-out rows are the same
    np.testing.assert_array_equal(test, plain.split_rows("test"))
    for fold in cut:
        np.testing.assert_array_equal(fold["test"], test)
        assert not np.intersect1d(fold["train"], test).size and not np.intersect1d(fold["val"], test).size
        np.testing.assert_array_equal(np.union1d(fold["train"], fold["val"]), np.setdiff1d(everything, test))
        assert not np.intersect1d(fold["train"], fold["val"]).size
    validation = np.concatenate([fold["val"] for fold in cut])
    assert len(validation) == len(np.unique(validation))  # disjoint
    np.testing.assert_array_equal(np.sort(validation), np.setdiff1d(everything, test))  # and covering
    again = folds(seed=1)
    for fold, same in zip(cut, again):
        for split in fold:
            np.testing.assert_array_equal(fold[split], same[split])
    assert not np.array_equal(folds(seed=2)[0]["val"], cut[0]["val"])


def test_hparams_tab_of_a_cv_run_shows_the_folds_mean_and_spread(cv_run):
    metrics = read_json(cv_run / "metrics.json")

    experiment, session = hparams(cv_run)

    shown = {info.name.tag for info in experiment.metric_infos}
    assert {"final/cv/val/loss", "final/cv/val/loss_std", "final/cv/val/auroc", "final/test/loss"} <= shown
    assert session.hparams["cv.folds"].number_value == FOLDS
    assert scalars(cv_run)["final/cv/val/loss"] == [pytest.approx(metrics["cv/val/loss"])]


def test_refit_trains_on_every_non_test_row_and_is_tested_on_the_held_out_rows(cv_run):
    refit = cv_run / "refit"
    metrics, refit_metrics = read_json(cv_run / "metrics.json"), read_json(refit / "metrics.json")
    probs, labels = probabilities(refit / "checkpoints" / "last.ckpt", "test")
    held_out = CSVDataModule(str(cv_run.parent / "tiny.csv"), seed=1).split_rows("test")

    assert read_json(refit / "inference.json")["n_rows"] == 200 - len(held_out) == 180
    assert len(labels) == len(held_out) == 20
    for name in STAGE_METRICS["test"]:
        assert metrics[f"test/{name}"] == refit_metrics[f"test/{name}"], name
    assert metrics["test/loss"] == pytest.approx(sk.log_loss(labels, probs), abs=1e-6)
    assert metrics["test/brier"] == pytest.approx(sk.brier_score_loss(labels, probs), abs=1e-6)


def test_refit_trains_without_the_callbacks_that_watch_validation_metrics(run, tiny_csv, tmp_path, recwarn):
    # Early stopping and the best checkpoint watch val/loss: the folds have it, the refit (no validation rows) not.
    metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=2", "cv.folds=2", "callbacks=early_stopping", *QUICK)

    assert "test/loss" in metrics and (tmp_path / "refit" / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "fold_0" / "checkpoints").glob("best-*.ckpt"))  # the folds keep their best
    assert not [w for w in recwarn if "could not find the monitored key" in str(w.message)]


def test_a_cv_refit_decides_at_the_mean_of_the_thresholds_the_folds_tuned(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", "epochs=2", "cv.folds=2", "model.tune_threshold=f1", *QUICK)

    folds = [read_json(tmp_path / f"fold_{k}" / "metrics.json")["threshold"] for k in range(2)]
    refit = torch.load(tmp_path / "refit" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert refit["threshold"].item() == pytest.approx(sum(folds) / 2)
    assert read_json(tmp_path / "refit" / "metrics.json")["threshold"] == pytest.approx(sum(folds) / 2)


def test_cv_val_loss_is_accepted_as_a_sweeps_optimized_metric(compose, tiny_csv):
    cfg = compose("data=csv", f"data.path={tiny_csv}", f"cv.folds={FOLDS}", "optimized_metric=cv/val/loss")

    check_config(cfg, sweep=True)  # no ConfigError

    with pytest.raises(ConfigError, match=r"optimized_metric=cv/val/loss: expected a held-out metric"):
        check_config(compose("data=csv", f"data.path={tiny_csv}", "optimized_metric=cv/val/loss"), sweep=True)


# ------------------------------------------------------------------------------------------ statistical inference


def statsmodels_fit(features: np.ndarray, labels: np.ndarray):
    """statsmodels' Logit with the constant first, fitted by Newton's method to 1e-12."""
    import statsmodels.api as sm

    return sm.Logit(labels, sm.add_constant(features, has_constant="add")).fit(method="newton", tol=1e-12, disp=0)


@pytest.fixture
def optimum_run(_trained, run, diabetes_csv, tmp_path_factory):
    """experiment=optimum on the lab's 759 rows, and statsmodels' fit of the same rows."""
    if "optimum" not in _trained:
        folder = tmp_path_factory.mktemp("optimum")
        run("experiment=optimum", *QUICK, run_dir=folder)
        table = np.loadtxt(diabetes_csv, delimiter=",")
        _trained["optimum"] = folder, statsmodels_fit(table[:, :-1], table[:, -1])
    return _trained["optimum"]


def test_optimum_run_reports_statsmodels_likelihood_ratio_test_aic_bic_and_pseudo_r2(optimum_run):
    folder, reference = optimum_run

    inference = read_json(folder / "inference.json")

    assert inference["valid"] is True and inference["reason"] == ""
    assert inference["n_rows"] == 759 and inference["lr_df"] == 8
    assert inference["null_log_likelihood"] == pytest.approx(reference.llnull, rel=1e-9)
    for name, expected in [
        ("log_likelihood", reference.llf),
        ("lr_statistic", reference.llr),
        ("aic", reference.aic),
        ("bic", reference.bic),
        ("pseudo_r2", reference.prsquared),
    ]:
        assert inference[name] == pytest.approx(expected, rel=1e-4), name
    assert math.log10(inference["lr_p_value"]) == pytest.approx(math.log10(reference.llr_pvalue), abs=1e-4)


def test_optimum_run_reports_statsmodels_standard_errors_tests_and_intervals(optimum_run):
    folder, reference = optimum_run
    intervals = reference.conf_int()  # (F+1, 2)

    rows = read_coefficients(folder)

    assert [row["feature"] for row in rows] == [*(f"x{i}" for i in range(1, 9)), "(intercept)"]
    ours = {name: np.roll([row[name] for row in rows], 1) for name in rows[0] if name != "feature"}  # constant first
    np.testing.assert_allclose(ours["coefficient"], reference.params, rtol=0, atol=1e-4)
    for name, expected in [
        ("std_error", reference.bse),
        ("z", reference.tvalues),
        ("ci_low", intervals[:, 0]),
        ("ci_high", intervals[:, 1]),
        ("odds_ratio", np.exp(reference.params)),
        ("odds_ratio_low", np.exp(intervals[:, 0])),
        ("odds_ratio_high", np.exp(intervals[:, 1])),
    ]:
        np.testing.assert_allclose(ours[name], expected, rtol=1e-4, atol=0, err_msg=name)
    np.testing.assert_allclose(np.log10(ours["p_value"]), np.log10(reference.pvalues), rtol=0, atol=1e-4)


def test_optimum_run_reports_statsmodels_average_marginal_effects(optimum_run):
    folder, reference = optimum_run
    effects = reference.get_margeff(at="overall", method="dydx")

    rows = read_coefficients(folder)[:-1]  # the features: the intercept has no marginal effect

    np.testing.assert_allclose([row["marginal_effect"] for row in rows], effects.margeff, rtol=1e-6)
    np.testing.assert_allclose([row["marginal_effect_std_error"] for row in rows], effects.margeff_se, rtol=1e-5)


def assert_no_standard_errors(folder: Path, reason_start: str) -> None:
    inference = read_json(folder / "inference.json")
    assert inference["valid"] is False
    assert inference["reason"].startswith(reason_start), inference["reason"]
    for row in read_coefficients(folder):
        assert math.isfinite(row["coefficient"]) and math.isfinite(row["odds_ratio"]), row
        for name in ("std_error", "z", "p_value", "ci_low", "ci_high", "odds_ratio_low", "odds_ratio_high"):
            assert math.isnan(row[name]), (row["feature"], name)


def test_a_run_that_has_not_converged_records_no_standard_errors_and_why(run, diabetes_dir, tmp_path):
    run("experiment=lab05", *QUICK)  # 100 SGD steps: close to the optimum, not at it

    assert_no_standard_errors(tmp_path, "not converged: gradient norm")


def test_a_regularized_run_records_no_standard_errors_and_why(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", "epochs=2", "optimizer=adamw", "lr=0.1", *QUICK)

    assert_no_standard_errors(tmp_path, "regularized fit (weight_decay=0.01)")


OPTIMUM_ON_CSV = ("experiment=optimum", "data=csv", *QUICK)  # Newton to 1e-8 on every row of a CSV


def test_a_diverged_run_is_flagged_and_reports_no_negative_statistics(run, diabetes_dir, tmp_path):
    run("lr=1e6", "epochs=5", *QUICK)  # a finite, absurd fit

    inference = read_json(tmp_path / "inference.json")
    assert inference["log_likelihood"] < inference["null_log_likelihood"]
    assert "below the intercept-only model's" in inference["reason"]
    assert all(math.isnan(inference[name]) for name in ("lr_statistic", "lr_p_value", "pseudo_r2"))
    assert inference["valid"] is False and inference["reason"].startswith("not converged")
    assert all(math.isnan(row["std_error"]) for row in read_coefficients(tmp_path))


def test_a_run_on_a_rank_deficient_table_counts_df_by_rank_and_names_the_columns(run, tmp_path):
    features, labels = make_table(n_rows=300, n_features=3, seed=4)
    features = np.round(features, 2)  # two decimals: the sum is exact in the file (and to float32 in the model)
    labels = np.where(np.random.default_rng(4).uniform(size=300) < 0.2, 1 - labels, labels)  # classes overlap
    path = write_table(tmp_path / "sum.csv", np.column_stack([features, features[:, 0] + features[:, 1]]), labels)
    table = np.loadtxt(path, delimiter=",")
    reference = statsmodels_fit(table[:, :3], table[:, -1])  # without the sum: the rank's model

    run(*OPTIMUM_ON_CSV, f"data.path={path}")

    inference = read_json(tmp_path / "inference.json")
    assert inference["valid"] is True and inference["lr_df"] == reference.df_model == 3
    assert inference["unidentified"] == ["x1", "x2", "x4"]
    assert "x4 is a linear combination of x1, x2" in inference["note"]
    assert inference["aic"] == pytest.approx(reference.aic, rel=1e-7)
    rows = {row["feature"]: row for row in read_coefficients(tmp_path)}
    assert rows["x3"]["std_error"] == pytest.approx(reference.bse[3], rel=1e-5)
    assert rows["(intercept)"]["std_error"] == pytest.approx(reference.bse[0], rel=1e-5)
    assert all(math.isnan(rows[name]["std_error"]) for name in ("x1", "x2", "x4"))


def test_a_run_on_quasi_separated_classes_names_them_and_reports_no_standard_errors(run, tmp_path):
    rng = np.random.default_rng(3)
    features = rng.normal(size=(300, 2))
    labels = (rng.uniform(size=300) < 1 / (1 + np.exp(-features[:, 1]))).astype(np.float64)
    boundary = np.round(features[:, 0])  # both classes at 0; every row above is class 1, every row below class 0
    labels = np.where(boundary > 0, 1.0, np.where(boundary < 0, 0.0, labels))
    path = write_table(tmp_path / "quasi.csv", np.column_stack([boundary, features[:, 1]]), labels)

    run(*OPTIMUM_ON_CSV, f"data.path={path}")

    assert_no_standard_errors(tmp_path, "quasi-separated classes: along a direction of x1")


# ----------------------------------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("split", ["val", "test"])
def test_brier_score_logged_equals_scikit_learns_on_the_models_probabilities(plain_run, split):
    probs, labels = probabilities(plain_run / "checkpoints" / "last.ckpt", split)

    logged = scalars(plain_run)[f"{split}/brier"][-1]  # the last epoch's (val), or the test

    assert logged == pytest.approx(sk.brier_score_loss(labels, probs), abs=1e-6)


@pytest.mark.parametrize("split", ["val", "test"])
def test_calibration_error_logged_equals_an_independent_15_bin_ece(plain_run, split):
    probs, labels = probabilities(plain_run / "checkpoints" / "last.ckpt", split)
    occupied = len(np.unique(np.minimum((probs * 15).astype(int), 14)))

    logged = scalars(plain_run)[f"{split}/ece"][-1]

    assert occupied >= 4  # the rows spread over several bins: the weighting is exercised
    assert logged == pytest.approx(expected_calibration_error(probs, labels), abs=1e-6)


def test_reliability_diagrams_of_val_and_test_rows_are_in_tensorboard(plain_run):
    images = event_entries(plain_run, "images")

    for tag in ("val/reliability", "test/reliability"):
        assert len(images.get(tag, [])) == 1, tag
        assert images[tag][0].encoded_image_string.startswith(b"\x89PNG"), tag


# ------------------------------------------------------------------------------------------- decision threshold


def threshold_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (probabilities (N,) float64, labels (N,)): seeded random rows, heavy ties, and a single class."""
    cases = {}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        probs = rng.random(60)
        cases[f"random-{seed}"] = probs, (rng.random(60) < probs).astype(np.float64)
    for seed in (3, 4):
        rng = np.random.default_rng(seed)
        probs = (np.floor(rng.random(40) * 6) + 1) / 8  # 6 distinct values in (0, 1), about 7 rows each
        cases[f"ties-{seed}"] = probs, (rng.random(40) < probs + 0.2).astype(np.float64)
    rng = np.random.default_rng(5)
    cases["all-positive"] = rng.random(20), np.ones(20)
    cases["all-negative"] = rng.random(20), np.zeros(20)
    return cases


THRESHOLD_CASES = threshold_cases()
CRITERIA = {"f1": ("f1", 1.0), "youden": ("youden", 1.0), "cost-0.3": ("cost", 0.3), "cost-5": ("cost", 5.0)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "criterion,cost_ratio,case",
    [
        pytest.param(*CRITERIA[name], case, id=f"{name}-{case}")
        for name in CRITERIA
        for case in THRESHOLD_CASES
        if (name, case) != ("f1", "all-negative")  # F1 is 0/0 for the best prediction (none): nothing to compare
    ],
)
def test_chosen_threshold_equals_a_brute_force_search(criterion, cost_ratio, case, dtype):
    probs, labels = torch.tensor(THRESHOLD_CASES[case][0], dtype=dtype), torch.tensor(THRESHOLD_CASES[case][1])
    expected, expected_predicted = brute_force_threshold(probs.numpy(), labels.numpy(), criterion, cost_ratio)

    threshold = choose_threshold(probs, labels, criterion, cost_ratio)

    for stored_dtype in (torch.float32, torch.float64):  # as a model's threshold buffer holds it, in either precision
        stored = torch.tensor(threshold, dtype=stored_dtype)
        np.testing.assert_array_equal((probs.to(stored_dtype) >= stored).numpy(), expected_predicted)
    if expected is not None:  # below the chosen probability, above the next lower one
        assert threshold <= expected and not (probs[probs < expected] >= threshold).any()


def test_thresholded_metrics_count_a_probability_equal_to_the_threshold_as_predicted_1():
    logits, labels = torch.tensor([-2.0, 0.3, 1.0, 2.0, -0.5]), torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0])
    probs = torch.sigmoid(logits)
    threshold = probs[1].item()  # a tuned threshold is always one of the probabilities
    predicted = (probs >= threshold).numpy()

    metrics = evaluation_metrics(logits, labels, threshold)

    assert metrics["acc"].item() == pytest.approx(sk.accuracy_score(labels, predicted))
    assert metrics["f1"].item() == pytest.approx(sk.f1_score(labels, predicted))
    assert metrics["precision"].item() == pytest.approx(sk.precision_score(labels, predicted))
    assert metrics["recall"].item() == pytest.approx(sk.recall_score(labels, predicted))


def test_tuned_threshold_is_the_best_f1_cut_of_the_validation_rows_and_the_checkpoint_carries_it(tuned_run):
    ckpt_path = tuned_run / "checkpoints" / "last.ckpt"
    probs, _ = probabilities(ckpt_path, "val")
    expected, expected_predicted = brute_force_threshold(probs, probabilities(ckpt_path, "val")[1], "f1")

    stored = read_checkpoint(ckpt_path)["state_dict"]["threshold"]

    assert expected is not None and expected != 0.5
    np.testing.assert_array_equal(probs >= stored.item(), expected_predicted)
    assert model_from_checkpoint(read_checkpoint(ckpt_path)).decision_threshold() == stored.item()


def test_tuned_threshold_is_in_metrics_json_and_logged_as_the_threshold_scalar(tuned_run):
    stored = read_checkpoint(tuned_run / "checkpoints" / "last.ckpt")["state_dict"]["threshold"].item()

    assert read_json(tuned_run / "metrics.json")["threshold"] == stored
    logged = scalars(tuned_run)["threshold"]
    assert len(logged) == 3 and logged[-1] == pytest.approx(stored, abs=1e-7)  # one per validation epoch


def test_validation_metrics_count_predictions_at_the_tuned_threshold(tuned_run):
    ckpt_path = tuned_run / "checkpoints" / "last.ckpt"
    probs, labels = probabilities(ckpt_path, "val")
    threshold = read_checkpoint(ckpt_path)["state_dict"]["threshold"].item()
    predicted = probs >= threshold
    metrics = read_json(tuned_run / "metrics.json")

    assert (predicted != (probs >= 0.5)).any()  # the tuned cut predicts differently from 0.5
    assert metrics["val/acc"] == pytest.approx(sk.accuracy_score(labels, predicted), abs=1e-6)
    assert metrics["val/f1"] == pytest.approx(sk.f1_score(labels, predicted), abs=1e-6)
    assert metrics["val/precision"] == pytest.approx(sk.precision_score(labels, predicted), abs=1e-6)
    assert metrics["val/recall"] == pytest.approx(sk.recall_score(labels, predicted), abs=1e-6)


def test_eval_scores_with_the_tuned_threshold(tuned_run, compose, tmp_path):
    from logreg.evaluation import evaluate

    ckpt_path = tuned_run / "checkpoints" / "last.ckpt"
    probs, labels = probabilities(ckpt_path, "val")
    predicted = probs >= read_checkpoint(ckpt_path)["state_dict"]["threshold"].item()
    cfg = compose(f"ckpt_path={ckpt_path}", "split=val", run_dir=tmp_path / "eval", config_name="eval")
    cfg = check_config(cfg)

    metrics = evaluate(cfg)

    assert metrics["confusion_matrix"] == sk.confusion_matrix(labels, predicted).tolist()
    assert metrics["val/acc"] == pytest.approx(sk.accuracy_score(labels, predicted), abs=1e-6)
    assert metrics["val/f1"] == pytest.approx(sk.f1_score(labels, predicted), abs=1e-6)


def test_predict_labels_rows_at_the_tuned_threshold(tuned_run, compose, tmp_path):
    from logreg.prediction import predict

    ckpt_path = tuned_run / "checkpoints" / "last.ckpt"
    features, _ = make_table()
    np.savetxt(tmp_path / "new.csv", features, delimiter=",")
    model = model_from_checkpoint(read_checkpoint(ckpt_path))
    with torch.no_grad():
        probs = model(torch.from_numpy(features))
    cfg = compose(f"ckpt_path={ckpt_path}", "input=new.csv", "output=pred.csv", config_name="predict")
    cfg = check_config(cfg)

    predict(cfg)

    with open(tmp_path / "pred.csv") as file:
        predictions = np.array([int(row["prediction"]) for row in csv.DictReader(file)])
    np.testing.assert_array_equal(predictions, (probs >= model.threshold).numpy())
    assert (predictions != (probs >= 0.5).numpy()).any()


@pytest.mark.slow  # an ONNX export (test_export.py's fast tests export one too)
def test_exported_onnx_model_predicts_at_the_tuned_threshold(tuned_run, compose, tmp_path):
    import onnxruntime

    from logreg.export import export

    ckpt_path = tuned_run / "checkpoints" / "last.ckpt"
    threshold = read_checkpoint(ckpt_path)["state_dict"]["threshold"]
    features, _ = make_table()
    cfg = compose(f"ckpt_path={ckpt_path}", "format=onnx", f"output={tmp_path / 'model.onnx'}", config_name="export")
    cfg = check_config(cfg)

    path = export(cfg)

    session = onnxruntime.InferenceSession(str(path))
    probs, predictions = session.run(["probability", "prediction"], {"features": features})
    np.testing.assert_array_equal(predictions, probs >= threshold.numpy())
    assert (predictions != (probs >= 0.5)).any()


def test_float64_runs_measure_and_tune_in_float64_and_the_threshold_splits_alike_in_float32(run, tmp_path):
    features, labels = make_table(n_rows=2000, n_features=3, seed=6)
    labels = np.where(np.random.default_rng(6).uniform(size=2000) < 0.25, 1 - labels, labels)  # overlapping classes
    path = write_table(tmp_path / "table.csv", features, labels)
    run("data=csv", f"data.path={path}", "epochs=3", "model.tune_threshold=f1", "trainer.precision=64-true", *QUICK)

    ckpt_path = tmp_path / "checkpoints" / "last.ckpt"
    model, datamodule = load(ckpt_path)
    datamodule.keep_float64()  # the rows as the 64-true run read them, not rounded to float32
    rows, val_labels = datamodule.rows("val")
    state = read_checkpoint(ckpt_path)["state_dict"]  # float64 tensors: loaded into a float64 model, kept exact
    threshold = state["threshold"]
    assert threshold.dtype == torch.float64
    with torch.no_grad():
        model.double().load_state_dict(state)
        probs64 = model(rows.double()).numpy()
        probs32 = model.float()(rows.float()).numpy()
    predicted64 = probs64 >= threshold.double().item()
    predicted32 = probs32 >= threshold.float().numpy()

    np.testing.assert_array_equal(predicted32, predicted64)
    metrics = read_json(tmp_path / "metrics.json")
    assert metrics["val/f1"] == pytest.approx(sk.f1_score(val_labels, predicted64), rel=1e-12)
    # the log-loss in float64 by its definition (scikit-learn 1.4's log_loss renormalizes the probabilities: 1e-10 off)
    labels64 = val_labels.double().numpy()
    log_loss = -np.mean(labels64 * np.log(probs64) + (1 - labels64) * np.log1p(-probs64))
    assert metrics["val/loss"] == pytest.approx(log_loss, rel=1e-12)
    assert metrics["val/brier"] == pytest.approx(sk.brier_score_loss(val_labels, probs64), rel=1e-12)
    # torchmetrics accumulates AUROC's curve in float32: 7 digits
    assert metrics["val/auroc"] == pytest.approx(sk.roc_auc_score(val_labels, probs64), rel=1e-6)


def test_test_rows_never_influence_the_tuned_threshold(run, tmp_path):
    features, labels = make_table(seed=2)
    original = write_table(tmp_path / "original.csv", features, labels)
    test_rows = CSVDataModule(str(original), seed=1).split_rows("test")
    changed_features, changed_labels = features.copy(), labels.copy()
    changed_features[test_rows] = np.random.default_rng(0).uniform(-3, 3, (len(test_rows), 3))
    # Swapping the labels of two neighbouring test rows of different classes leaves the stratified split as it is.
    pairs = [(i, i + 1) for i in test_rows if i + 1 in test_rows and labels[i] != labels[i + 1]]
    for i, j in pairs:
        changed_labels[[i, j]] = changed_labels[[j, i]]
    changed = write_table(tmp_path / "changed.csv", changed_features, changed_labels)
    splits = [CSVDataModule(str(path), seed=1) for path in (original, changed)]
    assert pairs and all(np.array_equal(*(dm.split_rows(s) for dm in splits)) for s in ("train", "val", "test"))

    tuned = [
        run("data=csv", f"data.path={path}", "epochs=3", "model.tune_threshold=f1", *QUICK, run_dir=tmp_path / name)
        for name, path in (("original", original), ("changed", changed))
    ]

    thresholds = [read_json(tmp_path / name / "metrics.json")["threshold"] for name in ("original", "changed")]
    assert thresholds[0] == thresholds[1] != 0.5
    assert tuned[0]["test/loss"] != tuned[1]["test/loss"]  # the test rows did change what was measured on them


# -------------------------------------------------------------------------------------------------- class weights


def test_balanced_class_weight_reaches_scikit_learns_balanced_fit(run, tmp_path):
    from sklearn.linear_model import LogisticRegression as Reference

    rng = np.random.default_rng(7)
    features = rng.normal(0, [1.0, 3.0, 0.5], size=(400, 3)).astype(np.float32)
    logits = features @ np.array([1.0, -0.4, 2.0]) - 2.0
    labels = (rng.random(400) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    path = write_table(tmp_path / "imbalanced.csv", features, labels)
    table = np.loadtxt(path, delimiter=",")  # the numbers as the run reads them
    assert 0.1 < table[:, -1].mean() < 0.3  # imbalanced
    reference = Reference(C=np.inf, class_weight="balanced", tol=1e-10, max_iter=10_000)  # unpenalized
    reference.fit(table[:, :-1], table[:, -1])

    run(
        "data=csv",
        f"data.path={path}",
        "model.pos_weight=balanced",
        "optimizer=lbfgs",
        "model.optimizer.max_iter=200",
        "epochs=5",
        "data.val_fraction=0",
        "data.test_fraction=0",
        "data.test_on=train",
        "monitor=train/loss",
        *QUICK,
    )

    coefficients = [row["coefficient"] for row in read_coefficients(tmp_path)]  # per raw unit, intercept last
    expected = [*reference.coef_[0], reference.intercept_[0]]
    np.testing.assert_allclose(coefficients, expected, rtol=0, atol=1e-3)


def test_a_numeric_pos_weight_weights_the_logged_loss_and_the_update(run, tiny_csv, tmp_path):
    metrics = run("data=csv", f"data.path={tiny_csv}", "model.pos_weight=3", "epochs=1", "lr=0.5", *QUICK)

    # The same start as the run: its seed, then the model on the training rows' scaler.
    L.seed_everything(1, verbose=False)
    datamodule = CSVDataModule(str(tiny_csv), standardize=True, seed=1)
    mean, std = datamodule.scaler()
    start = LogisticRegression(n_features=3, feature_mean=mean, feature_std=std)
    features, labels = datamodule.rows("train")
    logits = start.logits(features)
    loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=torch.tensor(3.0))
    unweighted = F.binary_cross_entropy_with_logits(logits, labels)
    grad_weight, grad_bias = torch.autograd.grad(loss, [start.linear.weight, start.linear.bias])

    assert metrics["train/loss"] == pytest.approx(loss.item(), abs=1e-6)  # the loss before the epoch's one step
    assert abs(loss.item() - unweighted.item()) > 0.1
    state = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    torch.testing.assert_close(state["linear.weight"], start.linear.weight.detach() - 0.5 * grad_weight)
    torch.testing.assert_close(state["linear.bias"], start.linear.bias.detach() - 0.5 * grad_bias)


def test_cross_validation_prints_one_line_per_fold_and_one_final_table(run, tiny_csv, tmp_path, capsys):
    run(f"data.path={tiny_csv}", *TINY, *QUICK, f"cv.folds={FOLDS}")

    printed = capsys.readouterr().out.splitlines()
    folds = [line for line in printed if line.startswith("fold ")]
    assert [line.split(":")[0] for line in folds] == [f"fold {k} of {FOLDS}" for k in range(FOLDS)]
    assert sum(line.startswith("refit on every non-test row: test/loss=") for line in printed) == 1
    assert not any("Final metrics" in line or "Coefficients" in line for line in printed)  # in each fold's folder
    starts = [line.split()[0] for line in printed if line.split()]
    rows = [word for word in starts if word in ("fold", "mean", "std", "refit")]
    assert rows == ["fold"] * FOLDS + ["refit"] + ["fold"] * FOLDS + ["mean", "std", "refit"]  # lines, then the table
    assert all((tmp_path / folder / "coefficients.csv").is_file() for folder in ("fold_0", "refit"))


def test_a_folds_metrics_are_named_for_the_rows_they_score(cv_run):
    for k in range(FOLDS):
        metrics = read_json(cv_run / f"fold_{k}" / "metrics.json")
        assert "val/loss" in metrics and not any(name.startswith("test/") for name in metrics), sorted(metrics)


def test_a_folds_checkpoint_names_its_validation_rows_as_the_rows_eval_scores(cv_run):
    saved = torch.load(cv_run / "fold_0" / "checkpoints" / "last.ckpt", weights_only=True)

    assert saved["datamodule_hyper_parameters"]["test_on"] == "val"  # eval.py's default split: the fold's own rows
