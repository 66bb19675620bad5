"""The Parquet reader: a file, a folder of files or a glob in, the same `NumericTable` as the CSV reader out.

The contract is the CSV reader's: every row of every file is read (rows read = rows in the files), in file order
(files sorted by path); a column holds numbers (any integer, float, boolean or decimal type, as float32) or text
(string columns, and those the caller names: coded, see `NumericTable`); anything else is refused in one line
naming the file and the column, as is a file whose columns differ from the first file's, and a missing or
non-finite value where none is allowed (naming the file, its row and the column). Parquet names every column, so
there is always a header.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from logreg.csvfile import NumericTable, TextChooser, category_codes
from logreg.errors import DataError

SUFFIXES = (".parquet", ".pq")


def is_parquet(path: str | os.PathLike) -> bool:
    """Whether `path` names Parquet data: a .parquet/.pq file, a folder holding such files, or a glob."""
    text = os.fspath(path)
    if Path(text).suffix.lower() in SUFFIXES:
        return True
    if any(char in text for char in "*?["):
        return not Path(text).exists()
    return Path(text).is_dir() and any(_files_under(Path(text)))


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def parquet_files(path: str | os.PathLike) -> list[Path]:
    """The files `path` names, sorted; refuses a path that names none."""
    text = os.fspath(path)
    if Path(text).is_dir():
        files = _files_under(Path(text))
    elif any(char in text for char in "*?[") and not Path(text).exists():
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    else:
        files = [Path(text)] if Path(text).is_file() else []
    if not files:
        raise DataError(f"{text}: no Parquet files there (expected a .parquet file, a folder of them, or a glob)")
    return files


@dataclass(frozen=True, eq=False)
class ParquetTable(NumericTable):
    """A `NumericTable` read from Parquet files: rows point back to a file and its row, not a line."""

    files: list[Path] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # each file's first row in the table

    def line_of(self, row: int) -> int:
        return row - self.starts[self._file_of(row)] + 1

    def row_label(self, row: int) -> str:
        index = self._file_of(row)
        return f"{self.files[index].name}, row {row - self.starts[index] + 1}"

    def _file_of(self, row: int) -> int:
        return int(np.searchsorted(self.starts, row, side="right") - 1)


def column_kind(dtype: pa.DataType) -> str | None:
    """ "number" or "text" for a Parquet column's type (a dictionary column: its values'), None for any other."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype):
        return "number"
    if pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    return None


def read_parquet(
    path: str | os.PathLike,
    text_columns: TextChooser | None = None,
    allow_missing: bool = False,
    dtype: type = np.float32,
) -> ParquetTable:
    """Read Parquet data into a float32 table (see the module's docstring).

    Raises:
        DataError: one line naming the file (and column, and row where there is one), for anything unusable.
    """
    shown = os.fspath(path)
    files = parquet_files(path)
    names: list[str] = []
    kinds: list[str] = []
    tables = []
    for file in files:
        try:
            table = pq.read_table(file)
        except (pa.ArrowException, OSError) as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            raise DataError(f"{file}: cannot be read as Parquet ({reason})") from None
        if not names:
            names = list(table.column_names)
            if len(set(names)) < len(names):
                twice = next(name for name in names if names.count(name) > 1)
                raise DataError(f"{file}: names the column {twice!r} more than once; rename one")
        elif sorted(table.column_names) != sorted(names):
            extra = sorted(set(table.column_names) ^ set(names))
            raise DataError(
                f"{file}: column {extra[0]!r} is in this file or in {files[0].name} but not both; every file "
                "must have the same columns"
            )
        for name in names:
            kind = column_kind(table.schema.field(name).type)
            if kind is None:
                raise DataError(
                    f"{file}: column {name!r} has type {table.schema.field(name).type}; expected numbers or text"
                )
            if len(kinds) < len(names):
                kinds.append(kind)
            elif kinds[names.index(name)] != kind:
                raise DataError(
                    f"{file}: column {name!r} holds {kind}s here but {kinds[names.index(name)]}s in {files[0].name}"
                )
        tables.append(table.select(names))
    if not names:
        raise DataError(f"{shown}: no columns")
    starts = list(np.cumsum([0] + [t.num_rows for t in tables[:-1]]).tolist())
    sample = ["text" if kind == "text" else "0" for kind in kinds]  # what the chooser sees of a first data row
    text = set(text_columns(names, True, sample)) if text_columns else set()
    values = np.empty((sum(t.num_rows for t in tables), len(names)), dtype=dtype, order="F")
    largest = float(np.finfo(dtype).max)
    levels: dict[int, list[str]] = {}
    table_so_far = ParquetTable(values, names, True, Path(shown), files=files, starts=starts)
    for column, name in enumerate(names):
        chunked = _column(tables, name, kinds[column], column in text)
        if column in text:
            chunked, levels[column] = category_codes(chunked)
        if kinds[column] == "text" and column not in text:  # a text column that is no feature (an ID, ...)
            values[:, column] = np.nan
            continue
        as_float = _as_numpy(pc.fill_null(chunked, math.nan))  # (N,) float64, a missing value as NaN
        bad = np.isinf(as_float) | (np.abs(np.nan_to_num(as_float)) > largest)
        if not allow_missing:
            bad |= np.isnan(as_float)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = (
                "missing" if math.isnan(as_float[row]) else f"{as_float[row]:g}, beyond {np.dtype(dtype).name}'s range"
            )
            raise DataError(
                f"{shown}: {table_so_far.row_label(row)}, {table_so_far.column_label(column)}: the value is {what}"
            )
        values[:, column] = as_float
    if len(values) == 0:
        raise DataError(f"{shown}: no rows")
    return ParquetTable(values, names, True, Path(shown), levels=levels, files=files, starts=starts)


def _column(tables: list[pa.Table], name: str, kind: str, as_text: bool) -> pa.ChunkedArray:
    """One column of every file, as strings (text, or a number column read as categories) or float64."""
    target = pa.string() if kind == "text" or as_text else pa.float64()
    chunks = []
    for table in tables:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        chunks.extend(pc.cast(column, target).chunks)
    return pa.chunked_array(chunks, type=target)


def _as_numpy(chunked: pa.ChunkedArray) -> np.ndarray:
    """A float64 column without nulls as one numpy array (not `to_numpy`, whose first call imports pandas)."""
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=np.float64, count=len(chunk), offset=chunk.offset * 8)
        for chunk in chunked.chunks
    ]
    return np.concatenate(parts) if parts else np.empty(0)
