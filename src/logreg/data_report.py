"""The data report: per column of the source, its type, missing values, share of zeros, distinct values, and what
was done with it (the label, excluded, one-hot encoded, imputed, dropped as constant, used as is). A run writes it
as `data_report.csv` into its folder and as a table into TensorBoard's TEXT tab."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from logreg.encoding import ColumnEncoding, Encoding
from logreg.outputs import write_text

if TYPE_CHECKING:
    from logreg.table import Table

FIELDS = ("column", "type", "missing", "zeros", "distinct", "done")


def column_report(table: Table, encoding: Encoding) -> list[dict[str, Any]]:
    """The report's rows, one per source column in file order (per feature where the table has no source file)."""
    source = table.source
    by_column = dict(zip(table.source_columns, encoding.columns)) if source is not None else {}
    if source is None:
        names, values, text = table.feature_names, table.features, set(table.levels)
        by_column = dict(enumerate(encoding.columns))
    else:
        names, values, text = source.names, source.values, set(source.levels)
    rows = []
    for index, name in enumerate(names):
        column = values[:, index]
        missing = np.isnan(column)
        present = column[~missing]
        is_text = index in text
        if source is not None and index == table.label_column:
            done = "the label"
        elif index not in by_column:
            done = "excluded"
        else:
            done = _what_was_done(by_column[index], int(missing.sum()))
        rows.append(
            {
                "column": name,
                "type": "text" if is_text else "number",
                "missing": int(missing.sum()),
                "zeros": "" if is_text or not len(present) else round(float((present == 0).mean()), 6),
                "distinct": len(np.unique(present)),
                "done": done,
            }
        )
    return rows


def _what_was_done(column: ColumnEncoding, missing: int) -> str:
    parts = []
    if column.constant:
        return "dropped: one value in every training row"
    if column.categories is not None:
        kept = len(column.output_names()) - int(column.indicator)
        reference = f", reference {column.reference!r}" if column.reference is not None else ""
        parts.append(f"one-hot: {kept} columns{reference}")
    if column.fill is not None and missing:
        fill = column.fill if isinstance(column.fill, str) else f"{column.fill:.6g}"
        parts.append(f"{missing} missing imputed with {fill}")
    if column.indicator:
        parts.append(f"indicator {column.name}:missing")
    return "; ".join(parts) or "as is"


def as_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(FIELDS) + " |", "|" + " --- |" * len(FIELDS)]
    lines += ["| " + " | ".join(str(row[field]).replace("|", "\\|") for field in FIELDS) + " |" for row in rows]
    return "\n".join(lines)


def write_data_report(rows: list[dict[str, Any]], folder: Path, loggers: list[Any]) -> None:
    """`data_report.csv` in `folder`, and the table in every TensorBoard logger's TEXT tab (tag `data_report`)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list[str](FIELDS))
    writer.writeheader()
    writer.writerows(rows)
    write_text(folder / "data_report.csv", text.getvalue())
    from lightning.pytorch.loggers import TensorBoardLogger  # the caller trains: Lightning is imported already

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text("data_report", as_markdown(rows), 0)
            logger.experiment.flush()
