"""Tables as people have them: text columns one-hot encoded and missing values imputed, both learned from the
training rows only, carried in the checkpoint and applied to the raw columns predict.py is given; compared with
scikit-learn's SimpleImputer + OneHotEncoder + LogisticRegression pipeline."""

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import LBFGS_OPTIMUM
from logreg.checkpoints import data_spec, model_from_checkpoint, read_checkpoint
from logreg.data import CSVDataModule
from logreg.errors import DataError
from logreg.table import read_feature_rows

NUMERIC, TEXT = ["age", "income"], ["sex", "city"]


def people(n_rows: int = 300, seed: int = 0, missing: bool = True) -> list[dict[str, str]]:
    """Rows of a table with two numeric and two text columns, some cells empty or NA, and a 0/1 label."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_rows):
        age, income = rng.uniform(20, 70), rng.normal(3, 1)
        sex, city = rng.choice(["female", "male"]), rng.choice(["Berlin", "Lyon", "Oslo"], p=[0.5, 0.3, 0.2])
        logit = 0.05 * (age - 45) + 0.8 * (income - 3) + (0.7 if sex == "female" else -0.4) + (city == "Oslo") * 1.0
        row = {"age": f"{age:.2f}", "sex": sex, "income": f"{income:.3f}", "city": city}
        if missing:
            for name, share in (("age", 0.1), ("sex", 0.05), ("income", 0.05)):
                if rng.uniform() < share:
                    row[name] = rng.choice(["", "NA"])
        row["y"] = str(int(rng.uniform() < 1 / (1 + np.exp(-logit))))
        rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict[str, str]], names: list[str] | None = None) -> Path:
    names = names or list(rows[0])
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def reference_pipeline(impute: str, indicator: bool, columns: list[str]) -> Any:
    """scikit-learn's encoding of the same columns, in the same order: per numeric column SimpleImputer (with its
    indicator), per text column the most frequent category (or "missing") one-hot encoded, the first dropped."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    parts = []
    for name in columns:
        if name in NUMERIC:
            part = SimpleImputer(strategy=impute, fill_value=0.0, add_indicator=indicator)
        else:
            fill = SimpleImputer(strategy="constant" if impute == "constant" else "most_frequent", fill_value="missing")
            part = make_pipeline(fill, OneHotEncoder(drop="first", sparse_output=False))
            if indicator:
                part = FeatureUnion([("encoded", part), ("missing", MissingIndicator())])
        parts.append((name, part, [name]))
    return ColumnTransformer(parts, sparse_threshold=0)


def read_with_pandas(path: Path):
    import pandas as pd

    return pd.read_csv(path, na_values=["", "NA"], keep_default_na=False)


# ----------------------------------------------------------------------------------- the encoding, against sklearn


@pytest.mark.parametrize("impute", ["mean", "median", "most_frequent", "constant"])
@pytest.mark.parametrize("indicator", [False, True], ids=["", "indicator"])
def test_training_features_are_scikit_learns_imputed_one_hot_columns(tmp_path, impute, indicator):
    path = write_rows(tmp_path / "people.csv", people())
    datamodule = CSVDataModule(path=str(path), impute=impute, missing_indicator=indicator)
    train = datamodule.split_rows("train")

    frame = read_with_pandas(path)
    columns = [name for name in frame.columns if name != "y"]
    reference = reference_pipeline(impute, indicator, columns).fit(frame.iloc[train][columns])
    expected = reference.transform(frame[columns])  # every row, encoded as learned from the training rows

    np.testing.assert_allclose(datamodule.table.features, expected, rtol=1e-6, atol=1e-5)
    names = datamodule.feature_names  # column=value; the first category (female, Berlin) is the reference
    assert names[0] == "age" and {"sex=male", "city=Lyon", "city=Oslo"} <= set(names)
    assert "sex=female" not in names and "city=Berlin" not in names
    assert ("age:missing" in names) == indicator


