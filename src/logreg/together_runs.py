"""Which trials of a sweep can train together, training each such group as one Lightning run, and writing each trial's
outputs from it as its own run would have (metrics.json, TensorBoard events, coefficients.csv, inference.json,
checkpoints).

Trials train together when they share their table and everything else but the settings in
`logreg.together.TrialSettings` and their rows: the same data config (but its seed, which cuts each trial's split and
orders its batches: `logreg.together_rows`), trainer, logger, callbacks, threads and monitor. A fold of
cross-validation is a trial with its own rows too (`train_group`'s `changes`). `group_key` says what a trial shares,
or why it cannot train with others (L-BFGS, early stopping on a training metric, resuming, DDP under torchrun,
...): those run alone, as always. Trials under DDP train together as one DDP run (`logreg.together_ddp`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from logreg.data import TabularDataModule
from logreg.data_report import write_data_report
from logreg.errors import ConfigError, TrainingDiverged, one_line_errors
from logreg.intervals import RECORD_KEY, checkpoint_record
from logreg.metric_names import metric_mode, objective_values
from logreg.model import LogisticRegression
from logreg.pruning import REPORT_TO_TRIAL, prunes, report_epochs
from logreg.quiet import quiet_third_parties
from logreg.report import record_run, report
from logreg.schema import (
    EarlyStoppingConfig,
    TrainConfig,
    TrainerConfig,
    counts_batches,
    value_of,
)
from logreg.sweep import trial_line
from logreg.together import GROUPABLE_OPTIMIZERS, EarlyStop, TogetherModule, TrialHistory, TrialSettings, stack_initial
from logreg.together_ddp import ddp_refusal, group_strategy, uses_ddp
from logreg.together_rows import GroupRows, TrialRows
from logreg.training import build_datamodule, build_logger, build_model, fold_changes, hyperparameters, moved, plain

# Trainer keys a group shares by construction or that only change how a run is shown: any other key must be at its
# schema default for a trial to train with others.
TRAINER_KEYS_ALLOWED = {
    "_target_",
    "accelerator",
    "devices",
    "num_nodes",
    "strategy",
    "precision",
    "deterministic",
    "max_epochs",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "num_sanity_val_steps",
    "enable_checkpointing",
    "enable_progress_bar",
    "enable_model_summary",
    "default_root_dir",
    "inference_mode",
    "benchmark",
}
EARLY_STOPPING = "lightning.pytorch.callbacks.EarlyStopping"
CALLBACKS_ALLOWED = {
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "logreg.callbacks.LastCheckpoint",
    "logreg.callbacks.ResumeHint",
    "logreg.plots.EvaluationPlots",
    EARLY_STOPPING,  # on a validation metric: each trial stops on its own
    REPORT_TO_TRIAL,  # with no pruner: the trial's values are reported once it has trained (`report_epochs`)
}
LOGGERS_ALLOWED = {"lightning.pytorch.loggers.TensorBoardLogger", "lightning.pytorch.loggers.CSVLogger"}


class CannotTrainTogether(ConfigError):
    """Trials that `group_key` let share a group, but whose table streams from disk (data.stream): a group serves
    its trials' rows from a table in memory. Each trains alone."""


def early_stop(callback: Any) -> EarlyStop:
    """Early stopping as a group applies it to each trial, from the callback's config (typed or a plain mapping; the
    schema's defaults, Lightning's, where it leaves a key out)."""
    defaults = EarlyStoppingConfig(monitor=value_of(callback, "monitor"))
    values = {name: value_of(callback, name) for name in ("mode", "patience", "min_delta")}
    return EarlyStop(
        defaults.monitor, **{name: getattr(defaults, name) if v is None else v for name, v in values.items()}
    )


