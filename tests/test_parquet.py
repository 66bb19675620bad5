"""Parquet: a file, a folder of files or a glob read with the CSV reader's contract, and predict.py's Parquet."""

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logreg.data import CSVDataModule
from logreg.errors import DataError


def columns(n_rows: int = 60, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.integers(20, 70, n_rows).tolist(),  # int64
        "income": rng.normal(3, 1, n_rows).round(3).tolist(),  # float64
        "sex": rng.choice(["female", "male"], n_rows).tolist(),  # string
        "y": np.tile([0, 1], n_rows // 2).tolist(),
    }


def write_csv(path, data: dict[str, list]):
    lines = [",".join(data)] + [",".join(str(v) for v in row) for row in zip(*data.values())]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_parquet_file_gives_the_table_its_csv_gives(tmp_path):
    data = columns()
    pq.write_table(pa.table(data), tmp_path / "people.parquet")
    write_csv(tmp_path / "people.csv", data)

    from_parquet = CSVDataModule(path=str(tmp_path / "people.parquet"))
    from_csv = CSVDataModule(path=str(tmp_path / "people.csv"))

    assert from_parquet.feature_names == from_csv.feature_names == ["age", "income", "sex=male"]
    np.testing.assert_array_equal(from_parquet.table.features, from_csv.table.features)
    np.testing.assert_array_equal(from_parquet.table.labels, from_csv.table.labels)


@pytest.mark.parametrize("given", ["folder", "glob"])
def test_a_folder_or_glob_reads_every_row_of_every_file_in_path_order(tmp_path, given):
    parts = [columns(n_rows=20 + 10 * k, seed=k) for k in range(3)]
    (tmp_path / "data").mkdir()
    for k, part in enumerate(parts):
        pq.write_table(pa.table(part), tmp_path / "data" / f"part-{k}.parquet", row_group_size=7)
    path = tmp_path / "data" if given == "folder" else tmp_path / "data" / "part-*.parquet"

    table = CSVDataModule(path=str(path)).table

    assert table.n_rows == 20 + 30 + 40
    np.testing.assert_array_equal(table.features[:, 1], np.concatenate([p["income"] for p in parts]).astype("f4"))


def test_a_column_of_another_type_is_refused_naming_the_file_and_column(tmp_path):
    data = {**columns(), "seen": [datetime.datetime(2024, 1, 1)] * 60}
    pq.write_table(pa.table(data), tmp_path / "people.parquet")

    with pytest.raises(DataError, match=r"people\.parquet: column 'seen' has type timestamp\[us\]; expected numbers"):
        CSVDataModule(path=str(tmp_path / "people.parquet")).load()


def test_a_file_whose_column_holds_other_values_is_refused_naming_that_file(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table(columns()), tmp_path / "data" / "a.parquet")
    pq.write_table(pa.table({**columns(), "age": ["old"] * 60}), tmp_path / "data" / "b.parquet")

    with pytest.raises(DataError, match=r"b\.parquet: column 'age' holds texts here but numbers in a\.parquet"):
        CSVDataModule(path=str(tmp_path / "data")).load()


def test_a_missing_value_is_refused_naming_file_row_and_column_unless_imputing(tmp_path):
    data = columns()
    data["income"][13] = None
    pq.write_table(pa.table(data), tmp_path / "people.parquet")

    with pytest.raises(DataError, match=r"people\.parquet, row 14, column 2 \(income\): the value is missing"):
        CSVDataModule(path=str(tmp_path / "people.parquet")).load()
    imputed = CSVDataModule(path=str(tmp_path / "people.parquet"), impute="constant", impute_value=-7).table
    assert imputed.features[13, 1] == -7


def test_predict_reads_and_writes_parquet_by_extension(run, compose, tmp_path):
    from logreg.checking import check_config
    from logreg.prediction import predict

    pq.write_table(pa.table(columns(n_rows=200)), tmp_path / "train.parquet")
    run("data=csv", f"data.path={tmp_path / 'train.parquet'}", "epochs=3", "logger=none", "~callbacks.plots")
    new = columns(n_rows=30, seed=5)
    del new["y"]
    pq.write_table(pa.table(dict(reversed(list(new.items())))), tmp_path / "new.parquet")  # another column order
    write_csv(tmp_path / "new.csv", new)
    outputs = {}
    for suffix in ("parquet", "csv"):
        cfg = compose(
            f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}",
            f"input={tmp_path / f'new.{suffix}'}",
            f"output={tmp_path / f'pred.{suffix}'}",
            config_name="predict",
        )
        cfg = check_config(cfg)
        assert predict(cfg) == 30
        outputs[suffix] = tmp_path / f"pred.{suffix}"

    written = pq.read_table(outputs["parquet"])
    assert written.column_names == ["probability", "prediction"] and written.num_rows == 30
    expected = np.loadtxt(outputs["csv"], delimiter=",", skiprows=1)
    np.testing.assert_allclose(written.column("probability").to_numpy(), expected[:, 0], atol=1e-7)
    np.testing.assert_array_equal(written.column("prediction").to_numpy(), expected[:, 1])
