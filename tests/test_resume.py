"""Resuming: `python train.py ckpt_path=.../last.ckpt epochs=N` ends where an uninterrupted N-epoch run ends, and a run
killed mid-way loses only the epoch it was in."""

import csv
import os
import signal
import subprocess
import sys

import lightning as L
import pytest
import torch

from conftest import DEFAULT_SIGNALS, REPO, sampled, scalars, started_after

# Mini-batches, shuffled anew each epoch, and Adam: resuming must restore the epoch, the optimizer's moments and the
# shuffling order, or the numbers drift apart.
ADAM_MINIBATCHES = ("data.batch_size=32", "optimizer=adam", "lr=0.05")
# L-BFGS, a few iterations an epoch: its curvature history must carry over.
LBFGS = ("optimizer=lbfgs", "model.optimizer.max_iter=5")
# A learning-rate schedule stepped every epoch, and momentum: both must carry over, on the autograd path too.
SCHEDULED = (
    "data.batch_size=64",
    "model.optimizer.momentum=0.9",
    "lr=0.3",
    "scheduler=step",
    "model.scheduler.step_size=2",
    "model.scheduler.gamma=0.5",
    "model.gradient=autograd",
)


def assert_same_training_state(checkpoint_path, reference_path):
    """Epoch, step, weights and optimizer state of two checkpoints agree (weights within float32 tolerance)."""
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    reference = torch.load(reference_path, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (reference["epoch"], reference["global_step"])
    for name, tensor in reference["state_dict"].items():
        torch.testing.assert_close(checkpoint["state_dict"][name], tensor, rtol=0, atol=1e-6, msg=name)
    (optimizer,), (reference_optimizer,) = checkpoint["optimizer_states"], reference["optimizer_states"]
    assert optimizer["param_groups"] == reference_optimizer["param_groups"]
    torch.testing.assert_close(optimizer["state"], reference_optimizer["state"], rtol=1e-5, atol=1e-6)


@sampled("options", [ADAM_MINIBATCHES, LBFGS, SCHEDULED], every=3, ids=["adam-minibatches", "lbfgs", "schedule"])
def test_resuming_from_last_ckpt_equals_an_uninterrupted_run(run, tiny_csv, tmp_path, options):
    common = ("data=csv", f"data.path={tiny_csv}", "logger=none", "~callbacks.plots", *options)
    uninterrupted = run(*common, "epochs=6", run_dir=tmp_path / "whole")
    run(*common, "epochs=3", run_dir=tmp_path / "first_half")

    resumed = run(
        *common,
        "epochs=6",
        f"ckpt_path={tmp_path / 'first_half/checkpoints/last.ckpt'}",
        run_dir=tmp_path / "second_half",
    )

    assert_same_training_state(tmp_path / "second_half/checkpoints/last.ckpt", tmp_path / "whole/checkpoints/last.ckpt")
    assert resumed == pytest.approx(uninterrupted, abs=1e-6)


def test_last_ckpt_holds_the_last_epoch_also_after_the_validation_loss_stops_improving(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", *LBFGS, "epochs=6")  # converged: val/loss flat after epoch 1

    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 5 and not last.is_symlink()
    assert [path.name for path in (tmp_path / "checkpoints").glob("best-*")] == ["best-epoch=001.ckpt"]


def test_last_ckpt_is_written_at_most_once_a_second_yet_always_at_the_end(run, tiny_csv, tmp_path, monkeypatch):
    from logreg.checkpoints import AtomicCheckpointIO

    writes = []
    real_save = AtomicCheckpointIO.save_checkpoint

    def save_and_count(io, checkpoint, path, **options):
        writes.append((str(path), checkpoint["epoch"]))
        real_save(io, checkpoint, path, **options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", save_and_count)

    run("data=csv", f"data.path={tiny_csv}", "epochs=40", "logger=none", "~callbacks.checkpoint")

    last_writes = [epoch for path, epoch in writes if str(path).endswith("last.ckpt")]
    assert last_writes[0] == 0 and last_writes[-1] == 39  # the first epoch, and the last
    assert len(last_writes) < 40  # 40 epochs of milliseconds each: not one write per epoch


def test_early_stopping_writes_the_state_it_stopped_in(run, tiny_csv, tmp_path):
    run(
        "data=csv",
        f"data.path={tiny_csv}",
        *LBFGS,
        "epochs=50",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=2",
    )

    epochs_run = len(scalars(tmp_path)["train/loss"])
    assert epochs_run < 50  # it stopped early, between two scheduled writes of last.ckpt
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == epochs_run


class SignalMidEpoch(L.Callback):
    """Test helper: the training process sends itself `signal_name` after the second step of epoch `epoch`."""

    def __init__(self, epoch: int, signal_name: str):
        self.epoch, self.signum = epoch, signal.Signals[signal_name]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            os.kill(os.getpid(), self.signum)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, returncode", [("SIGTERM", 143), ("SIGKILL", -signal.SIGKILL)])
def test_a_run_killed_mid_epoch_loses_only_that_epoch(run, tiny_csv, tmp_path, signal_name, returncode):
    # 160 training rows: 5 batches of 32 an epoch, 2 batches per Lightning step: 3 steps an epoch; last.ckpt every epoch
    common = (
        "data=csv",
        f"data.path={tiny_csv}",
        *ADAM_MINIBATCHES,
        "data.batches_per_step=2",
        "callbacks.last_checkpoint.every_seconds=0",
    )
    killed = subprocess.run(
        started_after(
            DEFAULT_SIGNALS,
            [
                sys.executable,
                str(REPO / "train.py"),
                *common,
                "epochs=8",
                f"hydra.run.dir={tmp_path / 'killed'}",
                "+callbacks.kill._target_=test_resume.SignalMidEpoch",
                "+callbacks.kill.epoch=4",
                f"+callbacks.kill.signal_name={signal_name}",
            ],
        ),
        cwd=tmp_path,
        # where SignalMidEpoch is, before the path this test runs with (the checkout's sources, where they are first)
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == returncode, killed.stderr[-3000:]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 3  # epochs 0-3 kept; only epoch 4, under way, is lost

    run(*common, "epochs=8", f"ckpt_path={last}", run_dir=tmp_path / "resumed")
    run(*common, "epochs=8", run_dir=tmp_path / "whole")

    assert_same_training_state(tmp_path / "resumed/checkpoints/last.ckpt", tmp_path / "whole/checkpoints/last.ckpt")


def test_resuming_says_which_checkpoint_and_the_epoch_it_continues_from(run, tiny_csv, tmp_path, capsys):
    common = ("data=csv", f"data.path={tiny_csv}", "logger=csv", "~callbacks.plots")
    run(*common, "epochs=3", run_dir=tmp_path / "first")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    capsys.readouterr()

    run(*common, "epochs=5", f"ckpt_path={ckpt}", run_dir=tmp_path / "resumed")

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Resuming")]
    assert lines == [f"Resuming from {ckpt}: training continues at epoch 3 (of epochs 0-4)"]
    with (tmp_path / "resumed" / "csv" / "metrics.csv").open() as file:
        trained = sorted({int(row["epoch"]) for row in csv.DictReader(file) if row["train/loss"]})
    assert trained == [3, 4]  # what the line said
