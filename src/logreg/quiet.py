"""What a run does not print: third-party lines that say nothing about this run.

Lightning's informational lines (the GPU/TPU availability check, tips for other products) go to the run's log file
only, not the console; named upstream warnings are filtered, each for a stated reason. Anything else still shows.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

# (message regex, category, why it is not the user's concern)
UPSTREAM_WARNINGS = [
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        "Lightning 2.6's _pytree calls an API torch 2.13 deprecated; nothing a user of this project can change",
    ),
    (
        r"The dirpath has changed from .* therefore `best_model_score`",
        UserWarning,
        "every run, a resumed one too, writes into its own new folder by design; the best score restarts there",
    ),
    (
        r"(QMCSampler|GPSampler) is experimental|Argument ``(multivariate|constant_liar)`` is an experimental feature",
        Warning,  # optuna.exceptions.ExperimentalWarning (a Warning); optuna is not imported to name it
        "hydra/sweeper/sampler=qmc|gp and TPE's options name them; Optuna marks them experimental (the TPE options "
        "until 5.0), nothing a run can change",
    ),
    (
        r"The ``noload`` loader strategy is deprecated",
        DeprecationWarning,  # SQLAlchemy's SADeprecationWarning
        "MLflow's database store (logger=mlflow) under SQLAlchemy 2.1, which the sweep extra no longer keeps below 2",
    ),
    (
        r"It is recommended to use `self\.log\(.*sync_dist=True\)` when logging on epoch level",
        UserWarning,
        "under DDP every value the model logs is already reduced over the processes (the train sums through the "
        "strategy, the evaluation metrics gathered by torchmetrics); Lightning cannot see that",
    ),
    (
        r"You requested to overfit but enabled .* dataloader shuffling",
        UserWarning,
        "Lightning takes any sampler but torch's SequentialSampler for a shuffling one; debug=overfit serves in order",
    ),
]


# (logger, message regex, why the line is not the user's concern): dropped from that logger, console and log file
UPSTREAM_LOG_LINES = [
    (
        "torch.onnx._internal.exporter._registration",
        r"torchvision is not installed",
        "torch's ONNX exporter registers torchvision's operators where torchvision is installed; this model uses none",
    ),
    (
        "lightning.pytorch.loggers.mlflow",
        r"Experiment with name .* not found\. Creating it",
        "the first run of an experiment creates it: that is what logger=mlflow is for",
    ),
]


class _DropLines(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def quiet_third_parties() -> None:
    """Send Lightning's console INFO lines to the log file only, and filter the upstream warnings listed above."""
    # Lightning's own console handlers, at INFO: on "lightning", and, when Lightning is imported before any logging
    # is set up (outside a Hydra run), on its subpackages' loggers too.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.stdout):
                handler.setLevel(logging.WARNING)
    for name in ("alembic", "mlflow"):  # database set-up lines of optuna's and MLflow's stores
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its logger's level when it is imported
    for name, message, _reason in UPSTREAM_LOG_LINES:
        upstream = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) and f.pattern.pattern == message for f in upstream.filters):
            upstream.addFilter(_DropLines(message))
    for message, category, _reason in UPSTREAM_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
