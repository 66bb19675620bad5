"""The typed schema of every config key a user sets, and the checks that run before Lightning is imported.

Each dataclass mirrors the constructor it configures (tests/test_schema.py keeps them in step); the YAML files in
conf/ extend them (`defaults: [/schema/<group>/<name>@_here_]`), so Hydra refuses a value of the wrong type while it
composes, naming the key. What a type cannot say (ranges, choices, keys that must agree) each class says in
`problems()`, and `check_config` walks the composed config, refuses keys no schema knows, and stops at the first
problem with a `ConfigError` naming the key, the value and what was expected. This module imports no torch and no
Lightning (logreg.devices imports torch for a config that asks for a GPU): a mistake is reported in well under a second.

Importing this module registers the schemas in Hydra's ConfigStore and the resolvers the configs use.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
import socket
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, cast  # noqa: UP035 - OmegaConf reads these at run time

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict

from logreg.confine import check_confined
from logreg.devices import check_devices
from logreg.errors import ConfigError, exit_on

Problems = Iterator[tuple[str, str]]  # (key relative to the node, what was expected)
SPLITS = ("train", "val", "test")
IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")  # logreg.encoding keeps the same lists
REFERENCE_LEVELS = ("first", "none")
UNSEEN_CATEGORIES = ("error", "zero")
MAX_SEED = 2**32 - 1  # Lightning's seed_everything draws a random seed, silently, outside [0, 2**32 - 1]

# ------------------------------------------------------------------------------------------------------- metrics

# What the model logs for each stage, as `<stage>/<name>`; `monitor` and `optimized_metric` must name one of them.
STAGE_METRICS = {
    "train": ("loss", "acc"),
    "val": ("loss", "acc", "auroc", "f1", "precision", "recall", "brier", "ece"),
    "test": ("loss", "acc", "auroc", "f1", "precision", "recall", "brier", "ece"),
}
LOWER_IS_BETTER = ("loss", "brier", "ece", "loss_std")


def metric_mode(metric: str) -> str:
    """ "min" for a metric where lower is better (a loss, the Brier score, calibration error), else "max"."""
    return "min" if metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER else "max"


def run_metrics(*, val: bool, test: bool, cv: bool = False) -> dict[str, list[str]]:
    """The metrics a training run logs: "fit" (while fitting, what `monitor` may name) and "final" (after it)."""
    fit = [f"train/{name}" for name in STAGE_METRICS["train"]]
    fit += [f"val/{name}" for name in STAGE_METRICS["val"]] if val else []
    final = fit + ([f"test/{name}" for name in STAGE_METRICS["test"]] if test else [])
    if cv:  # the mean and spread over folds of every validation metric
        final += [f"cv/val/{name}{suffix}" for name in STAGE_METRICS["val"] for suffix in ("", "_std")]
    return {"fit": fit, "final": final}


# ---------------------------------------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    """`logreg.data.TabularDataModule`: how the rows are split and served."""

    _target_: str = "logreg.data.TabularDataModule"
    val_fraction: float = 0.1  # of each class, cut after the test rows, so val never sees test rows
    test_fraction: float = 0.1  # of each class, cut first
    batch_size: Optional[int] = None  # full batch: one gradient step per epoch, as in the lab
    batches_per_step: int = 256  # mini-batches per Lightning step (the model loops over them): its cost paid once
    shuffle: bool = True  # reshuffle mini-batches each epoch (no effect at full batch)
    standardize: bool = False  # lab 5's features are already in [-1, 1]
    seed: int = 1
    test_on: str = "test"  # the rows trainer.test scores: test (held out), or train / val
    move_to_device: bool = True

    def problems(self) -> Problems:
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                yield name, "a fraction in [0, 1)"
        if not self.val_fraction + self.test_fraction < 1:
            yield "val_fraction", f"val_fraction + test_fraction < 1 (now {self.val_fraction + self.test_fraction:g})"
        if self.batch_size is not None and self.batch_size < 1:
            yield "batch_size", "a positive number of rows, or null for full batch"
        if self.batches_per_step < 1:
            yield "batches_per_step", "a positive number of mini-batches per Lightning step"
        if not 0 <= self.seed <= MAX_SEED:
            yield "seed", f"a whole number in [0, {MAX_SEED}]"
        if self.test_on not in SPLITS:
            yield "test_on", f"one of {', '.join(SPLITS)}"


@dataclass
class CSVDataConfig(DataConfig):
    """`logreg.data.CSVDataModule`: a CSV of numbers with a 0/1 label column."""

    _target_: str = "logreg.data.CSVDataModule"
    path: str = MISSING
    data_dir: str = "data"
    url: Optional[str] = None
    sha256: Optional[str] = None
    header: Optional[bool] = None  # null detects a header row (a first row with any non-number)
    label_column: Any = -1  # the last column; a number from 1 (negative from the end) or a header name (no Union in
    # OmegaConf 2.3)
    encoding: str = "utf-8"  # e.g. latin-1 for a file saved by an older spreadsheet
    features: Optional[List[Any]] = None  # names or numbers from 1; null: every column but the label and exclude
    exclude: Optional[List[Any]] = None
    categorical: Optional[List[Any]] = None
    impute: Optional[str] = None
    impute_value: float = 0.0
    missing_indicator: bool = False
    reference_level: str = "first"
    unseen_category: str = "error"
    stream: Any = "auto"  # true, false, or auto: stream when the table is over a share of memory (logreg.stream)

    def problems(self) -> Problems:
        yield from super().problems()
        if not (isinstance(self.stream, bool) or self.stream == "auto"):
            yield "stream", "true (stream the table from disk in blocks), false (read it into memory) or auto"
        if not self.path:
            yield "path", "the CSV file, e.g. data.path=my.csv"
        if self.sha256 is not None and not (len(self.sha256) == 64 and set(self.sha256) <= set("0123456789abcdef")):
            yield "sha256", "64 lowercase hexadecimal digits, or null"
        if isinstance(self.label_column, bool) or not isinstance(self.label_column, (int, str)):
            yield "label_column", "a column number (1 = first, -1 = last) or a header name"
        elif self.label_column == 0:
            yield "label_column", "a column number counting from 1 (or -1 for the last), or a header name"
        try:
            "".encode(self.encoding)
        except LookupError:
            yield "encoding", "a text encoding Python knows, e.g. utf-8 or latin-1"
        for name in ("features", "exclude", "categorical"):
            for column in getattr(self, name) or []:
                if isinstance(column, bool) or not isinstance(column, (int, str)) or column == 0:
                    yield name, "a list of column names or numbers (1 = first, -1 = last), e.g. [age, sex]"
                    break
        if self.impute is not None and self.impute not in IMPUTE_STRATEGIES:
            yield "impute", f"null (missing values are refused) or one of {', '.join(IMPUTE_STRATEGIES)}"
        if not math.isfinite(self.impute_value):
            yield "impute_value", "a finite number"
        if self.reference_level not in REFERENCE_LEVELS:
            yield "reference_level", f"one of {', '.join(REFERENCE_LEVELS)}"
        if self.unseen_category not in UNSEEN_CATEGORIES:
            yield "unseen_category", f"one of {', '.join(UNSEEN_CATEGORIES)}"


@dataclass
class BreastCancerDataConfig(DataConfig):
    """`logreg.data.BreastCancerDataModule`: scikit-learn's breast-cancer table."""

    _target_: str = "logreg.data.BreastCancerDataModule"


