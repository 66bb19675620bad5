"""The data report: per column its type, missing values, share of zeros, distinct values and what was done with it,
in the run folder and TensorBoard's TEXT tab; a constant column dropped with one line saying so."""

import csv
import logging

import numpy as np
import pytest

from logreg.data import CSVDataModule
from logreg.errors import DataError


@pytest.fixture
def table_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["id,age,flag,sex,unit,y"]
    for k in range(80):
        age = "" if k % 10 == 3 else f"{rng.uniform(20, 60):.1f}"
        flag = "0" if k % 4 else "1"
        lines.append(f"p{k},{age},{flag},{'female' if k % 3 else 'male'},7,{k % 2}")
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_report_says_per_column_what_it_holds_and_what_was_done(table_csv):
    datamodule = CSVDataModule(path=str(table_csv), exclude=["id"], impute="median")

    report = {row["column"]: row for row in datamodule.data_report()}

    assert list(report) == ["id", "age", "flag", "sex", "unit", "y"]
    assert (report["id"]["type"], report["id"]["distinct"], report["id"]["done"]) == ("text", 80, "excluded")
    assert report["age"]["missing"] == 8 and report["age"]["done"].startswith("8 missing imputed with ")
    assert report["flag"]["zeros"] == pytest.approx(0.75) and report["flag"]["distinct"] == 2
    assert report["sex"]["done"] == "one-hot: 1 columns, reference 'female'"
    assert report["unit"]["done"] == "dropped: one value in every training row"
    assert report["y"]["done"] == "the label"


def test_a_constant_column_is_dropped_with_one_line_saying_so(table_csv, caplog):
    with caplog.at_level(logging.WARNING, logger="logreg.data"):
        datamodule = CSVDataModule(path=str(table_csv), exclude=["id"], impute="mean")
        datamodule.load()

    assert "unit" not in datamodule.feature_names
    assert [record.getMessage() for record in caplog.records] == [
        f"{table_csv}: column 'unit' has one value in every training row: dropped, as it tells the classes nothing"
    ]


def test_only_constant_columns_are_refused(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("a,b,y\n" + "".join(f"1,2,{k % 2}\n" for k in range(40)))

    with pytest.raises(DataError, match="every feature column has one value in every training row"):
        CSVDataModule(path=str(path)).load()


def test_a_run_writes_the_report_to_its_folder_and_tensorboards_text_tab(run, table_csv, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run("data=csv", f"data.path={table_csv}", "data.exclude=[id]", "data.impute=mean", "epochs=2", "~callbacks.plots")

    with (tmp_path / "data_report.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["column"] for row in rows] == ["id", "age", "flag", "sex", "unit", "y"]
    texts = []
    for event_file in tmp_path.glob("events.out.tfevents.*"):
        events = EventAccumulator(str(event_file), size_guidance={"tensors": 0}).Reload()
        if "data_report/text_summary" in events.Tags()["tensors"]:
            texts += [e.tensor_proto.string_val[0].decode() for e in events.Tensors("data_report/text_summary")]
    assert len(texts) == 1 and "| unit | number | 0 | 0.0 | 1 | dropped: one value in every training row |" in texts[0]
