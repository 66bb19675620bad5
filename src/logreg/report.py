"""What a run reports at its end: the final metrics and the coefficients with their uncertainty, printed as tables and
saved as files (metrics.json, coefficients.csv, inference.json), and the run's knobs beside its final numbers in
whatever logger it has (TensorBoard's HPARAMS tab, MLflow's params and metrics, the CSV logger's files).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from rich import box
from rich.console import Console
from rich.table import Table as RichTable

from logreg.data import TabularDataModule
from logreg.inference import Inference, infer, infer_from_sums
from logreg.metric_names import STAGE_METRICS
from logreg.model import LogisticRegression
from logreg.outputs import write_text


def record_run(loggers: list[Logger], hyperparameters: dict[str, Any], metrics: dict[str, float]) -> None:
    """Give every logger the run's knobs and its final metrics (as `final/<name>`), each in its own way: TensorBoard
    links them in the HPARAMS tab; other loggers take them as parameters and metrics."""
    final = {f"final/{name}": value for name, value in metrics.items() if math.isfinite(value)}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hyperparameters, metrics=final)
        else:
            logger.log_hyperparams(hyperparameters)
            logger.log_metrics(final)
        logger.save()


def fit_inference(
    model: LogisticRegression, datamodule: TabularDataModule, cov_type: str = "nonrobust", cluster: str | None = None
) -> Inference:
    """Standard errors and tests of the model's coefficients on the rows it was trained on (float64); `cov_type`
    and `cluster` (the column of the rows' cluster ids) as `inference.cov_type` and `inference.cluster` say."""
    with torch.no_grad():
        weight, bias = model.folded_weights()  # (1, F), (1,): per unit of each feature as given
    weights = weight.detach().double().cpu().numpy().ravel()  # (F,)
    weight_decay = float(getattr(model.optimizer_options, "weight_decay", 0.0))
    pos_weight = float(model.options.pos_weight)
    table = datamodule.streamed_table
    if table is not None:  # a pass over the streamed training rows gives infer's sums
        return infer_from_sums(
            table.row_sums(np.append(weights, float(bias)), pos_weight),
            list(datamodule.feature_names),
            weight_decay=weight_decay,
            cov_type=cov_type,
        )
    rows = datamodule.split_rows("train")
    clusters = datamodule.column(cluster, "inference.cluster")[rows] if cluster else None
    return infer(
        datamodule.table.features[rows],
        datamodule.table.labels[rows],
        weights,
        float(bias),
        list(datamodule.feature_names),
        weight_decay=weight_decay,
        pos_weight=pos_weight,
        cov_type=cov_type,
        clusters=clusters,
    )


def report(
    metrics: dict[str, float],
    folder: Path,
    model: LogisticRegression | None,
    datamodule: TabularDataModule | None,
    cov_type: str = "nonrobust",
    cluster: str | None = None,
    show: bool = True,
) -> Inference | None:
    """Write metrics.json (and, with a model, coefficients.csv and inference.json) into `folder`; print them (unless
    not `show`: a sweep's trials trained together print one line each instead)."""
    console = Console()
    fit = fit_inference(model, datamodule, cov_type, cluster) if model is not None and datamodule is not None else None
    summary = {**metrics, **({"threshold": model.decision_threshold()} if model is not None else {})}
    write_text(folder / "metrics.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if show:  # a quiet console would still lay the tables out: not drawn at all
        console.print(_metrics_table(summary))
    if fit is not None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(fit.rows()[0]))
        writer.writeheader()
        writer.writerows(fit.rows())
        write_text(folder / "coefficients.csv", text.getvalue())
        write_text(
            folder / "inference.json",
            json.dumps(
                {"valid": fit.valid, "reason": fit.reason, "cov_type": cov_type, "cluster": cluster}
                | {"unidentified": fit.unidentified, "note": fit.note}
                | fit.summary(),
                indent=2,
            )
            + "\n",
        )
        if show:
            console.print(_coefficient_table(fit))
            console.print(_fit_statistics(fit))
    if show:
        console.print(f"Run folder: [bold]{folder.resolve()}[/bold]  (tensorboard --logdir {folder})")
    return fit


def metric_line(metrics: dict[str, float], names: list[str]) -> str:
    """`name=value` for each of `names` that `metrics` has: the one line a trial or a fold prints as it ends."""
    return " ".join(f"{name}={metrics[name]:.4f}" for name in dict.fromkeys(names) if name in metrics)


def report_cross_validation(
    metrics: dict[str, float], per_fold: list[dict[str, float]], folder: Path, show: bool
) -> None:
    """Write metrics.json (the folds' mean and spread, the refit's scores) into the run folder; print one table: each
    fold's validation metrics, their mean and std, and the refit's on the test rows."""
    write_text(folder / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    names = STAGE_METRICS["val"]
    title = f"Cross-validation: {len(per_fold)} folds on their validation rows, the refit on the test rows"
    table = RichTable(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("model")
    for name in names:
        table.add_column(name, justify="right", min_width=len(name))
    rows = [(f"fold {k}", {n: fold.get(f"val/{n}") for n in names}) for k, fold in enumerate(per_fold)]
    rows += [
        (statistic, {n: metrics.get(f"cv/val/{n}{suffix}") for n in names})
        for statistic, suffix in (("mean", ""), ("std", "_std"))
    ]
    if any(f"test/{n}" in metrics for n in names):
        rows.append(("refit", {n: metrics.get(f"test/{n}") for n in names}))
    for label, values in rows:
        table.add_row(label, *("" if values[n] is None else f"{values[n]:.4f}" for n in names))
    console = Console(quiet=not show)
    console.print(table)
    console.print(f"Run folder: [bold]{folder.resolve()}[/bold]  (tensorboard --logdir {folder})")


def _metrics_table(metrics: dict[str, float]) -> RichTable:
    table = RichTable(title="Final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        table.add_row(name, f"{metrics[name]:.6f}")
    return table


def _coefficient_table(fit: Inference) -> RichTable:
    title = "Coefficients (per unit of each feature as given), 95% intervals; AME: average marginal effect on p"
    table = RichTable(title=title if fit.valid else "Coefficients (per unit of each feature as given)")
    columns = ["feature", "coefficient", "std error", "z", "p", "95% CI", "odds ratio", "odds ratio 95% CI", "AME (se)"]
    for column in columns if fit.valid else ["feature", "coefficient", "odds ratio", "AME"]:
        table.add_column(column, justify="left" if column == "feature" else "right")
    for c in fit.coefficients:
        if fit.valid:
            table.add_row(
                c.name,
                f"{c.estimate:+.4g}",
                f"{c.std_error:.3g}",
                f"{c.z:+.2f}",
                _p(c.p_value),
                f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}]",
                f"{c.odds_ratio:.4g}",
                f"[{c.odds_ratio_low:.3g}, {c.odds_ratio_high:.3g}]",
                _effect(c.marginal_effect, c.marginal_effect_std_error),
            )
        else:
            table.add_row(c.name, f"{c.estimate:+.6g}", f"{c.odds_ratio:.4g}", _effect(c.marginal_effect, math.nan))
    return table


def _effect(effect: float, std_error: float) -> str:
    """An average marginal effect (the change in probability per unit of the feature), with its standard error."""
    if math.isnan(effect):
        return ""
    return f"{effect:+.3g}" + (f" ({std_error:.2g})" if not math.isnan(std_error) else "")


def _p(value: float) -> str:
    return "<1e-300" if value == 0 else f"{value:.2g}" if value < 1e-3 else f"{value:.3f}"


def _fit_statistics(fit: Inference) -> str:
    test = (
        f"likelihood-ratio test chi2({fit.lr_df}) = {fit.lr_statistic:.3f}, p = {_p(fit.lr_p_value)}; "
        if not math.isnan(fit.lr_statistic)
        else "no likelihood-ratio test (below the intercept-only model); "
    )
    pseudo_r2 = f", McFadden pseudo-R2 {fit.pseudo_r2:.4f}" if not math.isnan(fit.pseudo_r2) else ""
    lines = [
        f"Log-likelihood {fit.log_likelihood:.4f} (null {fit.null_log_likelihood:.4f}) on {fit.n_rows} training rows; "
        f"{test}AIC {fit.aic:.3f} and BIC {fit.bic:.3f} with df {fit.lr_df + 1}{pseudo_r2}",
    ]
    if fit.note:
        lines.append(f"[yellow]{fit.note}[/yellow]")
    if not fit.valid:
        lines.append(f"[yellow]No standard errors, p-values or intervals: {fit.reason}[/yellow]")
    return "\n".join(lines)


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, threshold: float) -> list[list[int]]:
    """[[tn, fp], [fn, tp]] of predicting 1 where probs >= threshold."""
    predicted, actual = probs >= threshold, labels > 0.5
    return [
        [int((~predicted & ~actual).sum()), int((predicted & ~actual).sum())],
        [int((~predicted & actual).sum()), int((predicted & actual).sum())],
    ]


def report_confusion_matrix(matrix: list[list[int]], folder: Path, split: str) -> None:
    """Print the 2x2 counts [[tn, fp], [fn, tp]] as a table and write them to folder/confusion_matrix.json."""
    (tn, fp), (fn, tp) = matrix
    write_text(folder / "confusion_matrix.json", json.dumps({"tn": tn, "fp": fp, "fn": fn, "tp": tp}) + "\n")
    table = RichTable(title=f"Confusion matrix ({split} rows)")
    for column in ("", "predicted 0", "predicted 1"):
        table.add_column(column, justify="right")
    table.add_row("true 0", str(tn), str(fp))
    table.add_row("true 1", str(fn), str(tp))
    Console().print(table)
