"""Hydra multirun sweeps end to end: grid, Optuna (with a shared study storage), parallel trials, every launcher,
a failing trial, seeds grouped, and the summary table."""

import csv
import json
import os
import subprocess
import sys

import pytest
import warm
import yaml

from conftest import REPO
from logreg.sweep import group_by_seed, rank, read_trials


def read_json(path):
    return json.loads(path.read_text())


pytestmark = pytest.mark.slow


def swept(row: dict) -> str:
    """The trial's own overrides: the row's overrides less the ones every trial of these tests shares."""
    return " ".join(o for o in row["overrides"].split() if not o.startswith(("data=", "data.path=", "epochs=")))


def sweep_command(tiny_csv, sweep_dir, *overrides):
    return [
        sys.executable,
        str(REPO / "train.py"),
        "-m",
        "data=csv",
        f"data.path={tiny_csv}",
        "epochs=2",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]


def sweep(tmp_path, tiny_csv, *overrides, expect_ok=True, name="sweep", columns=None):
    """Run `python train.py -m ...` on the tiny CSV into tmp_path/name; return (process result, summary rows)."""
    sweep_dir = tmp_path / name
    env = {**os.environ, **({"COLUMNS": str(columns)} if columns else {})}
    result = warm.run(
        sweep_command(tiny_csv, sweep_dir, *overrides),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if expect_ok:
        assert result.returncode == 0, result.stderr[-3000:]
    with (sweep_dir / "summary.csv").open() as file:
        return result, list(csv.DictReader(file))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """One grid sweep for several tests: 2 learning rates x 2 seeds on the tiny CSV, on a 60-column terminal."""
    from conftest import make_table, write_table

    folder = tmp_path_factory.mktemp("grid")
    tiny = write_table(folder / "tiny.csv", *make_table())
    result, rows = sweep(folder, tiny, "lr=0.01,1", "seed=1,2", columns=60)
    return folder / "sweep", result, rows


def test_grid_sweep_runs_every_combination_in_its_own_named_folder(grid):
    sweep_dir, _, rows = grid

    assert sorted(swept(row) for row in rows) == ["lr=0.01 seed=1", "lr=0.01 seed=2", "lr=1 seed=1", "lr=1 seed=2"]
    folders = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert folders == [
        f"{n}_data=csv,epochs=2,lr={lr},seed={seed}"  # data.path is left out: it would nest folders
        for n, (lr, seed) in enumerate([("0.01", 1), ("0.01", 2), ("1", 1), ("1", 2)])
    ]
    for folder in folders:  # each trial is its own TensorBoard run, named by its overrides
        assert list((sweep_dir / folder).glob("events.out.tfevents.*")), folder


def test_summary_lists_every_trial_best_validation_loss_first(grid):
    sweep_dir, _, rows = grid

    losses = [float(row["val/loss"]) for row in rows]
    assert losses == sorted(losses) and len(losses) == 4
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4"] and {row["status"] for row in rows} == {"ok"}
    assert all((sweep_dir / row["run_dir"].split("/sweep/")[-1] / "metrics.json").is_file() for row in rows)
    header = (sweep_dir / "summary.md").read_text().splitlines()[0]
    assert header.startswith("| rank | trial | status | overrides | val/loss |")


def test_trials_that_differ_only_by_seed_are_grouped_with_mean_std_and_count(grid):
    sweep_dir, result, rows = grid

    with (sweep_dir / "summary_by_seed.csv").open() as file:
        groups = {row["overrides"].split()[-1]: row for row in csv.DictReader(file)}
    assert set(groups) == {"lr=0.01", "lr=1"}
    for lr, group in groups.items():
        losses = [float(row["val/loss"]) for row in rows if lr in row["overrides"].split()]
        assert int(group["count"]) == 2 and float(group["val/loss"]) == pytest.approx(sum(losses) / 2, abs=1e-6)
        assert float(group["val/loss_std"]) == pytest.approx(abs(losses[0] - losses[1]) / 2**0.5, abs=1e-6)
    assert "Trials that differ only by seed" in result.stdout


def test_the_printed_summary_fits_a_narrow_terminal_and_names_the_csv(grid):
    _, result, rows = grid

    table = result.stdout[result.stdout.index("Sweep summary") :]
    assert max(len(line) for line in table.splitlines()) <= 60
    assert "summary.csv" in table.replace("\n", "").replace(" ", "")
    assert all(str(row["trial"]) in table for row in rows)


def test_the_summary_table_shows_as_many_metric_columns_as_the_width_allows(grid):
    from rich.console import Console

    from logreg.sweep import SHOWN_METRICS, print_summary

    sweep_dir, _, _ = grid
    rows = rank(read_trials(sweep_dir), "val/loss", "minimize")
    shown = {}
    for width in (50, 80, 120, 200):
        console = Console(width=width)
        with console.capture() as captured:
            print_summary(rows, sweep_dir, "val/loss", console=console)
        text = captured.get()
        ranked = text[: text.index("Trials that differ only by seed")] if "only by seed" in text else text
        borders = [line for line in ranked.splitlines() if line[:1] in "┏┃┡│└"]
        assert borders and all(len(line) <= width for line in text.splitlines())
        assert all(line[-1] in "┓┃┩│┘" for line in borders), ranked  # whole: no column cut at the edge
        shown[width] = [name for name in SHOWN_METRICS if name in text]

    counts = [len(names) for names in shown.values()]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # more room, more columns
    assert shown[200] == [name for name in SHOWN_METRICS if name in rows[0]]  # at 200 columns, every one there is


def test_a_failing_trial_is_listed_as_failed_and_the_others_keep_their_results(tmp_path, tiny_csv):
    result, rows = sweep(tmp_path, tiny_csv, "lr=0.5,-1,0.1", expect_ok=False)

    by_lr = {swept(row): row for row in rows}
    assert by_lr["lr=-1"]["status"] == "failed"
    assert "ConfigError: lr=-1.0: expected a positive number" in by_lr["lr=-1"]["error"]
    assert by_lr["lr=0.5"]["status"] == by_lr["lr=0.1"]["status"] == "ok"
    assert swept(rows[-1]) == "lr=-1"  # completed trials rank first
    assert float(by_lr["lr=0.1"]["val/loss"]) > 0


def test_seed_groups_leave_out_single_trials_and_failed_ones():
    rows = [
        {"trial": 0, "status": "ok", "overrides": "lr=1 seed=1", "val/loss": 0.5},
        {"trial": 1, "status": "failed", "overrides": "lr=1 seed=2"},
        {"trial": 2, "status": "ok", "overrides": "lr=2 seed=1", "val/loss": 0.4},
    ]

    assert group_by_seed(rows) == []


def test_optuna_sweep_is_seeded_optimizes_val_loss_and_agrees_with_the_summary(tmp_path, tiny_csv):
    _, rows = sweep(tmp_path, tiny_csv, "hparams_search=optuna", "hydra.sweeper.n_trials=3")

    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert len(set(rows[0]["overrides"].split()) & {"optimizer=sgd", "optimizer=adam", "optimizer=adamw"}) == 1
    assert float(rows[0]["val/loss"]) == pytest.approx(results["best_value"])
    assert f"lr={results['best_params']['lr']}" in rows[0]["overrides"]
    # The seeded sampler proposes the same trials again.
    _, again = sweep(tmp_path, tiny_csv, "hparams_search=optuna", "hydra.sweeper.n_trials=3", name="again")
    assert [row["overrides"] for row in again] == [row["overrides"] for row in rows]


def test_an_optuna_sweep_prints_no_plugin_set_up_lines_no_escape_codes_and_names_folders_with_short_values(
    tmp_path, tiny_csv
):
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}"
    result, rows = sweep(tmp_path, tiny_csv, "hparams_search=optuna", "hydra.sweeper.n_trials=2", storage)

    printed = result.stdout + result.stderr
    assert "setup plugin" not in printed and "\x1b[" not in printed and "A new study created" not in printed
    assert "A new study created in RDB" in (tmp_path / "sweep" / "optuna.log").read_text()  # Optuna's own lines
    for row in rows:
        folder = row["run_dir"].rsplit("/", 1)[-1]
        assert folder.startswith(f"{row['trial']}_")  # the job number keeps folders apart
        numbers = [v for o in folder.split(",") for v in [o.partition("=")[2]] if "." in v]
        assert numbers and all(len(v.replace(".", "").lstrip("0")) <= 3 for v in numbers), folder
        lr = next(o for o in row["overrides"].split() if o.startswith("lr="))
        assert len(lr) > 12  # the summary keeps the full value


