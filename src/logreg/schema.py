"""The typed schema of every config key a user sets: one dataclass per constructor it configures.

Each field is a knob, declared once: its type, its default (the constructor's is kept equal by tests/test_schema.py)
and, through `ruled(default, rule)`, the range or choices it allows (`logreg.rules`). What one field cannot say (keys
that must agree) each class says in `problems()`. The YAML files in conf/ extend these classes
(`defaults: [/schema/<group>/<name>@_here_]`, registered by `logreg.hydra_hooks`), so Hydra refuses a value of the
wrong type while it composes; `logreg.checking.check_config` then applies the rules and returns the typed config
that the entry scripts hand inward. This module imports no torch and no Lightning: a mistake is reported in well under
a second.
"""

from __future__ import annotations

import importlib
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf reads these at run time

from omegaconf import MISSING

from logreg.metric_names import objectives, run_metrics
from logreg.rules import (
    Rule,
    at_least,
    between,
    column_reference,
    non_negative,
    one_of,
    or_null,
    positive,
    ruled,
    text_encoding,
    whole,
)

Problems = Iterator[tuple[str, str]]  # (key relative to the node, what was expected)
SPLITS = ("train", "val", "test")
IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")  # logreg.encoding keeps the same lists
REFERENCE_LEVELS = ("first", "none")
UNSEEN_CATEGORIES = ("error", "zero")
MAX_SEED = 2**32 - 1  # Lightning's seed_everything draws a random seed, silently, outside [0, 2**32 - 1]

SEED = between(0, MAX_SEED, f"a whole number in [0, {MAX_SEED}]")
FRACTION = between(0, 1, "a fraction in [0, 1)", high_open=True)
ENCODING = Rule(text_encoding, "a text encoding Python knows, e.g. utf-8 or latin-1")
COLUMNS = or_null(
    Rule(lambda columns: all(map(column_reference, columns)), "a list of column names or numbers"),
    "a list of column names or numbers (1 = first, -1 = last), e.g. [age, sex]",
)
CHECKPOINT_FILE = Rule(os.path.isfile, "an existing checkpoint file (logs/runs/<run>/checkpoints/last.ckpt)")
THREADS = or_null(at_least(1, "a number of CPU threads >= 1"), "a number of CPU threads >= 1, or null")
WHOLE_AT_LEAST_1 = at_least(1, "a whole number >= 1")
EPOCHS_AT_LEAST_1 = at_least(1, "a whole number of epochs >= 1")
EPOCHS_AT_LEAST_0 = at_least(0, "a whole number of epochs >= 0")
MIN_OR_MAX = one_of(("min", "max"), "min or max")

# ---------------------------------------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    """`logreg.data.TabularDataModule`: how the rows are split and served."""

    _target_: str = "logreg.data.TabularDataModule"
    val_fraction: float = ruled(0.1, FRACTION)  # of each class, cut after the test rows, so val never sees test rows
    test_fraction: float = ruled(0.1, FRACTION)  # of each class, cut first
    # full batch: one gradient step per epoch, as in the lab
    batch_size: Optional[int] = ruled(
        None, or_null(at_least(1, ""), "a positive number of rows, or null for full batch")
    )
    # mini-batches per Lightning step (the model loops over them): its cost paid once
    batches_per_step: int = ruled(256, at_least(1, "a positive number of mini-batches per Lightning step"))
    shuffle: bool = True  # reshuffle mini-batches each epoch (no effect at full batch)
    standardize: bool = False  # lab 5's features are already in [-1, 1]
    seed: int = ruled(1, SEED)
    test_on: str = ruled("test", one_of(SPLITS))  # the rows trainer.test scores: test (held out), or train / val
    move_to_device: bool = True

    def problems(self) -> Problems:
        if not self.val_fraction + self.test_fraction < 1:
            yield "val_fraction", f"val_fraction + test_fraction < 1 (now {self.val_fraction + self.test_fraction:g})"


def _sha256(value: Any) -> bool:
    return len(value) == 64 and set(value) <= set("0123456789abcdef")


