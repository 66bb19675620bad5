"""From the feature columns as read to the numbers the model takes: one-hot categories and imputed missing values,
fitted on the training rows only.

A column as read (`logreg.table.Table` before encoding) holds numbers, or, for a text column, codes into that
file's own list of texts (`levels`), and NaN where a cell is missing (only read so where imputing). `Encoding.fit`
learns, from the training rows alone, each text column's categories (sorted, as scikit-learn's OneHotEncoder) and
each column's fill value (SimpleImputer's strategies); `Encoding.apply` turns any file's columns into the model's
features (N, F'): numbers as they are (missing ones filled), a category as one 0/1 column per category (the first,
the reference level, dropped unless `reference_level="none"`), and, with `missing_indicator`, a 0/1 column saying
where a value was missing. The encoding is plain lists and numbers (`to_dict`), so a checkpoint carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from logreg.errors import DataError

MISSING_CATEGORY = "missing"  # what a missing text becomes under impute=constant (SimpleImputer: "missing_value")

Locate = Callable[[int, int], str]  # (row, column) -> "line L, column C (name)", for messages


@dataclass(frozen=True)
class ColumnEncoding:
    """How one feature column as read becomes model features."""

    name: str
    categories: list[str] | None = None  # a text column's categories in the training rows (sorted); None: a number
    reference: str | None = None  # the category that gets no column (the reference level), if any
    fill: float | str | None = None  # what a missing value becomes (learned with data.impute); None: refused
    indicator: bool = False  # add a 0/1 column `<name>:missing`
    constant: bool = False  # one value in every training row: dropped (no column), as it says nothing

    def output_names(self) -> list[str]:
        if self.constant:
            return []
        if self.categories is None:
            names = [self.name]
        else:
            names = [f"{self.name}={category}" for category in self.categories if category != self.reference]
        return names + ([f"{self.name}:missing"] if self.indicator else [])


@dataclass(frozen=True)
class Encoding:
    """Every feature column's encoding, in the model's order of raw feature columns."""

    columns: list[ColumnEncoding]
    unseen: str = "error"

    @property
    def names(self) -> list[str]:
        """The model's feature names, F'."""
        return [name for column in self.columns for name in column.output_names()]

    @property
    def is_identity(self) -> bool:
        """Whether the features are the columns as read (numbers only, nothing to fill)."""
        return all(
            column.categories is None and column.fill is None and not column.indicator and not column.constant
            for column in self.columns
        )

    @property
    def imputes(self) -> bool:
        return any(column.fill is not None for column in self.columns)

    def to_dict(self) -> dict:
        """Plain lists, strings and numbers: what a checkpoint keeps (torch's weights_only loader reads them)."""
        return {"columns": [asdict(column) for column in self.columns], "unseen": self.unseen}

    @classmethod
    def from_dict(cls, state: dict) -> Encoding:
        return cls([ColumnEncoding(**column) for column in state["columns"]], state.get("unseen", "error"))

    def notes(self) -> list[str]:
        """One line per column dropped as constant."""
        return [
            f"column {column.name!r} has one value in every training row: dropped, as it tells the classes nothing"
            for column in self.columns
            if column.constant
        ]

    @classmethod
    def fit(
        cls,
        values: np.ndarray,
        names: list[str],
        levels: dict[int, list[str]],
        rows: np.ndarray,
        impute: str | None = None,
        impute_value: float = 0.0,
        missing_indicator: bool = False,
        reference_level: str = "first",
        unseen: str = "error",
        where: str = "",
    ) -> Encoding:
        """Learn the encoding of `values` (N, C) as read from its training rows `rows` alone.

        Raises:
            DataError: for a column with no value at all in the training rows.
        """
        columns = []
        for index, name in enumerate(names):
            column = values[rows, index]  # (n,)
            missing = np.isnan(column)
            present = column[~missing]
            if missing.all():
                raise DataError(
                    f"{where}column {name!r} has no value in the training rows: nothing to learn from or impute "
                    "with; leave it out with data.exclude"
                )
            indicator = missing_indicator and bool(missing.any())
            constant = not missing.any() and bool((present == present[0]).all())
            if index in levels:
                texts = levels[index]
                codes = present.astype(np.int64)
                counts = np.bincount(codes, minlength=len(texts))
                category: str | None = None
                if impute == "constant":
                    category = MISSING_CATEGORY
                elif impute:  # a text has no mean: the most frequent category (the first in sorted order on ties)
                    category = min(text for k, text in enumerate(texts) if counts[k] == counts.max())
                filled = {category} if category is not None and missing.any() else set()
                seen = sorted({texts[k] for k in np.flatnonzero(counts)} | filled)
                reference = seen[0] if reference_level == "first" else None
                columns.append(ColumnEncoding(name, seen, reference, category, indicator, constant))
                continue
            # every column when imputing, as SimpleImputer: a value missing later is filled too
            fill = _statistic(present.astype(np.float64), impute, impute_value) if impute else None
            columns.append(ColumnEncoding(name, None, None, fill, indicator, constant))
        if all(column.constant for column in columns):
            raise DataError(f"{where}every feature column has one value in every training row: nothing to learn from")
        return cls(columns, unseen)

    def apply(self, values: np.ndarray, levels: dict[int, list[str]], locate: Locate, where: str = "") -> np.ndarray:
        """values (N, C) as read (numbers; codes into `levels` for text columns; NaN where missing) -> the model's
        features (N, F') of `values`' dtype, column-major.

        Raises:
            DataError: naming the line and column, for a missing value where the training rows had none (nothing
                was learned to fill it), or a category the training rows did not have under unseen="error".
        """
        out = np.zeros((len(values), len(self.names)), dtype=values.dtype, order="F")
        position = 0
        for index, column in enumerate(self.columns):
            if column.constant:
                continue
            raw = values[:, index]
            missing = np.isnan(raw)
            if missing.any() and column.fill is None:
                row = int(np.flatnonzero(missing)[0])
                raise DataError(
                    f"{where}{locate(row, index)}: the value is missing, and the model was trained without data.impute"
                )
            if column.categories is None:
                out[:, position] = (
                    np.where(missing, values.dtype.type(column.fill or 0.0), raw) if missing.any() else raw
                )
                position += 1
            else:
                position = self._one_hot(
                    column, raw, missing, levels.get(index, []), out, position, locate, index, where
                )
            if column.indicator:
                out[:, position] = missing
                position += 1
        return out

    def _one_hot(
        self,
        column: ColumnEncoding,
        raw: np.ndarray,
        missing: np.ndarray,
        texts: list[str],
        out: np.ndarray,
        position: int,
        locate: Locate,
        index: int,
        where: str = "",
    ) -> int:
        """Write `column`'s 0/1 columns into `out` from `position`; return the position after them."""
        assert column.categories is not None
        kept = [category for category in column.categories if category != column.reference]
        slot = {category: k for k, category in enumerate(kept)}  # the reference level: no column, all zero
        known = set(column.categories)
        # each of this file's texts -> its output column (-1: none), and whether the training rows had it
        targets = np.array([slot.get(text, -1) for text in texts] + [slot.get(str(column.fill), -1)], dtype=np.int64)
        seen = np.array([text in known for text in texts] + [str(column.fill) in known])
        codes = np.where(missing, len(texts), np.nan_to_num(raw, nan=0.0)).astype(np.int64)  # (N,): fill at the end
        if self.unseen == "error" and not seen[codes].all():
            row = int(np.flatnonzero(~seen[codes])[0])
            listed = ", ".join(column.categories[:10]) + (", ..." if len(column.categories) > 10 else "")
            raise DataError(
                f"{where}{locate(row, index)}: {texts[codes[row]]!r} is a category the training rows did not have "
                f"(they had {listed}); fix the value, or set data.unseen_category=zero to give it all-zero columns"
            )
        target = targets[codes]  # (N,)
        rows = np.flatnonzero(target >= 0)
        out[rows, position + target[rows]] = 1.0
        return position + len(kept)


def _statistic(present: np.ndarray, impute: str | None, impute_value: float) -> float:
    """SimpleImputer's fill value of a numeric column from its training rows' values."""
    if impute == "mean":
        return float(present.mean())
    if impute == "median":
        return float(np.median(present))
    if impute == "most_frequent":  # the smallest on ties, as scikit-learn
        distinct, counts = np.unique(present, return_counts=True)
        return float(distinct[np.argmax(counts)])
    return float(impute_value)