@pytest.mark.parametrize(
    "launcher",
    [
        [],  # the basic launcher: trials in the sweeper's process report to the live trial
        ["hydra/launcher=joblib"],  # trials in other processes report through the shared storage
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
    ],
    ids=["basic", "joblib", "submitit_local"],
)
def test_a_trial_the_median_pruner_stops_keeps_its_folder_and_is_pruned_in_the_study_and_the_summary(
    tmp_path, tiny_csv, launcher
):
    import optuna
    import torch

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    pruned = [
        "hparams_search=optuna",
        "hydra.sweeper.params=null",  # the trials' lr alone, on the command line
        "hydra.sweeper.n_trials=1",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "trainer.check_val_every_n_epoch=1",
        f"hydra.sweeper.storage={storage}",
        *launcher,
    ]
    _, good = sweep(tmp_path, tiny_csv, *pruned, "lr=1", name="good")
    _, slow = sweep(tmp_path, tiny_csv, *pruned, "lr=0.000001", name="slow")  # the same study, resumed

    study = optuna.load_study(study_name="logreg", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert good[0]["status"] == "ok" and slow[0]["status"] == "pruned" and float(slow[0]["val/loss"]) > 0
    folder = tmp_path / "slow" / slow[0]["run_dir"].rsplit("/", 1)[-1]
    assert (folder / "pruned.json").is_file() and (folder / "metrics.json").is_file()
    steps = [
        torch.load(tmp_path / name / row[0]["run_dir"].rsplit("/", 1)[-1] / "checkpoints" / "last.ckpt")["global_step"]
        for name, row in (("good", good), ("slow", slow))
    ]
    assert steps[1] == steps[0] // 2  # pruned after the first of its 2 epochs


def test_several_objectives_one_direction_each_and_the_summary_shows_optunas_pareto_front(tmp_path, tiny_csv):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result, rows = sweep(
        tmp_path,
        tiny_csv,
        "hparams_search=optuna",
        "optimized_metric=[val/loss,val/acc]",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={storage}",
    )

    study = optuna.load_study(study_name="logreg", storage=storage)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    front = {int(row["trial"]) for row in rows if row["pareto"] == "yes"}
    assert front == {t.number for t in study.best_trials} and front  # the job number is the trial's number here
    assert [row["pareto"] for row in rows] == sorted((row["pareto"] for row in rows), reverse=True)  # front first
    assert "Pareto front first" in result.stdout


def test_joblib_launcher_runs_trials_in_parallel_processes(tmp_path, tiny_csv):
    result, rows = sweep(tmp_path, tiny_csv, "lr=0.1,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")

    assert "Joblib.Parallel(n_jobs=2" in result.stderr + result.stdout
    assert {row["status"] for row in rows} == {"ok"} and len(rows) == 2


def test_two_optuna_workers_on_one_study_run_distinct_trials_and_each_summary_lists_its_own(tmp_path, tiny_csv):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    workers = [
        subprocess.Popen(
            sweep_command(
                tiny_csv,
                tmp_path / f"worker{n}",
                "hparams_search=optuna",
                "hydra.sweeper.n_trials=3",
                f"hydra.sweeper.storage={storage}",
                "hydra.sweeper.sampler.n_startup_trials=3",
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in (1, 2)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)

    study = optuna.load_study(study_name="logreg", storage=storage)
    trials = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 6
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == 6  # no two workers proposed alike
    for n in (1, 2):
        with (tmp_path / f"worker{n}" / "summary.csv").open() as file:
            assert len([row for row in csv.DictReader(file) if row["status"] == "ok"]) == 3
    printed = "".join(outputs)
    assert "alembic" not in printed and "Deprecated API" not in printed and "Traceback" not in printed


def test_submitit_local_launcher_runs_each_trial_as_a_job(tmp_path, tiny_csv):
    result, rows = sweep(
        tmp_path, tiny_csv, "lr=0.1,1", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"
    )

    assert {row["status"] for row in rows} == {"ok"} and len(rows) == 2
    assert list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))  # each trial ran as a submitit job


def test_slurm_launcher_config_composes(tmp_path):
    result = warm.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--cfg",
            "hydra",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher["partition"] == "gpu"


def test_ranking_puts_the_best_first_for_either_direction():
    rows = [{"trial": 0, "val/acc": 0.7}, {"trial": 1, "val/acc": 0.9}, {"trial": 2}]

    assert [r["trial"] for r in rank(rows, "val/acc", "maximize")] == [1, 0, 2]
    assert [r["trial"] for r in rank(rows, "val/acc", "minimize")] == [0, 1, 2]


def test_a_sweep_prints_one_line_per_trial_as_it_ends_and_one_final_table(grid):
    _, result, rows = grid

    ended = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert len(ended) == len(rows) == 4 and all(" val/loss=" in line for line in ended), ended
    assert "Final metrics" not in result.stdout and "Coefficients" not in result.stdout  # in each trial's folder
    assert result.stdout.count("Sweep summary") == 1


def test_trials_run_alone_print_one_line_each_too(tmp_path, tiny_csv):
    result, rows = sweep(tmp_path, tiny_csv, "lr=0.1,1", "hydra/launcher=basic")

    ended = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert [line.split(":")[0] for line in ended] == [
        f"trial {n} (data=csv data.path={tiny_csv} epochs=2 lr={lr})" for n, lr in enumerate(("0.1", "1"))
    ]
    assert "Final metrics" not in result.stdout and len(rows) == 2
    assert all(
        (tmp_path / "sweep" / row["run_dir"].split("/sweep/")[-1] / "coefficients.csv").is_file() for row in rows
    )


def test_an_optuna_batch_trains_together_and_each_trial_reports_its_epochs_to_the_study(tmp_path, tiny_csv):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    batch = ["hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=4", "data.batch_size=32"]  # one batch size: one group
    result, rows = sweep(
        tmp_path,
        tiny_csv,
        "hparams_search=optuna",
        *batch,
        "trainer.check_val_every_n_epoch=1",
        f"hydra.sweeper.storage={storage}",
    )

    assert "Sweep: 4 of 4 trials trained together, in 1 group" in result.stdout
    trials = optuna.load_study(study_name="logreg", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    for trial in trials:  # what ReportToTrial reports while a trial trains alone: val/loss at each epoch
        folder = next(
            tmp_path / "sweep" / r["run_dir"].split("/sweep/")[-1] for r in rows if int(r["trial"]) == trial.number
        )
        assert sorted(trial.intermediate_values) == [0, 1]
        assert (
            trial.intermediate_values[1]
            == pytest.approx(trial.value)
            == pytest.approx(read_json(folder / "metrics.json")["val/loss"])
        )


def test_a_pruner_keeps_optuna_trials_apart_so_each_can_stop(tmp_path, tiny_csv):
    batch = ["hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "data.batch_size=32"]
    result, _ = sweep(
        tmp_path,
        tiny_csv,
        "hparams_search=optuna",
        *batch,
        "hydra/sweeper/pruner=median",
        "trainer.check_val_every_n_epoch=1",
    )

    assert "Sweep: 0 of 2 trials trained together, in 0 groups; alone: 2 (a pruner)" in result.stdout


def test_trials_with_several_objectives_train_together_and_each_tells_the_study_its_values(tmp_path, tiny_csv):
    batch = ["hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "data.batch_size=32"]  # one batch size: one group
    result, rows = sweep(tmp_path, tiny_csv, "hparams_search=optuna", *batch, "optimized_metric=[val/loss,val/acc]")

    assert "Sweep: 2 of 2 trials trained together, in 1 group" in result.stdout
    assert [row["status"] for row in rows] == ["ok", "ok"] and all(row["pareto"] in ("yes", "") for row in rows)
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["solutions"] and all(len(trial["values"]) == 2 for trial in results["solutions"])  # the front


def test_a_sweep_summary_updated_after_each_trial_reads_each_finished_trial_folder_once(tmp_path, monkeypatch):
    import logreg.sweep as sweep

    reads: list[str] = []
    read_trial = sweep.read_trial
    monkeypatch.setattr(sweep, "read_trial", lambda folder: reads.append(folder.name) or read_trial(folder))
    known: dict[str, dict] = {}
    for n in range(6):  # trial n ends; trial n + 1 has its folder already (as under a parallel launcher): running
        for number in (n, n + 1):
            folder = tmp_path / f"{number}_lr={number}"
            (folder / ".hydra").mkdir(parents=True, exist_ok=True)
            (folder / ".hydra" / "overrides.yaml").write_text(f"- lr={number}\n")
        (tmp_path / f"{n}_lr={n}" / "metrics.json").write_text(json.dumps({"val/loss": n / 10}))
        rows = read_trials(tmp_path, known, again=f"{n}_lr={n}")
    counts = {name.split("_")[0]: reads.count(name) for name in set(reads)}
    assert counts == {"0": 1, "1": 2, "2": 2, "3": 2, "4": 2, "5": 2, "6": 1}  # running, then ended: never again
    monkeypatch.setattr(sweep, "read_trial", read_trial)
    by_trial = sorted(rows, key=lambda row: row["trial"])
    assert by_trial == sorted(read_trials(tmp_path), key=lambda row: row["trial"])  # what a fresh read gives
    assert [row["status"] for row in by_trial] == ["ok"] * 6 + ["running"]
