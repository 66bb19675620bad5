"""A trained model, used: evaluated, predicted with, resumed, exported and explained, from its checkpoint alone."""

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, make_table
from eval import evaluate
from export import export
from logreg.checkpoints import load_checkpoint
from logreg.errors import DataError
from logreg.report import coefficients
from predict import predict
from train import train


@pytest.fixture
def trained(compose, tiny_csv, tmp_path):
    """A short run on the tiny CSV with standardization (so the scaler must travel): its last checkpoint."""
    train(compose("data=csv", f"data.path={tiny_csv}", "data.standardize=true", "epochs=5", run_dir=tmp_path / "run"))
    return tmp_path / "run" / "checkpoints" / "last.ckpt"


def test_checkpoint_loads_with_no_extra_arguments_and_weights_only(trained):
    model, datamodule = load_checkpoint(trained)

    reloaded = type(model).load_from_checkpoint(trained, weights_only=True)
    assert reloaded.hparams == model.hparams and reloaded.hparams.n_features == 3
    assert not torch.equal(model.feature_std, torch.ones(3))  # the training split's scaler came along
    assert datamodule.hparams.standardize and datamodule.hparams.val_fraction == 0.1


def test_eval_reports_every_metric_and_writes_them_to_its_run_folder(trained, compose, tmp_path):
    eval_dir = tmp_path / "eval"
    cfg = compose(f"ckpt_path={trained}", run_dir=eval_dir, config_name="eval")

    metrics = evaluate(cfg)

    expected = {"test/acc", "test/auroc", "test/f1", "test/precision", "test/recall", "test/loss", "confusion_matrix"}
    assert set(metrics) == expected
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    assert tn + fp + fn + tp == 20  # the tiny table's test rows (10%), cut again as in training
    assert metrics["test/acc"] == pytest.approx((tn + tp) / 20)
    scalars = {name: metrics[name] for name in expected - {"confusion_matrix"}}
    assert json.loads((eval_dir / "metrics.json").read_text()) == pytest.approx(scalars)
    assert json.loads((eval_dir / "confusion_matrix.json").read_text()) == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert list(eval_dir.glob("events.out.tfevents.*"))


def test_eval_matches_the_test_metrics_of_training(compose, tiny_csv, tmp_path):
    trained_metrics = train(compose("data=csv", f"data.path={tiny_csv}", "epochs=3", run_dir=tmp_path / "run"))

    metrics = evaluate(compose(f"ckpt_path={tmp_path / 'run/checkpoints/last.ckpt'}", run_dir=tmp_path / "eval",
                               config_name="eval"))

    for name in ("test/loss", "test/acc", "test/auroc"):
        assert metrics[name] == pytest.approx(trained_metrics[name], abs=1e-6), name


def predict_cfg(trained, input_path, output_path, **options):
    return OmegaConf.create({"ckpt_path": str(trained), "input": str(input_path), "output": str(output_path),
                             "header": None, "threshold": None, "trust_checkpoint": False, **options})


@pytest.mark.parametrize("with_label", [True, False], ids=["with-label-column", "features-only"])
def test_predict_applies_the_training_scaler_and_writes_probability_and_label(trained, tmp_path, with_label):
    features, labels = make_table(n_rows=30, seed=5)
    rows = np.column_stack([features, labels]) if with_label else features
    np.savetxt(tmp_path / "new.csv", rows, delimiter=",", fmt="%.6g")
    model, _ = load_checkpoint(trained)

    assert predict(predict_cfg(trained, tmp_path / "new.csv", tmp_path / "pred.csv")) == 30

    with (tmp_path / "pred.csv").open() as file:
        written = list(csv.DictReader(file))
    expected = model(torch.from_numpy(np.loadtxt(tmp_path / "new.csv", delimiter=",", dtype=np.float32)[:, :3]))
    np.testing.assert_allclose([float(r["probability"]) for r in written], expected.detach().numpy(), atol=1e-6)
    assert [int(r["prediction"]) for r in written] == (expected >= 0.5).long().tolist()


def test_predict_threshold_is_configurable(trained, tmp_path):
    features, _ = make_table(n_rows=20, seed=6)
    np.savetxt(tmp_path / "new.csv", features, delimiter=",")

    predict(predict_cfg(trained, tmp_path / "new.csv", tmp_path / "pred.csv", threshold=0.999))

    with (tmp_path / "pred.csv").open() as file:
        assert {row["prediction"] for row in csv.DictReader(file)} == {"0"}