@dataclass
class DataLocation:
    """eval.py's `data`: where to find the checkpoint's data on this machine (null keeps the checkpoint's value)."""

    path: Optional[str] = None
    data_dir: Optional[str] = None
    url: Optional[str] = None
    encoding: Optional[str] = None

    def problems(self) -> Problems:
        if self.encoding is not None:
            try:
                "".encode(self.encoding)
            except LookupError:
                yield "encoding", "a text encoding Python knows, e.g. utf-8 or latin-1"


# ------------------------------------------------------------------------------------------- optimizers, schedulers


def _positive_finite(value: float) -> bool:
    return isinstance(value, (int, float)) and 0 < value < math.inf


@dataclass
class OptimizerConfig:
    """`model.optimizer`: the torch optimizer's name and its keyword arguments."""

    name: str = MISSING
    lr: float = 1.0

    def problems(self) -> Problems:
        if not (_positive_finite(self.lr) and self.lr < 3.4e38):  # float32's largest number
            yield "lr", "a positive float32 number (lab 5 uses lr=1)"
        if not 0 <= getattr(self, "weight_decay", 0.0) < math.inf:
            yield "weight_decay", "a number >= 0"


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    momentum: float = 0.0  # lab 5: plain gradient descent
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0  # lab 5 fits the unregularized model

    def problems(self) -> Problems:
        yield from super().problems()
        if not 0 <= self.momentum < math.inf:
            yield "momentum", "a number >= 0"
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            yield "nesterov", "nesterov=true only with momentum > 0 and dampening=0"


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 0.001
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False

    def problems(self) -> Problems:
        yield from super().problems()
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            yield "betas", "two numbers in [0, 1)"
        if not _positive_finite(self.eps):
            yield "eps", "a positive number"


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 0.01


@dataclass
class LBFGSConfig(OptimizerConfig):
    name: str = "lbfgs"
    max_iter: int = 20
    max_eval: Optional[int] = None
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9
    history_size: int = 100
    line_search_fn: Optional[str] = None

    def problems(self) -> Problems:
        yield from super().problems()
        for name in ("max_iter", "history_size"):
            if getattr(self, name) < 1:
                yield name, "a whole number >= 1"
        if self.max_eval is not None and self.max_eval < 1:
            yield "max_eval", "a whole number >= 1, or null"
        for name in ("tolerance_grad", "tolerance_change"):
            if not 0 <= getattr(self, name) < math.inf:
                yield name, "a number >= 0"
        if self.line_search_fn not in (None, "strong_wolfe"):
            yield "line_search_fn", "strong_wolfe or null"


@dataclass
class NewtonConfig(OptimizerConfig):
    """`logreg.newton.Newton`: Newton's method with a line search, full batch, float64 (trainer.precision=64-true)."""

    name: str = "newton"
    max_iter: int = 100
    tolerance_grad: float = 1e-8

    def problems(self) -> Problems:
        yield from super().problems()
        if self.max_iter < 1:
            yield "max_iter", "a whole number >= 1"
        if not 0 <= self.tolerance_grad < math.inf:
            yield "tolerance_grad", "a number >= 0"


