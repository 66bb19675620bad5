"""Columns by name: which columns are features (data.features, data.exclude), and rows to predict matched to the
training columns by their header names, never by position when there is a header."""

import itertools

import numpy as np
import pytest

from conftest import sampled
from logreg.data import CSVDataModule
from logreg.errors import DataError
from logreg.table import read_feature_rows

NAMES = ["id", "f1", "f2", "f3", "y"]


@pytest.fixture
def source(tmp_path):
    """A CSV with an ID column, three features and the label: (path, its values (N, 5))."""
    rng = np.random.default_rng(3)
    values = np.column_stack([np.arange(1, 41), rng.uniform(-1, 1, (40, 3)).round(3), np.tile([0.0, 1.0], 20)]).astype(
        np.float32
    )
    path = tmp_path / "train.csv"
    np.savetxt(path, values, delimiter=",", fmt="%.6g", header=",".join(NAMES), comments="")
    return path, values


def trained_spec(path, **options) -> dict:
    """What a checkpoint records of its data: the DataModule's state."""
    datamodule = CSVDataModule(path=str(path), val_fraction=0.0, test_fraction=0.0, **options)
    datamodule.load()
    return datamodule.state_dict()


def write(path, names, values) -> str:
    np.savetxt(path, values, delimiter=",", fmt="%.6g", header=",".join(names), comments="")
    return str(path)


# ------------------------------------------------------------------------------------------------ choosing columns


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, ["id", "f1", "f2", "f3"]),
        ({"exclude": ["id"]}, ["f1", "f2", "f3"]),
        ({"exclude": [1]}, ["f1", "f2", "f3"]),
        ({"features": ["f3", "f1"]}, ["f3", "f1"]),
        ({"features": [4, 2]}, ["f3", "f1"]),
        ({"features": ["f2", -2]}, ["f2", "f3"]),
    ],
    ids=["default-all-but-label", "exclude-by-name", "exclude-by-number", "features-by-name", "by-number", "mixed"],
)
def test_features_are_the_named_columns_in_the_given_order(source, options, expected):
    path, values = source
    datamodule = CSVDataModule(path=str(path), label_column="y", **options)

    assert datamodule.feature_names == expected
    np.testing.assert_array_equal(datamodule.table.features, values[:, [NAMES.index(name) for name in expected]])


@pytest.mark.parametrize("key", ["features", "exclude", "categorical"])
def test_an_unknown_column_name_is_refused_in_one_line_listing_the_columns(source, key):
    with pytest.raises(DataError) as error:
        CSVDataModule(path=str(source[0]), **{key: ["nosuch"]}).load()

    message = str(error.value)
    assert "\n" not in message and f"data.{key}='nosuch'" in message
    assert all(repr(name) in message for name in NAMES)


@pytest.mark.parametrize(
    "options, says",
    [
        ({"features": ["f1", "y"]}, "also data.label_column"),
        ({"features": ["f1", "id"], "exclude": ["id"]}, "also data.exclude"),
        ({"features": ["f1", 2]}, "twice"),
        ({"exclude": ["id", "f1", "f2", "f3"]}, "no feature columns are left"),
    ],
)
def test_contradictory_column_choices_are_refused(source, options, says):
    with pytest.raises(DataError, match=says):
        CSVDataModule(path=str(source[0]), **options).load()


# ----------------------------------------------------------------------------------- prediction inputs, by name


ORDERS = list(itertools.permutations(NAMES))


@sampled("order", ORDERS, every=4, ids=list(map("-".join, ORDERS)))
def test_a_header_in_any_order_is_matched_by_name(source, tmp_path, order):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    given = write(tmp_path / "new.csv", order, values[:, [NAMES.index(name) for name in order]])

    rows = read_feature_rows(given, spec["feature_names"], spec=spec)

    np.testing.assert_array_equal(rows, values[:, 1:4])


def near_misses(name: str) -> list[str]:
    """Names a person might write for `name`: other capitals, spaces around, a prefix."""
    return [name.upper(), name.capitalize(), f" {name}".replace(" ", "_"), f"{name} x", f"{name[0]}_{name[1:]}"]


