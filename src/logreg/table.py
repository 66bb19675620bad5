"""The data contract: a `Table` of features and 0/1 labels, read from a CSV by the one reader (`logreg.csvfile`).

Training, evaluation and prediction all read through here: `read_labeled_csv` for a table with its label column,
`read_feature_rows` for rows to predict (laid out as the training data, with or without the label column).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from logreg.csvfile import NumericTable, column_index, read_numbers
from logreg.errors import DataError


@dataclass(frozen=True)
class Table:
    """Rows of a binary classification problem, in file order."""

    features: np.ndarray  # (N, F) float32, finite (column-major from the CSV reader; any layout works)
    labels: np.ndarray  # (N,) float32 in {0, 1}
    feature_names: list[str] = field(default_factory=list)  # F names: the header's, or x1..xF

    @property
    def n_rows(self) -> int:
        return len(self.labels)

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    @cached_property
    def sha256(self) -> str:
        """A fingerprint of the rows as the model sees them (float32 features, then labels, in row order): the same
        numbers in the same order give the same digest, whatever the file's layout (line ends, quoting, header)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.features).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()

    def spec(self) -> dict:
        """What a checkpoint records of the data it was trained on, to tell later whether data is the same."""
        return {"n_rows": self.n_rows, "table_sha256": self.sha256, "feature_names": list(self.feature_names)}

    def differences(self, spec: dict) -> str | None:
        """How this table differs from a recorded `spec`, in words; None when it is the same data."""
        if spec.get("table_sha256") == self.sha256:
            return None
        return (
            f"{self.n_rows} rows and sha256 {self.sha256[:12]}..., where training had {spec.get('n_rows')} rows "
            f"and sha256 {str(spec.get('table_sha256'))[:12]}..."
        )


def _label_column_problem(numbers: NumericTable, index: int) -> str | None:
    labels = numbers.values[:, index]
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if not len(bad):
        return None
    row = int(bad[0])
    return (
        f"line {numbers.line_of(row)}, {numbers.column_label(index)}: the label is {labels[row]:g}; labels must be "
        "0 or 1. Check data.label_column (a column number from 1, -1 for the last, or the header's name)"
    )


def read_labeled_csv(
    path: str | os.PathLike, header: bool | None = None, label_column: int | str = -1, encoding: str = "utf-8"
) -> Table:
    """A Table from a CSV of numbers: the label column (0/1) and, as features, all the others.

    Raises:
        DataError: naming the file, and the line and column where there is one, for any unusable content.
    """
    numbers = read_numbers(path, header, encoding)
    if len(numbers.names) < 2:
        raise DataError(f"{path}: rows have 1 column; expected at least one feature column and one label column")
    label_index = column_index(numbers, label_column)
    problem = _label_column_problem(numbers, label_index)
    if problem:
        raise DataError(f"{path}: {problem}")
    feature_columns = [i for i in range(len(numbers.names)) if i != label_index]
    return Table(
        features=np.asfortranarray(numbers.values[:, feature_columns]),  # column-major, as the reader gives it
        labels=np.ascontiguousarray(numbers.values[:, label_index]),
        feature_names=[numbers.names[i] for i in feature_columns],
    )


def read_feature_rows(
    path: str | os.PathLike,
    feature_names: list[str],
    label_column: int | str = -1,
    header: bool | None = None,
    encoding: str = "utf-8",
) -> np.ndarray:
    """Rows to predict, (N, F) float32, laid out as the training data: F feature columns, or F + 1 with the label
    column (dropped, found as in training). With a header naming every training feature, columns are taken by name,
    in any order."""
    numbers = read_numbers(path, header, encoding)
    n_features, width = len(feature_names), len(numbers.names)
    if numbers.has_header and set(feature_names) <= set(numbers.names):
        duplicated = sorted({name for name in feature_names if numbers.names.count(name) > 1})
        if duplicated:
            raise DataError(f"{path}: the header names {duplicated[0]!r} more than once; rename one")
        return np.ascontiguousarray(numbers.values[:, [numbers.names.index(name) for name in feature_names]])
    if width == n_features:
        return numbers.values
    if width == n_features + 1:  # the label column is there too: drop it, as in training
        label_index = column_index(numbers, label_column)
        return np.ascontiguousarray(np.delete(numbers.values, label_index, axis=1))
    raise DataError(
        f"{path}: rows have {width} columns; the model takes {n_features} features ({', '.join(feature_names[:10])}"
        f"{', ...' if n_features > 10 else ''}), or {n_features + 1} columns with the label. Use a CSV laid out as "
        "the training data"
    )