def trial_settings(cfg: TrainConfig) -> TrialSettings:
    """What of `cfg` may differ within a group (pos_weight as configured: a number, or balanced, resolved later)."""
    optimizer = cfg.model.optimizer
    betas = tuple(getattr(optimizer, "betas", (0.9, 0.999)))
    return TrialSettings(
        optimizer=optimizer.name,
        lr=float(optimizer.lr),
        weight_decay=float(getattr(optimizer, "weight_decay", 0.0)),
        momentum=float(getattr(optimizer, "momentum", 0.0)),
        nesterov=bool(getattr(optimizer, "nesterov", False)),
        betas=(float(betas[0]), float(betas[1])),
        eps=float(getattr(optimizer, "eps", 1e-8)),
        pos_weight=math.nan if cfg.model.pos_weight == "balanced" else float(cfg.model.pos_weight),
        threshold=float(cfg.model.threshold),
        tune_threshold=cfg.model.tune_threshold,
        cost_ratio=float(cfg.model.cost_ratio),
        epochs=int(cfg.trainer.max_epochs),
        check_val_every_n_epoch=cfg.trainer.check_val_every_n_epoch,
        scheduler=cfg.model.scheduler or None,
    )


def group_key(cfg: TrainConfig, run_dir: str | Path) -> tuple[str | None, str]:
    """(what the trial shares with the trials it can train with, as a string; "") or (None, why it trains alone).
    `run_dir`: the trial's own run folder, where its config's paths point (the same place for every trial)."""
    optimizer = cfg.model.optimizer
    if optimizer is None or optimizer.name not in GROUPABLE_OPTIMIZERS:
        return None, f"optimizer={optimizer.name if optimizer is not None else 'default'}"
    if getattr(optimizer, "amsgrad", False) or getattr(optimizer, "dampening", 0.0) != 0:
        return None, "amsgrad or dampening"
    if cfg.model.gradient != "analytic":
        return None, f"model.gradient={cfg.model.gradient}"
    if cfg.cv.folds >= 2 and not cfg.cv.together:
        return None, "cv.together=false"
    if cfg.ckpt_path:
        return None, "ckpt_path (resuming)"
    trainer = cfg.trainer
    if counts_batches(trainer):
        return None, "trainer limits batches"
    if uses_ddp(trainer) and (refusal := ddp_refusal(trainer)) is not None:  # DDP: `logreg.together_ddp`
        return None, refusal
    defaults = TrainerConfig()
    for item in dataclasses.fields(trainer):
        key = item.name
        if key not in TRAINER_KEYS_ALLOWED and getattr(trainer, key) != getattr(defaults, key):
            return None, f"trainer.{key}"
    target = value_of(cfg.logger, "_target_")
    if cfg.logger and target not in LOGGERS_ALLOWED:
        return None, f"logger {str(target).rsplit('.', 1)[-1]}"
    for name, callback in cfg.callbacks.items():
        if callback is None:
            continue
        target = value_of(callback, "_target_")
        if target not in CALLBACKS_ALLOWED:
            return None, f"callbacks.{name}"
        if target == REPORT_TO_TRIAL and prunes():  # a trial of a group cannot stop while the others go on
            return None, "a pruner"
        watched = str(value_of(callback, "monitor"))
        if target == EARLY_STOPPING and not watched.startswith("val/"):  # Lightning checks those every epoch
            return None, f"callbacks.{name}.monitor={watched}"
        if target.endswith("ModelCheckpoint") and (
            value_of(callback, "save_top_k") != 1
            or value_of(callback, "every_n_epochs") not in (None, 1)
            or value_of(callback, "save_last")
        ):
            return None, f"callbacks.{name} options"
        if value_of(callback, "histograms"):
            return None, f"callbacks.{name}.histograms"
    shared = {
        "data": {k: v for k, v in plain(cfg.data).items() if k != "seed"},  # a trial's own rows: logreg.together_rows
        "trainer": {k: v for k, v in plain(trainer).items() if k not in ("max_epochs", "check_val_every_n_epoch")},
        "model": {k: v for k, v in plain(cfg.model).items() if k in ("_target_", "gradient")},
        "logger": plain(cfg.logger) if cfg.logger else None,
        "callbacks": {name: plain(c) if c is not None else None for name, c in cfg.callbacks.items()},
        "threads": cfg.threads,
        "monitor": cfg.monitor,
    }
    run_folder = json.dumps(str(run_dir))[1:-1]  # as JSON writes it (a backslash, a quote, non-ASCII: escaped)
    return json.dumps(shared, sort_keys=True, default=str).replace(run_folder, "<run folder>"), ""


# ----------------------------------------------------------------------------------------------------- training


