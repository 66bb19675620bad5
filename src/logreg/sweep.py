"""The summary of a Hydra multirun: every trial's overrides, metrics, status and folder, best first.

`SweepSummary` is a Hydra callback (conf/config.yaml, `hydra.callbacks`). After each trial it rewrites
summary.csv and summary.md in the sweep folder from what the trial folders hold, so the table is complete even if
the sweep itself ends with an error; at the end of the sweep it prints the table.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from logreg.errors import find_user_error

SHOWN_METRICS = ("val/loss", "val/acc", "val/auroc", "test/loss", "test/acc")  # columns of the printed table


def read_trials(sweep_dir: Path) -> list[dict]:
    """One row per trial folder: number, overrides, status, run folder, error, and every final metric."""
    rows = []
    for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
        trial_dir = overrides_file.parent.parent
        metrics_file, error_file = trial_dir / "metrics.json", trial_dir / "error.txt"
        status = "ok" if metrics_file.is_file() else "failed" if error_file.is_file() else "running"
        rows.append({
            "trial": int(trial_dir.name.split("_", 1)[0]),
            "status": status,
            "overrides": " ".join(yaml.safe_load(overrides_file.read_text()) or []),
            **(json.loads(metrics_file.read_text()) if status == "ok" else {}),
            "error": error_file.read_text().strip() if status == "failed" else "",
            "run_dir": str(trial_dir),
        })
    return rows


def rank(rows: list[dict], metric: str, direction: str) -> list[dict]:
    """Completed trials best first by `metric` (direction "minimize" or "maximize"), then the others by number."""
    sign = 1 if direction == "minimize" else -1

    def key(row):
        value = row.get(metric)
        missing = value is None or math.isnan(value)
        return (missing, 0.0 if missing else sign * value, row["trial"])

    return sorted(rows, key=key)


def write_summary(rows: list[dict], sweep_dir: Path, metric: str) -> None:
    """summary.csv (every column) and summary.md (the main ones), each replaced atomically."""
    metric_columns = sorted({k for row in rows for k in row} - {"trial", "status", "overrides", "error", "run_dir"})
    columns = ["rank", "trial", "status", "overrides", *metric_columns, "error", "run_dir"]
    shown = ["rank", "trial", "status", "overrides", *dict.fromkeys([metric, *SHOWN_METRICS]), "run_dir"]
    ranked = [{"rank": number, **row} for number, row in enumerate(rows, start=1)]
    markdown = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    markdown += ["| " + " | ".join(_cell(row.get(c, "")) for c in shown) + " |" for row in ranked]

    def write(name: str, fill) -> None:  # trials finishing together never leave a half-written table
        partial = sweep_dir / f".{name}.{os.getpid()}.part"
        with partial.open("w", newline="") as file:
            fill(file)
        partial.replace(sweep_dir / name)

    def fill_csv(file) -> None:
        writer = csv.DictWriter(file, columns, restval="")
        writer.writeheader()
        writer.writerows(ranked)

    write("summary.csv", fill_csv)
    write("summary.md", lambda file: file.write("\n".join(markdown) + "\n"))


def _cell(value) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value).replace("|", "\\|")


class SweepSummary(Callback):
    """Hydra callback: records a failed trial's error, keeps the sweep summary current, prints it at the end."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        if job_return.status == JobStatus.FAILED:
            error = find_user_error(job_return._return_value) or job_return._return_value
            Path(hydra_cfg.runtime.output_dir, "error.txt").write_text(f"{type(error).__name__}: {error}\n")
        sweep_dir = Path(hydra_cfg.sweep.dir)
        write_summary(self._ranked(config, sweep_dir), sweep_dir, config.optimized_metric)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from rich.console import Console
        from rich.table import Table

        sweep_dir = Path(config.hydra.sweep.dir)
        rows = self._ranked(config, sweep_dir)
        write_summary(rows, sweep_dir, config.optimized_metric)
        table = Table(title=f"Sweep summary, best {config.optimized_metric} first ({sweep_dir}/summary.csv)")
        columns = ["trial", "status", "overrides", *dict.fromkeys([config.optimized_metric, *SHOWN_METRICS])]
        for column in columns:
            table.add_column(column, justify="right" if "/" in column else "left")
        for row in rows:
            table.add_row(*(_cell(row.get(c, "")) for c in columns))
        Console().print(table)

    @staticmethod
    def _ranked(config: DictConfig, sweep_dir: Path) -> list[dict]:
        metric = config.optimized_metric
        # Optuna's sweeper names its direction; a grid sweep has none: losses are minimized, scores maximized.
        direction = config.hydra.sweeper.get("direction") or ("minimize" if metric.endswith("loss") else "maximize")
        return rank(read_trials(sweep_dir), metric, str(direction).split(".")[-1])