@dataclass
class CSVDataConfig(DataConfig):
    """`logreg.data.CSVDataModule`: a CSV (or Parquet) table with a 0/1 label column."""

    _target_: str = "logreg.data.CSVDataModule"
    path: str = ruled(MISSING, Rule(bool, "the CSV file, e.g. data.path=my.csv"))
    data_dir: str = "data"
    url: Optional[str] = None
    sha256: Optional[str] = ruled(None, or_null(Rule(_sha256, "64 lowercase hexadecimal digits")))
    header: Optional[bool] = None  # null detects a header row (a first row with any non-number)
    # the last column; a number from 1 (negative from the end) or a header name (no Union in OmegaConf 2.3)
    label_column: Any = ruled(
        -1, Rule(column_reference, "a column number counting from 1 (-1 for the last), or a header name")
    )
    encoding: str = ruled("utf-8", ENCODING)  # e.g. latin-1 for a file saved by an older spreadsheet
    features: Optional[List[Any]] = ruled(None, COLUMNS)  # names or numbers; null: all but the label and exclude
    exclude: Optional[List[Any]] = ruled(None, COLUMNS)
    categorical: Optional[List[Any]] = ruled(None, COLUMNS)
    impute: Optional[str] = ruled(
        None,
        or_null(
            one_of(IMPUTE_STRATEGIES), f"null (missing values are refused) or one of {', '.join(IMPUTE_STRATEGIES)}"
        ),
    )
    impute_value: float = ruled(0.0, Rule(math.isfinite, "a finite number"))
    missing_indicator: bool = False
    reference_level: str = ruled("first", one_of(REFERENCE_LEVELS))
    unseen_category: str = ruled("error", one_of(UNSEEN_CATEGORIES))
    # true, false, or auto: stream when the table is over a share of memory (logreg.stream)
    stream: Any = ruled(
        "auto",
        Rule(
            lambda stream: isinstance(stream, bool) or stream == "auto",
            "true (stream the table from disk in blocks), false (read it into memory) or auto",
        ),
    )


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
    encoding: Optional[str] = ruled(None, or_null(ENCODING, ENCODING.expected))


# ------------------------------------------------------------------------------------------- optimizers, schedulers

WEIGHT_DECAY = non_negative()
LR = Rule(lambda lr: 0 < lr < 3.4e38, "a positive float32 number (lab 5 uses lr=1)")  # below float32's largest number


@dataclass
class OptimizerConfig:
    """`model.optimizer`: the torch optimizer's name and its keyword arguments."""

    name: str = MISSING
    lr: float = ruled(1.0, LR)


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"
    momentum: float = ruled(0.0, non_negative())  # lab 5: plain gradient descent
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = ruled(0.0, WEIGHT_DECAY)  # lab 5 fits the unregularized model

    def problems(self) -> Problems:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            yield "nesterov", "nesterov=true only with momentum > 0 and dampening=0"


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = ruled(0.001, LR)
    betas: List[float] = ruled(
        rule=Rule(lambda betas: len(betas) == 2 and all(0 <= beta < 1 for beta in betas), "two numbers in [0, 1)"),
        factory=lambda: [0.9, 0.999],
    )
    eps: float = ruled(1e-8, positive("a positive number"))
    weight_decay: float = ruled(0.0, WEIGHT_DECAY)
    amsgrad: bool = False


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = ruled(0.01, WEIGHT_DECAY)


@dataclass
class LBFGSConfig(OptimizerConfig):
    name: str = "lbfgs"
    max_iter: int = ruled(20, WHOLE_AT_LEAST_1)
    max_eval: Optional[int] = ruled(None, or_null(WHOLE_AT_LEAST_1))
    tolerance_grad: float = ruled(1e-7, non_negative())
    tolerance_change: float = ruled(1e-9, non_negative())
    history_size: int = ruled(100, WHOLE_AT_LEAST_1)
    line_search_fn: Optional[str] = ruled(None, or_null(one_of(("strong_wolfe",)), "strong_wolfe or null"))


@dataclass
class NewtonConfig(OptimizerConfig):
    """`logreg.newton.Newton`: Newton's method with a line search, full batch, float64 (trainer.precision=64-true)."""

    name: str = "newton"
    max_iter: int = ruled(100, WHOLE_AT_LEAST_1)
    tolerance_grad: float = ruled(1e-8, non_negative())


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
    T_max: int = ruled(100, EPOCHS_AT_LEAST_1)  # noqa: N815 - torch's argument name
    eta_min: float = ruled(0.0, non_negative("a learning rate >= 0"))


@dataclass
class StepConfig(SchedulerConfig):
    name: str = "step"
    step_size: int = ruled(30, EPOCHS_AT_LEAST_1)
    gamma: float = ruled(0.1, between(0, 1, "a factor in (0, 1]", low_open=True))


