"""The data contract: a `Table` of features and 0/1 labels, read from a CSV by the one reader (`logreg.csvfile`).

Training, evaluation and prediction all read through here: `read_labeled_csv` for a table with its label column
(its feature columns as read: numbers, text columns as codes, NaN where missing values are allowed), `encode` for
the model's features (`logreg.encoding`), `read_feature_rows` for rows to predict: with a header, matched to the
training columns by name; without one, by position, laid out as the training data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from logreg.csvfile import MISSING_CELLS, NumericTable, TextChooser, index_of, read_numbers
from logreg.encoding import Encoding
from logreg.errors import DataError
from logreg.parquetfile import is_parquet, read_parquet


@dataclass(frozen=True)
class Table:
    """Rows of a binary classification problem, in file order."""

    features: np.ndarray  # (N, F) float32 (float64 under 64-true), finite (column-major from the reader)
    labels: np.ndarray  # (N,) float32 in {0, 1}
    feature_names: list[str] = field(default_factory=list)  # F names: the header's, or x1..xF
    # As read, before `encode`: a text column holds codes into its texts, and a missing value is NaN (both only where
    # the reader was asked for them); the file the rows came from, and each feature's column in it (for messages).
    levels: dict[int, list[str]] = field(default_factory=dict)  # feature column -> its texts (code order)
    source: NumericTable | None = None
    source_columns: list[int] = field(default_factory=list)  # (F,) 0-based columns of `source`
    label_column: int | None = None  # 0-based column of `source`

    def locate(self, row: int, column: int) -> str:
        """'line L, column C (name)' of a feature cell, for messages."""
        if self.source is None:
            return f"row {row + 1}, feature {self.feature_names[column]!r}"
        return f"{self.source.row_label(row)}, {self.source.column_label(self.source_columns[column])}"

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
        # float32 whatever the table keeps: a float64 run (trainer.precision=64-true) fingerprints the same rows alike
        digest = hashlib.sha256(np.ascontiguousarray(self.features, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()

    def spec(self) -> dict:
        """What a checkpoint records of the data it was trained on, to tell later whether data is the same."""
        return {"n_rows": self.n_rows, "table_sha256": self.sha256, "feature_names": list(self.feature_names)}

    def differences(self, spec: dict) -> str | None:
        """How this table differs from a recorded `spec`, in words; None when it is the same data."""
        return spec_differences(self.spec(), spec)


def spec_differences(now: dict, then: dict) -> str | None:
    """How the data of spec `now` differs from a recorded spec `then` (`Table.spec`), in words; None: the same data."""
    if then.get("table_sha256") == now["table_sha256"]:
        return None
    return (
        f"{now['n_rows']} rows and sha256 {now['table_sha256'][:12]}..., where training had {then.get('n_rows')} rows "
        f"and sha256 {str(then.get('table_sha256'))[:12]}..."
    )


def _label_column_problem(numbers: NumericTable, index: int) -> str | None:
    labels = numbers.values[:, index]
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if not len(bad):
        return None
    row = int(bad[0])
    found = "missing (labels are never imputed)" if np.isnan(labels[row]) else f"{labels[row]:g}"
    return (
        f"{numbers.row_label(row)}, {numbers.column_label(index)}: the label is {found}; labels must be "
        "0 or 1. Check data.label_column (a column number from 1, -1 for the last, or the header's name)"
    )


def _looks_text(cell: str, allow_missing: bool) -> bool:
    """Whether a first data row's cell makes its column a text column: not empty, not a number (nor a missing
    value's mark where missing values are allowed)."""
    text = cell.strip(" \t")
    if not text or (allow_missing and text in MISSING_CELLS):
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


@dataclass(frozen=True)
class Columns:
    """Which columns of a file are what: the label, the features (in order), and the text ones among them."""

    label: int
    features: list[int]
    text: set[int] = field(default_factory=set)


def choose_columns(
    names: list[str],
    has_header: bool,
    path: str | os.PathLike,
    label_column: int | str = -1,
    features: list | None = None,
    exclude: list | tuple = (),
    categorical: list | tuple = (),
) -> Columns:
    """The label column and the feature columns (`features`, by name or number from 1; default every column but the
    label and the `exclude`d), and the columns named `categorical`.

    Raises:
        DataError: naming the key, for a column that is not there (listing the file's columns), or a feature named
            twice, or the label named as a feature.
    """
    label = index_of(names, has_header, path, label_column, "data.label_column")
    excluded = {index_of(names, has_header, path, column, "data.exclude") for column in exclude}
    if features is None:
        chosen = [i for i in range(len(names)) if i != label and i not in excluded]
    else:
        chosen = [index_of(names, has_header, path, column, "data.features") for column in features]
        for key, index in [("data.label_column", label)] + [("data.exclude", i) for i in excluded]:
            if index in chosen:
                raise DataError(f"{path}: data.features names column {index + 1} ({names[index]}), also {key}")
        if len(set(chosen)) < len(chosen):
            twice = next(i for i in chosen if chosen.count(i) > 1)
            raise DataError(f"{path}: data.features names column {twice + 1} ({names[twice]}) twice")
    if not chosen:
        raise DataError(f"{path}: no feature columns are left (data.features, data.exclude); keep at least one")
    text = {index_of(names, has_header, path, column, "data.categorical") for column in categorical}
    stray = sorted(text - set(chosen))
    if stray:
        raise DataError(f"{path}: data.categorical names column {stray[0] + 1} ({names[stray[0]]}), not a feature")
    return Columns(label, chosen, text)