OPTIMIZERS = {
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "adamw": AdamWConfig,
    "lbfgs": LBFGSConfig,
    "newton": NewtonConfig,
}


@dataclass
class SchedulerConfig:
    """`model.scheduler`: a torch learning-rate scheduler, stepped once per epoch."""

    name: str = MISSING


@dataclass
class CosineConfig(SchedulerConfig):
    name: str = "cosine"
    T_max: int = 100  # noqa: N815 - torch's argument name
    eta_min: float = 0.0

    def problems(self) -> Problems:
        if self.T_max < 1:
            yield "T_max", "a whole number of epochs >= 1"
        if not 0 <= self.eta_min < math.inf:
            yield "eta_min", "a learning rate >= 0"


@dataclass
class StepConfig(SchedulerConfig):
    name: str = "step"
    step_size: int = 30
    gamma: float = 0.1

    def problems(self) -> Problems:
        if self.step_size < 1:
            yield "step_size", "a whole number of epochs >= 1"
        if not 0 < self.gamma <= 1:
            yield "gamma", "a factor in (0, 1]"


@dataclass
class PlateauConfig(SchedulerConfig):
    name: str = "plateau"
    monitor: str = "val/loss"  # min or max follows from the metric (a loss falls, an accuracy rises)
    factor: float = 0.1  # lr is multiplied by this when `monitor` stops improving
    patience: int = 10  # epochs without improvement before lr falls
    threshold: float = 1e-4
    min_lr: float = 0.0

    def problems(self) -> Problems:
        if not 0 < self.factor < 1:
            yield "factor", "a factor in (0, 1)"
        if self.patience < 0:
            yield "patience", "a whole number of epochs >= 0"
        if not 0 <= self.threshold < math.inf:
            yield "threshold", "a number >= 0"
        if not 0 <= self.min_lr < math.inf:
            yield "min_lr", "a learning rate >= 0"


SCHEDULERS = {"cosine": CosineConfig, "step": StepConfig, "plateau": PlateauConfig}

# ---------------------------------------------------------------------------------------------------------- model

THRESHOLD_CRITERIA = ("f1", "youden", "cost")


@dataclass
class ModelConfig:
    """`logreg.model.LogisticRegression` (n_features and the scaler come from the data, not from here)."""

    _target_: str = "logreg.model.LogisticRegression"
    threshold: float = 0.5  # predict 1 when p(y=1) >= 0.5, as the lab does
    tune_threshold: Optional[str] = None  # f1 | youden | cost: chosen on the validation rows instead (checkpointed)
    cost_ratio: float = 1.0  # with tune_threshold=cost: what a false positive costs, in false negatives
    pos_weight: Any = 1.0  # weight of class-1 rows in the loss (> 0); balanced = n_negative / n_positive of training
    gradient: str = "analytic"  # the closed-form gradient of the mean BCE (fast, exact); autograd: torch's, as the lab
    optimizer: Any = None  # set by the optimizer group (None: the model's default, SGD at lr=1)
    scheduler: Any = None

    def problems(self) -> Problems:
        if not 0 < self.threshold < 1:
            yield "threshold", "a probability strictly between 0 and 1"
        if self.tune_threshold not in (None, *THRESHOLD_CRITERIA):
            yield (
                "tune_threshold",
                f"null, or the criterion to maximize on the validation rows: {', '.join(THRESHOLD_CRITERIA)}",
            )
        if not _positive_finite(self.cost_ratio):
            yield "cost_ratio", "a positive number: the cost of a false positive over that of a false negative"
        if self.pos_weight != "balanced" and (
            isinstance(self.pos_weight, bool) or not _positive_finite(self.pos_weight)
        ):
            yield "pos_weight", "a positive number (weight of class-1 rows in the loss), or balanced"
        if self.gradient not in ("analytic", "autograd"):
            yield "gradient", "analytic (the closed-form gradient, fast) or autograd (torch's, the lab's code)"


# -------------------------------------------------------------------------------------------------------- trainer

PRECISIONS = ("32-true", "32", "64-true", "64")  # the analytic gradient is exact in float32 and float64


def _starts_processes_itself(strategy: Any) -> bool:
    """Whether `strategy` (a name, or a config with a _target_) runs Lightning's multiprocessing launcher (spawn or
    fork) instead of starting each process as a script, as ddp does."""
    if isinstance(strategy, str):
        return any(word in strategy for word in ("spawn", "fork", "notebook"))
    if isinstance(strategy, Mapping):
        return strategy.get("start_method", "popen") != "popen"
    return False