@dataclass
class PlateauConfig(SchedulerConfig):
    name: str = "plateau"
    monitor: str = "val/loss"  # min or max follows from the metric (a loss falls, an accuracy rises)
    # lr is multiplied by this when `monitor` stops improving
    factor: float = ruled(0.1, between(0, 1, "a factor in (0, 1)", low_open=True, high_open=True))
    patience: int = ruled(10, EPOCHS_AT_LEAST_0)  # epochs without improvement before lr falls
    threshold: float = ruled(1e-4, non_negative())
    min_lr: float = ruled(0.0, non_negative("a learning rate >= 0"))


SCHEDULERS = {"cosine": CosineConfig, "step": StepConfig, "plateau": PlateauConfig}

# ---------------------------------------------------------------------------------------------------------- model

THRESHOLD_CRITERIA = ("f1", "youden", "cost")
PROBABILITY = between(0, 1, "a probability strictly between 0 and 1", low_open=True, high_open=True)


def _pos_weight(value: Any) -> bool:
    return value == "balanced" or (not isinstance(value, bool) and 0 < value < math.inf)


@dataclass
class ModelConfig:
    """`logreg.model.LogisticRegression` (n_features and the scaler come from the data, not from here)."""

    _target_: str = "logreg.model.LogisticRegression"
    threshold: float = ruled(0.5, PROBABILITY)  # predict 1 when p(y=1) >= 0.5, as the lab does
    # f1 | youden | cost: chosen on the validation rows instead (checkpointed)
    tune_threshold: Optional[str] = ruled(
        None,
        or_null(
            one_of(THRESHOLD_CRITERIA),
            f"null, or the criterion to maximize on the validation rows: {', '.join(THRESHOLD_CRITERIA)}",
        ),
    )
    # with tune_threshold=cost: what a false positive costs, in false negatives
    cost_ratio: float = ruled(
        1.0, positive("a positive number: the cost of a false positive over that of a false negative")
    )
    # weight of class-1 rows in the loss (> 0); balanced = n_negative / n_positive of training
    pos_weight: Any = ruled(
        1.0, Rule(_pos_weight, "a positive number (weight of class-1 rows in the loss), or balanced")
    )
    # the closed-form gradient of the mean BCE (fast, exact); autograd: torch's, as the lab
    gradient: str = ruled(
        "analytic",
        one_of(
            ("analytic", "autograd"), "analytic (the closed-form gradient, fast) or autograd (torch's, the lab's code)"
        ),
    )
    optimizer: Any = None  # set by the optimizer group (None: the model's default, SGD at lr=1)
    scheduler: Any = None


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


def _devices(devices: Any) -> bool:
    return bool(
        devices == "auto"
        or devices == -1
        or (whole(devices) and devices >= 1)
        or (isinstance(devices, list) and devices)
        or (isinstance(devices, str) and devices.replace(",", "").strip().isdigit())
    )


BATCHES = or_null(
    Rule(lambda value: not isinstance(value, bool) and value >= 0, ""), "a fraction in [0, 1] or a number of batches"
)