@dataclass
class TrainedTrial:
    """One trial's share of a group's run: its model (final weights), the group's data, what it logged."""

    model: LogisticRegression
    datamodule: TabularDataModule
    history: TrialHistory
    metrics: dict[str, float]
    steps_per_epoch: int


def train_group(configs: list[TrainConfig], changes: list[dict[str, Any]] | None = None) -> list[TrainedTrial]:
    """Train the trials of one group (configs that `group_key` gave the same key) as one Lightning run; `changes`:
    each trial's changes to its DataModule (a fold of cross-validation: folds, fold, test_on). Each trial has its own
    DataModule (its split, scaler and class weight), all sharing one reading of the table; trials whose encoded
    tables differ (an encoding learned from other training rows) train as groups of their own."""
    quiet_third_parties()
    changes = changes or [{} for _ in configs]
    if configs[0].threads:
        torch.set_num_threads(configs[0].threads)
    # every process of a DDP group serves every trial's rows: each reads the table (no plan of one process's rows)
    datamodules = [build_datamodule(configs[0], whole_table=True, **changes[0])]
    if datamodules[0].streams:
        raise CannotTrainTogether("data.stream: a streamed table trains one trial at a time")
    for cfg, change in zip(configs[1:], changes[1:], strict=True):
        datamodules.append(build_datamodule(cfg, share_reading=datamodules[0], whole_table=True, **change))
    tables: dict[int, list[int]] = {}  # the trials of each distinct encoded table
    for k, datamodule in enumerate(datamodules):
        same = next((t for t, members in tables.items() if _same_table(datamodules[members[0]], datamodule)), k)
        tables.setdefault(same, []).append(k)
    trained: dict[int, TrainedTrial] = {}
    for members in tables.values():
        results = _train_together([configs[k] for k in members], [datamodules[k] for k in members])
        trained.update(zip(members, results, strict=True))
    return [trained[k] for k in range(len(configs))]


def train_folds(cfg: TrainConfig, run_dir: str | Path) -> list[TrainedTrial] | None:
    """cv.folds=K's K folds trained together (trials with their own training and validation rows), or None where
    `cfg` cannot train with others (`group_key`): then they train one after another."""
    if group_key(cfg, run_dir)[0] is None or uses_ddp(cfg.trainer):  # DDP: each fold's own DDP run, one by one
        return None
    changes = fold_changes(cfg.cv.folds)
    try:
        return train_group([cfg] * len(changes), changes)
    except CannotTrainTogether:
        return None


def _same_table(first: TabularDataModule, other: TabularDataModule) -> bool:
    mine, theirs = first.table, other.table
    return mine is theirs or (
        mine.feature_names == theirs.feature_names and np.array_equal(mine.features, theirs.features)
    )


