"""The DataModules: reading CSVs of lab 5's kind, fetching and verifying files, the split, standardization, serving."""

import hashlib
import sys

import numpy as np
import pytest
import torch

from conftest import DIABETES, DIABETES_SHA256, make_table
from logreg.data import BreastCancerDataModule, CSVDataModule
from logreg.errors import ConfigError, DataError
from logreg.fetch import fetch
from logreg.splits import ShardSampler, TrainingChunks, minibatches, stratified_folds, stratified_split
from logreg.table import read_labeled_csv

PINNED_FOLDS = [[0, 1, 4, 5], [3, 6, 10, 11], [2, 7, 8, 9]]  # numpy's PCG64 with seed 1: the same on every machine


def write_csv(path, features, labels, header=None, label_first=False):
    columns = [labels[:, None], features] if label_first else [features, labels[:, None]]
    np.savetxt(path, np.hstack(columns), delimiter=",", fmt="%.6g", header=header or "", comments="")
    return path


def test_read_csv_takes_the_last_column_as_label_and_the_rest_as_features(tiny_csv):
    table = read_labeled_csv(tiny_csv)

    expected_features, expected_labels = make_table()
    np.testing.assert_allclose(table.features, expected_features, rtol=1e-5)
    np.testing.assert_array_equal(table.labels, expected_labels)
    assert table.features.dtype == table.labels.dtype == np.float32
    assert table.feature_names == ["x1", "x2", "x3"]  # columns count from 1, as in every message


def test_read_csv_detects_a_header_and_finds_the_label_by_name(tmp_path):
    features, labels = make_table(n_features=2)
    path = write_csv(tmp_path / "h.csv", features, labels, header="outcome,age,dose", label_first=True)

    table = read_labeled_csv(path, label_column="outcome")

    assert table.feature_names == ["age", "dose"]
    np.testing.assert_array_equal(table.labels, labels)
    np.testing.assert_allclose(table.features, features, rtol=1e-5)


def test_read_csv_takes_the_label_by_its_column_number_counted_from_1(tmp_path):
    features, labels = make_table(n_features=2)
    path = write_csv(tmp_path / "first.csv", features, labels, label_first=True)

    table = read_labeled_csv(path, header=False, label_column=1)

    np.testing.assert_array_equal(table.labels, labels)
    assert table.feature_names == ["x2", "x3"]


def test_the_lab_csv_has_759_rows_of_8_features(diabetes_csv):
    table = read_labeled_csv(diabetes_csv)

    assert table.features.shape == (759, 8) and table.labels.shape == (759,)
    assert table.features.min() >= -1 and table.features.max() <= 1


def test_fetch_prefers_a_local_copy_and_checks_its_checksum(diabetes_dir):
    found = fetch(DIABETES, str(diabetes_dir), url="http://127.0.0.1:9/never", sha256=DIABETES_SHA256)

    assert found == diabetes_dir / DIABETES


def test_fetch_downloads_verifies_and_keeps_the_file(tmp_path, tiny_csv):
    digest = hashlib.sha256(tiny_csv.read_bytes()).hexdigest()

    path = fetch("copy.csv", str(tmp_path / "data"), url=tiny_csv.as_uri(), sha256=digest)

    assert path == tmp_path / "data" / "copy.csv"
    assert path.read_bytes() == tiny_csv.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["copy.csv"]  # no partial file left behind


def test_fetch_refuses_a_download_with_the_wrong_checksum_and_keeps_nothing(tmp_path, tiny_csv):
    with pytest.raises(DataError, match="sha256"):
        fetch("copy.csv", str(tmp_path / "data"), url=tiny_csv.as_uri(), sha256="0" * 64)

    assert list((tmp_path / "data").iterdir()) == []


def test_fetch_offline_without_a_copy_says_where_to_put_the_file(tmp_path):
    with pytest.raises(DataError, match=r"Put a copy of lab\.csv at .*data.lab\.csv.*LOGREG_DATA_DIR"):
        fetch("lab.csv", str(tmp_path / "data"), url="http://127.0.0.1:9/lab.csv")


def test_split_is_stratified_disjoint_and_covers_every_row():
    labels = np.array([0.0] * 60 + [1.0] * 40)

    rows = stratified_split(labels, val_fraction=0.1, test_fraction=0.2, seed=3)

    assert sorted(np.concatenate(list(rows.values())).tolist()) == list(range(100))
    assert [len(rows[s]) for s in ("train", "val", "test")] == [70, 10, 20]
    assert labels[rows["test"]].mean() == pytest.approx(0.4) and labels[rows["val"]].mean() == pytest.approx(0.4)


def test_split_depends_only_on_the_seed():
    labels = np.array([0.0, 1.0] * 50)
    first, again, other = (stratified_split(labels, 0.1, 0.1, seed) for seed in (7, 7, 8))

    assert all(np.array_equal(first[s], again[s]) for s in first)
    assert not np.array_equal(first["test"], other["test"])


def test_split_for_seed_0_is_pinned_so_every_machine_gets_these_rows():
    labels = np.array([0.0, 1.0] * 10)

    assert stratified_split(labels, 0.1, 0.1, seed=0)["test"].tolist() == [5, 8]


