"""Lightning features as config groups, end to end: learning-rate schedulers and the debugging runs."""

import pytest
import torch

from conftest import make_table, write_table


@pytest.fixture
def rows_csv(tmp_path):
    return write_table(tmp_path / "rows.csv", *make_table(n_rows=200, n_features=3, seed=2))


def final_lr(run_dir) -> float:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return checkpoint["optimizer_states"][0]["param_groups"][0]["lr"]


def test_scheduler_cosine_takes_the_rate_to_eta_min_over_the_run(run, rows_csv, tmp_path):
    run("data=csv", f"data.path={rows_csv}", "epochs=10", "lr=0.4", "scheduler=cosine", "model.scheduler.eta_min=0.01")

    assert final_lr(tmp_path) == pytest.approx(0.01)  # stepped once per epoch: T_max=epochs steps by the end


def test_scheduler_step_multiplies_the_rate_by_gamma_every_step_size_epochs(run, rows_csv, tmp_path):
    run(
        "data=csv",
        f"data.path={rows_csv}",
        "epochs=7",
        "lr=0.8",
        "scheduler=step",
        "model.scheduler.step_size=3",
        "model.scheduler.gamma=0.5",
    )

    assert final_lr(tmp_path) == pytest.approx(0.2)  # 7 steps: halved after the 3rd and the 6th


def test_scheduler_plateau_lowers_the_rate_when_the_monitored_metric_stalls(run, rows_csv, tmp_path):
    # L-BFGS converges in an epoch or two; then val/loss stays flat and the plateau scheduler cuts the rate.
    run(
        "data=csv",
        f"data.path={rows_csv}",
        "epochs=8",
        "optimizer=lbfgs",
        "scheduler=plateau",
        "model.scheduler.patience=1",
        "model.scheduler.factor=0.5",
    )

    assert final_lr(tmp_path) < 1.0


def test_debug_fast_dev_run_runs_one_batch_of_each_stage_and_writes_no_checkpoint(run, rows_csv, tmp_path):
    metrics = run("data=csv", f"data.path={rows_csv}", "debug=fast_dev_run")

    assert "train/loss" in metrics and not (tmp_path / "checkpoints").exists()


def test_debug_overfit_drives_the_loss_of_two_batches_towards_zero(run, tmp_path):
    features, _ = make_table(n_rows=200, n_features=3, seed=2)
    separable = write_table(tmp_path / "separable.csv", features, (features @ [2.0, -1.0, 0.5] > 0).astype("float32"))

    short = run("data=csv", f"data.path={separable}", "debug=overfit", "epochs=2", run_dir=tmp_path / "short")
    # 50 of debug=overfit's 200 epochs, in a quarter of the time: the loss ends under 0.13 of the short run's
    long = run("data=csv", f"data.path={separable}", "debug=overfit", "lr=5", "epochs=50", run_dir=tmp_path / "long")

    assert long["train/loss"] < 0.2 * short["train/loss"]


def test_debug_limit_trains_the_given_number_of_minibatches(run, rows_csv, tmp_path):
    run("data=csv", f"data.path={rows_csv}", "debug=limit")

    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3 * 4  # 3 epochs of 4 mini-batches: one update each


def test_debug_profiler_writes_its_table_into_the_run_folder(run, rows_csv, tmp_path):
    run("data=csv", f"data.path={rows_csv}", "debug=profiler", "epochs=2")

    assert "training_step" in (tmp_path / "fit-profiler.txt").read_text()