def test_categories_and_fill_values_come_from_each_folds_training_rows(tmp_path):
    path = write_rows(tmp_path / "people.csv", people(n_rows=60, seed=4))
    frame = read_with_pandas(path)
    fills = set()
    for fold in range(3):
        datamodule = CSVDataModule(path=str(path), impute="mean", folds=3, fold=fold, unseen_category="zero")
        train = datamodule.split_rows("train")
        age = datamodule.table.features[:, 0]
        missing = frame["age"].isna().to_numpy()
        expected_fill = frame["age"].iloc[train].mean()
        np.testing.assert_allclose(age[missing], expected_fill, rtol=1e-5)  # the fold's training mean, nothing else
        fills.add(round(float(age[missing][0]), 4))
    assert len(fills) == 3  # three folds, three training means


def test_a_category_only_in_held_out_rows_gets_no_column(tmp_path):
    rows = people(n_rows=100, seed=1, missing=False)
    datamodule = CSVDataModule(path=str(write_rows(tmp_path / "a.csv", rows)), unseen_category="zero")
    test_row = int(datamodule.split_rows("test")[0])
    rows[test_row]["city"] = "Quito"  # in a test row only

    datamodule = CSVDataModule(path=str(write_rows(tmp_path / "b.csv", rows)), unseen_category="zero")

    assert not any("Quito" in name for name in datamodule.feature_names)
    city = [k for k, name in enumerate(datamodule.feature_names) if name.startswith("city=")]
    assert (datamodule.table.features[test_row, city] == 0).all()


def test_a_category_unseen_in_training_is_refused_by_default_naming_line_column_and_value(tmp_path):
    rows = people(n_rows=100, seed=1, missing=False)
    datamodule = CSVDataModule(path=str(write_rows(tmp_path / "a.csv", rows)))
    test_row = int(datamodule.split_rows("test")[0])
    rows[test_row]["city"] = "Quito"

    with pytest.raises(DataError) as error:
        CSVDataModule(path=str(write_rows(tmp_path / "b.csv", rows))).load()

    message = str(error.value)
    assert "\n" not in message
    assert f"line {test_row + 2}, column 4 (city): 'Quito' is a category the training rows did not have" in message
    assert "data.unseen_category=zero" in message


def test_reference_level_none_keeps_a_column_for_every_category(tmp_path):
    path = write_rows(tmp_path / "people.csv", people(missing=False))

    names = CSVDataModule(path=str(path), reference_level="none").feature_names

    assert names == ["age", "sex=female", "sex=male", "income", "city=Berlin", "city=Lyon", "city=Oslo"]


def test_data_categorical_encodes_a_numeric_column(tmp_path):
    rows = people(missing=False)
    for k, row in enumerate(rows):
        row["grade"] = str(k % 3 + 1)
    path = write_rows(tmp_path / "people.csv", rows, ["grade", "age", "y"])

    names = CSVDataModule(path=str(path), categorical=["grade"]).feature_names

    assert names == ["grade=2", "grade=3", "age"]


def test_a_missing_value_is_refused_without_impute(tmp_path):
    path = write_rows(tmp_path / "people.csv", people())

    with pytest.raises(DataError, match=r"people\.csv: line \d+, column \d \((age|sex|income)\): "):
        CSVDataModule(path=str(path)).load()


@pytest.mark.parametrize("cell", ["", "NA", "NaN"])
def test_a_missing_label_is_refused_even_when_imputing(tmp_path, cell):
    rows = people(n_rows=50, missing=False)
    rows[7]["y"] = cell

    with pytest.raises(DataError) as error:
        CSVDataModule(path=str(write_rows(tmp_path / "people.csv", rows)), impute="mean").load()

    assert "line 9, column 5 (y): the label is missing (labels are never imputed)" in str(error.value)


def test_a_column_missing_in_every_training_row_is_refused(tmp_path):
    rows = people(n_rows=50, missing=False)
    for row in rows:
        row["income"] = ""

    with pytest.raises(DataError, match="column 'income' has no value in the training rows"):
        CSVDataModule(path=str(write_rows(tmp_path / "people.csv", rows)), impute="median").load()