@dataclass
class TrainerConfig:
    """`lightning.pytorch.Trainer`: the arguments a user may set (logger, callbacks and plugins come from code)."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"
    strategy: Any = ruled(
        "auto",
        Rule(
            lambda strategy: not _starts_processes_itself(strategy),
            "ddp (trainer=ddp or ddp_cpu): spawned or forked processes (ddp_spawn, ddp_notebook, ddp_fork) are "
            "for notebooks, and hand the weights back through a file that is not a checkpoint",
        ),
    )
    devices: Any = ruled(1, Rule(_devices, "a number of devices >= 1, -1 or auto for all, or a list of device indices"))
    num_nodes: int = ruled(1, WHOLE_AT_LEAST_1)
    # the lab's float32 (or 64-true); logistic regression gains nothing from half precision
    precision: Any = ruled(
        "32-true",
        Rule(
            lambda precision: str(precision) in PRECISIONS,
            f"one of {', '.join(PRECISIONS)} (logistic regression gains nothing from half precision)",
        ),
    )
    max_epochs: int = ruled(100, EPOCHS_AT_LEAST_1)
    min_epochs: Optional[int] = None
    max_steps: int = ruled(
        -1,
        Rule(lambda steps: steps == -1 or steps >= 1, "a whole number of optimizer steps >= 1, or -1 for no limit"),
    )
    max_time: Optional[str] = None
    fast_dev_run: Any = ruled(
        False,
        Rule(lambda value: isinstance(value, bool) or value >= 0, "true, false or a number of batches >= 1"),
    )
    limit_train_batches: Optional[Any] = ruled(None, BATCHES)
    limit_val_batches: Optional[Any] = ruled(None, BATCHES)
    limit_test_batches: Optional[Any] = ruled(None, BATCHES)
    overfit_batches: Any = ruled(0.0, BATCHES)
    val_check_interval: Optional[Any] = None
    check_val_every_n_epoch: Optional[int] = ruled(1, or_null(WHOLE_AT_LEAST_1))
    # validation is the training step's code; a pre-flight pass only costs start-up time
    num_sanity_val_steps: int = ruled(0, at_least(-1, "a whole number >= 0, or -1 for all"))
    # metrics are per epoch; this only silences the "fewer batches than interval" warning
    log_every_n_steps: int = ruled(1, WHOLE_AT_LEAST_1)
    enable_checkpointing: Optional[bool] = None
    enable_progress_bar: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    # Lightning refuses it with manual optimization, which the model uses
    accumulate_grad_batches: int = ruled(
        1,
        Rule(
            lambda value: value == 1,
            "1: the model makes its own updates; for larger steps use a larger data.batch_size",
        ),
    )
    gradient_clip_val: Optional[float] = ruled(  # likewise
        None,
        Rule(
            lambda value: value is None,
            "null: the model makes its own updates (manual optimization) and does not clip; use a smaller lr",
        ),
    )
    gradient_clip_algorithm: Optional[str] = None
    # same seed, same numbers (Lightning also sets CUBLAS_WORKSPACE_CONFIG on GPUs)
    deterministic: Any = ruled(True, Rule(lambda value: value in (True, False, "warn", None), "true, false or warn"))
    benchmark: Optional[bool] = None
    inference_mode: bool = True
    # simple, advanced, pytorch, or a profiler config with a _target_ (debug=profiler)
    profiler: Any = ruled(
        None,
        Rule(
            lambda value: (
                value in (None, "simple", "advanced", "pytorch") or (isinstance(value, dict) and "_target_" in value)
            ),
            "simple, advanced, pytorch, a profiler config with a _target_, or null",
        ),
    )
    detect_anomaly: bool = False
    barebones: bool = ruled(
        False, Rule(lambda value: not value, "false: barebones mode disables the logging the model relies on")
    )
    reload_dataloaders_every_n_epochs: int = 0
    default_root_dir: Optional[str] = None

    def problems(self) -> Problems:
        if self.min_epochs is not None and not 0 <= self.min_epochs <= self.max_epochs:
            yield "min_epochs", f"a whole number in [0, max_epochs={self.max_epochs}], or null"


def counts_batches(trainer: TrainerConfig) -> bool:
    """Whether a Trainer option counts training batches (a number of them, or a fraction below 1): then each
    Lightning step must be one mini-batch, not `data.batches_per_step` of them."""

    def counts(value: Any) -> bool:
        return whole(value) or (isinstance(value, float) and 0 < value < 1)

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


# MLflow's tracking stores: a file store, a database (SQLAlchemy's dialects, `dialect+driver:`), a server, Databricks
TRACKING_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc")


def tracking_uri_known(uri: str) -> bool:
    """Whether MLflow can store runs at `uri`: a scheme it knows, or a local path (a Windows drive letter included)."""
    scheme, colon, _ = uri.partition(":")
    if not colon or len(scheme) == 1 or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return bool(uri.strip())  # no scheme: a local folder
    return scheme.split("+", 1)[0].lower() in TRACKING_SCHEMES


@dataclass
class MLflowConfig:
    _target_: str = "lightning.pytorch.loggers.MLFlowLogger"
    experiment_name: str = "logreg"
    run_name: Optional[str] = None  # MLflow names the run; the run folder is among its parameters
    tracking_uri: Optional[str] = ruled(
        None,
        or_null(
            Rule(tracking_uri_known, ""),
            f"a tracking URI MLflow stores runs at ({', '.join(f'{s}:' for s in TRACKING_SCHEMES)}) or a local "
            "folder, e.g. sqlite:///logs/mlflow.db or http://host:5000",
        ),
    )
    save_dir: Optional[str] = None
    log_model: bool = False  # checkpoints stay in the run folder

    def problems(self) -> Problems:
        if self.tracking_uri is None and self.save_dir is None:  # Lightning would store the runs in ./file:None
            yield "tracking_uri", "a tracking URI or a local folder (null only with logger.save_dir=<a folder>)"


@dataclass
class CheckpointConfig:
    _target_: str = "lightning.pytorch.callbacks.ModelCheckpoint"
    dirpath: Optional[str] = None
    filename: Optional[str] = None
    monitor: Optional[str] = None
    mode: str = ruled("min", MIN_OR_MAX)
    save_top_k: int = ruled(1, at_least(-1, "a whole number >= 0, or -1 to keep all"))
    save_last: Optional[bool] = None
    every_n_epochs: Optional[int] = ruled(None, or_null(at_least(0, "a whole number >= 0")))
    enable_version_counter: bool = True
    auto_insert_metric_name: bool = True


@dataclass
class LastCheckpointConfig:
    _target_: str = "logreg.callbacks.LastCheckpoint"
    dirpath: str = MISSING
    filename: str = "last"  # last.ckpt: resume with ckpt_path=.../last.ckpt
    # at most a second of training is lost to a kill; 0 writes every epoch (lab 5's: 1 ms)
    every_seconds: float = ruled(1.0, non_negative("a number of seconds >= 0 (0: every epoch)"))


@dataclass
class EarlyStoppingConfig:
    _target_: str = "lightning.pytorch.callbacks.EarlyStopping"
    monitor: str = MISSING
    mode: str = ruled("min", MIN_OR_MAX)
    patience: int = ruled(3, EPOCHS_AT_LEAST_0)
    min_delta: float = ruled(0.0, non_negative())


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

    folds: int = ruled(
        0, Rule(lambda folds: folds == 0 or folds >= 2, "0 (no cross-validation) or a number of folds >= 2")
    )
    refit: bool = True
    # the folds train together, as one run, where trials can (hydra/launcher=together's rules); false: one by one
    together: bool = True


COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "cluster")  # logreg.inference.COV_TYPES


@dataclass
class InferenceConfig:
    """`inference`: how the coefficients' standard errors are computed (`logreg.inference.infer`)."""

    cov_type: str = ruled("nonrobust", one_of(COV_TYPES))
    cluster: Optional[str] = None  # the data file's column (header name, or number from 1) of each row's cluster id

    def problems(self) -> Problems:
        if self.cov_type == "cluster" and not self.cluster:
            yield (
                "cluster",
                "the column of the rows' cluster ids (a header name or a number from 1) with cov_type=cluster",
            )
        if self.cov_type != "cluster" and self.cluster:
            yield "cluster", "null unless inference.cov_type=cluster"