@dataclass
class TrainerConfig:
    """`lightning.pytorch.Trainer`: the arguments a user may set (logger, callbacks and plugins come from code)."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"
    strategy: Any = "auto"
    devices: Any = 1
    num_nodes: int = 1
    precision: Any = "32-true"  # the lab's float32 (or 64-true); logistic regression gains nothing from half precision
    max_epochs: int = 100
    min_epochs: Optional[int] = None
    max_steps: int = -1
    max_time: Optional[str] = None
    fast_dev_run: Any = False
    limit_train_batches: Optional[Any] = None
    limit_val_batches: Optional[Any] = None
    limit_test_batches: Optional[Any] = None
    overfit_batches: Any = 0.0
    val_check_interval: Optional[Any] = None
    check_val_every_n_epoch: Optional[int] = 1
    num_sanity_val_steps: int = 0  # validation is the training step's code; a pre-flight pass only costs start-up time
    log_every_n_steps: int = 1  # metrics are per epoch; this only silences the "fewer batches than interval" warning
    enable_checkpointing: Optional[bool] = None
    enable_progress_bar: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: Optional[str] = None
    deterministic: Any = True  # same seed, same numbers (Lightning also sets CUBLAS_WORKSPACE_CONFIG on GPUs)
    benchmark: Optional[bool] = None
    inference_mode: bool = True
    profiler: Any = None  # simple, advanced, pytorch, or a profiler config with a _target_ (debug=profiler)
    detect_anomaly: bool = False
    barebones: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    default_root_dir: Optional[str] = None

    def problems(self) -> Problems:
        if self.max_epochs < 1:
            yield "max_epochs", "a whole number of epochs >= 1"
        if self.min_epochs is not None and not 0 <= self.min_epochs <= self.max_epochs:
            yield "min_epochs", f"a whole number in [0, max_epochs={self.max_epochs}], or null"
        if self.max_steps < -1 or self.max_steps == 0:
            yield "max_steps", "a whole number of optimizer steps >= 1, or -1 for no limit"
        if self.num_nodes < 1:
            yield "num_nodes", "a whole number >= 1"
        devices = self.devices
        if not (
            devices == "auto"
            or devices == -1
            or (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1)
            or (isinstance(devices, list) and devices)
            or (isinstance(devices, str) and devices.replace(",", "").strip().isdigit())
        ):
            yield "devices", "a number of devices >= 1, -1 or auto for all, or a list of device indices"
        if str(self.precision) not in PRECISIONS:
            yield "precision", f"one of {', '.join(PRECISIONS)} (logistic regression gains nothing from half precision)"
        if _starts_processes_itself(self.strategy):
            yield (
                "strategy",
                "ddp (trainer=ddp or ddp_cpu): spawned or forked processes (ddp_spawn, ddp_notebook, ddp_fork) are "
                "for notebooks, and hand the weights back through a file that is not a checkpoint",
            )
        if self.deterministic not in (True, False, "warn", None):
            yield "deterministic", "true, false or warn"
        if self.accumulate_grad_batches != 1:  # Lightning refuses it with manual optimization, which the model uses
            yield (
                "accumulate_grad_batches",
                "1: the model makes its own updates; for larger steps use a larger data.batch_size",
            )
        if self.gradient_clip_val is not None:  # likewise
            yield (
                "gradient_clip_val",
                "null: the model makes its own updates (manual optimization) and does not clip; use a smaller lr",
            )
        if self.barebones:
            yield "barebones", "false: barebones mode disables the logging the model relies on"
        if self.log_every_n_steps < 1:
            yield "log_every_n_steps", "a whole number >= 1"
        if self.num_sanity_val_steps < -1:
            yield "num_sanity_val_steps", "a whole number >= 0, or -1 for all"
        if self.check_val_every_n_epoch is not None and self.check_val_every_n_epoch < 1:
            yield "check_val_every_n_epoch", "a whole number >= 1, or null"
        for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "overfit_batches"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                yield name, "a fraction in [0, 1] or a number of batches"
        if isinstance(self.fast_dev_run, int) and not isinstance(self.fast_dev_run, bool) and self.fast_dev_run < 0:
            yield "fast_dev_run", "true, false or a number of batches >= 1"
        if self.profiler not in (None, "simple", "advanced", "pytorch") and not (
            isinstance(self.profiler, dict) and "_target_" in self.profiler
        ):
            yield "profiler", "simple, advanced, pytorch, a profiler config with a _target_, or null"


def counts_batches(trainer: TrainerConfig | DictConfig) -> bool:
    """Whether a Trainer option counts training batches (a number of them, or a fraction below 1): then each
    Lightning step must be one mini-batch, not `data.batches_per_step` of them."""

    def counts(value: Any) -> bool:
        whole = isinstance(value, int) and not isinstance(value, bool)
        return whole or (isinstance(value, float) and 0 < value < 1)

    limits = ("limit_train_batches", "overfit_batches", "val_check_interval")
    return bool(trainer.fast_dev_run) or trainer.max_steps != -1 or any(counts(getattr(trainer, n)) for n in limits)


# ------------------------------------------------------------------------------------------------ loggers, callbacks


@dataclass
class TensorBoardConfig:
    _target_: str = "lightning.pytorch.loggers.TensorBoardLogger"
    save_dir: str = MISSING
    name: Optional[str] = ""  # no extra folder levels below the run folder
    version: Any = ""
    default_hp_metric: bool = False  # train.py writes the real final metrics to the HPARAMS tab
    log_graph: bool = False


@dataclass
class CSVLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.CSVLogger"
    save_dir: str = MISSING
    name: Optional[str] = ""
    version: Any = ""
    flush_logs_every_n_steps: int = 100


@dataclass
class MLflowConfig:
    _target_: str = "lightning.pytorch.loggers.MLFlowLogger"
    experiment_name: str = "logreg"
    run_name: Optional[str] = None  # MLflow names the run; the run folder is among its parameters
    tracking_uri: Optional[str] = None
    save_dir: Optional[str] = None
    log_model: bool = False  # checkpoints stay in the run folder

    def problems(self) -> Problems:
        if self.tracking_uri is None and self.save_dir is None:  # Lightning would store the runs in ./file:None
            yield "tracking_uri", "a tracking URI or a local folder (null only with logger.save_dir=<a folder>)"
        if self.tracking_uri is not None and not tracking_uri_known(self.tracking_uri):
            yield (
                "tracking_uri",
                f"a tracking URI MLflow stores runs at ({', '.join(f'{s}:' for s in TRACKING_SCHEMES)}) or a local "
                "folder, e.g. sqlite:///logs/mlflow.db or http://host:5000",
            )


# MLflow's tracking stores: a file store, a database (SQLAlchemy's dialects, `dialect+driver:`), a server, Databricks
TRACKING_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc")


def tracking_uri_known(uri: str) -> bool:
    """Whether MLflow can store runs at `uri`: a scheme it knows, or a local path (a Windows drive letter included)."""
    scheme, colon, _ = uri.partition(":")
    if not colon or len(scheme) == 1 or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return bool(uri.strip())  # no scheme: a local folder
    return scheme.split("+", 1)[0].lower() in TRACKING_SCHEMES


@dataclass
class CheckpointConfig:
    _target_: str = "lightning.pytorch.callbacks.ModelCheckpoint"
    dirpath: Optional[str] = None
    filename: Optional[str] = None
    monitor: Optional[str] = None
    mode: str = "min"
    save_top_k: int = 1
    save_last: Optional[bool] = None
    every_n_epochs: Optional[int] = None
    enable_version_counter: bool = True
    auto_insert_metric_name: bool = True

    def problems(self) -> Problems:
        if self.mode not in ("min", "max"):
            yield "mode", "min or max"
        if self.save_top_k < -1:
            yield "save_top_k", "a whole number >= 0, or -1 to keep all"
        if self.every_n_epochs is not None and self.every_n_epochs < 0:
            yield "every_n_epochs", "a whole number >= 0, or null"


@dataclass
class LastCheckpointConfig:
    _target_: str = "logreg.callbacks.LastCheckpoint"
    dirpath: str = MISSING
    filename: str = "last"  # last.ckpt: resume with ckpt_path=.../last.ckpt
    every_seconds: float = 1.0  # at most a second of training is lost to a kill; 0 writes every epoch (lab 5's: 1 ms)

    def problems(self) -> Problems:
        if not 0 <= self.every_seconds < math.inf:
            yield "every_seconds", "a number of seconds >= 0 (0: every epoch)"


@dataclass
class EarlyStoppingConfig:
    _target_: str = "lightning.pytorch.callbacks.EarlyStopping"
    monitor: str = MISSING
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0

    def problems(self) -> Problems:
        if self.mode not in ("min", "max"):
            yield "mode", "min or max"
        if self.patience < 0:
            yield "patience", "a whole number of epochs >= 0"
        if not 0 <= self.min_delta < math.inf:
            yield "min_delta", "a number >= 0"


@dataclass
class PlotsConfig:
    _target_: str = "logreg.plots.EvaluationPlots"
    histograms: bool = False  # true: the weights' histograms every epoch (about 1 ms per epoch)


@dataclass
class TargetOnlyConfig:  # callbacks that take no arguments
    _target_: str = MISSING


# -------------------------------------------------------------------------------------------------- entry scripts


@dataclass
class CVConfig:
    """Cross-validation: `folds` >= 2 trains one model per fold of the non-test rows (validation = that fold)."""

    folds: int = 0
    refit: bool = True

    def problems(self) -> Problems:
        if self.folds == 1 or self.folds < 0:
            yield "folds", "0 (no cross-validation) or a number of folds >= 2"


COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")  # logreg.inference.COV_TYPES


@dataclass
class InferenceConfig:
    """`inference`: how the coefficients' standard errors are computed (`logreg.inference.infer`)."""

    cov_type: str = "nonrobust"
    cluster: Optional[str] = None  # the data file's column (header name, or number from 1) of each row's cluster id

    def problems(self) -> Problems:
        if self.cov_type not in COV_TYPES:
            yield "cov_type", f"one of {', '.join(COV_TYPES)}"
        if self.cov_type == "cluster" and not self.cluster:
            yield (
                "cluster",
                "the column of the rows' cluster ids (a header name or a number from 1) with cov_type=cluster",
            )
        if self.cov_type != "cluster" and self.cluster:
            yield "cluster", "null unless inference.cov_type=cluster"


