"""What a run reports at its end: final metrics and the learned coefficients, printed as tables and saved as files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from logreg.model import LogisticRegression


def coefficients(model: LogisticRegression, feature_names: list[str]) -> list[dict]:
    """One row per feature, then the intercept: the coefficient on the features as given, and its odds ratio.

    With a standardizing DataModule the scaling is folded in, so each coefficient is per unit of the raw feature.
    """
    weight, bias = model.folded_weights()  # (1, F), (1,)
    names = [*feature_names, "(intercept)"]
    values = [*weight.squeeze(0).tolist(), bias.item()]
    return [  # exp overflows past 709: an odds ratio that large is infinite for all purposes
        {"feature": name, "coefficient": w, "odds_ratio": math.exp(w) if w < 709 else math.inf}
        for name, w in zip(names, values)
    ]


def print_confusion_matrix(matrix: list[list[int]], run_dir: str, split: str) -> None:
    """Print the 2x2 counts [[tn, fp], [fn, tp]] as a table and write them to run_dir as confusion_matrix.json."""
    (tn, fp), (fn, tp) = matrix
    (Path(run_dir) / "confusion_matrix.json").write_text(json.dumps({"tn": tn, "fp": fp, "fn": fn, "tp": tp}) + "\n")
    table = Table(title=f"Confusion matrix ({split} rows)")
    for column in ("", "predicted 0", "predicted 1"):
        table.add_column(column, justify="right")
    table.add_row("true 0", str(tn), str(fp))
    table.add_row("true 1", str(fn), str(tp))
    Console().print(table)


def print_summary(metrics: dict[str, float], run_dir: str, model: LogisticRegression, feature_names: list[str]) -> None:
    """Print the final metrics and coefficients, and write them to run_dir as metrics.json and coefficients.csv."""
    run_dir = Path(run_dir)
    rows = coefficients(model, feature_names)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    with (run_dir / "coefficients.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    console = Console()
    table = Table(title="Final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        table.add_row(name, f"{metrics[name]:.6f}")
    console.print(table)
    table = Table(title="Coefficients (per unit of each feature as given)")
    for column in ("feature", "coefficient", "odds ratio"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for row in rows:
        table.add_row(row["feature"], f"{row['coefficient']:+.6g}", f"{row['odds_ratio']:.4g}")
    console.print(table)
    console.print(f"Run folder: [bold]{run_dir.resolve()}[/bold]  (tensorboard --logdir {run_dir})")
