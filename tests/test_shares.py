"""Under DDP the first process of a node writes a plan (`logreg.shares`), and the node's other processes take it: they
never read the table (nor, streamed, its label column) and serve exactly the rows the first process would serve them.

A follower is simulated in this process: the variables Lightning's launcher sets for its second process (LOCAL_RANK=1,
WORLD_SIZE=2), and a Trainer stand-in that says rank 1 of 2. The reference is the same DataModule reading the table
itself and serving rank 1's rows, as every process did before.
"""

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import make_table, write_table
from logreg import shares
from logreg.data import CSVDataModule
from logreg.shares import Launch, launch
from logreg.splits import minibatches
from logreg.stream import StreamedRows
from logreg.stream_source import BlockSource

WORLD_SIZE = 2


def as_rank(datamodule: CSVDataModule, rank: int) -> CSVDataModule:
    """The DataModule as Lightning's Trainer of process `rank` of WORLD_SIZE (on the CPU, float32) sets it up."""
    datamodule.trainer = SimpleNamespace(  # type: ignore[assignment]
        global_rank=rank,
        world_size=WORLD_SIZE,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        precision="32-true",
    )
    return datamodule


def served(datamodule: CSVDataModule, epochs: int = 2) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Every (loader, features, labels) the loaders serve over `epochs` epochs: mini-batches, blocks, full batches."""
    found = []
    for epoch in range(epochs):
        loader = datamodule.train_dataloader()
        loader.sampler.set_epoch(epoch)
        for chunk in loader:
            if isinstance(chunk[0], StreamedRows):
                found += [("train", features, labels) for features, labels in chunk[0]]
            else:
                found += [("train", features, labels) for features, labels in minibatches(chunk)]
    for stage, loader in (("val", datamodule.val_dataloader()), ("test", datamodule.test_dataloader())):
        found += [(stage, features, labels) for features, labels in loader]
    return found


def follower_of(path, monkeypatch, **options) -> CSVDataModule:
    """A DataModule loaded as the second process of a Lightning DDP launch, with reading the table made to fail."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", str(WORLD_SIZE))

    def refuse(*_args, **_kwargs):
        raise AssertionError("a process that took the plan read the table")

    monkeypatch.setattr(CSVDataModule, "read", refuse)
    monkeypatch.setattr(BlockSource, "read", refuse)
    follower = CSVDataModule(str(path), **options)
    follower.load()
    return follower


def assert_same_data(follower: CSVDataModule, leader: CSVDataModule) -> None:
    assert follower.n_features == leader.n_features and follower.feature_names == leader.feature_names
    assert follower.scaler() == leader.scaler()
    assert follower.balanced_pos_weight() == leader.balanced_pos_weight()
    assert follower.state_dict() == leader.state_dict()
    assert [follower.split_size(s) for s in ("train", "val", "test")] == [
        leader.split_size(s) for s in ("train", "val", "test")
    ]


def assert_same_rows(follower: CSVDataModule, leader: CSVDataModule) -> None:
    mine, reference = served(as_rank(follower, 1)), served(as_rank(leader, 1))
    assert [(stage, len(labels)) for stage, _, labels in mine] == [(stage, len(y)) for stage, _, y in reference]
    for (_, features, labels), (_, ref_features, ref_labels) in zip(mine, reference):
        assert torch.equal(features, ref_features) and torch.equal(labels, ref_labels)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"batch_size": 16, "batches_per_step": 2},
        {"batch_size": 16, "shuffle": False},
        {"standardize": True, "test_on": "train"},
        {"val_fraction": 0.0, "seed": 3},
    ],
    ids=["full-batch", "mini-batches", "unshuffled", "standardized-test-on-train", "no-val"],
)
def test_a_process_taking_the_plan_of_a_table_in_memory_serves_the_rows_it_would_read_itself(
    tmp_path, monkeypatch, options
):
    csv = write_table(tmp_path / "table.csv", *make_table(201, 3, seed=4))  # 201 rows: one shard is padded
    leader = CSVDataModule(str(csv), **options)
    leader.load()
    leader.share(WORLD_SIZE)

    follower = follower_of(csv, monkeypatch, **options)

    assert_same_data(follower, leader)
    assert_same_rows(follower, leader)