@dataclass
class TrainConfig:
    """train.py: conf/train.yaml."""

    data: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = None
    callbacks: Dict[str, Any] = field(default_factory=dict)
    cv: CVConfig = field(default_factory=CVConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    lr: float = 1.0
    epochs: int = 100
    seed: int = 1
    threads: Optional[int] = 1
    ckpt_path: Optional[str] = None
    trust_checkpoint: bool = False
    monitor: str = "val/loss"
    optimized_metric: Any = "val/loss"  # a metric, or a list of them: one objective each (hparams_search=optuna)

    def metrics(self) -> dict[str, list[str]]:
        return train_metrics(self)

    def monitors(self) -> Iterator[tuple[str, str]]:
        """(key, metric) for every key that names a metric to watch: `monitor`, the scheduler's, any callback's."""
        yield "monitor", self.monitor
        scheduler_monitor = _field(self.model.scheduler, "monitor")
        if scheduler_monitor is not None:
            yield "model.scheduler.monitor", scheduler_monitor
        for name, callback in (self.callbacks or {}).items():
            watched = _field(callback, "monitor")
            if watched is not None:
                yield f"callbacks.{name}.monitor", watched

    def sweep_problems(self) -> Problems:
        return sweep_problems(self)

    def problems(self) -> Problems:
        if not _positive_finite(self.lr):
            yield "lr", "a positive number (lab 5 uses lr=1)"
        if self.epochs < 1:
            yield "epochs", "a whole number of epochs >= 1"
        if not 0 <= self.seed <= MAX_SEED:
            yield "seed", f"a whole number in [0, {MAX_SEED}]"
        if self.threads is not None and self.threads < 1:
            yield "threads", "a number of CPU threads >= 1, or null for torch's default"
        if self.ckpt_path is not None and not os.path.isfile(self.ckpt_path):
            yield "ckpt_path", "an existing checkpoint file (logs/runs/<run>/checkpoints/last.ckpt), or null"
        if isinstance(self.data, DataConfig):
            metrics = self.metrics()
            has_val = "val/loss" in metrics["fit"]
            for key, monitor in self.monitors():
                if monitor not in metrics["fit"]:
                    no_val = monitor.startswith("val/") and not has_val
                    why = " (data.val_fraction=0: no validation rows)" if no_val else ""
                    yield key, f"a metric logged while fitting{why}: {', '.join(metrics['fit'])}"
            scheduler_monitor = _field(self.model.scheduler, "monitor")
            if self.cv.folds >= 2 and self.cv.refit and str(scheduler_monitor).startswith("val/"):
                yield (
                    "model.scheduler.monitor",
                    "a train/ metric, or cv.refit=false: the refit after cross-validation has no validation rows",
                )
            if self.model.tune_threshold and not has_val:
                yield "model.tune_threshold", "null when there are no validation rows (data.val_fraction=0)"
            if self.cv.folds >= 2 and self.ckpt_path is not None:
                yield "cv.folds", "0 when resuming from ckpt_path (each fold is a run of its own)"
            if isinstance(self.model.optimizer, NewtonConfig):
                if not str(self.trainer.precision).startswith("64"):
                    yield "trainer.precision", "64-true with optimizer=newton (its line search needs float64)"
                if self.data.batch_size is not None:
                    yield "data.batch_size", "null (full batch) with optimizer=newton"


def _field(node: Any, name: str) -> Any:
    """`node.name` of a schema dataclass, or `node[name]` of a plain mapping; None where it has none."""
    return node.get(name) if isinstance(node, Mapping) else getattr(node, name, None)


def train_metrics(cfg: TrainConfig | DictConfig) -> dict[str, list[str]]:
    """The metrics a training run logs (`run_metrics`): validation ones where there are validation rows, and so on."""
    data, folds = cfg.data, cfg.cv.folds
    validates = cfg.trainer.limit_val_batches != 0  # limit_val_batches=0: Lightning skips validation altogether
    return run_metrics(
        val=validates and (data.val_fraction > 0 or folds >= 2),
        test=data.test_fraction > 0 or data.test_on != "test",
        cv=folds >= 2,
    )


def objectives(optimized_metric: Any) -> list[str]:
    """`optimized_metric` as a list: one metric, or several (one objective each)."""
    if isinstance(optimized_metric, (list, ListConfig)):
        return [str(metric) for metric in optimized_metric]
    return [str(optimized_metric)]


def sweep_problems(cfg: TrainConfig | DictConfig) -> Problems:
    """What a sweeper optimizes must be measured on held-out rows, and never on the test rows kept for the end."""
    held_out = [m for m in train_metrics(cfg)["final"] if m.startswith(("val/", "cv/"))]
    if any(metric not in held_out for metric in objectives(cfg.optimized_metric)):
        yield (
            "optimized_metric",
            (
                f"a held-out metric: {', '.join(held_out)}"
                if held_out
                else "a held-out metric, but this run has none: set data.val_fraction > 0 or cv.folds >= 2"
            ),
        )


class CheckConfig(Callback):
    """Hydra callback: refuse a bad config before anything is written, not even the run folder.

    A single run is checked whole (the entry script checks it again, in case this callback is left out of a config);
    a sweep is checked for what all its trials share (what it optimizes), and each trial when it starts.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        early = config.copy()
        with open_dict(early):  # what ${hydra:runtime.output_dir} will be, so the paths in the config resolve
            early.hydra.runtime.output_dir = os.path.abspath(early.hydra.run.dir)
        HydraConfig.instance().set_config(early)  # Hydra sets it again for the job
        self._check(lambda: check_config(early))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "optimized_metric" in config:
            self._check(lambda: _raise_first(config, sweep_problems(config), ""))

    @staticmethod
    def _check(check: Any) -> None:
        try:
            check()
        except Exception as error:  # raised, Hydra would only warn and go on
            from logreg.errors import as_user_error

            user_error = as_user_error(error)
            if user_error is None:
                raise
            exit_on(user_error)


@dataclass
class EvalConfig:
    """eval.py: conf/eval.yaml."""

    ckpt_path: str = MISSING
    split: Optional[str] = None
    data: DataLocation = field(default_factory=DataLocation)
    trust_checkpoint: bool = False
    allow_changed_data: bool = False
    threads: Optional[int] = 1
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = None

    def problems(self) -> Problems:
        if not os.path.isfile(self.ckpt_path):
            yield "ckpt_path", "an existing checkpoint file (logs/runs/<run>/checkpoints/last.ckpt)"
        if self.split not in (None, *SPLITS):
            yield "split", "test, val, train, or null for the rows training tested on"
        if self.threads is not None and self.threads < 1:
            yield "threads", "a number of CPU threads >= 1, or null"


@dataclass
class PredictConfig:
    """predict.py: conf/predict.yaml."""

    ckpt_path: str = MISSING
    input: str = MISSING
    output: str = "predictions.csv"
    overwrite: bool = False
    header: Optional[bool] = None
    encoding: str = "utf-8"
    threshold: Optional[float] = None
    trust_checkpoint: bool = False
    interval: Optional[float] = None  # a level (0.95): adds `lower` and `upper` bounds on each row's probability

    def problems(self) -> Problems:
        if not os.path.isfile(self.ckpt_path):
            yield "ckpt_path", "an existing checkpoint file (logs/runs/<run>/checkpoints/last.ckpt)"
        if self.threshold is not None and not 0 < self.threshold < 1:
            yield "threshold", "a probability strictly between 0 and 1, or null for the model's own"
        if self.interval is not None and not 0 < self.interval < 1:
            yield "interval", "a confidence level strictly between 0 and 1 (0.95), or null for no intervals"


@dataclass
class ExportConfig:
    """export.py: conf/export.yaml."""

    ckpt_path: str = MISSING
    format: str = "onnx"
    output: Optional[str] = None
    overwrite: bool = False
    trust_checkpoint: bool = False

    def problems(self) -> Problems:
        if not os.path.isfile(self.ckpt_path):
            yield "ckpt_path", "an existing checkpoint file (logs/runs/<run>/checkpoints/last.ckpt)"
        if self.format not in ("onnx", "torchscript"):
            yield "format", "onnx or torchscript"


# -------------------------------------------------------------------------------------------------------- checking


def as_dict(node: DictConfig, *, resolve: bool = False) -> dict[str, Any]:
    """`OmegaConf.to_container(node)` typed as what it is for a mapping node: a dict, keyed by strings in every config
    of this project (to_container is typed for any node: a list, a string, None)."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=resolve))


def check_config(cfg: DictConfig, sweep: bool = False) -> None:
    """Refuse the first unknown key, missing value, or value out of range in `cfg` (the task config, Hydra's own
    node aside), with a ConfigError naming the key: `data.val_fraction=1.5: expected a fraction in [0, 1)`.
    `sweep`: the run is a trial of a sweep, so what it returns to the sweeper is checked too."""
    task = cfg
    if "hydra" in cfg:  # a composed config seen outside a run (tests, tools): check the task's part, typed as it is
        task = cfg.copy()
        with open_dict(task):
            del task["hydra"]
    _check_keys(task, "")
    missing = sorted(OmegaConf.missing_keys(task))
    if missing:
        raise ConfigError(f"{missing[0]}: a value is required (set {missing[0]}=...)")
    typed = OmegaConf.to_object(task)
    _check_values(typed, "")
    hydra_cfg = cast(DictConfig, HydraConfig.get()) if HydraConfig.initialized() else None  # a node (typed HydraConf)
    run_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None) if hydra_cfg else None
    if run_dir:  # every path a logger, callback or the trainer writes: inside the run folder
        check_confined(as_dict(task, resolve=True), run_dir)
    trainer = getattr(typed, "trainer", None)
    if isinstance(trainer, TrainerConfig):  # the devices it asks for (torch is imported only for a GPU)
        check_devices(trainer)
    if sweep and isinstance(typed, TrainConfig):
        _raise_first(typed, typed.sweep_problems(), "")


