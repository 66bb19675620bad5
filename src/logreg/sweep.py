"""The summary of a Hydra multirun: every trial's overrides, metrics, status and folder, best first; and trials that
differ only by `seed`, grouped, with the mean, standard deviation and count of each metric.

`SweepSummary` is a Hydra callback (conf/train.yaml, `hydra.callbacks`). After each trial it rewrites summary.csv,
summary.md (and, when seeds repeat, summary_by_seed.csv) in the sweep folder from what the trial folders hold, so the
tables are complete even if the sweep itself ends with an error; at the end of the sweep it prints them, with as
many metric columns as the terminal has room for (the CSV holds them all).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from logreg.metric_names import metric_mode, objectives
from logreg.optuna_trial import PRUNED_FILE
from logreg.outputs import write_text

ERROR_FILE = "error.txt"  # a failed trial's error, written into its folder by logreg.errors.one_line_errors
SHOWN_METRICS = ("val/loss", "val/acc", "val/auroc", "cv/val/loss", "test/loss", "test/acc")  # printed when they fit
ROW_KEYS = ("trial", "status", "pareto", "overrides", "error", "run_dir")


def read_trials(sweep_dir: Path, known: dict[str, dict] | None = None, again: str | None = None) -> list[dict]:
    """One row per trial folder: number, overrides, status, run folder, error, and every final metric.

    `known`: rows read before, by folder name, which this call adds to: the row of a trial that has ended (ok,
    pruned, failed) is not read again, except the folder named `again` (the trial that just ended). So a sweep that
    updates its summary after each trial reads each trial folder once, not once per later trial."""
    rows = []
    for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
        trial_dir = overrides_file.parent.parent
        row = None if known is None or trial_dir.name == again else known.get(trial_dir.name)
        if row is None or row["status"] == "running":
            row = read_trial(trial_dir)
            if known is not None:
                known[trial_dir.name] = row
        rows.append(row)
    return rows


def read_trial(trial_dir: Path) -> dict:
    """The row of one trial folder (`read_trials`)."""
    metrics_file, error_file = trial_dir / "metrics.json", trial_dir / ERROR_FILE
    status = "ok" if metrics_file.is_file() else "failed" if error_file.is_file() else "running"
    if status == "ok" and (trial_dir / PRUNED_FILE).is_file():  # stopped early by the Optuna pruner
        status = "pruned"
    return {
        "trial": int(trial_dir.name.split("_", 1)[0]),
        "status": status,
        "overrides": " ".join(yaml.safe_load((trial_dir / ".hydra" / "overrides.yaml").read_text()) or []),
        **(json.loads(metrics_file.read_text()) if status in ("ok", "pruned") else {}),
        "error": error_file.read_text().strip() if status == "failed" else "",
        "run_dir": str(trial_dir),
    }


def short_override(item: str) -> str:
    """`key=value` with a float value to 3 significant digits: `lr=0.012297416195826564` as `lr=0.0123`."""
    key, equals, value = item.partition("=")
    try:
        number = float(value)
    except ValueError:
        return item
    if not equals or not any(c in value for c in ".eE") or not math.isfinite(number):
        return item
    return f"{key}={number:.3g}"


def short_values(override_dirname: str) -> str:
    """A trial folder's name part (hydra.sweep.subdir): the overrides with every float to 3 significant digits
    (`short_override`), and `/` as `-` (monitor=val/acc would nest folders); the job number before it keeps folders
    distinct, and the full values stay in the folder's .hydra/overrides.yaml and the summary."""
    return ",".join(short_override(item) for item in override_dirname.split(",")).replace("/", "-")  # never nested


def trial_line(metrics: dict[str, float], optimized_metric: Any) -> str:
    """The one line a trial of a sweep prints as it ends: its number, its overrides (floats shortened: the summary has
    them whole) and what it scored."""
    from logreg.report import metric_line  # the caller has trained: Lightning is imported already

    hydra_cfg = HydraConfig.get()
    overrides = " ".join(short_override(o) for o in hydra_cfg.overrides.task) or "-"
    return (
        f"trial {hydra_cfg.job.num} ({overrides}): {metric_line(metrics, [*objectives(optimized_metric), 'val/acc'])}"
    )


