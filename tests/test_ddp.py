"""Several processes: `trainer=ddp_cpu` (DDP over gloo, 2 CPU processes) gives the numbers of one process, writes one
run folder, and works under `-m`. Each DDP run is a real `python train.py` process tree (Lightning's launcher starts
the second process), on a 200-row table.

Tolerance: the table has 160 training rows, 80 per process, so gradient averaging over equal shards is the full-batch
gradient and the two runs differ only by float32 summation order: 1e-5 on every loss. (With an odd number of training
rows the last shard repeats one row as padding; on lab 5's 759 rows that moves the final loss by 3e-5.)
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import warm

from conftest import REPO
from logreg.data import CSVDataModule

pytestmark = pytest.mark.slow

EPOCHS, LR = 5, 0.5
DDP_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def balanced_csv(tmp_path_factory) -> Path:
    """200 rows, 3 features then a 0/1 label, 100 of each class: the split leaves 160 training rows (80 per process)."""
    rng = np.random.default_rng(7)
    features = rng.uniform(-1, 1, size=(200, 3)).astype(np.float32)
    logits = features @ np.array([2.0, -1.0, 0.5]) + rng.normal(0, 0.7, 200)
    labels = (logits > np.median(logits)).astype(np.float32)
    path = tmp_path_factory.mktemp("data") / "balanced.csv"
    np.savetxt(path, np.column_stack([features, labels]), delimiter=",", fmt="%.6g")
    return path


def run_train(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    result = warm.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def overrides(csv: Path) -> list[str]:
    return ["data=csv", f"data.path={csv}", f"epochs={EPOCHS}", f"lr={LR}"]


@pytest.fixture(scope="module")
def ddp_run(balanced_csv, tmp_path_factory) -> Path:
    """The run folder of `python train.py trainer=ddp_cpu` on the balanced table."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    result = run_train("trainer=ddp_cpu", *overrides(balanced_csv), f"hydra.run.dir={run_dir}")
    (tmp_path_factory.getbasetemp() / "ddp_console.txt").write_text(result.stdout + result.stderr)
    return run_dir


def test_ddp_prints_no_advice_to_sync_values_the_model_already_reduced(ddp_run, tmp_path_factory):
    console = (tmp_path_factory.getbasetemp() / "ddp_console.txt").read_text()

    assert "Run folder:" in console  # the console was captured
    assert "sync_dist" not in console


@pytest.fixture
def single_run(trained_once, balanced_csv, tmp_path) -> Path:
    """The run folder of the same config in one process (trainer=cpu), trained in this one (once for the module)."""
    return trained_once("trainer=cpu", *overrides(balanced_csv), run_dir=tmp_path / "one_process")


@pytest.fixture(scope="module")
def ddp_minibatch_run(balanced_csv, tmp_path_factory) -> Path:
    """`trainer=ddp_cpu` with shuffled mini-batches of 16 rows per process (32 in all per update)."""
    run_dir = tmp_path_factory.mktemp("ddp_minibatches") / "run"
    run_train(
        "trainer=ddp_cpu",
        *overrides(balanced_csv),
        "data.batch_size=16",
        "data.batches_per_step=2",
        f"hydra.run.dir={run_dir}",
    )
    return run_dir


def metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def loss_and_accuracy(run_dir: Path, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean BCE and accuracy of the run's final coefficients (coefficients.csv) on the given rows."""
    rows = (run_dir / "coefficients.csv").read_text().splitlines()[1:]
    coefficients = torch.tensor([float(row.split(",")[1]) for row in rows])  # (F + 1,): weights, then the intercept
    logits = features @ coefficients[:-1] + coefficients[-1]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).item()
    return loss, ((logits >= 0).float() == labels).float().mean().item()


