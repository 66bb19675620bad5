"""Trials trained together under DDP (`trainer=ddp_cpu`: 2 CPU processes over gloo): one group, one DDP run, whose
second process Lightning's launcher starts to train the same group (`logreg.together_ddp`). Each trial ends where the
same trial trained together in one process does (full batch; mini-batches of B rows per process = 2B in one), and its
folder is a whole run's. Torchrun, several nodes and other strategies: those trials train alone, and say why.

Tolerance 1e-6 in float32: the processes' sums of their halves of each batch differ from one process's sum only by
summation order, and no row is repeated (unlike a single run's DistributedSampler padding on an odd row count).
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import warm
from test_together import assert_same_run

from conftest import REPO, make_table, write_table
from logreg.checking import check_config

GRID = [  # what differs within the group: lr, optimizer, weight decay, epochs, seed (initial weights)
    ["lr=0.5"],
    ["optimizer=adam", "lr=0.05", "model.optimizer.weight_decay=0.01", "seed=2"],
    ["lr=0.2", "model.optimizer.momentum=0.9", "epochs=2"],
    ["optimizer=adamw", "lr=0.1", "model.optimizer.weight_decay=0.1"],
]


def shared(csv: Path, batch_size: str) -> list[str]:
    return [
        "data=csv",
        f"data.path={csv}",
        "data.seed=1",
        "epochs=3",
        f"data.batch_size={batch_size}",
        "data.batches_per_step=2",
    ]


def train_each_way(compose, tmp_path, one_process: list[list[str]], ddp: list[list[str]]):
    """The trials of `one_process` trained together in one process, then those of `ddp` as one DDP group of 2."""
    from logreg.together_ddp import group_processes
    from logreg.together_runs import train_group

    one = [check_config(compose(*o, "trainer=cpu")) for o in one_process]
    two = [check_config(compose(*o, "trainer=ddp_cpu")) for o in ddp]
    alone = train_group(one)
    with group_processes(two, [{} for _ in two], tmp_path / "group.pkl"):
        together = train_group(two)
    return alone, together


def trial_numbers(trial) -> torch.Tensor:
    """Everything a trial trained to: its final weights, bias and threshold."""
    model = trial.model
    return torch.cat([model.linear.weight.flatten(), model.linear.bias.flatten(), model.threshold.view(1)]).detach()


@pytest.mark.slow  # two processes, as tests/test_ddp.py's
def test_a_group_on_two_ddp_processes_with_batches_of_b_ends_where_one_process_with_batches_of_2b_does(
    compose, tmp_path
):
    from logreg.training import build_datamodule

    csv = write_table(tmp_path / "tiny.csv", *make_table())
    omp_before = os.environ.get("OMP_NUM_THREADS")
    one_process, ddp = [[*shared(csv, "32"), *o] for o in GRID], [[*shared(csv, "16"), *o] for o in GRID]
    # a single DDP run of the first trial left its plan (one process's rows) in the cache: the group reads the table
    build_datamodule(check_config(compose(*ddp[0], "trainer=ddp_cpu"))).share(2)
    one, two = train_each_way(compose, tmp_path, one_process, ddp)

    for k, (alone, together) in enumerate(zip(one, two, strict=True)):
        assert together.history.updates == alone.history.updates and together.steps_per_epoch == 3, (
            k
        )  # 160 rows / 32: 5 updates, 2 per step
        assert sorted(together.metrics) == sorted(alone.metrics), k
        for name, value in alone.metrics.items():
            assert together.metrics[name] == pytest.approx(value, abs=1e-6), (k, name)
        torch.testing.assert_close(trial_numbers(together), trial_numbers(alone), atol=1e-6, rtol=0)
        logged = [(step, epoch) for step, epoch, _ in together.history.logs]
        assert logged == [(step, epoch) for step, epoch, _ in alone.history.logs], k
    # the second process trained the group, logged beside the group's file, and this process is as before
    log = (tmp_path / "group_process_1.log").read_text()
    assert "process 1 of 2 trains the group of 4 trials" in log and "process 1 of 2: the group trained" in log
    assert not (tmp_path / "group.pkl").exists()
    assert "LOCAL_RANK" not in os.environ and "MASTER_PORT" not in os.environ
    assert os.environ.get("OMP_NUM_THREADS") == omp_before
    assert not torch.distributed.is_initialized()


def assert_same_trials(one: list, two: list) -> None:
    for k, (alone, together) in enumerate(zip(one, two, strict=True)):
        assert together.history.updates == alone.history.updates, k
        assert sorted(together.metrics) == sorted(alone.metrics), k
        for name, value in alone.metrics.items():
            assert together.metrics[name] == pytest.approx(value, abs=1e-6), (k, name)
        torch.testing.assert_close(trial_numbers(together), trial_numbers(alone), atol=1e-6, rtol=0)


SEEDS = [["seed=1"], ["seed=2", "lr=0.2"], ["seed=3", "optimizer=adam", "lr=0.05"]]  # each its own split and order


@pytest.mark.slow
@pytest.mark.parametrize(
    ("batch_sizes", "kind"), [(("null", "null"), "masked"), (("32", "16"), "gathered")], ids=["full", "minibatch"]
)
def test_trials_with_rows_of_their_own_under_ddp_end_where_they_do_in_one_process(compose, tmp_path, batch_sizes, kind):
    from logreg.together_rows import GroupRows, TrialRows
    from logreg.training import build_datamodule

    csv = write_table(tmp_path / "tiny.csv", *make_table())
    common = ["data=csv", f"data.path={csv}", "epochs=3", "data.batches_per_step=2"]
    one_process = [[*common, f"data.batch_size={batch_sizes[0]}", *o] for o in SEEDS]
    ddp = [[*common, f"data.batch_size={batch_sizes[1]}", *o] for o in SEEDS]
    datamodules = [build_datamodule(check_config(compose(*o))) for o in ddp]
    batch_size = None if batch_sizes[1] == "null" else int(batch_sizes[1])
    trials = [TrialRows.of(d) for d in datamodules]
    assert GroupRows(torch.zeros(1, 1), torch.zeros(1), trials, batch_size, 1).kind == kind  # the way it serves

    assert_same_trials(*train_each_way(compose, tmp_path, one_process, ddp))


@pytest.mark.slow
def test_trials_whose_encodings_differ_train_as_two_runs_of_the_same_processes_and_equal_one_process(compose, tmp_path):
    features, labels = make_table()
    features[::7, 1] = float("nan")  # each split's training rows give another fill: two tables, two runs
    csv = write_table(tmp_path / "missing.csv", features, labels)
    grid = [["data=csv", f"data.path={csv}", "data.impute=mean", "epochs=3", f"seed={seed}"] for seed in (1, 2)]

    one, two = train_each_way(compose, tmp_path, grid, grid)

    assert two[0].datamodule.state_dict()["encoding"] != two[1].datamodule.state_dict()["encoding"]
    assert_same_trials(one, two)


def test_a_streamed_table_under_ddp_still_trains_alone(compose, tmp_path):
    from logreg.together_ddp import group_processes
    from logreg.together_runs import CannotTrainTogether, train_group

    csv = write_table(tmp_path / "tiny.csv", *make_table())
    configs = [check_config(compose(*shared(csv, "null"), "data.stream=true", "trainer=ddp_cpu", *o)) for o in GRID]

    with pytest.raises(CannotTrainTogether, match="data.stream"):
        with group_processes(configs, [{} for _ in configs], tmp_path / "group.pkl"):
            train_group(configs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.csv"]  # no process started, no file left
    assert "LOCAL_RANK" not in os.environ


def test_ddp_trials_share_a_group_with_each_other_not_with_one_process_trials(compose, tmp_path):
    from logreg.together_runs import group_key

    ddp = [group_key(check_config(compose("trainer=ddp_cpu", *o)), tmp_path)[0] for o in GRID]
    one = group_key(check_config(compose("trainer=cpu")), tmp_path)[0]

    assert None not in ddp and len(set(ddp)) == 1 and one != ddp[0]


@pytest.mark.parametrize(
    "env",
    [
        {"TORCHELASTIC_RUN_ID": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "2"},  # torchrun
        {"SLURM_NTASKS": "2", "SLURM_LOCALID": "0"},  # srun
        {"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
    ],
)
def test_ddp_trials_of_a_sweep_that_torchrun_or_slurm_started_train_alone_and_say_why(
    compose, tmp_path, monkeypatch, env
):
    from logreg.together_runs import group_key

    cfg = check_config(compose("trainer=ddp_cpu"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    assert group_key(cfg, tmp_path) == (None, "DDP under torchrun or SLURM (each process runs the whole sweep)")


# ------------------------------------------------------------------------------------------- whole sweeps (train.py)

SWEEP_AXES = ["lr=0.1,0.5", "optimizer=sgd,adam", "epochs=2,3", "model.optimizer.weight_decay=0.01"]


def sweep(folder: Path, trainer: str, batch_sizes: str) -> tuple[Path, str]:
    """`train.py -m` of the sweep grid, full batch and mini-batches, in `folder`; its sweep folder and console."""
    folder.mkdir()
    (folder / "tiny.csv").write_text(tiny_csv_text())
    command = [sys.executable, str(REPO / "train.py"), "-m", "data=csv", "data.path=tiny.csv", "data.seed=1"]
    # the batch size first: it varies slowest, so jobs 0-7 are one group, 8-15 the other
    command += [f"data.batch_size={batch_sizes}", *SWEEP_AXES, trainer, f"hydra.sweep.dir={folder / 'sweep'}"]
    result = warm.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder / "sweep", result.stdout + result.stderr


def tiny_csv_text() -> str:
    import numpy as np

    features, labels = make_table()
    rows = np.column_stack([features, labels])
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """The grid swept with trainer=ddp_cpu (batches of 16 per process, or full batch) and with one process (32)."""
    base = tmp_path_factory.mktemp("sweeps")
    return {
        "ddp": sweep(base / "ddp", "trainer=ddp_cpu", "null,16"),
        "one": sweep(base / "one", "trainer=cpu", "null,32"),
    }


def trials(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("_")[0]))


@pytest.mark.slow
def test_a_ddp_sweep_trains_each_batch_size_as_one_group_and_says_so(sweeps):
    _, console = sweeps["ddp"]

    assert "Sweep: 16 of 16 trials trained together, in 2 groups (" in console


@pytest.mark.slow
def test_every_trial_of_a_ddp_sweep_equals_the_same_trial_swept_in_one_process(sweeps):
    ddp, one = trials(sweeps["ddp"][0]), trials(sweeps["one"][0])

    assert len(ddp) == len(one) == 16
    for mine, theirs in zip(ddp, one, strict=True):
        assert mine.name.split("_")[0] == theirs.name.split("_")[0]
        assert_same_run(mine, theirs, 1e-6, mine.name)  # files, metrics, coefficients, checkpoints, curves
    batches = {json.loads((t / "metrics.json").read_text())["val/loss"] for t in ddp}
    assert len(batches) == 16  # every trial its own numbers (full batch and mini-batches differ)


@pytest.mark.slow
def test_a_ddp_sweep_writes_only_into_its_sweep_folder_one_log_per_groups_second_process(sweeps):
    (ddp, _), (one, _) = sweeps["ddp"], sweeps["one"]

    assert sorted(p.name for p in ddp.parent.iterdir()) == ["sweep", "tiny.csv"]  # nothing beside it (no logs/)
    logs = sorted(p.name for p in ddp.iterdir() if p.is_file() and p.name not in {q.name for q in one.iterdir()})
    assert logs == ["together_ddp_0_process_1.log", "together_ddp_8_process_1.log"]  # one per group; no .pkl left
    for log in logs:
        assert "process 1 of 2: the group trained" in (ddp / log).read_text()
    assert sorted(p.name for p in one.iterdir() if p.is_file()) == sorted(
        p.name for p in ddp.iterdir() if p.is_file() and p.name not in logs
    )
