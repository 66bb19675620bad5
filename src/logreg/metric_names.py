"""The metrics a run logs, by name (`<stage>/<name>`), and which way each is better.

`monitor` and `optimized_metric` must name one of them (the schema checks it); checkpoints, early stopping and the
plateau scheduler take their `mode` from `metric_mode`, and a sweeper its direction from `metric_direction` (both are
resolvers in the configs: `logreg.hydra_hooks`).
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import ListConfig

# What the model logs for each stage, as `<stage>/<name>`.
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
    if cv:  # the mean and spread over folds of every validation metric; the folds' own val/* stay in their folders
        final = [metric for metric in final if not metric.startswith("val/")]
        final += [f"cv/val/{name}{suffix}" for name in STAGE_METRICS["val"] for suffix in ("", "_std")]
    return {"fit": fit, "final": final}


def objectives(optimized_metric: Any) -> list[str]:
    """`optimized_metric` as a list: one metric, or several (one objective each)."""
    if isinstance(optimized_metric, (list, ListConfig)):
        return [str(metric) for metric in optimized_metric]
    return [str(optimized_metric)]


def objective_values(metrics: dict[str, float], optimized_metric: Any) -> float | list[float]:
    """What a run returns to a sweeper: the value of `optimized_metric` (NaN where the run did not measure it), or
    one value per metric of a list."""
    values = [metrics.get(metric, math.nan) for metric in objectives(optimized_metric)]
    return values if isinstance(optimized_metric, (list, ListConfig)) else values[0]


def metric_direction(optimized_metric: Any) -> str | list[str]:
    """The sweeper's direction for `optimized_metric`: minimize a loss, maximize an accuracy; a list for a list."""
    directions = ["minimize" if metric_mode(metric) == "min" else "maximize" for metric in objectives(optimized_metric)]
    return directions if isinstance(optimized_metric, (list, ListConfig)) else directions[0]