def value_of(node: Any, name: str) -> Any:
    """`node.name` of a schema dataclass, or `node[name]` of a plain mapping; None where it has none."""
    return node.get(name) if isinstance(node, Mapping) else getattr(node, name, None)


@dataclass
class TrainConfig:
    """train.py: conf/train.yaml."""

    data: Any = MISSING
    model: ModelConfig = ruled(factory=ModelConfig)
    trainer: TrainerConfig = ruled(factory=TrainerConfig)
    logger: Any = None
    callbacks: Dict[str, Any] = ruled(factory=dict)
    cv: CVConfig = ruled(factory=CVConfig)
    inference: InferenceConfig = ruled(factory=InferenceConfig)
    lr: float = ruled(1.0, positive("a positive number (lab 5 uses lr=1)"))
    epochs: int = ruled(100, EPOCHS_AT_LEAST_1)
    seed: int = ruled(1, SEED)
    threads: Optional[int] = ruled(
        1, or_null(at_least(1, ""), "a number of CPU threads >= 1, or null for torch's default")
    )
    ckpt_path: Optional[str] = ruled(
        None,
        or_null(CHECKPOINT_FILE, "an existing checkpoint file (logs/runs/<run>/checkpoints/last.ckpt), or null"),
    )
    trust_checkpoint: bool = False
    monitor: str = "val/loss"
    optimized_metric: Any = "val/loss"  # a metric, or a list of them: one objective each (hparams_search=optuna)

    def metrics(self) -> dict[str, list[str]]:
        return train_metrics(self)

    def monitors(self) -> Iterator[tuple[str, str]]:
        """(key, metric) for every key that names a metric to watch: `monitor`, the scheduler's, any callback's."""
        yield "monitor", self.monitor
        scheduler_monitor = value_of(self.model.scheduler, "monitor")
        if scheduler_monitor is not None:
            yield "model.scheduler.monitor", scheduler_monitor
        for name, callback in (self.callbacks or {}).items():
            watched = value_of(callback, "monitor")
            if watched is not None:
                yield f"callbacks.{name}.monitor", watched

    def sweep_problems(self) -> Problems:
        return sweep_problems(self)

    def problems(self) -> Problems:
        if not isinstance(self.data, DataConfig):
            return
        metrics = self.metrics()
        has_val = "val/loss" in metrics["fit"]
        for key, monitor in self.monitors():
            if monitor not in metrics["fit"]:
                no_val = monitor.startswith("val/") and not has_val
                why = " (data.val_fraction=0: no validation rows)" if no_val else ""
                yield key, f"a metric logged while fitting{why}: {', '.join(metrics['fit'])}"
        scheduler_monitor = value_of(self.model.scheduler, "monitor")
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