def read_source(
    path: str | os.PathLike,
    header: bool | None = None,
    encoding: str = "utf-8",
    text_columns: TextChooser | None = None,
    allow_missing: bool = False,
    dtype: type = np.float32,
) -> NumericTable:
    """The table at `path`, by the reader its name calls for: Parquet (a .parquet file, a folder of them, a glob),
    else CSV."""
    if is_parquet(path):
        return read_parquet(path, text_columns, allow_missing, dtype)
    return read_numbers(path, header, encoding, text_columns, allow_missing, dtype)


def read_labeled_csv(
    path: str | os.PathLike,
    header: bool | None = None,
    label_column: int | str = -1,
    encoding: str = "utf-8",
    features: list | None = None,
    exclude: list | tuple = (),
    categorical: list | tuple = (),
    allow_missing: bool = False,
    dtype: type = np.float32,
) -> Table:
    """A Table from a CSV: the label column (0/1) and, as features, the chosen columns (`choose_columns`) as read.
    Text columns: those named `categorical`, and those whose first data row holds text; with `allow_missing`, empty
    cells, NA and NaN in feature columns are read as missing (NaN). See `encode` for the model's features.

    Raises:
        DataError: naming the file, and the line and column where there is one, for any unusable content.
    """
    chosen: list[Columns] = []

    def text_columns(names: list[str], has_header: bool, cells: list[str]) -> set[int]:
        if len(names) < 2:
            raise DataError(f"{path}: rows have 1 column; expected at least one feature column and one label column")
        columns = choose_columns(names, has_header, path, label_column, features, exclude, categorical)
        # every column but the label: an excluded ID column may hold text too (it is read, never encoded)
        others = [i for i in range(len(names)) if i != columns.label]
        detected = {i for i in others if i < len(cells) and _looks_text(cells[i], allow_missing)}
        chosen.append(Columns(columns.label, columns.features, columns.text | detected))
        return chosen[-1].text

    numbers = read_source(path, header, encoding, text_columns, allow_missing, dtype)
    columns = chosen[0]
    problem = _label_column_problem(numbers, columns.label)
    if problem:
        raise DataError(f"{path}: {problem}")
    return Table(
        features=_columns_of(numbers.values, columns.features),
        labels=np.ascontiguousarray(numbers.values[:, columns.label], dtype=np.float32),  # 0/1: exact in float32
        feature_names=[numbers.names[i] for i in columns.features],
        levels={k: numbers.levels[i] for k, i in enumerate(columns.features) if i in numbers.levels},
        source=numbers,
        source_columns=columns.features,
        label_column=columns.label,
    )


def _columns_of(values: np.ndarray, columns: list[int]) -> np.ndarray:
    """values[:, columns], column-major as the reader gives it: a view when the columns are a contiguous run (every
    column but a first or last label), else a copy."""
    if columns == list(range(columns[0], columns[0] + len(columns))):
        return values[:, columns[0] : columns[0] + len(columns)]
    return np.asfortranarray(values[:, columns])


def encode(table: Table, encoding: Encoding) -> Table:
    """The table with the model's features (N, F'): `table` itself when the encoding changes nothing."""
    if encoding.is_identity and not table.levels:
        return table
    features = encoding.apply(
        table.features, table.levels, table.locate, f"{table.source.path}: " if table.source else ""
    )
    return Table(features, table.labels, encoding.names)


