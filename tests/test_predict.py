"""predict.py: rows of raw features in, probability and predicted label per row out, preprocessed as in training."""

import bz2
import csv
import gzip
import lzma
import sys

import numpy as np
import pytest
import torch
import warm

from conftest import REPO, make_table
from logreg.checking import check_config
from logreg.checkpoints import model_from_checkpoint, read_checkpoint
from logreg.errors import DataError, OutputError
from logreg.prediction import predict


@pytest.fixture
def trained(trained_once, module_tiny_csv):
    """A short run on the tiny CSV with standardization (so the scaler must travel): its last checkpoint, in this
    test's copy of the run folder (tmp_path/run; the module trains it once)."""
    run_dir = trained_once("data=csv", f"data.path={module_tiny_csv}", "data.standardize=true", "epochs=5")
    return run_dir / "checkpoints" / "last.ckpt"


def predict_rows(compose, ckpt_path, input_path, output_path, *overrides, opener=open) -> list[dict]:
    """What `python predict.py ckpt_path=... input=... output=... *overrides` writes, read back."""
    cfg = compose(
        f"ckpt_path={ckpt_path}", f"input={input_path}", f"output={output_path}", *overrides, config_name="predict"
    )
    cfg = check_config(cfg)
    predict(cfg)
    with opener(output_path, "rt") as file:
        return list(csv.DictReader(file))


def probabilities(ckpt_path, features: np.ndarray) -> np.ndarray:
    """The checkpoint's LightningModule on raw feature rows (N, F) -> (N,)."""
    model = model_from_checkpoint(read_checkpoint(ckpt_path))
    return model(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))).detach().numpy()


@pytest.mark.parametrize("with_label", [True, False], ids=["with-label-column", "features-only"])
def test_predict_applies_the_training_scaler_and_writes_probability_and_label(trained, compose, tmp_path, with_label):
    features, labels = make_table(n_rows=30, seed=5)
    np.savetxt(tmp_path / "new.csv", np.column_stack([features, labels]) if with_label else features, delimiter=",")

    rows = predict_rows(compose, trained, tmp_path / "new.csv", tmp_path / "pred.csv")

    expected = probabilities(trained, features)  # the model standardizes raw rows with the scaler it carries
    assert list(rows[0]) == ["probability", "prediction"] and len(rows) == 30
    np.testing.assert_allclose([float(row["probability"]) for row in rows], expected, rtol=0, atol=1e-6)
    assert [int(row["prediction"]) for row in rows] == (expected >= 0.5).astype(int).tolist()


def test_predict_drops_the_label_column_by_its_header_name_as_in_training(run, compose, tmp_path):
    features, labels = make_table(n_features=2)
    table = np.column_stack([features[:, 0], labels, features[:, 1]])  # the label in the middle
    header = "glucose,outcome,bmi"
    np.savetxt(tmp_path / "train.csv", table, delimiter=",", fmt="%.6g", header=header, comments="")
    run("data=csv", f"data.path={tmp_path / 'train.csv'}", "data.label_column=outcome", "epochs=3")
    np.savetxt(tmp_path / "new.csv", table[:25], delimiter=",", fmt="%.6g", header=header, comments="")

    rows = predict_rows(compose, tmp_path / "checkpoints/last.ckpt", tmp_path / "new.csv", tmp_path / "pred.csv")

    expected = probabilities(tmp_path / "checkpoints/last.ckpt", table[:25, [0, 2]])
    np.testing.assert_allclose([float(row["probability"]) for row in rows], expected, rtol=0, atol=1e-6)


