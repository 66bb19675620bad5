"""train.py end to end: lab 5's numbers, the known optimum, the run folder and what TensorBoard reads from it."""

import json
import sys

import numpy as np
import pytest
import warm

from conftest import REPO, hparams, scalars
from logreg.metric_names import STAGE_METRICS


def test_lab05_reproduces_the_labs_published_numbers(run, diabetes_dir, tmp_path):
    metrics = run("experiment=lab05")

    first_epoch_loss = scalars(tmp_path)["train/loss"][0]
    assert first_epoch_loss == pytest.approx(0.704829, abs=1e-5)
    assert metrics["test/loss"] == pytest.approx(0.481234, abs=1e-5)  # the lab's "after training", on its 759 rows
    assert round(metrics["test/acc"] * 759) == 583
    assert metrics["test/acc"] == pytest.approx(0.7681, abs=1e-4)


def test_lbfgs_reaches_the_optimum_of_a_reference_fit(run, diabetes_csv, tmp_path):
    from sklearn.linear_model import LogisticRegression as Reference

    table = np.loadtxt(diabetes_csv, delimiter=",")  # float64
    features, labels = table[:, :-1], table[:, -1]
    reference = Reference(C=np.inf, tol=1e-12, max_iter=10_000).fit(features, labels)
    probs = reference.predict_proba(features)[:, 1]
    reference_loss = -np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    assert reference_loss == pytest.approx(0.471671, abs=1e-6)  # the figure, as a check on the reference

    metrics = run("experiment=optimum")

    assert metrics["test/loss"] == pytest.approx(reference_loss, abs=1e-4)
    assert metrics["test/acc"] == pytest.approx(reference.score(features, labels), abs=1 / 759)


def test_run_folder_holds_config_events_checkpoints_and_metrics(run, tiny_csv, tmp_path):
    metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=3", "lr=0.5")

    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best-epoch=002.ckpt", "last.ckpt"]
    assert list(tmp_path.glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx({**metrics, "threshold": 0.5})
    header = (tmp_path / "coefficients.csv").read_text().splitlines()[0]
    assert header == (
        "feature,coefficient,std_error,z,p_value,ci_low,ci_high,odds_ratio,odds_ratio_low,odds_ratio_high,"
        "marginal_effect,marginal_effect_std_error"
    )
    assert json.loads((tmp_path / "inference.json").read_text())["n_rows"] == 160  # the training rows


def test_tensorboard_gets_every_epochs_train_and_val_scalars_and_the_test_metrics(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", "epochs=4")

    values = scalars(tmp_path)
    for tag in ("train/loss", "train/acc", *(f"val/{name}" for name in STAGE_METRICS["val"])):
        assert len(values[tag]) == 4, tag
    for tag in (f"test/{name}" for name in STAGE_METRICS["test"]):
        assert len(values[tag]) == 1, tag


def test_hparams_tab_shows_the_knobs_and_the_final_metrics(run, tiny_csv, tmp_path):
    metrics = run("data=csv", f"data.path={tiny_csv}", "epochs=2", "lr=0.3", "optimizer=adam")

    experiment, session = hparams(tmp_path)
    assert session.hparams["optimizer.lr"].number_value == pytest.approx(0.3)
    assert session.hparams["optimizer.name"].string_value == "adam"
    assert session.hparams["epochs"].number_value == 2
    shown = {info.name.tag for info in experiment.metric_infos}
    assert {"final/val/loss", "final/test/acc", "final/test/auroc"} <= shown
    assert scalars(tmp_path)["final/test/acc"] == [pytest.approx(metrics["test/acc"])]


def test_the_default_run_learns_and_is_the_same_for_the_same_seed(run, diabetes_dir, tmp_path):
    first = run("epochs=30", run_dir=tmp_path / "first")
    second = run("epochs=30", run_dir=tmp_path / "second")

    assert first == second
    assert first["val/acc"] > 0.7 and first["test/acc"] > 0.7


@pytest.mark.slow
def test_train_py_runs_as_a_command_and_prints_its_run_folder(diabetes_dir, tmp_path):
    result = warm.run(
        [sys.executable, str(REPO / "train.py"), "lr=1", "epochs=3", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Run folder:" in result.stdout and str(tmp_path / "run") in result.stdout.replace("\n", "")
    printed = result.stdout + result.stderr
    for noise in ("Tip:", "litlogger", "LeafSpec", "GPU available", "TPU available", "FLOPs", "Warning"):
        assert noise not in printed, noise  # third-party tips and upstream deprecations stay out of the console
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--help", "--cfg=job"])
def test_train_py_shows_its_config(flag):
    result = warm.run([sys.executable, str(REPO / "train.py"), flag], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "lr: 1.0" in result.stdout and "epochs: 100" in result.stdout


def test_breast_cancer_trains_offline_with_standardized_features(run):
    metrics = run("data=breast_cancer", "epochs=30")

    assert metrics["val/acc"] > 0.9 and metrics["test/acc"] > 0.9