def test_the_plan_of_full_batch_training_holds_only_the_other_processes_rows(tmp_path, monkeypatch):
    csv = write_table(tmp_path / "table.csv", *make_table(200, 3))
    leader = CSVDataModule(str(csv))
    leader.load()
    leader.share(WORLD_SIZE)
    follower = follower_of(csv, monkeypatch)

    assert follower._plan is not None
    rows_kept = sum(len(np.load(f)) for f in follower._plan.folder.glob("*.labels.npy"))
    assert rows_kept == 160 // WORLD_SIZE + 20 // WORLD_SIZE + 20 // WORLD_SIZE  # rank 1's train, val and test rows


def test_a_process_does_not_take_a_plan_made_for_the_file_before_it_changed(tmp_path, monkeypatch):
    csv = write_table(tmp_path / "table.csv", *make_table(200, 3))
    leader = CSVDataModule(str(csv))
    leader.load()
    leader.share(WORLD_SIZE)
    write_table(csv, *make_table(220, 3, seed=9))  # the same path, other rows

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", str(WORLD_SIZE))
    follower = CSVDataModule(str(csv))

    assert follower.spec() == CSVDataModule(str(csv)).table.spec()  # read from the file as it is now
    assert follower.spec() != leader.spec()


@pytest.mark.parametrize("options", [{}, {"batch_size": 16, "batches_per_step": 2}], ids=["full-batch", "mini-batches"])
def test_a_process_taking_the_plan_of_a_streamed_table_reads_no_block_before_training_and_serves_its_rows(
    tmp_path, monkeypatch, options
):
    features, labels = make_table(300, 3, seed=5)
    columns = {f"x{k + 1}": features[:, k] for k in range(3)} | {"y": labels}
    path = tmp_path / "table.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=25)
    options = {"stream": True, "standardize": True, **options}
    leader = CSVDataModule(str(path), **options)
    leader.load()
    leader.share(WORLD_SIZE)

    follower = follower_of(path, monkeypatch, **options)  # reading a block fails in there

    assert follower.streams
    assert_same_data(follower, leader)
    monkeypatch.undo()  # training reads this process's blocks
    assert_same_rows(follower, leader)


LAUNCHES = {
    "torchrun": {"TORCHELASTIC_RUN_ID": "job", "WORLD_SIZE": "2"},
    "srun": {"SLURM_NTASKS": "2"},
}


@pytest.mark.parametrize("launcher", LAUNCHES)
def test_where_every_process_starts_at_once_the_first_writes_the_plan_as_it_loads_and_the_others_take_it(
    tmp_path, monkeypatch, launcher
):
    csv = write_table(tmp_path / "table.csv", *make_table(200, 3))
    for name, value in LAUNCHES[launcher].items():
        monkeypatch.setenv(name, value)
    rank = "LOCAL_RANK" if launcher == "torchrun" else "SLURM_LOCALID"
    monkeypatch.setenv(rank, "0")
    leader = CSVDataModule(str(csv))
    leader.load()  # writes the plan: nobody calls share() before the others load

    monkeypatch.setenv(rank, "1")
    monkeypatch.setattr(shares, "PLAN_WAIT_S", 2.0)  # without the plan: read the table, which fails here
    monkeypatch.setattr(CSVDataModule, "read", lambda *_: pytest.fail("a process that took the plan read the table"))
    follower = CSVDataModule(str(csv))
    follower.load()

    assert_same_data(follower, leader)
    assert_same_rows(follower, leader)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Launch()),
        ({"LOCAL_RANK": "1", "WORLD_SIZE": "4"}, Launch(1, 4, False)),  # Lightning's launcher
        ({"TORCHELASTIC_RUN_ID": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "8"}, Launch(0, 8, True)),
        ({"SLURM_NTASKS": "4", "SLURM_LOCALID": "3"}, Launch(3, 4, True)),
        ({"SLURM_NTASKS": "1", "SLURM_LOCALID": "0"}, Launch()),  # one task: Lightning may start the others itself
    ],
)
def test_launch_tells_lightnings_launcher_torchrun_and_srun_apart(monkeypatch, env, expected):
    for name in ("LOCAL_RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert launch() == expected