def test_ddp_scores_validation_and_test_over_the_whole_split_not_one_shard(ddp_run, balanced_csv):
    datamodule = CSVDataModule(str(balanced_csv), seed=1)  # the split train.py made: seed=1, 10% val, 10% test
    reported = metrics(ddp_run)

    for split in ("val", "test"):
        features, labels = datamodule.rows(split)
        whole_loss, whole_accuracy = loss_and_accuracy(ddp_run, features, labels)
        first_shard_loss, _ = loss_and_accuracy(ddp_run, features[: len(labels) // 2], labels[: len(labels) // 2])
        assert abs(first_shard_loss - whole_loss) > 1e-3  # so matching the whole split means something
        assert reported[f"{split}/loss"] == pytest.approx(whole_loss, abs=1e-5)
        assert reported[f"{split}/acc"] == pytest.approx(whole_accuracy, abs=1e-6)


def test_ddp_on_two_processes_ends_where_one_process_does(ddp_run, single_run):
    two, one = metrics(ddp_run), metrics(single_run)

    assert set(two) == set(one)
    for name in ("train/loss", "val/loss", "test/loss"):
        assert two[name] == pytest.approx(one[name], abs=DDP_TOLERANCE), name
    for name in ("val/acc", "test/acc", "val/auroc", "test/auroc"):
        assert two[name] == pytest.approx(one[name], abs=1e-6), name
    assert one["val/loss"] < math.log(2) - 0.05  # both learned: below the loss of predicting 0.5 everywhere


def test_ddp_with_shuffled_minibatches_ends_where_one_process_with_their_combined_batch_does(
    ddp_minibatch_run, single_run, run, balanced_csv, tmp_path
):
    run_dir = tmp_path / "single"
    run("trainer=cpu", *overrides(balanced_csv), "data.batch_size=32", run_dir=run_dir)  # in this process

    two, one = metrics(ddp_minibatch_run), metrics(run_dir)
    for name in ("train/loss", "val/loss", "test/loss"):
        assert two[name] == pytest.approx(one[name], abs=DDP_TOLERANCE), name
    assert abs(one["val/loss"] - metrics(single_run)["val/loss"]) > 1e-3  # mini-batches: not the full-batch numbers


@pytest.fixture(scope="module")
def balanced_parquet(balanced_csv, tmp_path_factory) -> Path:
    """The balanced table as Parquet with row groups of 20 rows: 10 blocks to stream, shared by the processes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = np.loadtxt(balanced_csv, delimiter=",", dtype=np.float32)
    path = tmp_path_factory.mktemp("parquet") / "balanced.parquet"
    columns = {f"x{k + 1}": values[:, k] for k in range(values.shape[1])}
    pq.write_table(pa.table(columns), path, row_group_size=20)
    return path


def test_ddp_on_a_streamed_table_ends_where_one_process_on_the_table_in_memory_does(
    balanced_parquet, single_run, tmp_path
):
    run_dir = tmp_path / "streamed"
    streamed = ("trainer=ddp_cpu", *overrides(balanced_parquet), "data.stream=true")
    run_train(*streamed, f"hydra.run.dir={run_dir}")

    two, one = metrics(run_dir), metrics(single_run)
    assert "as is (streamed)" in (run_dir / "data_report.csv").read_text()  # it streamed
    for name in ("train/loss", "val/loss", "test/loss"):
        assert two[name] == pytest.approx(one[name], abs=DDP_TOLERANCE), name
    for name in ("val/acc", "test/acc", "val/auroc", "test/auroc"):
        assert two[name] == pytest.approx(one[name], abs=1e-6), name


def test_ddp_with_mini_batches_of_a_streamed_table_steps_alike_on_both_processes_and_learns(balanced_parquet, tmp_path):
    run_dir = tmp_path / "streamed_minibatches"
    minibatches = ("data.stream=true", "data.batch_size=16", "data.batches_per_step=2")
    run_train("trainer=ddp_cpu", *overrides(balanced_parquet), *minibatches, f"hydra.run.dir={run_dir}")

    assert metrics(run_dir)["val/loss"] < math.log(2) - 0.05  # it finished (no process waited on the other) and learned


def test_ddp_children_write_into_the_run_folder_and_rank_zero_alone_writes_config_and_scalars(ddp_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert sorted(p.name for p in ddp_run.parent.iterdir()) == ["run"]  # one folder, nothing beside it
    assert (ddp_run / "run.json").is_file()  # claimed by rank zero; the second process shares it
    child_log = (ddp_run / "train_ddp_process_1.log").read_text()
    assert "GLOBAL_RANK: 1" in child_log  # the second process ran here, in this run folder
    assert list(ddp_run.rglob("config.yaml")) == [ddp_run / ".hydra" / "config.yaml"]

    counts = {"train/loss": 0, "test/acc": 0}
    for event_file in ddp_run.glob("events.out.tfevents.*"):
        events = EventAccumulator(str(event_file)).Reload()
        for tag in set(counts) & set(events.Tags()["scalars"]):
            counts[tag] += len(events.Scalars(tag))
    assert counts == {"train/loss": EPOCHS, "test/acc": 1}  # one value per epoch, not one per process


def test_multirun_with_ddp_runs_each_trial_once_in_its_own_folder(balanced_csv, ddp_run, tmp_path):
    (tmp_path / "balanced.csv").write_bytes(balanced_csv.read_bytes())  # a short data.path: trial folder names hold it
    sweep_overrides = ["trainer=ddp_cpu", "data=csv", "data.path=balanced.csv", f"epochs={EPOCHS}", f"lr=0.1,{LR}"]
    alone = "hydra.launcher.train_together=false"  # each trial its own DDP run (together: tests/test_together_ddp.py)
    result = run_train("-m", *sweep_overrides, alone, cwd=tmp_path)  # the default sweep folder: logs/sweeps/<time>

    output = result.stdout + result.stderr
    # the sweep's one line (its trials train alone): no child process started the sweep again
    assert len(re.findall(r"Sweep: 0 of 2 trials trained together", output)) == 1
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["sweeps"]  # and no child made a run folder of its own
    (sweep,) = (tmp_path / "logs" / "sweeps").iterdir()
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [t.name.split("_")[0] for t in trials] == ["0", "1"]
    for trial in trials:
        assert (trial / ".hydra" / "config.yaml").is_file() and (trial / "metrics.json").is_file()
        child_log = (trial / "train_ddp_process_1.log").read_text()
        assert child_log.count("Initializing distributed") == 1  # this trial's second process, for this trial only
    trial_with_lr = next(t for t in trials if f"lr={LR}" in t.name)
    assert metrics(trial_with_lr)["val/loss"] == pytest.approx(metrics(ddp_run)["val/loss"], abs=1e-6)


def test_num_nodes_reaches_the_trainer(compose):
    from hydra.utils import instantiate

    cfg = compose("trainer=ddp", "trainer.num_nodes=2", "trainer.devices=1")
    trainer = instantiate(cfg.trainer)

    assert trainer.num_nodes == 2 and trainer.world_size == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_config_trains_on_the_gpu_to_the_cpu_numbers(balanced_csv, single_run, tmp_path):
    run_train("trainer=gpu", *overrides(balanced_csv), f"hydra.run.dir={tmp_path / 'run'}")

    gpu, cpu = metrics(tmp_path / "run"), metrics(single_run)
    for name in ("train/loss", "val/loss", "test/loss"):
        assert gpu[name] == pytest.approx(cpu[name], abs=1e-4), name


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_ddp_on_two_gpus_ends_where_one_process_does(balanced_csv, single_run, tmp_path):
    run_train("trainer=ddp", "trainer.devices=2", *overrides(balanced_csv), f"hydra.run.dir={tmp_path / 'run'}")

    two, one = metrics(tmp_path / "run"), metrics(single_run)
    for name in ("train/loss", "val/loss", "test/loss"):
        assert two[name] == pytest.approx(one[name], abs=1e-4), name


def test_the_second_process_takes_the_first_ones_plan_instead_of_reading_the_table(ddp_run):
    child_log = (ddp_run / "train_ddp_process_1.log").read_text()

    assert "process 1 of 2 on this node takes the plan of its first process" in child_log


def test_torchrun_processes_take_local_rank_zeros_plan_and_end_where_one_process_does(
    balanced_csv, single_run, tmp_path
):
    run_dir = tmp_path / "torchrun"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [
        *torchrun,
        str(REPO / "train.py"),
        "trainer=ddp_cpu",
        *overrides(balanced_csv),
        f"hydra.run.dir={run_dir}",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert "process 1 of 2 on this node takes the plan" in (run_dir / "train.log").read_text()  # both log there
    two, one = metrics(run_dir), metrics(single_run)
    for name in ("train/loss", "val/loss", "test/loss"):
        assert two[name] == pytest.approx(one[name], abs=DDP_TOLERANCE), name


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("files", ["a copy on each node", "one shard per node"])
def test_two_nodes_with_node_local_files_train_on_copies_and_refuse_shards(
    balanced_parquet, single_run, tmp_path, files
):
    """Two nodes simulated on this machine: one process each (NODE_RANK 0 and 1, as a cluster's launcher sets it),
    each reading its own node-local folder, sharing the run folder (a shared filesystem)."""
    import pyarrow.parquet as pq

    table = pq.read_table(balanced_parquet)
    port, processes = free_port(), []
    for node in (0, 1):
        folder = tmp_path / f"node{node}"
        folder.mkdir()
        rows = table if files == "a copy on each node" else table.slice(100 * node, 100)
        pq.write_table(rows, folder / "part-0.parquet", row_group_size=20)
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
        env |= {"NODE_RANK": str(node), "LOCAL_RANK": "0"}
        node_run = ["trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2", *overrides(folder)]
        command = [sys.executable, str(REPO / "train.py"), *node_run, f"hydra.run.dir={tmp_path / 'run'}"]
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [process.communicate(timeout=240)[0].decode() for process in processes]

    if files == "one shard per node":
        for process, output in zip(processes, outputs):
            assert process.returncode != 0
            assert "one shard of files per node is not supported" in output.strip().splitlines()[-1]
        return
    assert [process.returncode for process in processes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    two, one = metrics(tmp_path / "run"), metrics(single_run)
    for name in ("train/loss", "val/loss", "test/loss"):
        assert two[name] == pytest.approx(one[name], abs=DDP_TOLERANCE), name
