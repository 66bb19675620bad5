"""Hydra multirun sweeps end to end: grid, Optuna, parallel trials, a failing trial, and the summary table."""

import csv
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from logreg.sweep import rank

pytestmark = pytest.mark.slow


def swept(row: dict) -> str:
    """The trial's own overrides: the row's overrides less the ones every trial of these tests shares."""
    return " ".join(o for o in row["overrides"].split() if not o.startswith(("data=", "data.path=", "epochs=")))


def sweep(tmp_path, tiny_csv, *overrides, expect_ok=True, name="sweep"):
    """Run `python train.py -m ...` on the tiny CSV into tmp_path/name; return (process result, summary rows)."""
    sweep_dir = tmp_path / name
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "data=csv", f"data.path={tiny_csv}", "epochs=2",
         f"hydra.sweep.dir={sweep_dir}", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    if expect_ok:
        assert result.returncode == 0, result.stderr[-3000:]
    with (sweep_dir / "summary.csv").open() as file:
        return result, list(csv.DictReader(file))


def test_grid_sweep_runs_every_combination_in_its_own_named_folder(tmp_path, tiny_csv):
    _, rows = sweep(tmp_path, tiny_csv, "lr=0.01,1", "optimizer=sgd,adam")

    assert sorted(swept(row) for row in rows) == [
        "lr=0.01 optimizer=adam", "lr=0.01 optimizer=sgd", "lr=1 optimizer=adam", "lr=1 optimizer=sgd",
    ]
    folders = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert folders == [f"{n}_data=csv,epochs=2,lr={lr},optimizer={opt}"  # data.path is left out: it would nest folders
                       for n, (lr, opt) in enumerate([("0.01", "sgd"), ("0.01", "adam"), ("1", "sgd"), ("1", "adam")])]
    for folder in folders:  # each trial is its own TensorBoard run, named by its overrides
        assert list((tmp_path / "sweep" / folder).glob("events.out.tfevents.*")), folder


def test_summary_lists_every_trial_best_validation_loss_first(tmp_path, tiny_csv):
    _, rows = sweep(tmp_path, tiny_csv, "lr=0.01,0.1,1")

    losses = [float(row["val/loss"]) for row in rows]
    assert losses == sorted(losses) and len(losses) == 3
    assert [row["rank"] for row in rows] == ["1", "2", "3"] and {row["status"] for row in rows} == {"ok"}
    assert all((tmp_path / "sweep" / row["run_dir"].split("/sweep/")[-1] / "metrics.json").is_file() for row in rows)
    header = (tmp_path / "sweep" / "summary.md").read_text().splitlines()[0]
    assert header.startswith("| rank | trial | status | overrides | val/loss |")


def test_a_failing_trial_is_listed_as_failed_and_the_others_keep_their_results(tmp_path, tiny_csv):
    result, rows = sweep(tmp_path, tiny_csv, "lr=0.5,-1,0.1", expect_ok=False)

    by_lr = {swept(row): row for row in rows}
    assert by_lr["lr=-1"]["status"] == "failed"
    assert "ConfigError: optimizer lr=-1: expected a positive" in by_lr["lr=-1"]["error"]
    assert by_lr["lr=0.5"]["status"] == by_lr["lr=0.1"]["status"] == "ok"
    assert swept(rows[-1]) == "lr=-1"  # completed trials rank first
    assert float(by_lr["lr=0.1"]["val/loss"]) > 0


def test_optuna_sweep_is_seeded_optimizes_val_loss_and_agrees_with_the_summary(tmp_path, tiny_csv):
    _, rows = sweep(tmp_path, tiny_csv, "hparams_search=optuna", "hydra.sweeper.n_trials=3")

    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert float(rows[0]["val/loss"]) == pytest.approx(results["best_value"])
    assert f"lr={results['best_params']['lr']}" in rows[0]["overrides"]
    # The seeded sampler proposes the same trials again.
    _, again = sweep(tmp_path, tiny_csv, "hparams_search=optuna", "hydra.sweeper.n_trials=3", name="again")
    assert [row["overrides"] for row in again] == [row["overrides"] for row in rows]


def test_joblib_launcher_runs_trials_in_parallel_processes(tmp_path, tiny_csv):
    result, rows = sweep(tmp_path, tiny_csv, "lr=0.1,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")

    assert "Joblib.Parallel(n_jobs=2" in result.stderr + result.stdout
    assert {row["status"] for row in rows} == {"ok"} and len(rows) == 2


def test_slurm_launcher_config_composes(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--cfg", "hydra", "hydra/launcher=submitit_slurm",
         "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher["partition"] == "gpu"


def test_ranking_puts_the_best_first_for_either_direction():
    rows = [{"trial": 0, "val/acc": 0.7}, {"trial": 1, "val/acc": 0.9}, {"trial": 2}]

    assert [r["trial"] for r in rank(rows, "val/acc", "maximize")] == [1, 0, 2]
    assert [r["trial"] for r in rank(rows, "val/acc", "minimize")] == [0, 1, 2]