def _train_together(configs: list[TrainConfig], datamodules: list[TabularDataModule]) -> list[TrainedTrial]:
    first = configs[0]
    models = []
    for cfg, datamodule in zip(configs, datamodules, strict=True):  # each trial's own initial weights: its seed,
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # then its model, as `fit_and_test` does
        models.append(build_model(cfg, datamodule))
    settings = [  # pos_weight resolved (balanced: the training rows' ratio), the scheduler typed, as the model has them
        TrialSettings(
            **{
                **trial_settings(cfg).__dict__,
                "pos_weight": float(model.options.pos_weight),
                "scheduler": model.scheduler_options,
            }
        )
        for cfg, model in zip(configs, models, strict=True)
    ]
    table = datamodules[0].table
    options = datamodules[0].options
    rows = GroupRows(
        torch.from_numpy(table.features),
        torch.from_numpy(table.labels),
        [TrialRows.of(datamodule, tested=not datamodule.folds) for datamodule in datamodules],
        options.batch_size,
        options.batches_per_step,
    )
    module = TogetherModule(
        settings,
        stack_initial([m.linear.weight for m in models], [m.linear.bias for m in models]),
        rows,
        torch.stack([m.feature_mean for m in models]),
        torch.stack([m.feature_std for m in models]),
        monitor=first.monitor,
        monitor_mode=metric_mode(first.monitor),
        early_stop=next(
            (early_stop(c) for c in first.callbacks.values() if value_of(c, "_target_") == EARLY_STOPPING), None
        ),
    )
    trainer_cfg = first.trainer
    trainer_options: dict[str, Any] = dict(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.num_nodes,
        strategy=group_strategy(trainer_cfg),  # under DDP: `logreg.together_ddp`
        precision=trainer_cfg.precision,
        deterministic=trainer_cfg.deterministic,
        benchmark=trainer_cfg.benchmark,
        inference_mode=trainer_cfg.inference_mode,
        max_epochs=max(s.epochs for s in settings),
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=None if any(d.has_rows("val") for d in datamodules) else 0,
    )
    logging.disable(logging.INFO)  # Lightning's availability lines and tips, once per group: not any trial's own
    try:
        trainer = L.Trainer(**trainer_options)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*configure_optimizers.* returned `None`")  # by design
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")  # its loaders are ranges
            trainer.fit(module)
    finally:
        logging.disable(logging.NOTSET)
    trained = []
    for k, (model, history) in enumerate(zip(models, module.histories, strict=True)):
        weight, bias, threshold = module.trial_state(k)
        with torch.no_grad():
            model.to(weight.dtype)
            model.linear.weight.copy_(weight.cpu())
            model.linear.bias.copy_(bias.cpu())
            model.threshold.fill_(threshold)
        metrics = {**history.last_train, **history.last_val}
        if module.tested(k) and history.diverged_at is None:
            metrics |= module.test_metrics(k, "test")
        trained.append(TrainedTrial(model, datamodules[k], history, dict(sorted(metrics.items())), rows.steps_of(k)))
    return trained


# ------------------------------------------------------------------------------------------------ each trial's run


def trial_checkpoint(
    trial: TrainedTrial, epoch: int, step: int, state: tuple[torch.Tensor, float] | None = None
) -> dict:
    """The checkpoint of the trial's LogisticRegression (as eval.py, predict.py and export.py read one): weights,
    hyperparameters, the data it trained on. It records no optimizer or loop state (the trial's run was the group's),
    so resuming from it is refused (`trained_together`)."""
    model = trial.model
    state_dict = {name: value.detach().clone() for name, value in model.state_dict().items()}
    if state is not None:  # an earlier epoch's weights and threshold (the best one)
        theta, threshold = state
        n_features = model.n_features
        state_dict["linear.weight"] = theta[:n_features].view(1, -1).cpu().to(state_dict["linear.weight"])
        state_dict["linear.bias"] = theta[n_features:].cpu().to(state_dict["linear.bias"])
        state_dict["threshold"] = torch.tensor(float(threshold)).to(state_dict["threshold"])
    datamodule = trial.datamodule
    return {
        "epoch": epoch,
        "global_step": step,
        "pytorch-lightning_version": L.__version__,
        "state_dict": state_dict,
        "hparams_name": "kwargs",
        "hyper_parameters": dict(model.hparams),
        "datamodule_hparams_name": "kwargs",
        "datamodule_hyper_parameters": dict(datamodule.hparams),
        type(datamodule).__name__: datamodule.state_dict(),
        "trained_together": True,
    }