# ------------------------------------------------------------------------------ end to end: train, predict, eval


@pytest.fixture(scope="module")
def _trained() -> dict[str, Any]:
    return {}


@pytest.fixture
def fitted(_trained, run, tmp_path_factory) -> tuple[Path, Path]:
    """An unregularized L-BFGS fit to convergence (float64) on the people table, median-imputed: (run folder, CSV)."""
    if "run" not in _trained:
        folder = tmp_path_factory.mktemp("people")
        path = write_rows(folder / "people.csv", people(n_rows=400))
        run(
            "data=csv",
            f"data.path={path}",
            "data.impute=median",
            *LBFGS_OPTIMUM,
            run_dir=folder / "run",
        )
        _trained["run"] = folder / "run", path
    return _trained["run"]


def test_an_unregularized_fit_matches_scikit_learns_pipeline(fitted):
    from sklearn.linear_model import LogisticRegression as Reference

    folder, path = fitted
    frame = read_with_pandas(path)
    columns = [name for name in frame.columns if name != "y"]
    encoded = reference_pipeline("median", False, columns).fit_transform(frame[columns])
    reference = Reference(C=np.inf, tol=1e-12, max_iter=10_000).fit(encoded, frame["y"])

    with (folder / "coefficients.csv").open() as file:
        coefficients = {row["feature"]: float(row["coefficient"]) for row in csv.DictReader(file)}

    names = ["age", "sex=male", "income", "city=Lyon", "city=Oslo"]
    np.testing.assert_allclose([coefficients[name] for name in names], reference.coef_[0], rtol=1e-4, atol=1e-5)


def test_the_checkpoint_carries_the_encoding_as_plain_values(fitted):
    folder, _ = fitted
    checkpoint = read_checkpoint(folder / "checkpoints" / "last.ckpt")  # torch's weights_only loader

    spec = data_spec(checkpoint)
    assert spec["raw_features"] == ["age", "sex", "income", "city"]
    assert [column["categories"] for column in spec["encoding"]["columns"]] == [
        None,
        ["female", "male"],
        None,
        ["Berlin", "Lyon", "Oslo"],
    ]


def test_predict_takes_the_raw_columns_with_missing_cells_in_any_order(fitted, compose, tmp_path):
    from logreg.checking import check_config
    from logreg.prediction import predict

    folder, path = fitted
    rows = people(n_rows=40, seed=9)
    given = write_rows(tmp_path / "new.csv", rows, ["city", "income", "sex", "age"])  # no label, another order
    ckpt = folder / "checkpoints" / "last.ckpt"
    cfg = compose(f"ckpt_path={ckpt}", f"input={given}", f"output={tmp_path / 'p.csv'}", config_name="predict")
    cfg = check_config(cfg)

    predict(cfg)

    checkpoint = read_checkpoint(ckpt)
    encoded = read_feature_rows(write_rows(tmp_path / "same.csv", rows), [], spec=data_spec(checkpoint))
    expected = model_from_checkpoint(checkpoint)(torch.from_numpy(encoded)).detach().numpy()
    with (tmp_path / "p.csv").open() as file:
        written = [float(row["probability"]) for row in csv.DictReader(file)]
    np.testing.assert_allclose(written, expected, atol=1e-6)
    # the encoding applied is the training one: a missing age becomes the training rows' median
    age_missing = [k for k, row in enumerate(rows) if row["age"] in ("", "NA")]
    training_median = read_with_pandas(path)["age"].median()
    assert age_missing and np.allclose(encoded[age_missing, 0], training_median, rtol=1e-6)