def train_metrics(cfg: Any) -> dict[str, list[str]]:
    """The metrics a training run logs (`run_metrics`) for `cfg` (a `TrainConfig`, or the composed config as a
    node): validation ones where there are validation rows, and so on."""
    data, folds = cfg.data, cfg.cv.folds
    validates = cfg.trainer.limit_val_batches != 0  # limit_val_batches=0: Lightning skips validation altogether
    return run_metrics(
        val=validates and (data.val_fraction > 0 or folds >= 2),
        test=data.test_fraction > 0 or data.test_on != "test",
        cv=folds >= 2,
    )


def sweep_problems(cfg: Any) -> Problems:
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


@dataclass
class EvalConfig:
    """eval.py: conf/eval.yaml."""

    ckpt_path: str = ruled(MISSING, CHECKPOINT_FILE)
    split: Optional[str] = ruled(
        None, or_null(one_of(SPLITS), "test, val, train, or null for the rows training tested on")
    )
    data: DataLocation = ruled(factory=DataLocation)
    trust_checkpoint: bool = False
    allow_changed_data: bool = False
    threads: Optional[int] = ruled(1, THREADS)
    trainer: TrainerConfig = ruled(factory=TrainerConfig)
    logger: Any = None


@dataclass
class PredictConfig:
    """predict.py: conf/predict.yaml."""

    ckpt_path: str = ruled(MISSING, CHECKPOINT_FILE)
    input: str = MISSING
    output: str = "predictions.csv"
    overwrite: bool = False
    header: Optional[bool] = None
    encoding: str = "utf-8"
    threshold: Optional[float] = ruled(
        None, or_null(PROBABILITY, "a probability strictly between 0 and 1, or null for the model's own")
    )
    trust_checkpoint: bool = False
    # a level (0.95): adds `lower` and `upper` bounds on each row's probability
    interval: Optional[float] = ruled(
        None,
        or_null(PROBABILITY, "a confidence level strictly between 0 and 1 (0.95), or null for no intervals"),
    )


@dataclass
class ExportConfig:
    """export.py: conf/export.yaml."""

    ckpt_path: str = ruled(MISSING, CHECKPOINT_FILE)
    format: str = ruled("onnx", one_of(("onnx", "torchscript"), "onnx or torchscript"))
    output: Optional[str] = None
    overwrite: bool = False
    trust_checkpoint: bool = False


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
ENTRY_SCHEMAS = {"train": TrainConfig, "eval": EvalConfig, "predict": PredictConfig, "export": ExportConfig}

# Names this module held before 0.2, and where they live now: `logreg.schema.CheckConfig` in a config copied from an
# older conf/ still loads, with a warning.
MOVED = {
    "check_config": "logreg.checking",
    "check_arguments": "logreg.checking",
    "unknown_key": "logreg.checking",
    "expected_type": "logreg.checking",
    "as_dict": "logreg.checking",
    "CheckConfig": "logreg.hydra_hooks",
    "optuna_seed": "logreg.hydra_hooks",
    "STAGE_METRICS": "logreg.metric_names",
    "LOWER_IS_BETTER": "logreg.metric_names",
    "metric_mode": "logreg.metric_names",
    "metric_direction": "logreg.metric_names",
}


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module 'logreg.schema' has no attribute {name!r}")
    warnings.warn(
        f"logreg.schema.{name} moved to {MOVED[name]}.{name} (0.2); import it from there", DeprecationWarning, 2
    )
    return getattr(importlib.import_module(MOVED[name]), name)
