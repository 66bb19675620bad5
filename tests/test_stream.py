"""data.stream: a table streamed from disk block by block gives the rows, the split, the fitted values and the numbers
of the same table in memory; the CSV's streaming copy lives in the project's cache; shuffling is seeded; each process
reads only its blocks.

Tables are generated here: a few thousand rows, written as Parquet with small row groups (several blocks) or as CSV.
"""

import csv
import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import OPTIMUM, make_table, write_table
from logreg.data import CSVDataModule
from logreg.errors import ConfigError, DataError
from logreg.stream import SHUFFLE_BLOCKS, StreamedTraining
from logreg.stream_source import MEMORY_SHARE, should_stream

N_ROWS, N_FEATURES = 3000, 4


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test's streaming copies go to a cache folder of its own."""
    monkeypatch.setenv("LOGREG_CACHE_DIR", str(tmp_path / "cache"))


def write_parquet(folder, features, labels, row_group_rows=250, files=2):
    """The table as `files` Parquet files (part-0, part-1, ...) with row groups of `row_group_rows` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(len(labels)), files)):
        columns = {f"f{k}": features[rows, k] for k in range(features.shape[1])} | {"label": labels[rows]}
        pq.write_table(pa.table(columns), folder / f"part-{part}.parquet", row_group_size=row_group_rows)
    return folder


@pytest.fixture
def table():
    features, labels = make_table(N_ROWS, N_FEATURES, seed=3)
    return features * np.array([1, 10, 0.1, 3], dtype=np.float32) + 2, labels  # scales for the scaler to matter


# The fast subset streams the CSV (its copy into the cache, then the Parquet reader); the whole suite a Parquet file too
@pytest.fixture(params=[pytest.param("parquet", marks=pytest.mark.slow), "csv"])
def path(request, tmp_path, table):
    if request.param == "csv":
        return write_table(tmp_path / "table.csv", *table)
    return write_parquet(tmp_path / "parquet", *table)


def module(path, stream, **options):
    return CSVDataModule(str(path), stream=stream, **{"standardize": True, **options})


def streamed_rows(datamodule, split):
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    features, labels = zip(*loader)
    return torch.cat(features), torch.cat(labels)


# ------------------------------------------------------------------------------------------- rows, split, fitted


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("fractions", [(0.1, 0.1), (0.25, 0.05)])
def test_streamed_split_serves_the_rows_of_the_in_memory_split(path, seed, fractions):
    options = {"seed": seed, "val_fraction": fractions[0], "test_fraction": fractions[1]}
    memory, streamed = module(path, False, **options), module(path, True, **options)

    assert streamed.streams and not memory.streams
    for split in ("val", "test"):
        features, labels = memory.rows(split)
        streamed_features, streamed_labels = streamed_rows(streamed, split)
        assert torch.equal(streamed_labels, labels)
        assert torch.equal(streamed_features, features)
    for split in ("train", "val", "test"):
        assert streamed.split_size(split) == len(memory.split_rows(split))


def test_streamed_cross_validation_folds_are_the_in_memory_folds(path):
    memory, streamed = module(path, False, folds=4, fold=2), module(path, True, folds=4, fold=2)

    assert torch.equal(streamed_rows(streamed, "val")[1], memory.rows("val")[1])
    assert torch.equal(streamed_rows(streamed, "val")[0], memory.rows("val")[0])


def test_scaler_class_weight_and_fingerprint_come_from_streaming_passes_and_equal_the_in_memory_ones(path):
    memory, streamed = module(path, False), module(path, True)

    np.testing.assert_allclose(streamed.scaler()[0], memory.scaler()[0], rtol=1e-12)
    np.testing.assert_allclose(streamed.scaler()[1], memory.scaler()[1], rtol=1e-12)
    assert streamed.balanced_pos_weight() == memory.balanced_pos_weight()
    assert streamed.spec() == memory.spec()  # the checkpoint's fingerprint: the same rows, the same digest
    assert streamed.n_features == memory.n_features and streamed.feature_names == memory.feature_names


def test_a_streamed_table_is_never_read_whole(path, monkeypatch):
    import logreg.table

    def refuse(*args, **kwargs):
        raise AssertionError("the in-memory reader was called")

    monkeypatch.setattr(logreg.table, "read_source", refuse)
    datamodule = module(path, True)
    datamodule.scaler(), datamodule.balanced_pos_weight(), datamodule.spec(), streamed_rows(datamodule, "test")

    for needs_the_table in (
        lambda: datamodule.table,
        lambda: datamodule.rows("train"),
        lambda: datamodule.column("f1", "key"),
    ):
        with pytest.raises(ConfigError, match=r"^data\.stream: this needs the whole table in memory"):
            needs_the_table()


def test_the_fitting_pass_is_made_once_and_read_by_later_processes_until_the_data_or_split_changes(path, monkeypatch):
    from logreg.stream_source import BlockSource

    read_columns = []
    original = BlockSource.read

    def recording(self, block, columns, dtype):
        read_columns.append(len(columns))
        return original(self, block, columns, dtype)

    monkeypatch.setattr(BlockSource, "read", recording)
    first = module(path, True)
    first.load()
    assert max(read_columns) == N_FEATURES  # the first made the pass over the features
    read_columns.clear()

    again = module(path, True)
    assert again.scaler() == first.scaler() and again.spec() == first.spec()
    assert set(read_columns) == {1}  # the label column alone: the fitted values were read back

    read_columns.clear()
    other_split = module(path, True, seed=5)
    other_split.load()
    assert max(read_columns) == N_FEATURES  # another split: another pass
    assert other_split.scaler() != first.scaler()


# ------------------------------------------------------------------------------------------------ the CSV's copy


def test_a_csv_is_converted_once_into_the_projects_cache_and_again_when_it_changes(tmp_path, table):
    folder = tmp_path / "user"
    folder.mkdir()
    csv = write_table(folder / "table.csv", *table)
    cache = tmp_path / "cache" / "stream"

    module(csv, True).load()
    copies = sorted(cache.iterdir())
    module(csv, True).load()

    assert sorted(p.name for p in folder.iterdir()) == ["table.csv"]  # nothing beside the user's file
    assert len(copies) == 1 and sorted(cache.iterdir()) == copies  # converted once, then reused
    assert json.loads((copies[0] / "source.json").read_text())["path"] == str(csv.resolve())
    assert len(pq.ParquetFile(copies[0] / "part-0.parquet").schema_arrow) == N_FEATURES + 1
    write_table(csv, table[0][:2000], table[1][:2000])  # a changed file: its size and time change
    changed = module(csv, True)
    assert sum(changed.split_size(split) for split in ("train", "val", "test")) == 2000
    assert len(list(cache.iterdir())) == 2


def test_a_csv_with_a_header_streams_with_its_column_names(tmp_path, table):
    csv = write_table(tmp_path / "named.csv", *table, header="a,b,c,d,outcome")

    streamed = module(csv, True, label_column="outcome", exclude=["b"])

    assert streamed.feature_names == ["a", "c", "d"]
    assert streamed.spec() == module(csv, False, label_column="outcome", exclude=["b"]).spec()


# --------------------------------------------------------------------------------------------------- auto, refusals


@pytest.mark.parametrize("limit_share, streams", [(0.5, True), (2.0, False)])
def test_stream_auto_streams_a_table_larger_than_its_share_of_memory(path, monkeypatch, limit_share, streams):
    import logreg.stream_source as source

    size = source.table_bytes(path)
    monkeypatch.setattr(source, "memory_limit", lambda: int(size * limit_share / MEMORY_SHARE))

    assert should_stream("auto", path) is streams
    assert module(path, "auto").streams is streams


@pytest.mark.parametrize(
    "options, key",
    [({"impute": "mean"}, "data.impute"), ({"categorical": ["f1"]}, "data.categorical")],
)
def test_fitting_that_only_memory_does_is_refused_on_a_streamed_table_naming_the_key(path, options, key):
    with pytest.raises(ConfigError, match=rf"^{key}: not with a streamed table"):
        module(path, True, **options).load()


def test_a_text_column_is_refused_on_a_streamed_table_in_one_line(tmp_path, table):
    columns = {"f0": table[0][:, 0], "kind": np.where(table[1] > 0, "a", "b"), "label": table[1]}
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table(columns), path)

    with pytest.raises(ConfigError, match=r"^data\.stream: column 'kind' .* holds text.*data\.exclude"):
        module(path, True).load()
    assert module(path, True, exclude=["kind"]).feature_names == ["f0"]


def test_a_missing_value_in_a_streamed_table_names_the_file_row_and_column(tmp_path, table):
    missing = np.zeros(N_ROWS, dtype=bool)
    missing[1234] = True
    columns = {"f0": table[0][:, 0], "f1": pa.array(table[0][:, 1], mask=missing), "label": table[1]}
    pq.write_table(pa.table(columns), tmp_path / "holes.parquet", row_group_size=500)

    with pytest.raises(DataError, match=r"holes\.parquet, row 1235, column 'f1': the value is missing"):
        module(tmp_path / "holes.parquet", True).load()


def test_a_constant_training_column_is_refused_on_a_streamed_table_naming_it(tmp_path, table):
    features = table[0].copy()
    features[:, 1] = 5.0
    path = write_parquet(tmp_path / "constant", features, table[1])

    with pytest.raises(DataError, match=r"column 'f1' has one value in every training row.*data\.exclude"):
        module(path, True).load()


@pytest.mark.parametrize(
    "override, key",
    [("model.gradient=autograd", "model.gradient=autograd"), ("inference.cluster=f1", "inference.cov_type=cluster")],
)
def test_what_a_streamed_table_cannot_do_is_refused_before_training_naming_the_key(run, path, override, key):
    overrides = (*TRAIN, f"data.path={path}", "data.stream=true", override)
    if override.startswith("inference"):
        overrides += ("inference.cov_type=cluster",)

    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: "):
        run(*overrides)


def test_data_stream_accepts_true_false_auto_only(compose):
    from logreg.checking import check_config

    with pytest.raises(ConfigError, match=r"^data\.stream=maybe: expected true .*, false .* or auto"):
        check_config(compose("data=csv", "data.path=x.csv", "data.stream=maybe"))


# ------------------------------------------------------------------------------------------------------ training


def coefficients(run_dir):
    rows = (run_dir / "coefficients.csv").read_text().splitlines()[1:]
    return np.array([float(row.split(",")[1]) for row in rows])


TRAIN = ("data=csv", "epochs=4", "lr=0.5", "logger=none", "~callbacks.plots", "model.pos_weight=balanced")


# float32 sums over other blocks of rows round differently in the last digits; float64 leaves 1e-12 of that
ROUNDING = {"32-true": 5e-5, "64-true": 1e-10}


@pytest.mark.parametrize("precision", ROUNDING)
def test_a_streamed_full_batch_epoch_trains_as_the_in_memory_one(run, path, tmp_path, precision):
    options = (*TRAIN, f"data.path={path}", f"trainer.precision={precision}")
    memory = run(*options, "data.stream=false", run_dir=tmp_path / "memory")
    streamed = run(*options, "data.stream=true", run_dir=tmp_path / "streamed")

    assert set(streamed) == set(memory)
    for name, value in memory.items():
        assert streamed[name] == pytest.approx(value, rel=ROUNDING[precision], abs=1e-7), name
    np.testing.assert_allclose(
        coefficients(tmp_path / "streamed"), coefficients(tmp_path / "memory"), rtol=ROUNDING[precision]
    )
    assert memory["val/loss"] < math.log(2) - 0.1  # it learned


def test_newton_reaches_the_in_memory_optimum_on_a_streamed_table(run, path, tmp_path):
    memory = run(*OPTIMUM, f"data.path={path}", "data.stream=false", run_dir=tmp_path / "memory")
    streamed = run(*OPTIMUM, f"data.path={path}", "data.stream=true", run_dir=tmp_path / "streamed")

    assert streamed["train/loss"] == pytest.approx(memory["train/loss"], abs=1e-12)
    np.testing.assert_allclose(coefficients(tmp_path / "streamed"), coefficients(tmp_path / "memory"), atol=1e-9)


def inference_of(run_dir):
    with (run_dir / "coefficients.csv").open() as file:
        rows = [{key: float(value) for key, value in row.items() if key != "feature"} for row in csv.DictReader(file)]
    return rows, json.loads((run_dir / "inference.json").read_text())


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC1"])
def test_the_statistics_of_a_streamed_optimum_equal_the_in_memory_ones(run, path, tmp_path, cov_type):
    options = (*OPTIMUM, f"data.path={path}", f"inference.cov_type={cov_type}")
    run(*options, "data.stream=false", run_dir=tmp_path / "memory")
    run(*options, "data.stream=true", run_dir=tmp_path / "streamed")

    (memory_rows, memory), (streamed_rows_, streamed) = (
        inference_of(tmp_path / "memory"),
        inference_of(tmp_path / "streamed"),
    )
    assert memory["valid"] and streamed["valid"], streamed["reason"]
    for name, value in memory.items():
        if isinstance(value, float):
            assert streamed[name] == pytest.approx(value, rel=1e-8, abs=1e-10), name
    for memory_row, streamed_row in zip(memory_rows, streamed_rows_, strict=True):
        for name, value in memory_row.items():
            assert streamed_row[name] == pytest.approx(value, rel=1e-7, abs=1e-10, nan_ok=True), name


def test_a_covariance_that_needs_every_row_at_once_is_refused_on_a_streamed_table(run, path):
    with pytest.raises(ConfigError, match=r"^inference\.cov_type=HC3: a streamed table .* gives nonrobust, HC0, HC1"):
        run(*TRAIN, f"data.path={path}", "data.stream=true", "inference.cov_type=HC3")


def test_streamed_mini_batches_train_reproducibly_from_the_seed(run, path, tmp_path):
    minibatches = (*TRAIN, f"data.path={path}", "data.stream=true", "data.batch_size=64", "data.batches_per_step=8")

    first = run(*minibatches, run_dir=tmp_path / "first")
    again = run(*minibatches, run_dir=tmp_path / "again")
    other_seed = run(*minibatches, "seed=2", run_dir=tmp_path / "other")

    assert first == again
    assert first["val/loss"] < math.log(2) - 0.1
    assert other_seed["train/loss"] != first["train/loss"]


def test_a_streamed_tuned_threshold_and_cross_validation_equal_the_in_memory_ones(run, path, tmp_path):
    options = (*TRAIN, f"data.path={path}", "model.tune_threshold=f1", "cv.folds=3")
    memory = run(*options, "data.stream=false", run_dir=tmp_path / "memory")
    streamed = run(*options, "data.stream=true", run_dir=tmp_path / "streamed")

    assert set(streamed) == set(memory)
    for name, value in memory.items():
        assert streamed[name] == pytest.approx(value, abs=1e-6), name


# ---------------------------------------------------------------------------------------------- shuffling, shards


@pytest.fixture
def streamed_module(tmp_path, table):
    return module(write_parquet(tmp_path / "blocks", *table, row_group_rows=100), True, batch_size=50)


def epoch_rows(datamodule, epoch, rank=0, world_size=1, shuffle=True):
    """The training rows (features, as tuples) one process serves in one epoch, in order."""
    loader = StreamedTraining(
        datamodule.streamed_table, rank, world_size, 50, 4, shuffle, 1, np.float32, torch.device("cpu")
    )
    loader.set_epoch(epoch)
    return [tuple(row) for chunk in loader for row in chunk[0].tolist()]


def test_each_shuffled_epoch_serves_every_training_row_once_in_an_order_drawn_from_seed_and_epoch(streamed_module):
    memory = {tuple(row) for row in module(streamed_module.hparams.path, False).rows("train")[0].tolist()}

    first, again = epoch_rows(streamed_module, 0), epoch_rows(streamed_module, 0)
    second = epoch_rows(streamed_module, 1)

    assert len(first) == len(memory) and set(first) == memory  # every training row, once
    assert first == again  # the same seed and epoch: the same order
    assert first != second and set(second) == memory  # a new epoch: a new order of the same rows
    assert first != epoch_rows(streamed_module, 0, shuffle=False)


def test_shuffling_mixes_the_rows_of_a_buffer_of_blocks_drawn_in_random_order(streamed_module):
    table = streamed_module.streamed_table
    block_of = {}
    for index in range(len(table.source.blocks)):
        for row in table.read(index, "train", np.float32)[0].tolist():
            block_of[tuple(row)] = index
    blocks = [block_of[row] for row in epoch_rows(streamed_module, 0)]  # each served row's block
    drawn = list(dict.fromkeys(blocks))  # the blocks in the order their rows first come

    start = 0
    for first in range(0, len(drawn), SHUFFLE_BLOCKS):
        buffer = drawn[first : first + SHUFFLE_BLOCKS]
        size = table.rows_in("train", buffer)
        assert set(blocks[start : start + size]) == set(buffer)  # a buffer's rows come together, and only they
        assert blocks[start : start + size] != sorted(blocks[start : start + size])  # mixed, not block after block
        start += size
    assert len(set(blocks[:50])) > 1  # a mini-batch holds rows of several blocks
    assert sorted(drawn) != drawn  # the blocks come in a drawn order


def test_each_process_reads_only_its_own_blocks_and_together_they_read_every_training_row(streamed_module):
    table = streamed_module.streamed_table
    read = []
    original = table.source.read

    def recording(block, columns, dtype):
        read.append(block.start)
        return original(block, columns, dtype)

    table.source.read = recording
    shares = []
    for rank in range(3):
        read.clear()
        rows = epoch_rows(streamed_module, 0, rank, 3, shuffle=False)
        mine = {table.source.blocks[b].start for b in table.blocks_of("train", rank, 3)}
        assert set(read) == mine  # this process's blocks alone
        shares.append(rows)
    every = {tuple(row) for row in module(streamed_module.hparams.path, False).rows("train")[0].tolist()}
    assert set().union(*map(set, shares)) == every
    assert len({len(share) for share in shares}) == 1  # padded to one length: every process steps alike
    assert sum(len(set(share)) for share in shares) == len(every)  # no row in two shares


def test_eval_py_scores_a_streamed_checkpoint_by_streaming_its_rows(run, compose, path, tmp_path, monkeypatch):
    import logreg.table
    from logreg.checking import check_config
    from logreg.evaluation import evaluate

    trained = run(*TRAIN, f"data.path={path}", "data.stream=true", run_dir=tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose(f"ckpt_path={checkpoint}", run_dir=tmp_path / "eval", config_name="eval")
    cfg = check_config(cfg)
    monkeypatch.setattr(logreg.table, "read_source", None)  # the in-memory reader: never called
    scored = evaluate(cfg)

    for name in ("loss", "acc", "auroc"):
        assert scored[f"test/{name}"] == pytest.approx(trained[f"test/{name}"], abs=1e-6), name


@pytest.mark.parametrize(
    "variant",
    ["plain", "header", "bom", "crlf", "quoted", "blank_lines", "gzip"],
)
def test_a_csv_as_people_write_it_streams_to_the_rows_read_in_memory(tmp_path, table, variant):
    import gzip

    features, labels = table[0][:500], table[1][:500]
    lines = [",".join(f"{v:.6g}" for v in row) for row in np.column_stack([features, labels])]
    if variant == "header":
        lines.insert(0, "a,b,c,d,y")
    if variant == "quoted":
        lines = [",".join(f'"{cell}"' for cell in line.split(",")) for line in lines]
    if variant == "blank_lines":
        lines = [line for row in lines for line in (row, "")]
    text = ("\r\n" if variant == "crlf" else "\n").join(lines) + "\n"
    if variant == "bom":
        text = "\ufeff" + text
    path = tmp_path / ("table.csv.gz" if variant == "gzip" else "table.csv")
    path.write_bytes(gzip.compress(text.encode()) if variant == "gzip" else text.encode())

    streamed, memory = module(path, True), module(path, False)

    assert streamed.spec() == memory.spec()
    assert streamed.feature_names == memory.feature_names