def rank(rows: list[dict], metric: str, direction: str) -> list[dict]:
    """Completed trials best first by `metric` (direction "minimize" or "maximize"), then pruned ones (their value
    where the pruner stopped them), then the others by number."""
    sign = 1 if direction == "minimize" else -1

    def key(row: dict) -> tuple:
        value = row.get(metric)
        if value is None or math.isnan(value):  # no value: ranked after every trial that has one
            return (True, True, 0.0, row["trial"])
        return (False, row.get("status") == "pruned", sign * value, row["trial"])  # pruned: after the completed

    return sorted(rows, key=key)


def pareto_front(rows: list[dict], metrics: list[str]) -> list[dict]:
    """Several objectives: the completed trials no other completed trial beats on every metric (and on one strictly),
    marked `pareto: yes` and put first in their ranked order; the others follow, in theirs."""
    signs = [1 if metric_mode(metric) == "min" else -1 for metric in metrics]

    def scores(row: dict) -> list[float] | None:
        values = [row.get(metric) for metric in metrics]
        if row["status"] != "ok" or any(not isinstance(v, (int, float)) or math.isnan(v) for v in values):
            return None
        return [sign * float(v) for sign, v in zip(signs, values)]  # type: ignore[arg-type]

    scored = [(row, scores(row)) for row in rows]
    done = [score for _, score in scored if score is not None]
    front = []
    for row, score in scored:
        dominated = score is None or any(all(o <= s for o, s in zip(other, score)) and other != score for other in done)
        row["pareto"] = "" if dominated else "yes"
        front.append(row)
    return [row for row in front if row["pareto"]] + [row for row in front if not row["pareto"]]


