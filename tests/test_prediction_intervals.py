"""predict.py interval=<level>: a lower and an upper probability per row, statsmodels' Logit get_prediction (the delta
method on the logit scale), from the covariance training stores in last.ckpt; refused where there is none."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch

from conftest import OPTIMUM, write_table
from logreg.checking import check_config
from logreg.checkpoints import read_checkpoint
from logreg.errors import CheckpointError, ConfigError
from logreg.inference import infer
from logreg.intervals import RECORD_KEY, checkpoint_record
from logreg.prediction import predict


def generated(n_rows: int = 300, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes (labels drawn from the model's probabilities), features of unequal units."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_rows, 3)) * [1.0, 10.0, 0.1]  # (N, 3)
    logits = features @ [1.0, -0.1, 5.0] + 0.4
    labels = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logits))).astype(np.float64)
    return features, labels


def predicted(compose, ckpt_path, input_path, output_path, *overrides) -> list[dict]:
    cfg = compose(
        f"ckpt_path={ckpt_path}", f"input={input_path}", f"output={output_path}", *overrides, config_name="predict"
    )
    cfg = check_config(cfg)
    predict(cfg)
    with open(output_path) as file:
        return list(csv.DictReader(file))


def statsmodels_intervals(train_path, new_rows: np.ndarray, cov_type: str, level: float) -> np.ndarray:
    """(N, 2) statsmodels' get_prediction(...).conf_int() on the rows the run read (the file's digits)."""
    import statsmodels.api as sm

    table = np.loadtxt(train_path, delimiter=",")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.Logit(table[:, -1], sm.add_constant(table[:, :-1])).fit(
            method="newton", tol=1e-12, disp=0, cov_type=cov_type
        )
    return fit.get_prediction(sm.add_constant(new_rows, has_constant="add")).conf_int(alpha=1 - level)


@pytest.mark.parametrize(
    "cov_type, options",
    [("nonrobust", ()), ("HC0", ("data.standardize=true",))],
    ids=["nonrobust", "HC0-standardized"],
)
def test_intervals_match_statsmodels_get_prediction(run, compose, tmp_path, cov_type, options):
    path = write_table(tmp_path / "train.csv", *generated())
    run(*OPTIMUM, f"data.path={path}", f"inference.cov_type={cov_type}", *options)
    new_rows = generated(n_rows=40, seed=9)[0].astype(np.float32)  # what predict.py reads: float32
    np.savetxt(tmp_path / "new.csv", new_rows, delimiter=",", fmt="%.9g")

    rows = predicted(
        compose, tmp_path / "checkpoints/last.ckpt", tmp_path / "new.csv", tmp_path / "pred.csv", "interval=0.9"
    )

    assert list(rows[0]) == ["probability", "prediction", "lower", "upper"] and len(rows) == 40
    bounds = np.array([[float(row["lower"]), float(row["upper"])] for row in rows])  # (N, 2)
    expected = statsmodels_intervals(path, new_rows.astype(np.float64), cov_type, 0.9)
    np.testing.assert_allclose(bounds, expected, rtol=1e-6, atol=1e-9)
    probability = np.array([float(row["probability"]) for row in rows])
    assert np.all((bounds[:, 0] <= probability + 1e-6) & (probability - 1e-6 <= bounds[:, 1]))


def test_intervals_are_refused_for_a_fit_that_did_not_converge_before_the_input_is_read(run, compose, tmp_path):
    path = write_table(tmp_path / "train.csv", *generated())
    run("data=csv", f"data.path={path}", "epochs=2", "logger=none", "~callbacks.plots")  # lab 5's SGD, 2 epochs

    last = tmp_path / "checkpoints/last.ckpt"

    with pytest.raises(ConfigError, match=r"^interval: .*no valid standard errors.*: not converged: gradient norm"):
        predicted(compose, last, tmp_path / "absent.csv", tmp_path / "p.csv", "interval=0.95")
    assert not (tmp_path / "p.csv").exists()


def test_intervals_are_refused_for_a_checkpoint_without_a_covariance(run, compose, tmp_path):
    path = write_table(tmp_path / "train.csv", *generated())
    run(*OPTIMUM, f"data.path={path}")
    checkpoint = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    del checkpoint[RECORD_KEY]  # as an older checkpoint, or one written before the end of training
    torch.save(checkpoint, tmp_path / "older.ckpt")

    with pytest.raises(CheckpointError, match=r"^interval: ckpt_path=.*older\.ckpt holds no coefficient covariance"):
        predicted(compose, tmp_path / "older.ckpt", tmp_path / "absent.csv", tmp_path / "p.csv", "interval=0.95")


def test_checkpoint_with_the_covariance_loads_weights_only_and_resumes(run, tmp_path):
    path = write_table(tmp_path / "train.csv", *generated())
    run(*OPTIMUM, f"data.path={path}", run_dir=tmp_path / "first")
    last = tmp_path / "first/checkpoints/last.ckpt"

    record = torch.load(last, map_location="cpu", weights_only=True)[RECORD_KEY]
    assert record["cov_type"] == "nonrobust" and record["reason"] == ""
    assert np.shape(record["covariance"]) == (4, 4) and all(type(v) is float for v in record["covariance"][0])
    assert RECORD_KEY in read_checkpoint(last)  # this project's reader, which refuses pickled objects, takes it
    run(*OPTIMUM, f"data.path={path}", "epochs=2", f"ckpt_path={last}", run_dir=tmp_path / "resumed")
    assert (tmp_path / "resumed/checkpoints/last.ckpt").is_file()


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5])
def test_interval_level_outside_zero_one_is_refused_naming_the_key(compose, tmp_path, level):
    (tmp_path / "model.ckpt").write_bytes(b"")
    cfg = compose("ckpt_path=model.ckpt", "input=new.csv", f"interval={level}", config_name="predict")

    with pytest.raises(ConfigError, match=rf"^interval={level}: expected a confidence level strictly between 0 and 1"):
        cfg = check_config(cfg)


def test_a_dependent_column_leaves_no_covariance_for_intervals_and_says_why():
    import statsmodels.api as sm

    features, labels = generated()
    optimum = sm.Logit(labels, sm.add_constant(features)).fit(method="newton", tol=1e-12, disp=0).params
    features = np.column_stack([features, features[:, 0] + features[:, 1]])  # x4 = x1 + x2: x4's weight 0 is optimal
    fit = infer(features, labels, np.append(optimum[1:], 0.0), optimum[0], ["x1", "x2", "x3", "x4"])

    record = checkpoint_record(fit, "nonrobust")

    assert record["covariance"] is None and record["reason"].startswith("rank-deficient design: x4 is a linear")