@pytest.mark.parametrize(
    "wrong, right", [(wrong, right) for right in ("f1", "f2", "f3") for wrong in near_misses(right)]
)
def test_a_differently_written_feature_name_is_refused_in_one_line_naming_it(source, tmp_path, wrong, right):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    names = [wrong if name == right else name for name in ["f3", "f1", "f2"]]  # another order, one name off
    given = write(tmp_path / "new.csv", names, values[:, [3, 1, 2]])

    with pytest.raises(DataError) as error:
        read_feature_rows(given, spec["feature_names"], spec=spec)

    message = str(error.value)
    assert "\n" not in message and repr(wrong) in message


def test_a_case_change_says_which_name_was_meant(source, tmp_path):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    given = write(tmp_path / "new.csv", ["f1", "f2", "F3"], values[:, 1:4])

    with pytest.raises(DataError, match=r"'F3', is not a column the model was trained on; did you mean 'f3'\?"):
        read_feature_rows(given, spec["feature_names"], spec=spec)


@pytest.mark.parametrize("missing", ["f1", "f2", "f3"])
def test_a_missing_feature_column_is_refused_naming_it(source, tmp_path, missing):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    kept = [name for name in NAMES if name != missing]
    given = write(tmp_path / "new.csv", kept, values[:, [NAMES.index(name) for name in kept]])

    with pytest.raises(DataError, match=rf"the header has no column '{missing}', one of the model's features"):
        read_feature_rows(given, spec["feature_names"], spec=spec)


def test_a_repeated_feature_column_is_refused(source, tmp_path):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    given = write(tmp_path / "new.csv", ["f1", "f2", "f3", "f2"], values[:, [1, 2, 3, 2]])

    with pytest.raises(DataError, match="names 'f2' more than once"):
        read_feature_rows(given, spec["feature_names"], spec=spec)


def test_an_unknown_extra_column_is_refused_naming_it(source, tmp_path):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    given = write(tmp_path / "new.csv", ["f1", "f2", "f3", "notes"], np.column_stack([values[:, 1:4], values[:, 0]]))

    with pytest.raises(DataError, match="'notes', is not a column the model was trained on"):
        read_feature_rows(given, spec["feature_names"], spec=spec)


@pytest.mark.parametrize("width", [3, 5], ids=["features-only", "laid-out-as-training"])
def test_without_a_header_columns_are_taken_by_position(source, tmp_path, width):
    path, values = source
    spec = trained_spec(path, exclude=["id"])
    given = tmp_path / "new.csv"
    np.savetxt(given, values[:, 1:4] if width == 3 else values, delimiter=",", fmt="%.6g")

    rows = read_feature_rows(given, spec["feature_names"], spec=spec)

    np.testing.assert_array_equal(rows, values[:, 1:4])


def test_a_header_for_a_model_trained_without_one_is_refused(tmp_path):
    values = np.column_stack([np.random.default_rng(0).uniform(-1, 1, (20, 2)), np.tile([0.0, 1.0], 10)])
    np.savetxt(tmp_path / "train.csv", values, delimiter=",", fmt="%.6g")
    spec = trained_spec(tmp_path / "train.csv")
    given = write(tmp_path / "new.csv", ["a", "b"], values[:, :2])

    with pytest.raises(DataError, match="trained on a file without one"):
        read_feature_rows(given, spec["feature_names"], spec=spec)


def test_a_run_with_columns_by_name_keeps_a_checkpoint_of_plain_values(run, source, tmp_path):
    from logreg.checkpoints import read_checkpoint

    path, _ = source
    run("data=csv", f"data.path={path}", "data.features=[f3,f1]", "data.exclude=[id]", "epochs=1", "logger=none")

    checkpoint = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")  # torch's weights_only loader

    options = checkpoint["datamodule_hyper_parameters"]
    assert options["features"] == ["f3", "f1"] and type(options["features"]) is list and options["exclude"] == ["id"]