class Checked(Protocol):
    """A schema dataclass: says what its type annotations cannot (ranges, choices, keys that must agree)."""

    def problems(self) -> Problems: ...


def check_arguments(schema: type, values: dict[str, Any], prefix: str) -> None:
    """Refuse constructor arguments as `check_config` refuses config values, with the same schema and messages: the
    package's own boundary, for callers that do not come through a config (notebooks, tests, checkpoints)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        # An instance of `schema` (to_object is typed for any node): every schema passed here has `problems()`.
        typed = cast(Checked, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values)))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or ""
        shown = _show(values.get(key)) if key in values else "?"
        expected = expected_type(schema, key) or str(error).splitlines()[0]
        raise ConfigError(f"{prefix}{key}={shown}: expected {expected}") from None
    _raise_first(typed, typed.problems(), prefix)


RENAMED = {"data.test_split": "data.test_on"}  # released names that went away -> their names now


def unknown_key(schema: type, key: str) -> str:
    """The message for a dotted `key` whose last part `schema` (a dataclass) lacks; where a key of that name lives one
    level down, it says so (`optimizer` -> `model.optimizer`: the optimizer group's keys are set there)."""
    if key in RENAMED:
        return f"{key}: renamed {RENAMED[key]} (0.2); set {RENAMED[key]}=... instead"
    name, fields = key.rsplit(".", 1)[-1], dataclasses.fields(schema)
    listed = f"{schema.__name__} has: {', '.join(sorted(f.name for f in fields))}"
    try:
        hints = typing.get_type_hints(schema)
    except (NameError, TypeError):  # annotations that do not resolve: no hint, the list alone
        hints = {}
    for outer in fields:
        inner = hints.get(outer.name)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            if name in {f.name for f in dataclasses.fields(inner)}:
                return f"{key}: no such key; did you mean {key[: -len(name)]}{outer.name}.{name}? ({listed})"
    near = difflib.get_close_matches(name, [f.name for f in fields], n=1, cutoff=0.75)  # a typo: epoch, lrr, sed
    if near:
        return f"{key}: no such key; did you mean {key[: -len(name)]}{near[0]}? ({listed})"
    return f"{key}: no such key; {listed}"


def _check_keys(node: Any, prefix: str) -> None:
    """Refuse keys that the node's schema lacks: Hydra's `+key=value` adds them to structured configs too."""
    if isinstance(node, ListConfig):
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        known = {f.name for f in dataclasses.fields(schema)}
        for key in node:
            if key not in known:
                raise ConfigError(unknown_key(schema, f"{prefix}{key!s}"))
    elif prefix == "callbacks.":
        for key in node:
            if node[key] is not None and (not isinstance(node[key], DictConfig) or "_target_" not in node[key]):
                raise ConfigError(f"callbacks.{key!s}: expected a callback config with a _target_, or null for none")
    for key in node:  # an interpolation's keys are checked where it points to
        if not OmegaConf.is_missing(node, key) and not OmegaConf.is_interpolation(node, str(key)):
            _check_keys(node[key], f"{prefix}{key!s}.")


def _check_values(value: Any, prefix: str) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _check_values(child, f"{prefix}{key}.")
        return
    if not dataclasses.is_dataclass(value):
        return
    _raise_first(value, getattr(value, "problems", lambda: iter(()))(), prefix)
    for item in dataclasses.fields(value):
        _check_values(getattr(value, item.name), f"{prefix}{item.name}.")


def _raise_first(node: Any, problems: Problems, prefix: str) -> None:
    for key, expected in problems:
        shown = node
        for part in key.split("."):
            shown = shown[part] if isinstance(shown, Mapping) else getattr(shown, part)
        raise ConfigError(f"{prefix}{key}={_show(shown)}: expected {expected}")


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def expected_type(schema: type, key: str) -> str | None:
    """What a field of a schema dataclass holds, in words ("a whole number", "true or false", ...), or None."""
    try:
        annotation = typing.get_type_hints(schema)[key]
    except (KeyError, TypeError, NameError):
        return None
    optional = type(None) in typing.get_args(annotation)
    base = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation) if optional else annotation
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(base)
    if words is None:
        return None
    return f"{words} or null" if optional else words