def test_predict_takes_columns_by_their_header_names_in_any_order(run, compose, tmp_path):
    features, labels = make_table(n_features=2)
    np.savetxt(
        tmp_path / "train.csv",
        np.column_stack([features, labels]),
        delimiter=",",
        fmt="%.6g",
        header="glucose,bmi,outcome",
        comments="",
    )
    run("data=csv", f"data.path={tmp_path / 'train.csv'}", "epochs=3")
    np.savetxt(tmp_path / "new.csv", features[:10, ::-1], delimiter=",", fmt="%.6g", header="bmi,glucose", comments="")

    rows = predict_rows(compose, tmp_path / "checkpoints/last.ckpt", tmp_path / "new.csv", tmp_path / "pred.csv")

    expected = probabilities(tmp_path / "checkpoints/last.ckpt", features[:10])
    np.testing.assert_allclose([float(row["probability"]) for row in rows], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("threshold, label", [(0.001, "1"), (0.999, "0")])
def test_predict_threshold_is_configurable(trained, compose, tmp_path, threshold, label):
    features, _ = make_table(n_rows=20, seed=6)
    np.savetxt(tmp_path / "new.csv", features, delimiter=",")
    assert set((probabilities(trained, features) >= 0.5).tolist()) == {False, True}  # 0.5 would predict both

    rows = predict_rows(compose, trained, tmp_path / "new.csv", tmp_path / "pred.csv", f"threshold={threshold}")

    assert {row["prediction"] for row in rows} == {label}


def test_predict_refuses_rows_with_the_wrong_number_of_features(trained, compose, tmp_path):
    np.savetxt(tmp_path / "wide.csv", np.zeros((4, 6)), delimiter=",")

    with pytest.raises(
        DataError,
        match=r"wide\.csv: rows have 6 columns; the model takes 3 features \(x1, x2, x3\), "
        r"or 4 columns with the label",
    ):
        predict_rows(compose, trained, tmp_path / "wide.csv", tmp_path / "pred.csv")
    assert not (tmp_path / "pred.csv").exists()


def test_predict_replaces_an_earlier_predictions_file_only_with_overwrite(trained, compose, tmp_path):
    np.savetxt(tmp_path / "new.csv", make_table(n_rows=5)[0], delimiter=",")
    predict_rows(compose, trained, tmp_path / "new.csv", tmp_path / "pred.csv")

    with pytest.raises(OutputError, match=r"pred\.csv: exists; name a new file, or overwrite=true"):
        predict_rows(compose, trained, tmp_path / "new.csv", tmp_path / "pred.csv")
    assert len(predict_rows(compose, trained, tmp_path / "new.csv", tmp_path / "pred.csv", "overwrite=true")) == 5
    (tmp_path / "notes.csv").write_text("my notes\n")
    with pytest.raises(OutputError, match=r"notes\.csv: exists and is not an earlier output of this kind"):
        predict_rows(compose, trained, tmp_path / "new.csv", tmp_path / "notes.csv", "overwrite=true")
    assert (tmp_path / "notes.csv").read_text() == "my notes\n"


@pytest.mark.parametrize("suffix, opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_predict_compresses_an_output_named_for_it(trained, compose, tmp_path, suffix, opener):
    np.savetxt(tmp_path / "new.csv", make_table(n_rows=5)[0], delimiter=",")
    output = tmp_path / f"pred.csv{suffix}"

    rows = predict_rows(compose, trained, tmp_path / "new.csv", output, opener=opener)
    again = predict_rows(compose, trained, tmp_path / "new.csv", output, "overwrite=true", opener=opener)

    assert len(rows) == 5 and list(rows[0]) == ["probability", "prediction"]
    assert again == rows  # overwrite=true recognized the earlier output through its compression


@pytest.mark.slow
def test_predict_py_writes_one_prediction_per_input_row(trained, tmp_path):
    np.savetxt(tmp_path / "new.csv", make_table(n_rows=12, seed=7)[0], delimiter=",")

    result = warm.run(
        [sys.executable, str(REPO / "predict.py"), f"ckpt_path={trained}", "input=new.csv", "output=pred.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "12 predictions written to pred.csv" in result.stdout
    assert len((tmp_path / "pred.csv").read_text().splitlines()) == 1 + 12