def group_by_seed(rows: list[dict]) -> list[dict]:
    """Completed trials whose overrides differ only by `seed=...`, grouped: one row per group of two or more, with
    each metric's mean, standard deviation (`<metric>_std`) and the group's size (`count`)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == "ok":
            others = " ".join(o for o in row["overrides"].split() if not o.startswith(("seed=", "+seed=")))
            groups.setdefault(others, []).append(row)
    summary = []
    for others, members in groups.items():
        if len(members) < 2:
            continue
        group: dict[str, Any] = {
            "overrides": others,
            "count": len(members),
            "seeds": " ".join(o for m in members for o in m["overrides"].split() if o.startswith(("seed=", "+seed="))),
        }
        for name in sorted({k for m in members for k in m} - set(ROW_KEYS)):
            values = [m[name] for m in members if isinstance(m.get(name), (int, float))]
            if len(values) == len(members):
                group[name] = statistics.fmean(values)
                group[f"{name}_std"] = statistics.stdev(values)
        summary.append(group)
    return summary


def _csv(rows: list[dict], columns: list[str]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_summary(rows: list[dict], sweep_dir: Path, metric: str) -> None:
    """summary.csv (every column), summary.md (the main ones) and summary_by_seed.csv, each replaced atomically (the
    files are this sweep's own: `overwrite` lets each trial rewrite them)."""
    metric_columns = sorted({k for row in rows for k in row} - set(ROW_KEYS))
    ranked = [{"rank": number, **row} for number, row in enumerate(rows, start=1)]
    pareto = ["pareto"] if any("pareto" in row for row in rows) else []  # several objectives
    write_text(
        sweep_dir / "summary.csv",
        _csv(ranked, ["rank", "trial", "status", *pareto, "overrides", *metric_columns, "error", "run_dir"]),
        overwrite=True,
        same_kind=_ours,
    )
    shown = ["rank", "trial", "status", *pareto, "overrides", *dict.fromkeys([metric, *SHOWN_METRICS]), "run_dir"]
    markdown = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    markdown += ["| " + " | ".join(_cell(row.get(c, "")) for c in shown) + " |" for row in ranked]
    write_text(sweep_dir / "summary.md", "\n".join(markdown) + "\n", overwrite=True, same_kind=_ours)
    groups = group_by_seed(rows)
    if groups:
        columns = [
            "overrides",
            "count",
            "seeds",
            *sorted({k for g in groups for k in g} - {"overrides", "count", "seeds"}),
        ]
        write_text(sweep_dir / "summary_by_seed.csv", _csv(groups, columns), overwrite=True, same_kind=_ours)


def _ours(path: Path) -> bool:
    """An earlier version of one of these summary files (each trial rewrites them)."""
    with path.open() as file:
        return file.readline().startswith(("rank,trial,", "| rank | trial |", "overrides,count,"))


def _cell(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value).replace("|", "\\|")


def print_summary(rows: list[dict], sweep_dir: Path, metric: str, console: Any = None) -> None:
    """The ranked trials and the seed groups, as tables that fit the terminal (`console`, by default rich's on
    stdout): metric columns are dropped from the right until the table fits; summary.csv has them all."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    console = console or Console()
    metrics = [m for m in dict.fromkeys([metric, *SHOWN_METRICS]) if any(m in row for row in rows)] or [metric]

    def table(count: int) -> Table:
        first = (
            "the Pareto front first (status ok*)" if any(row.get("pareto") for row in rows) else f"best {metric} first"
        )
        result = Table(title=f"Sweep summary, {first} (every column: {sweep_dir}/summary.csv)")
        for column in ("trial", "status"):
            result.add_column(column, no_wrap=True)
        result.add_column("overrides", overflow="fold", min_width=12)
        for name in metrics[:count]:
            result.add_column(name, justify="right", no_wrap=True)
        for row in rows:
            result.add_row(
                str(row["trial"]),
                row["status"] + ("*" if row.get("pareto") else ""),
                row["overrides"] or "-",
                *(_cell(row.get(name, "")) for name in metrics[:count]),
            )
        return result

    def least_width(count: int) -> int:  # measured unbounded: console.measure clamps to the console's width
        return Measurement.get(console, console.options.update(max_width=1 << 20), table(count)).minimum

    count = len(metrics)
    while count > 1 and least_width(count) > console.width:
        count -= 1
    console.print(table(count))
    groups = group_by_seed(rows)
    if groups:
        seeds = Table(title=f"Trials that differ only by seed: mean ± std ({sweep_dir}/summary_by_seed.csv)")
        seeds.add_column("overrides", overflow="fold")
        seeds.add_column("n", justify="right")
        seeds.add_column(metric, justify="right", no_wrap=True)
        for group in groups:
            seeds.add_row(
                group["overrides"] or "-",
                str(group["count"]),
                f"{group.get(metric, math.nan):.4f} ± {group.get(f'{metric}_std', math.nan):.4f}",
            )
        console.print(seeds)


class SweepSummary(Callback):
    """Hydra callback: keeps the sweep summary current after every trial and prints it at the end. After a trial it
    reads that trial's folder and those it has not seen end (each finished trial's row is kept); at the end of the
    sweep it reads every folder again, once."""

    def __init__(self) -> None:
        self._rows: dict[str, dict] = {}  # trial folder name -> its row, while the sweep runs

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            sweep_dir = Path(hydra_cfg.sweep.dir)
            rows = read_trials(sweep_dir, self._rows, again=Path(hydra_cfg.runtime.output_dir).name)
            write_summary(self._ranked(config, rows), sweep_dir, objectives(config.optimized_metric)[0])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = self._ranked(config, read_trials(sweep_dir))
        write_summary(rows, sweep_dir, objectives(config.optimized_metric)[0])
        print_summary(rows, sweep_dir, objectives(config.optimized_metric)[0])

    @staticmethod
    def _ranked(config: DictConfig, rows: list[dict]) -> list[dict]:
        metrics = objectives(config.optimized_metric)
        direction = "minimize" if metric_mode(metrics[0]) == "min" else "maximize"
        ranked = rank(rows, metrics[0], direction)
        return pareto_front(ranked, metrics) if len(metrics) > 1 else ranked


class PrepareStudy(Callback):
    """Hydra callback (hparams_search=optuna): with a shared study storage, create its tables once, before the sweeper
    connects. Workers started together on a new SQLite file would otherwise each create them, and all but one fail;
    for SQLite the creation is serialized by a lock file beside the database.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        storage = OmegaConf.select(config, "hydra.sweeper.storage")
        if not storage:
            return
        import fcntl

        from logreg.quiet import quiet_third_parties

        quiet_third_parties()  # before optuna's storage sets up its tables: alembic's lines stay off the console
        import optuna

        lock_path = Path(f"{storage.removeprefix('sqlite:///')}.lock") if storage.startswith("sqlite:///") else None
        if lock_path is None:  # a database server takes concurrent connections itself
            optuna.storages.RDBStorage(storage)
            return
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # blocks until the other worker has created the tables
            optuna.storages.RDBStorage(storage)