def read_feature_rows(
    path: str | os.PathLike,
    feature_names: list[str],
    label_column: int | str = -1,
    header: bool | None = None,
    encoding: str = "utf-8",
    spec: dict | None = None,
) -> np.ndarray:
    """Rows to predict as the model's features (N, F') float32, from the columns the model trained on.

    With a header, columns are matched to the training columns by name, exactly, in any order: every feature
    column must be there once; the label and the columns training left out may be there too (they are ignored);
    any other name is refused. Without a header, columns are taken by position: the F feature columns alone, or
    laid out as the training file (with the label column, and any left out). `spec` is what the checkpoint
    recorded of its data (`TabularDataModule.state_dict`); from older checkpoints, `feature_names` and
    `label_column` say the same.
    """
    spec = spec or {}
    raw = list(spec.get("raw_features") or feature_names)  # the model's columns as read
    model_encoding = Encoding.from_dict(spec["encoding"]) if spec.get("encoding") else None
    encoded = model_encoding.columns if model_encoding else []
    categorical = {k for k, column in enumerate(encoded) if column.categories is not None}  # read as text
    source = spec.get("columns")  # every column of the training file, in order (new checkpoints)
    positions = list(spec.get("raw_positions") or [])
    chosen: list[list[int]] = []

    def text_columns(names: list[str], has_header: bool, cells: list[str]) -> set[int]:
        chosen.append(_input_columns(path, names, has_header, raw, source, positions, label_column, spec))
        return {index for k, index in enumerate(chosen[0]) if k in categorical}

    allow_missing = bool(model_encoding and model_encoding.imputes)
    numbers = read_source(path, header, encoding, text_columns, allow_missing)
    columns = chosen[0]
    values = np.asfortranarray(numbers.values[:, columns])  # (N, C) the model's raw columns, in its order
    if model_encoding is None:
        if np.isnan(values).any():  # only readable so with impute; kept for completeness
            raise DataError(f"{path}: a value is missing; the model was trained without data.impute")
        return np.ascontiguousarray(values)
    table = Table(
        values,
        np.zeros(len(values), dtype=np.float32),
        raw,
        levels={k: numbers.levels[i] for k, i in enumerate(columns) if i in numbers.levels},
        source=numbers,
        source_columns=columns,
    )
    return np.ascontiguousarray(encode(table, model_encoding).features)


def _input_columns(
    path: str | os.PathLike,
    names: list[str],
    has_header: bool,
    raw: list[str],
    source: list[str] | None,
    positions: list[int],
    label_column: int | str,
    spec: dict,
) -> list[int]:
    """The input's column of each of the model's raw feature columns (see `read_feature_rows`)."""
    width, n_features = len(names), len(raw)
    trained_with_header = spec.get("header", True)
    if has_header and trained_with_header is not False:
        return _columns_by_name(path, names, raw, source, label_column)
    if has_header:
        matched = set(names) >= set(raw)
        if matched:
            return _columns_by_name(path, names, raw, source, label_column)
        raise DataError(
            f"{path}: the first row is a header ({', '.join(names[:5])}{', ...' if width > 5 else ''}), but the model "
            "was trained on a file without one, so its columns have no names to match; remove the header row "
            "(header=false reads the first row as data)"
        )
    if width == n_features:
        return list(range(n_features))
    if source is not None and positions and width == len(source):
        return positions
    if source is None and width == n_features + 1:  # the label column is there too: drop it, as in training
        label = index_of(names, has_header, path, label_column, "data.label_column")
        return [i for i in range(width) if i != label]
    laid_out = len(source) if source is not None else n_features + 1
    return _wrong_width(path, width, raw, laid_out)


def _wrong_width(path: str | os.PathLike, width: int, raw: list[str], laid_out: int) -> list[int]:
    n_features = len(raw)
    raise DataError(
        f"{path}: rows have {width} columns; the model takes {n_features} features ({', '.join(raw[:10])}"
        f"{', ...' if n_features > 10 else ''}), or {laid_out} columns with the label. Use a CSV laid out as "
        "the training data"
    )


def _columns_by_name(
    path: str | os.PathLike, names: list[str], raw: list[str], source: list[str] | None, label_column: int | str
) -> list[int]:
    """Each raw feature's column in a header, matched by name exactly; refuses a missing, repeated or unknown name."""
    allowed = (
        set(source) if source is not None else set(raw) | ({label_column} if isinstance(label_column, str) else set())
    )
    unknown = [(i, name) for i, name in enumerate(names) if name not in allowed]
    if source is None and len(unknown) == 1 and len(names) == len(raw) + 1:
        unknown = []  # an older checkpoint that did not record the label's name: the one other column is the label
    if unknown:
        i, name = unknown[0]
        near = [known for known in sorted(allowed) if known.casefold().strip() == name.casefold().strip()]
        hint = (
            f"did you mean {near[0]!r}? Names are matched exactly"
            if near
            else (f"the model's columns are {', '.join(repr(n) for n in raw[:10])}{', ...' if len(raw) > 10 else ''}")
        )
        raise DataError(
            f"{path}: column {i + 1} of the header, {name!r}, is not a column the model was trained on; {hint}. "
            "Rename it to the training data's name, or drop it"
        )
    found = []
    for name in raw:
        where = [i for i, given in enumerate(names) if given == name]
        if not where:
            raise DataError(
                f"{path}: the header has no column {name!r}, one of the model's features "
                f"({', '.join(repr(n) for n in raw[:10])}{', ...' if len(raw) > 10 else ''}); add it"
            )
        if len(where) > 1:
            raise DataError(f"{path}: the header names {name!r} more than once; rename one")
        found.append(where[0])
    return found
