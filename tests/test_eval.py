"""eval.py: a checkpoint's path is all it needs. It scores the rows training tested on and reports every metric, the
confusion matrix and the coefficients (explained as odds ratios) in its run folder and in TensorBoard."""

import csv
import json
import sys

import numpy as np
import pytest
import torch
import warm
from sklearn import metrics as sk
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, make_table, write_table
from logreg.checking import check_config
from logreg.checkpoints import datamodule_from_checkpoint, model_from_checkpoint, read_checkpoint
from logreg.errors import ConfigError, DataError
from logreg.evaluation import evaluate
from logreg.model import LogisticRegression


@pytest.fixture
def trained(trained_once, module_tiny_csv):
    """A short run on the tiny CSV with standardization (so the scaler must travel): its last checkpoint, in this
    test's copy of the run folder (tmp_path/run; the module trains it once)."""
    run_dir = trained_once("data=csv", f"data.path={module_tiny_csv}", "data.standardize=true", "epochs=5")
    return run_dir / "checkpoints" / "last.ckpt"


def evaluate_checkpoint(compose, ckpt_path, run_dir, *overrides: str) -> dict:
    """What `python eval.py ckpt_path=... *overrides` returns, with its run folder at run_dir."""
    cfg = compose(f"ckpt_path={ckpt_path}", *overrides, run_dir=run_dir, config_name="eval")
    cfg = check_config(cfg)
    return evaluate(cfg)


def load(ckpt_path):
    """The model and DataModule a checkpoint holds."""
    checkpoint = read_checkpoint(ckpt_path)
    return model_from_checkpoint(checkpoint), datamodule_from_checkpoint(checkpoint)[0]


def read_coefficients(run_dir) -> dict[str, float]:
    with (run_dir / "coefficients.csv").open() as file:
        return {row["feature"]: float(row["coefficient"]) for row in csv.DictReader(file)}


def test_a_checkpoint_loads_with_no_extra_arguments_and_weights_only(trained):
    model = LogisticRegression.load_from_checkpoint(trained, weights_only=True)

    assert model.hparams.n_features == 3 and model.hparams.optimizer["name"] == "sgd"
    assert not torch.equal(model.feature_std, torch.ones(3))  # the training split's scaler came along
    features = torch.from_numpy(make_table(n_rows=10, seed=3)[0])
    torch.testing.assert_close(model(features), load(trained)[0](features), rtol=0, atol=0)


