"""How the rows reach the model: in-memory tensors served as slices, one copy, sharded across processes, on the device.

The speed of this path is measured by benchmarks/bench_throughput.py; these tests pin the behaviour it relies on.
"""

import lightning as L
import numpy as np
import pytest
import torch

from conftest import make_table
from logreg import splits
from logreg.data import CSVDataModule, TabularDataModule
from logreg.model import LogisticRegression
from logreg.splits import EvaluationBlocks, ShardSampler, TrainingChunks, minibatches
from logreg.table import Table


class InMemoryTable(TabularDataModule):
    """A TabularDataModule over a table made in the test, counting how often it is read."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, **options):
        super().__init__(**options)
        self.source, self.reads = Table(features, labels, [f"x{i}" for i in range(1, features.shape[1] + 1)]), 0

    def read(self):
        self.reads += 1
        return self.source


def same_memory(view: torch.Tensor, base: torch.Tensor) -> bool:
    return view.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()


def test_unshuffled_minibatches_are_views_of_the_table_in_row_order():
    features, labels = torch.randn(10, 3), torch.arange(10.0)
    chunks = list(TrainingChunks(features, labels, ShardSampler(10), batch_size=4, batches_per_step=2))

    # 2 mini-batches of 4 rows, then one of 2; views (no rows to gather)
    assert [(len(y), rows, size) for _, y, rows, size in chunks] == [(8, None, 4), (2, None, 4)]
    assert torch.equal(torch.cat([y for _, y, _, _ in chunks]), labels)
    assert all(same_memory(x, features) and same_memory(y, labels) for x, y, _, _ in chunks)


def test_a_large_shuffled_chunk_is_gathered_batch_by_batch_into_the_same_batches(monkeypatch):
    features, labels = torch.randn(100, 3), torch.arange(100.0)
    sampler = ShardSampler(100, shuffle=True, seed=1)
    gathered_whole = [y.tolist() for c in TrainingChunks(features, labels, sampler, 8, 4) for _, y in minibatches(c)]

    monkeypatch.setattr(splits, "GATHER_BYTES", 0)  # as if every chunk were too large to gather at once
    chunks = list(TrainingChunks(features, labels, sampler, 8, 4))

    assert all(chunk[0] is features and chunk[2] is not None for chunk in chunks)  # the rows, not a copy
    assert [y.tolist() for chunk in chunks for _, y in minibatches(chunk)] == gathered_whole


def test_each_process_serves_its_block_as_one_view_at_full_batch():
    features, labels = torch.randn(9, 2), torch.arange(9.0)
    for rank in (0, 1, 2):
        sampler = ShardSampler(9, rank=rank, world_size=3, pad=True)
        ((batch_features, batch_labels, _, size),) = list(TrainingChunks(features, labels, sampler, None))
        assert torch.equal(batch_labels, labels[3 * rank : 3 * rank + 3]) and size == 3
        assert same_memory(batch_features, features)


def test_evaluation_blocks_are_views_of_each_process_rows():
    features, labels = torch.randn(7, 2), torch.arange(7.0)
    blocks = [
        list(EvaluationBlocks(features, labels, ShardSampler(7, rank=r, world_size=2, pad=False))) for r in range(2)
    ]

    assert [[y.tolist() for _, y in b] for b in blocks] == [[[0.0, 1.0, 2.0]], [[3.0, 4.0, 5.0, 6.0]]]
    assert all(same_memory(x, features) for b in blocks for x, _ in b)


@pytest.mark.parametrize("n_rows", [7, 8, 1])
@pytest.mark.parametrize("world_size", [2, 3])
def test_evaluation_shards_split_the_rows_exactly(n_rows, world_size):
    shards = [ShardSampler(n_rows, rank=r, world_size=world_size, pad=False).indices() for r in range(world_size)]

    assert torch.equal(torch.cat(shards), torch.arange(n_rows))  # every row once, none twice


@pytest.mark.parametrize("shuffle", [False, True])
def test_training_shards_are_equally_long_and_together_cover_every_row(shuffle):
    shards = [ShardSampler(10, shuffle, seed=3, rank=r, world_size=3, pad=True).indices() for r in range(3)]

    assert [len(s) for s in shards] == [4, 4, 4]  # equal steps on every process: 12 places for 10 rows
    assert set(torch.cat(shards).tolist()) == set(range(10))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world_size", [2, 3])
def test_the_processes_minibatches_together_are_one_process_minibatch_of_their_combined_size(shuffle, world_size):
    def minibatches(rank: int, processes: int, batch_size: int) -> list[list[int]]:
        sampler = ShardSampler(24, shuffle, seed=9, rank=rank, world_size=processes, contiguous=False)
        sampler.set_epoch(3)
        rows = sampler.indices().tolist()
        return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    one_process = minibatches(0, 1, batch_size=2 * world_size)  # 24 rows: 12 / world_size batches
    shards = [minibatches(rank, world_size, batch_size=2) for rank in range(world_size)]

    together = [sorted(sum((shard[k] for shard in shards), [])) for k in range(len(one_process))]
    assert together == [sorted(batch) for batch in one_process]


def test_every_process_draws_the_same_permutation_for_an_epoch_and_a_new_one_the_next():
    def shards(epoch: int) -> list[torch.Tensor]:
        samplers = [ShardSampler(12, shuffle=True, seed=5, rank=r, world_size=2) for r in range(2)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        return [sampler.indices() for sampler in samplers]

    epoch0, epoch1 = shards(0), shards(1)

    assert sorted(torch.cat(epoch0).tolist()) == list(range(12))  # disjoint halves of one permutation
    assert not torch.equal(torch.cat(epoch0), torch.cat(epoch1))
    assert torch.equal(torch.cat(shards(0)), torch.cat(epoch0))  # the same seed and epoch: the same order


def test_the_datamodule_serves_float32_splits_that_together_hold_each_row_once():
    features, labels = make_table(n_rows=400, n_features=5)
    datamodule = InMemoryTable(features, labels, val_fraction=0.2, test_fraction=0.2)

    datamodule.setup("fit")

    splits = [datamodule.rows(split) for split in ("train", "val", "test")]
    assert sum(x.nbytes for x, _ in splits) == features.nbytes  # together, the splits are the table once
    assert {x.dtype for x, _ in splits} == {y.dtype for _, y in splits} == {torch.float32}


def test_training_on_every_row_serves_the_loaded_array_itself(diabetes_csv):
    datamodule = CSVDataModule(str(diabetes_csv), val_fraction=0.0, test_fraction=0.0)  # lab 5: all rows train
    loaded = datamodule.load().features

    datamodule.setup("fit")
    (batch,) = list(datamodule.train_dataloader())

    assert batch[0].data_ptr() == loaded.ctypes.data  # a view of the array the CSV reader filled, no copy
    assert batch[0].dtype == torch.float32 and batch[0].shape == (759, 8)


def test_the_table_is_read_and_split_once_for_a_whole_fit_and_test(tmp_path):
    features, labels = make_table(n_rows=100)
    datamodule = InMemoryTable(features, labels, batch_size=16)
    model = LogisticRegression(n_features=3)
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )

    trainer.fit(model, datamodule=datamodule)
    trainer.test(model, datamodule=datamodule, verbose=False)

    assert datamodule.reads == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_rows_move_to_the_gpu_once_in_setup_and_batches_are_served_there(tmp_path):
    features, labels = make_table(n_rows=200)
    datamodule = InMemoryTable(features, labels, batch_size=32)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )

    trainer.fit(LogisticRegression(n_features=3), datamodule=datamodule)

    train_features, _ = datamodule.rows("train")
    assert train_features.is_cuda
    batch_features, batch_labels, _, _ = next(iter(datamodule.train_dataloader()))
    assert batch_features.is_cuda and batch_labels.is_cuda
