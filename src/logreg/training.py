"""What `python train.py` does once its config has been checked: fit, test, report; or cross-validate.

Everything of a run lands in its run folder (claimed by `logreg.outputs.ClaimRunFolder` before Hydra wrote into it).
With `cv.folds=K`, each fold is a run of its own in `fold_<k>/` (TensorBoard events, checkpoints, metrics), the
run folder gets the folds' mean and spread (`cv/val/*`), and with `cv.refit` a final model trained on every
non-test row, in `refit/`, is tested on the held-out rows.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Checkpoint
from omegaconf import DictConfig, ListConfig, OmegaConf

from logreg.callbacks import LastCheckpoint
from logreg.checking import as_dict
from logreg.checkpoints import AtomicCheckpointIO
from logreg.data import TabularDataModule
from logreg.data_report import write_data_report
from logreg.errors import CheckpointError, ConfigError, find_user_error, one_line
from logreg.inference import STREAMED_COV_TYPES
from logreg.intervals import RECORD_KEY, checkpoint_record
from logreg.metric_names import STAGE_METRICS, objective_values
from logreg.model import LogisticRegression
from logreg.outputs import process_rank
from logreg.quiet import quiet_third_parties
from logreg.report import metric_line, record_run, report, report_cross_validation
from logreg.schema import TrainConfig, counts_batches, value_of
from logreg.sweep import trial_line


def train(cfg: TrainConfig) -> dict[str, float]:
    """Fit and test as `cfg` says, or cross-validate; return the final metrics (train/*, val/*, test/*, cv/*)."""
    quiet_third_parties()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    # A trial of a sweep prints one line as it ends (its tables stay in its folder); the sweep ends with its table
    trial = hydra_cfg.mode == RunMode.MULTIRUN
    if cfg.cv.folds >= 2:
        metrics = cross_validate(cfg, run_dir, show=not trial)
    else:
        metrics = fit_and_test(cfg, run_dir, show=not trial)
    if trial and process_rank() == 0:
        print(trial_line(metrics, cfg.optimized_metric))
    return metrics


def fit_and_test(
    cfg: TrainConfig, run_dir: Path, folder: Path | None = None, show: bool = True, **data_changes: Any
) -> dict[str, float]:
    """One model: fit on the training rows, test on `data.test_on`'s rows, report into `folder` (the run folder, or
    a fold's folder inside it, with `data_changes` choosing the fold); print the progress and the tables where
    `show` (else the files alone: a trial of a sweep, a fold)."""
    folder = folder or run_dir
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg, **data_changes)
    inference = cfg.inference
    if datamodule.streams and inference.cov_type not in STREAMED_COV_TYPES:
        raise ConfigError(
            f"inference.cov_type={inference.cov_type}: a streamed table (data.stream) gives "
            f"{', '.join(STREAMED_COV_TYPES)}; use one of those, or data.stream=false"
        )
    if inference.cluster:  # its column is read now, so a missing one stops the run before training
        datamodule.column(inference.cluster, "inference.cluster")
    model = build_model(cfg, datamodule)
    checkpoint_io = AtomicCheckpointIO(trust=cfg.trust_checkpoint)
    trainer = build_trainer(cfg, run_dir, folder, checkpoint_io, datamodule.has_rows("val"), progress_bar=show)
    datamodule.share(trainer.world_size)  # under DDP: what the other processes take instead of the table
    if cfg.ckpt_path:  # read once, here; Lightning's own load gets the same dict from checkpoint_io
        checkpoint = checkpoint_io.read(cfg.ckpt_path)
        check_resume(checkpoint, cfg.ckpt_path, model)
        if process_rank() == 0:
            print(resuming_line(checkpoint, cfg.ckpt_path, cfg.trainer.max_epochs))
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {name: value.item() for name, value in trainer.callback_metrics.items()}
    # Trainer.fast_dev_run is set outside the class (trainer/setup.py), so Lightning's types do not declare it
    fast_dev_run = trainer.fast_dev_run  # type: ignore[attr-defined]
    # A fold is scored on its validation rows, by the last validation epoch (val/*): testing it again would only
    # repeat those numbers under another name
    if datamodule.has_rows(datamodule.options.test_on) and not fast_dev_run and not datamodule.folds:
        metrics |= trainer.test(model, datamodule=datamodule, verbose=False)[0]
    metrics = {name: metrics[name] for name in sorted(metrics)}
    record_run(trainer.loggers, hyperparameters(cfg, model, datamodule), metrics)
    if trainer.is_global_zero:
        write_data_report(datamodule.data_report(), folder, trainer.loggers)
        fit = report(
            metrics,
            folder,
            model,
            datamodule,
            inference.cov_type,
            inference.cluster,
            show=show,
        )
        last = next((c.path for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)), None)
        if fit is not None and last is not None and last.is_file():
            # The covariance of predict.py's intervals: known only now (inference needs the training rows, on rank
            # zero), after last.ckpt was written at the end of fit. Amending that file adds one key of plain values
            # and keeps the rest as Lightning wrote it; saving it again through the Trainer after testing would
            # re-dump the loops' and callbacks' state instead, and a buffer would change the state_dict that resuming
            # loads strictly. best-*.ckpt holds another epoch's weights: it gets none.
            record = checkpoint_record(fit, inference.cov_type)
            checkpoint_io.amend(last, {RECORD_KEY: record})
    return metrics


def cross_validate(
    cfg: TrainConfig, run_dir: Path, show: bool = True, trained: list[Any] | None = None
) -> dict[str, float]:
    """cv.folds models, one per fold, then (cv.refit) one on every non-test row; the folds' mean and spread of every
    validation metric, as cv/val/<name> and cv/val/<name>_std. Each model prints one line as it ends (where `show`)
    and its tables into its folder; the run ends with one table of them all.

    The folds train together, as one run (`logreg.together_runs.train_folds`: a fold is a trial with its own rows),
    where the config lets trials train together (`group_key`, `cv.together`; else one after another); `trained`: the
    folds (`logreg.together_runs.TrainedTrial`) already trained together, with other trials of a sweep."""
    folds, announce = cfg.cv.folds, show and process_rank() == 0
    if trained is None:
        from logreg.together_runs import train_folds

        trained = train_folds(cfg, run_dir)
    per_fold = []
    for k, changes in enumerate(fold_changes(folds)):
        folder = run_dir / f"fold_{k}"
        if trained is not None:  # the folds trained together: each written as its own run would have written it
            from logreg.together_runs import write_trial

            per_fold.append(write_trial(cfg, trained[k], folder))
        else:
            per_fold.append(fit_and_test(cfg, run_dir, folder, show=False, **changes))
        if announce:
            print(f"fold {k} of {folds}: {metric_line(per_fold[-1], ['val/loss', 'val/acc', 'val/auroc'])}  ({folder})")
    metrics: dict[str, float] = {}
    for name in STAGE_METRICS["val"]:
        values = [fold[f"val/{name}"] for fold in per_fold]
        mean = sum(values) / folds
        metrics[f"cv/val/{name}"] = mean
        metrics[f"cv/val/{name}_std"] = math.sqrt(sum((v - mean) ** 2 for v in values) / (folds - 1))
    if cfg.cv.refit:  # the chosen settings on every non-test row, scored once on the held-out rows
        folder = run_dir / "refit"
        refit = fit_and_test(refit_config(cfg, per_fold), run_dir, folder, show=False, val_fraction=0.0)
        metrics |= {name: value for name, value in refit.items() if name.startswith(("train/", "test/"))}
        if announce:
            shown = metric_line(refit, ["test/loss", "test/acc", "test/auroc"])
            print(f"refit on every non-test row: {shown}  ({folder})")
    metrics = {name: metrics[name] for name in sorted(metrics)}
    logger = build_logger(cfg, run_dir, run_dir)
    record_run([logger] if logger else [], {"cv.folds": folds, **flat_hyperparameters(cfg)}, metrics)
    if process_rank() == 0:
        report_cross_validation(metrics, per_fold, run_dir, show)
    return metrics


def fold_changes(folds: int) -> list[dict[str, Any]]:
    """Each fold's changes to the DataModule: fold k of `folds` validates; test_on=val: the rows a fold is scored on,
    which eval.py scores again by default from its checkpoint."""
    return [{"folds": folds, "fold": k, "test_on": "val"} for k in range(folds)]


def refit_config(cfg: TrainConfig, per_fold: list[dict[str, float]]) -> TrainConfig:
    """The config of the refit after cross-validation: it has no validation rows, so the callbacks that watch a
    validation metric (the best checkpoint, early stopping) are left out (it trains its epochs and keeps last.ckpt),
    and a threshold tuned on validation rows is the mean of the folds' tuned thresholds."""
    refit = copy.deepcopy(cfg)
    for name, callback in cfg.callbacks.items():
        if str(value_of(callback, "monitor") or "").startswith("val/"):
            refit.callbacks[name] = None
    if cfg.model.tune_threshold:
        refit.model.threshold = sum(fold["threshold"] for fold in per_fold) / len(per_fold)
        refit.model.tune_threshold = None
    return refit


# ---------------------------------------------------------------------------------------------------- building


def build_datamodule(
    cfg: TrainConfig, share_reading: TabularDataModule | None = None, whole_table: bool = False, **changes: Any
) -> TabularDataModule:
    """The DataModule of `cfg.data`, loaded (read and split), with `changes` (a fold, ...); `share_reading`: a loaded
    DataModule of the same table, whose reading this one takes instead of reading it again (trials trained together);
    `whole_table`: read whole in every DDP process (`TabularDataModule.read_whole_table`).
    When a Trainer option counts training batches (limit_train_batches, max_steps, ...), each Lightning step is one
    mini-batch, so they count mini-batches."""
    if counts_batches(cfg.trainer):
        changes.setdefault("batches_per_step", 1)
    datamodule = instantiate(cfg.data, **changes)
    if str(cfg.trainer.precision).startswith("64"):  # read and kept in float64, not rounded to float32 first
        datamodule.keep_float64()
    if share_reading is not None and not share_reading.streams:
        datamodule.share_reading(share_reading)
    if whole_table:
        datamodule.read_whole_table()
    datamodule.load()
    return datamodule


def build_model(cfg: TrainConfig, datamodule: TabularDataModule) -> LogisticRegression:
    """The model of `cfg.model`, given what the data says: the number of features, the training rows' scaler, and
    the balanced class weight where `model.pos_weight=balanced`."""
    if datamodule.streams and cfg.model.gradient == "autograd":
        raise ConfigError("model.gradient=autograd: not on a streamed table (data.stream); use analytic")
    scaler = datamodule.scaler()
    pos_weight = cfg.model.pos_weight
    return instantiate(
        cfg.model,
        _convert_="all",
        n_features=datamodule.n_features,
        pos_weight=datamodule.balanced_pos_weight() if pos_weight == "balanced" else pos_weight,
        feature_mean=scaler[0] if scaler else None,
        feature_std=scaler[1] if scaler else None,
    )


def build_logger(cfg: TrainConfig, run_dir: Path, folder: Path) -> Any:
    if not cfg.logger:
        return None
    if str(value_of(cfg.logger, "_target_")).endswith("MLFlowLogger") and importlib.util.find_spec("mlflow") is None:
        raise ConfigError("logger=mlflow needs MLflow: pip install 'logreg[mlflow]'")
    options = {}
    database = str(value_of(cfg.logger, "tracking_uri") or "")
    if database.startswith("sqlite:///"):  # MLflow's database file: by its absolute path, in a folder that exists
        path = Path(database.removeprefix("sqlite:///")).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        options["tracking_uri"] = f"sqlite:///{path}"
    try:
        return instantiate(moved(cfg.logger, run_dir, folder), **options)
    except Exception as error:
        raise ConfigError(f"logger: {_cause(error)}") from error


def build_trainer(
    cfg: TrainConfig,
    run_dir: Path,
    folder: Path,
    checkpoint_io: AtomicCheckpointIO,
    has_validation: bool = True,
    progress_bar: bool = True,
) -> L.Trainer:
    """The Trainer of `cfg.trainer`, with the logger, the callbacks and the atomic checkpoint plugin; paths inside
    the run folder moved into `folder`. A Trainer argument Lightning refuses is named in one line. Without
    `progress_bar` (a trial of a sweep, a fold) there is none, unless trainer.enable_progress_bar=true asks."""
    logger = build_logger(cfg, run_dir, folder)
    callbacks = []
    for name, callback in cfg.callbacks.items():
        if callback is None:  # an entry switched off (callbacks.checkpoint=null)
            continue
        try:
            callbacks.append(instantiate(moved(callback, run_dir, folder)))
        except Exception as error:
            raise ConfigError(f"callbacks.{name}: {_cause(error)}") from error
    options: dict[str, Any] = {"logger": logger or False, "callbacks": callbacks, "plugins": [checkpoint_io]}
    if cfg.trainer.enable_checkpointing is None:  # no checkpoint callback: then no checkpoints (not Lightning's own)
        options["enable_checkpointing"] = any(isinstance(c, Checkpoint) for c in callbacks)
    if not progress_bar and cfg.trainer.enable_progress_bar is None:
        options["enable_progress_bar"] = False
    if not has_validation and cfg.trainer.limit_val_batches is None:  # no validation rows: no validation loop
        options["limit_val_batches"] = 0
    trainer_cfg = moved(cfg.trainer, run_dir, folder)
    try:
        return instantiate(trainer_cfg, **options)
    except Exception as error:
        if find_user_error(error):
            raise
        raise ConfigError(_trainer_problem(trainer_cfg, _cause(error))) from error


def _trainer_problem(trainer_cfg: DictConfig, message: str) -> str:
    """Name the Trainer argument that Lightning refused: the first that fails on its own."""
    for key in trainer_cfg:
        if key == "_target_" or key in ("default_root_dir",):
            continue
        try:
            instantiate(
                {"_target_": trainer_cfg._target_, key: trainer_cfg[key]},
                logger=False,
                callbacks=[],
                enable_checkpointing=False,
                enable_progress_bar=False,
            )
        except Exception:
            return f"trainer.{key!s}={as_dict(trainer_cfg, resolve=True)[str(key)]}: {message}"
    return f"trainer: {message}"


def find_cause(error: BaseException) -> BaseException:
    """The innermost `raise ... from` cause (Hydra's instantiate wraps the constructor's error)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _cause(error: BaseException) -> str:
    error = find_cause(error)
    return one_line(f"{type(error).__name__}: {error}" if not isinstance(error, ValueError) else error)


def moved(node: Any, run_dir: Path, folder: Path) -> DictConfig:
    """`node` (a typed config with a `_target_`, or a mapping) as what `instantiate` takes, with every path inside the
    run folder moved into `folder` (a fold's own folder)."""
    resolved = plain(node)

    def move(value: Any) -> Any:
        if isinstance(value, str) and (value == str(run_dir) or value.startswith(f"{run_dir}/")):
            return str(folder) + value[len(str(run_dir)) :]
        if isinstance(value, dict):
            return {key: move(item) for key, item in value.items()}
        if isinstance(value, list):
            return [move(item) for item in value]
        return value

    return DictConfig(move(resolved))


def plain(node: Any) -> dict[str, Any]:
    """A typed config node (a schema dataclass, or a mapping where the schema says Any) as plain values. A dataclass
    is read field by field (what OmegaConf.structured and to_container give, at a fraction of their cost: a sweep
    asks this several times per trial)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {item.name: _plain_value(getattr(node, item.name)) for item in dataclasses.fields(node)}
    return as_dict(OmegaConf.structured(node), resolve=True)


def _plain_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(value)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {key: _plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_value(item) for item in value]
    return value


def check_resume(checkpoint: dict, path: str, model: LogisticRegression) -> None:
    """Refuse, before fitting, a checkpoint whose model does not fit this run's (e.g. another number of features), or
    whose optimizer or scheduler differs: resuming restores their state, which would override this run's settings
    silently (another lr) or not fit them at all (Adam's state is not SGD's)."""
    if checkpoint.get("trained_together"):
        raise CheckpointError(
            f"ckpt_path={path}: this trial trained together with other trials of its sweep, so its checkpoint holds "
            "the model but no optimizer or loop state to resume; eval.py, predict.py and export.py take it. To resume "
            "trials, sweep with hydra/launcher=basic"
        )
    saved = checkpoint.get("hyper_parameters", {})
    trained = saved.get("n_features")
    if trained != model.n_features:
        raise CheckpointError(
            f"ckpt_path={path}: its model takes {trained} features, this run's data has {model.n_features}; "
            "resume with the data it was trained on"
        )
    for part in ("optimizer", "scheduler"):
        before, now = dict(saved.get(part) or {}), dict(model.hparams.get(part) or {})
        changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
        if changed:
            key = "name" if "name" in changed else changed[0]
            then, this = ("none" if value is None else value for value in (before.get(key), now.get(key)))
            raise CheckpointError(
                f"ckpt_path={path}: it was trained with model.{part}.{key}={then}, this run sets {this}; resuming "
                f"restores the {part}'s state, so resume with the settings it was trained with (or start a new run)"
            )


def resuming_line(checkpoint: dict, path: str, max_epochs: int) -> str:
    """The line a resumed run prints: the checkpoint, and the epoch (counted from 0, as the progress bar counts) that
    training continues from: Lightning goes on after the last epoch the checkpoint's loop had processed."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    next_epoch = int(progress.get("processed", checkpoint.get("epoch", -1) + 1))
    if next_epoch >= max_epochs:
        return f"Resuming from {path}: it has trained all {max_epochs} epochs already; raise epochs= to train on"
    return f"Resuming from {path}: training continues at epoch {next_epoch} (of epochs 0-{max_epochs - 1})"


# --------------------------------------------------------------------------------------------------- reporting


def flat_hyperparameters(cfg: TrainConfig) -> dict[str, Any]:
    """The knobs a user set, flat: what TensorBoard's HPARAMS tab compares runs by."""
    options = {"seed": cfg.seed, "epochs": cfg.trainer.max_epochs}
    model = plain(cfg.model)
    options |= {f"model.{k}": v for k, v in model.items() if k not in ("_target_", "optimizer", "scheduler")}
    options |= {f"optimizer.{k}": v for k, v in (model.get("optimizer") or {}).items()}
    options |= {f"scheduler.{k}": v for k, v in (model.get("scheduler") or {}).items()}
    data = plain(cfg.data)
    options |= {f"data.{k}": v for k, v in data.items() if k not in ("_target_", "data_dir", "url", "sha256")}
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value) for key, value in options.items()}


def hyperparameters(cfg: TrainConfig, model: LogisticRegression, datamodule: TabularDataModule) -> dict[str, Any]:
    """This run's knobs, and what the data decided (the class weight, the fold, the decision threshold)."""
    options = flat_hyperparameters(cfg)
    options["model.pos_weight"] = float(model.options.pos_weight)
    options["model.threshold"] = model.decision_threshold()
    if datamodule.folds:
        options["data.fold"] = datamodule.fold
    return options


def run(cfg: TrainConfig, script: str) -> float | list[float]:
    """train.py's job: `train` with Lightning's DDP processes running this Hydra job; returns the metric a sweeper
    optimizes (`optimized_metric`; NaN where a single run does not measure it)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from logreg.ddp import ddp_processes_of_this_job

    try:
        with ddp_processes_of_this_job(script):
            metrics = train(cfg)
    except SIGTERMException:  # Lightning stopped after the current step; ResumeHint named the checkpoint
        sys.exit(128 + 15)
    except OSError as error:  # a write that names no file (a logger's, say): name the run folder it went to
        if error.filename:
            raise
        raise OSError(error.errno, error.strerror, HydraConfig.get().runtime.output_dir) from error
    return objective_values(metrics, cfg.optimized_metric)