# ------------------------------------------------------------------------------------------------------ resolvers


def optuna_seed(seed: int, storage: str | None) -> int:
    """The Optuna sampler's seed: `seed` itself, except with a shared study storage, where workers with equal seeds
    would propose identical trials: there each process mixes in its host and process id."""
    if not storage:
        return seed
    digest = hashlib.sha256(f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


OmegaConf.register_new_resolver("metric_mode", metric_mode, replace=True)


def metric_direction(optimized_metric: Any) -> str | list[str]:
    """The sweeper's direction for `optimized_metric`: minimize a loss, maximize an accuracy; a list for a list."""
    directions = ["minimize" if metric_mode(metric) == "min" else "maximize" for metric in objectives(optimized_metric)]
    return directions if isinstance(optimized_metric, (list, ListConfig)) else directions[0]


OmegaConf.register_new_resolver("metric_direction", metric_direction, replace=True)
OmegaConf.register_new_resolver("optuna_seed", optuna_seed, replace=True, use_cache=True)

# ---------------------------------------------------------------------------------------------------- ConfigStore

_store = ConfigStore.instance()
for _name, _node in {
    "train": TrainConfig,
    "eval": EvalConfig,
    "predict": PredictConfig,
    "export": ExportConfig,
}.items():
    _store.store(group="schema", name=_name, node=_node)
SCHEMA_GROUPS: dict[str, Mapping[str, type]] = {  # schema group -> option name -> its schema dataclass
    "data": {"csv": CSVDataConfig, "breast_cancer": BreastCancerDataConfig},
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "trainer": {"trainer": TrainerConfig},
    "logger": {"tensorboard": TensorBoardConfig, "csv": CSVLoggerConfig, "mlflow": MLflowConfig},
    "callbacks": {
        "checkpoint": CheckpointConfig,
        "last_checkpoint": LastCheckpointConfig,
        "early_stopping": EarlyStoppingConfig,
        "plots": PlotsConfig,
        "target_only": TargetOnlyConfig,
    },
}
for _group, _nodes in SCHEMA_GROUPS.items():
    for _name, _node in _nodes.items():
        _store.store(group=f"schema/{_group}", name=_name, node=_node)