def test_predict_refuses_rows_with_the_wrong_number_of_features(trained, tmp_path):
    np.savetxt(tmp_path / "wide.csv", np.zeros((4, 6)), delimiter=",")

    with pytest.raises(DataError, match=r"wide\.csv: rows have 6 columns; the model takes 3 features \(or 4 columns"):
        predict(predict_cfg(trained, tmp_path / "wide.csv", tmp_path / "pred.csv"))


def test_resuming_from_last_ckpt_equals_an_uninterrupted_run(compose, tiny_csv, tmp_path):
    common = ("data=csv", f"data.path={tiny_csv}", "data.batch_size=32", "optimizer=adam", "lr=0.05")
    uninterrupted = train(compose(*common, "epochs=6", run_dir=tmp_path / "whole"))
    train(compose(*common, "epochs=3", run_dir=tmp_path / "first"))

    resumed = train(compose(*common, "epochs=6", f"ckpt_path={tmp_path / 'first/checkpoints/last.ckpt'}",
                            run_dir=tmp_path / "second"))

    whole = torch.load(tmp_path / "whole/checkpoints/last.ckpt", weights_only=True)
    second = torch.load(tmp_path / "second/checkpoints/last.ckpt", weights_only=True)
    assert second["epoch"] == whole["epoch"] == 5 and second["global_step"] == whole["global_step"]
    for name, tensor in whole["state_dict"].items():
        torch.testing.assert_close(second["state_dict"][name], tensor, rtol=0, atol=1e-6)
    torch.testing.assert_close(second["optimizer_states"][0]["state"], whole["optimizer_states"][0]["state"])
    assert resumed["test/loss"] == pytest.approx(uninterrupted["test/loss"], abs=1e-6)


@pytest.mark.slow
def test_a_killed_run_resumes_from_last_ckpt_losing_at_most_the_last_epoch(tiny_csv, tmp_path):
    run = [sys.executable, str(REPO / "train.py"), "data=csv", f"data.path={tiny_csv}"]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([*run, "epochs=100000", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not last.exists() or torch.load(last, weights_only=True)["epoch"] < 3:
        assert time.monotonic() < deadline and process.poll() is None, "no checkpoint of epoch 3 appeared"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    epoch = torch.load(last, weights_only=True)["epoch"]  # whole, despite the kill: written atomically
    result = subprocess.run([*run, f"epochs={epoch + 3}", f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'resumed'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == epoch + 2  # went on from the epoch after the saved one


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_gives_the_lightning_models_probabilities(trained, tmp_path, fmt):
    model, _ = load_checkpoint(trained)
    features, _ = make_table(n_rows=57, seed=9)  # a batch size the export never saw

    path = export(OmegaConf.create({"ckpt_path": str(trained), "format": fmt, "output": str(tmp_path / f"model.{fmt}"),
                                    "trust_checkpoint": False}))

    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path))
        probs = session.run(["probability"], {"features": features})[0]
    else:
        probs = torch.jit.load(str(path))(torch.from_numpy(features)).detach().numpy()
    np.testing.assert_allclose(probs, model(torch.from_numpy(features)).detach().numpy(), rtol=0, atol=1e-6)


def test_coefficients_at_the_optimum_match_statsmodels(compose, diabetes_csv, tmp_path):
    import statsmodels.api as sm

    table = np.loadtxt(diabetes_csv, delimiter=",")
    reference = sm.Logit(table[:, -1], sm.add_constant(table[:, :-1])).fit(disp=0, method="newton", tol=1e-12)
    train(compose("experiment=optimum"))
    model, datamodule = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")

    datamodule.load()
    rows = coefficients(model, datamodule.feature_names)

    learned = [row["coefficient"] for row in rows]  # x0..x7, then the intercept
    np.testing.assert_allclose(learned, [*reference.params[1:], reference.params[0]], atol=2e-3)
    assert [row["odds_ratio"] for row in rows] == pytest.approx(np.exp(learned).tolist())
    with (tmp_path / "coefficients.csv").open() as file:
        saved = list(csv.DictReader(file))
    assert [row["feature"] for row in saved] == [*(f"x{i}" for i in range(8)), "(intercept)"]
    assert [float(row["coefficient"]) for row in saved] == pytest.approx(learned)
