"""Pruning for hparams_search=optuna (hydra.sweeper.pruner): a Lightning callback that reports `optimized_metric` to
the job's Optuna trial at each validation epoch and stops training once the pruner says so."""

from __future__ import annotations

import json
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf

from logreg.optuna_trial import PRUNED_FILE, this_jobs_trial
from logreg.outputs import write_text

REPORT_TO_TRIAL = "logreg.pruning.ReportToTrial"
NO_PRUNER = "optuna.pruners.NopPruner"


def prunes() -> bool:
    """Whether this job's Optuna sweeper has a pruner (hydra/sweeper/pruner=median, ...); False outside a sweep."""
    sweeper = HydraConfig.get().sweeper if HydraConfig.initialized() else None
    pruner = OmegaConf.select(sweeper, "pruner._target_") if isinstance(sweeper, DictConfig) else None
    return pruner not in (None, NO_PRUNER)


def report_epochs(values: list[tuple[int, float]], metric: Any) -> None:
    """Report (epoch, value) of `metric` to this job's Optuna trial, as `ReportToTrial` does while training: for a
    trial trained in a group, once it has trained (there is no pruner then: nothing would stop it earlier)."""
    if not isinstance(metric, str) or not HydraConfig.initialized():
        return
    trial = this_jobs_trial(HydraConfig.get().sweeper)
    if trial is None:  # not a trial of an Optuna sweep
        return
    for epoch, value in values:
        trial.report(float(value), epoch)


class ReportToTrial(L.Callback):
    """At the end of each validation while fitting, report `metric` to this job's Optuna trial (step: the epoch); if
    the pruner prunes it, training stops there, the run tests and reports as any run does, and `pruned.json` in its
    folder records the epoch and value. Outside an Optuna sweep, or for a metric not logged each epoch (cv/*), it
    does nothing."""

    def __init__(self, metric: Any):
        self.metric = metric if isinstance(metric, str) else None  # several objectives: nothing to prune by
        self.trial: Any = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.metric is not None and HydraConfig.initialized():
            self.trial = this_jobs_trial(HydraConfig.get().sweeper)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.trial is None or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        value = trainer.callback_metrics.get(self.metric)  # type: ignore[arg-type]
        if value is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            trainer.should_stop = True
            record = {"trial": self.trial.number, "epoch": epoch, self.metric: float(value)}
            write_text(f"{HydraConfig.get().runtime.output_dir}/{PRUNED_FILE}", json.dumps(record) + "\n")
            self.trial = None  # one record; the epochs left are not trained