def write_trial(cfg: TrainConfig, trial: TrainedTrial, folder: Path | None = None) -> dict[str, float]:
    """Everything the trial's own run would have left in its folder (the run folder, or `folder` inside it: a
    fold's), from its share of the group's run; returns its final metrics. Raises TrainingDiverged, as its own run
    would have, for a trial that diverged."""
    from logreg.checkpoints import AtomicCheckpointIO

    history = trial.history
    if history.diverged_at is not None:
        lr = trial.model.optimizer_options.lr
        raise TrainingDiverged(
            f"the loss or the weights became NaN or infinite during epoch {history.diverged_at}; the learning rate "
            f"(lr={lr}, optimizer {trial.model.optimizer_options.name}) is the likely cause, or features too "
            f"large for float32: try a smaller lr, e.g. lr={lr / 10:g}, or data.standardize=true. "
            "It trained together with other trials, so no checkpoint of an earlier epoch was kept"
        )
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    folder = folder or run_dir
    logger = build_logger(cfg, run_dir, folder)
    loggers = [logger] if logger else []
    for logged in loggers:
        for step, epoch, values in history.logs:
            logged.log_metrics({**values, "epoch": epoch}, step=step)
        test = {name: value for name, value in trial.metrics.items() if name.startswith("test/")}
        if test:
            step = trial.steps_per_epoch * cfg.trainer.max_epochs  # the steps of its own epochs: its test's step
            logged.log_metrics({**test, "epoch": history.last_epoch + 1}, step=step)
    _draw(cfg, trial, loggers)
    for callback in cfg.callbacks.values():
        if value_of(callback, "_target_") == REPORT_TO_TRIAL:  # what ReportToTrial reports at each validation epoch
            metric = value_of(callback, "metric")
            if isinstance(metric, str):  # several objectives: ReportToTrial reports nothing (no pruning by them)
                report_epochs(
                    [(epoch, values[metric]) for _, epoch, values in history.logs if metric in values], metric
                )
    checkpoint_io = AtomicCheckpointIO(trust=cfg.trust_checkpoint)
    last = None
    for callback in (moved(c, run_dir, folder) for c in cfg.callbacks.values() if c is not None):
        # by target, as group_key allows them: a schema-typed callback or a plain mapping with that _target_
        target = value_of(callback, "_target_")
        if target == "logreg.callbacks.LastCheckpoint":
            last = Path(value_of(callback, "dirpath")) / f"{value_of(callback, 'filename')}.ckpt"
            checkpoint_io.save_checkpoint(trial_checkpoint(trial, history.last_epoch, history.updates), last)
        elif target == "lightning.pytorch.callbacks.ModelCheckpoint" and history.best is not None:
            score, epoch, step, theta, threshold = history.best
            saver = instantiate(callback)
            scores = {value_of(callback, "monitor"): torch.tensor(score), "epoch": epoch, "step": step}
            name = saver.format_checkpoint_name(scores)
            checkpoint_io.save_checkpoint(trial_checkpoint(trial, epoch, step, (theta, threshold)), name)
    metrics = trial.metrics
    record_run(loggers, hyperparameters(cfg, trial.model, trial.datamodule), metrics)
    write_data_report(trial.datamodule.data_report(), folder, loggers)
    inference = cfg.inference
    fit = report(metrics, folder, trial.model, trial.datamodule, inference.cov_type, inference.cluster, show=False)
    if fit is not None and last is not None:  # predict.py's intervals, as `fit_and_test` records them
        checkpoint_io.amend(last, {RECORD_KEY: checkpoint_record(fit, inference.cov_type)})
    return metrics


def _draw(cfg: TrainConfig, trial: TrainedTrial, loggers: list) -> None:
    """The trial's TensorBoard images, as `logreg.plots.EvaluationPlots` draws them (where it is configured)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if not any(value_of(c, "_target_") == "logreg.plots.EvaluationPlots" for c in cfg.callbacks.values()):
        return
    writer = next((lg.experiment for lg in loggers if isinstance(lg, TensorBoardLogger)), None)
    from logreg.plots import EvaluationPlots

    if writer is None or not EvaluationPlots().can_draw:
        return
    from logreg.charts import add_images

    threshold = trial.model.decision_threshold()
    for stage, (probs, labels) in trial.history.outputs.items():
        add_images(writer, stage, probs, labels, threshold, trial.history.updates)


def trial_task(
    trials: list[TrainedTrial], cfg: TrainConfig, line: Callable[[str], None]
) -> Callable[[Any], float | list[float]]:
    """The task function Hydra's run_job calls for a trial trained in a group (`cfg`: its config, checked and typed
    before the group trained; `trials`: its share of the group, or its folds' with cv.folds): it writes the trial's
    outputs (with cv.folds: its folds', their cv/* metrics and the refit, trained now), prints one line, and returns
    the metric the sweeper optimizes."""
    optimized_metric = cfg.optimized_metric

    @one_line_errors
    def task(job: DictConfig) -> float | list[float]:  # the same config, as Hydra's node
        if cfg.cv.folds >= 2:
            from logreg.training import cross_validate

            metrics = cross_validate(cfg, Path(HydraConfig.get().runtime.output_dir), show=False, trained=trials)
        else:
            metrics = write_trial(cfg, trials[0])
        line(trial_line(metrics, optimized_metric))
        return objective_values(metrics, optimized_metric)

    return task