def test_eval_metrics_equal_scikit_learns_on_the_held_out_rows(trained, compose, tmp_path):
    model, datamodule = load(trained)
    features, labels = datamodule.rows("test")  # the 20 held-out rows (10% of 200), cut as in training
    probs = model(features).detach().numpy()
    labels, predicted = labels.numpy(), probs >= 0.5

    metrics = evaluate_checkpoint(compose, trained, tmp_path / "eval")

    assert len(labels) == 20 and 0 < predicted.sum() < 20
    assert metrics["confusion_matrix"] == sk.confusion_matrix(labels, predicted).tolist()
    assert metrics["test/acc"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert metrics["test/auroc"] == pytest.approx(sk.roc_auc_score(labels, probs))
    assert metrics["test/f1"] == pytest.approx(sk.f1_score(labels, predicted))
    assert metrics["test/precision"] == pytest.approx(sk.precision_score(labels, predicted))
    assert metrics["test/recall"] == pytest.approx(sk.recall_score(labels, predicted))
    assert metrics["test/loss"] == pytest.approx(sk.log_loss(labels, probs), abs=1e-6)  # the log-loss
    assert metrics["test/brier"] == pytest.approx(sk.brier_score_loss(labels, probs), abs=1e-6)


def test_eval_writes_metrics_confusion_matrix_and_coefficients_to_its_run_folder(trained, compose, tmp_path):
    eval_dir = tmp_path / "eval"

    metrics = evaluate_checkpoint(compose, trained, eval_dir)

    (tn, fp), (fn, tp) = metrics.pop("confusion_matrix")
    assert json.loads((eval_dir / "metrics.json").read_text()) == pytest.approx({**metrics, "threshold": 0.5})
    assert json.loads((eval_dir / "confusion_matrix.json").read_text()) == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert read_coefficients(eval_dir) == pytest.approx(read_coefficients(tmp_path / "run"))  # as training printed


def test_eval_logs_its_metrics_and_images_to_tensorboard(trained, compose, tmp_path):
    eval_dir = tmp_path / "eval"

    metrics = evaluate_checkpoint(compose, trained, eval_dir)

    scalars, images = {}, set()
    for event_file in eval_dir.glob("events.out.tfevents.*"):
        events = EventAccumulator(str(event_file), size_guidance={"images": 0}).Reload()
        scalars |= {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
        images |= set(events.Tags()["images"])
    for name in ("acc", "auroc", "f1", "precision", "recall", "loss", "brier", "ece"):
        assert scalars[f"test/{name}"] == [pytest.approx(metrics[f"test/{name}"])], name
    assert images == {"test/confusion_matrix", "test/roc", "test/pr_curve", "test/reliability"}


def test_eval_reproduces_the_test_metrics_of_training(run, compose, tiny_csv, tmp_path):
    trained_metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=3", run_dir=tmp_path / "run")

    metrics = evaluate_checkpoint(compose, tmp_path / "run/checkpoints/last.ckpt", tmp_path / "eval")

    for name in ("test/loss", "test/acc", "test/auroc", "test/f1"):
        assert metrics[name] == pytest.approx(trained_metrics[name], abs=1e-6), name


def test_eval_scores_a_lab05_checkpoint_on_the_rows_the_lab_reports(run, compose, diabetes_dir, tmp_path):
    run("experiment=lab05", run_dir=tmp_path / "run")  # trains and reports on all 759 rows

    metrics = evaluate_checkpoint(compose, tmp_path / "run/checkpoints/last.ckpt", tmp_path / "eval")

    assert metrics["train/loss"] == pytest.approx(0.481234, abs=1e-5)  # named by the rows it scored
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert (tn + fp + fn + tp, tn + tp) == (759, 583)


def test_eval_names_its_metrics_by_the_rows_it_scored(trained, compose, tmp_path):
    metrics = evaluate_checkpoint(compose, trained, tmp_path / "eval", "split=val")

    assert {name.split("/")[0] for name in metrics if "/" in name} == {"val"}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["val/acc"] == metrics["val/acc"]


def test_eval_refuses_data_that_changed_since_training_unless_allowed(trained, compose, tiny_csv, tmp_path):
    features, labels = make_table()
    reordered = write_table(tmp_path / "reordered.csv", features[::-1], labels[::-1])  # the same rows, reversed

    with pytest.raises(
        DataError,
        match=r"the data differs from what it was trained on \(200 rows and sha256 .*"
        r"so its test rows would be other rows.*allow_changed_data=true",
    ):
        evaluate_checkpoint(compose, trained, tmp_path / "eval", f"data.path={reordered}")
    metrics = evaluate_checkpoint(
        compose, trained, tmp_path / "eval2", f"data.path={reordered}", "allow_changed_data=true"
    )
    assert 0 <= metrics["test/acc"] <= 1


def test_eval_finds_the_data_elsewhere_when_it_is_the_same(trained, compose, tiny_csv, tmp_path):
    moved = tmp_path / "elsewhere" / "copy.csv"
    moved.parent.mkdir()
    moved.write_text(tiny_csv.read_text().replace("\n", "\r\n"))  # the same numbers, Windows line ends

    metrics = evaluate_checkpoint(compose, trained, tmp_path / "eval", f"data.path={moved}")
    assert metrics["test/acc"] == evaluate_checkpoint(compose, trained, tmp_path / "eval2")["test/acc"]


def test_eval_of_a_split_without_rows_names_the_splits_that_have_them(run, compose, tiny_csv, tmp_path):
    run(
        "data=csv",
        f"data.path={tiny_csv}",
        "data.val_fraction=0",
        "monitor=train/loss",
        "epochs=1",
        run_dir=tmp_path / "run",
    )

    with pytest.raises(
        ConfigError,
        match=r"split=val: .*last\.ckpt was trained with data\.val_fraction=0, so it has "
        r"no val rows; use split=train or split=test",
    ):
        evaluate_checkpoint(compose, tmp_path / "run/checkpoints/last.ckpt", tmp_path / "eval", "split=val")


@pytest.mark.slow
def test_eval_py_scores_a_checkpoint_given_only_its_path(trained, tmp_path):
    result = warm.run(
        [sys.executable, str(REPO / "eval.py"), f"ckpt_path={trained}", f"hydra.run.dir={tmp_path / 'eval'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    for shown in ("Confusion matrix (test rows)", "test/auroc", "test/loss", "(intercept)", "odds ratio", "AIC"):
        assert shown in result.stdout, shown
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_coefficients_are_named_by_the_csv_header(run, compose, tmp_path):
    features, labels = make_table(n_features=2)
    path = tmp_path / "named.csv"
    np.savetxt(
        path, np.column_stack([labels, features]), delimiter=",", fmt="%.6g", header="outcome,glucose,bmi", comments=""
    )
    run("data=csv", f"data.path={path}", "data.label_column=outcome", "epochs=2", run_dir=tmp_path / "run")

    evaluate_checkpoint(compose, tmp_path / "run/checkpoints/last.ckpt", tmp_path / "eval")

    assert list(read_coefficients(tmp_path / "eval")) == ["glucose", "bmi", "(intercept)"]


def test_coefficients_at_the_optimum_match_statsmodels(run, compose, diabetes_csv, tmp_path):
    import statsmodels.api as sm

    table = np.loadtxt(diabetes_csv, delimiter=",")  # float64
    reference = sm.Logit(table[:, -1], sm.add_constant(table[:, :-1])).fit(disp=0, method="newton", tol=1e-12)
    run("experiment=optimum", run_dir=tmp_path / "run")  # L-BFGS to the optimum, on all 759 rows

    evaluate_checkpoint(compose, tmp_path / "run/checkpoints/last.ckpt", tmp_path / "eval")

    with (tmp_path / "eval" / "coefficients.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["feature"] for row in rows] == [*(f"x{i}" for i in range(1, 9)), "(intercept)"]
    learned = np.array([float(row["coefficient"]) for row in rows])
    expected, standard_errors = np.roll(reference.params, -1), np.roll(reference.bse, -1)  # the constant goes last
    assert np.all(np.abs(learned - expected) < 0.01 * standard_errors)  # far inside the estimates' own uncertainty
    np.testing.assert_allclose([float(row["odds_ratio"]) for row in rows], np.exp(learned), rtol=1e-6)