def test_export_ships_the_encoding_beside_the_model_that_takes_the_encoded_features(fitted, compose, tmp_path):
    import json

    from logreg.checking import check_config
    from logreg.export import export

    folder, path = fitted
    ckpt = folder / "checkpoints" / "last.ckpt"
    cfg = compose(f"ckpt_path={ckpt}", "format=torchscript", f"output={tmp_path / 'm.pt'}", config_name="export")
    cfg = check_config(cfg)

    export(cfg)

    shipped = json.loads((tmp_path / "m.pt.encoding.json").read_text())
    assert shipped["raw_columns"] == ["age", "sex", "income", "city"]
    assert shipped["features"] == ["age", "sex=male", "income", "city=Lyon", "city=Oslo"]
    assert [column["reference"] for column in shipped["columns"]] == [None, "female", None, "Berlin"]
    encoded = read_feature_rows(path, [], spec=data_spec(read_checkpoint(ckpt)))
    probability, _ = torch.jit.load(str(tmp_path / "m.pt"))(torch.from_numpy(encoded))
    expected = model_from_checkpoint(read_checkpoint(ckpt))(torch.from_numpy(encoded)).detach().numpy()
    np.testing.assert_allclose(probability.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("unseen", ["error", "zero"])
def test_a_category_unseen_at_prediction_is_refused_or_all_zero(tmp_path, unseen):
    path = write_rows(tmp_path / "people.csv", people(missing=False))
    datamodule = CSVDataModule(path=str(path), unseen_category=unseen)
    datamodule.load()
    rows = people(n_rows=5, seed=3, missing=False)
    rows[2]["city"] = "Quito"
    given = write_rows(tmp_path / "new.csv", rows, ["age", "sex", "income", "city"])

    if unseen == "error":
        with pytest.raises(DataError, match=r"new\.csv: line 4, column 4 \(city\): 'Quito' is a category the trai"):
            read_feature_rows(given, [], spec=datamodule.state_dict())
        return
    encoded = read_feature_rows(given, [], spec=datamodule.state_dict())
    city = [k for k, name in enumerate(datamodule.feature_names) if name.startswith("city=")]
    assert (encoded[2, city] == 0).all() and encoded[:, city].sum() == 4 - sum(r["city"] == "Berlin" for r in rows)


def test_eval_encodes_other_data_as_the_model_was_trained(fitted, tmp_path):
    from logreg.checkpoints import datamodule_from_checkpoint

    folder, path = fitted
    rows = [row for row in people(n_rows=400) if row["city"] != "Oslo"]  # one category fewer than in training
    other = write_rows(tmp_path / "other.csv", rows)

    datamodule, _ = datamodule_from_checkpoint(read_checkpoint(folder / "checkpoints" / "last.ckpt"), path=str(other))

    assert datamodule.feature_names == ["age", "sex=male", "income", "city=Lyon", "city=Oslo"]
    assert datamodule.table.features[:, 4].sum() == 0


def test_eval_takes_the_feature_columns_by_name_in_any_order(fitted, tmp_path):
    from logreg.checkpoints import datamodule_from_checkpoint

    folder, path = fitted
    checkpoint = read_checkpoint(folder / "checkpoints" / "last.ckpt")
    reordered = write_rows(tmp_path / "reordered.csv", people(n_rows=400), ["y", "city", "income", "sex", "age"])

    datamodule, _ = datamodule_from_checkpoint(checkpoint, path=str(reordered))
    trained, _ = datamodule_from_checkpoint(checkpoint, path=str(path))

    assert datamodule.feature_names == trained.feature_names
    np.testing.assert_array_equal(datamodule.table.features, trained.table.features)
    assert datamodule.table.differences(data_spec(checkpoint)) is None  # the same rows, as the model sees them


def test_eval_refuses_a_feature_column_written_differently(fitted, tmp_path):
    from logreg.checkpoints import datamodule_from_checkpoint

    folder, _ = fitted
    checkpoint = read_checkpoint(folder / "checkpoints" / "last.ckpt")
    rows = [{("Age" if key == "age" else key): value for key, value in row.items()} for row in people(n_rows=50)]
    renamed = write_rows(tmp_path / "renamed.csv", rows)

    with pytest.raises(DataError, match=r"data\.features='age': the header has no column of that name; its names"):
        datamodule_from_checkpoint(checkpoint, path=str(renamed))[0].load()