def test_datamodule_serves_each_split_full_batch_by_default(tiny_csv):
    datamodule = CSVDataModule(str(tiny_csv), val_fraction=0.1, test_fraction=0.2)
    datamodule.setup("fit")

    ((features, labels, rows, batch_size),) = list(datamodule.train_dataloader())
    assert features.shape == (140, 3) and rows is None and batch_size == 140
    sizes = {}
    for split, loader in (("val", datamodule.val_dataloader()), ("test", datamodule.test_dataloader())):
        (batch,) = list(loader)
        sizes[split] = len(batch[1])
        assert batch[0].shape == (len(batch[1]), 3)
    assert sizes == {"val": 20, "test": 40}


@pytest.mark.parametrize("batch_size", [None, 16])
def test_rows_are_stored_for_their_use_columns_for_products_rows_for_minibatch_gathers(tiny_csv, batch_size):
    datamodule = CSVDataModule(str(tiny_csv), val_fraction=0.1, test_fraction=0.2, batch_size=batch_size)
    datamodule.setup("fit")

    def is_column_major(split: str) -> bool:
        features = datamodule.rows(split)[0]
        return features.stride() == (1, len(features))

    assert is_column_major("train") == (batch_size is None)
    assert is_column_major("val") and is_column_major("test")


def test_datamodule_standardizes_with_training_statistics_only(tiny_csv):
    datamodule = CSVDataModule(str(tiny_csv), standardize=True)

    train_features = datamodule.rows("train")[0]
    mean, std = (torch.tensor(values, dtype=torch.float64) for values in datamodule.scaler())
    torch.testing.assert_close(mean, train_features.double().mean(0))
    torch.testing.assert_close(std, train_features.double().std(0))
    all_features = torch.from_numpy(datamodule.table.features).double()
    assert not torch.allclose(mean, all_features.mean(0))


def test_breast_cancer_needs_no_download():
    datamodule = BreastCancerDataModule()

    assert datamodule.n_features == 30
    assert sum(len(datamodule.split_rows(s)) for s in ("train", "val", "test")) == 569


def test_breast_cancer_without_scikit_learn_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # what an install without the extra gives: ImportError

    with pytest.raises(ConfigError, match=r"pip install 'logreg\[breast-cancer\]'"):
        BreastCancerDataModule().setup("fit")


def batches_of(loader: TrainingChunks) -> list[list[float]]:
    """The mini-batches the model steps through, in order, as the lists of their rows' values."""
    return [features.squeeze(1).tolist() for chunk in loader for features, _ in minibatches(chunk)]


def test_minibatches_cover_the_training_rows_once_per_epoch_in_a_new_order():
    features = torch.arange(10.0).unsqueeze(1)  # (10, 1): each row holds its own index
    loader = TrainingChunks(features, torch.zeros(10), ShardSampler(10, shuffle=True, seed=0), batch_size=4)

    loader.sampler.set_epoch(0)
    epoch0 = batches_of(loader)
    loader.sampler.set_epoch(1)
    epoch1 = sum(batches_of(loader), [])

    assert [len(rows) for rows in epoch0] == [4, 4, 2] and len(loader) == 3
    assert sorted(sum(epoch0, [])) == sorted(epoch1) == list(range(10))
    assert sum(epoch0, []) != epoch1


@pytest.mark.parametrize("batches_per_step", [1, 2, 3, 100])
def test_chunks_of_several_minibatches_cut_the_epoch_at_the_same_rows(batches_per_step):
    features = torch.arange(23.0).unsqueeze(1)
    sampler = ShardSampler(23, shuffle=True, seed=4)
    sampler.set_epoch(2)

    one_per_step = batches_of(TrainingChunks(features, torch.zeros(23), sampler, 5, batches_per_step=1))
    chunked = TrainingChunks(features, torch.zeros(23), sampler, 5, batches_per_step=batches_per_step)

    assert batches_of(chunked) == one_per_step  # the same batches in the same order, whatever the chunking
    assert len(chunked) == -(-5 // batches_per_step)  # 5 mini-batches of 5 rows (the last 3)


def test_folds_are_disjoint_stratified_cover_the_rows_and_depend_only_on_the_seed():
    labels = np.array([0.0] * 60 + [1.0] * 30)
    rows = np.arange(10, 90)  # the non-test rows

    folds = stratified_folds(rows, labels, 4, seed=3)

    assert sorted(np.concatenate(folds).tolist()) == rows.tolist()
    assert max(map(len, folds)) - min(map(len, folds)) <= 2  # each class dealt out in turn: sizes differ by a row
    assert sorted(int(labels[f].sum()) for f in folds) == [7, 7, 8, 8]  # the 30 positives among these rows
    assert all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(rows, labels, 4, seed=3)))
    assert not np.array_equal(folds[0], stratified_folds(rows, labels, 4, seed=4)[0])


def test_folds_for_seed_1_are_pinned_so_every_machine_gets_these_rows():
    labels = np.array([0.0, 1.0] * 6)

    assert [f.tolist() for f in stratified_folds(np.arange(12), labels, 3, seed=1)] == PINNED_FOLDS
