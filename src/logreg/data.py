"""Tabular data for binary classification: any CSV of lab 5's kind, or scikit-learn's offline breast-cancer set.

The rows live in memory as two tensors, `features` (N, F) float32 and `labels` (N,) float32 in {0, 1}, and are
served as slices of them (`TensorBatches`): no per-row `Dataset.__getitem__`, no collate, one copy of the data.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import urllib.error
import urllib.request
from pathlib import Path

import lightning as L
import numpy as np
import torch

from logreg.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------------- reading CSV


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _first_bad_row(path: Path, first_line: int, n_columns: int) -> str:
    """Scan `path` row by row (slow, only after the fast parser failed) and describe the first unusable cell."""
    with path.open(newline="") as file:
        for line_number, row in enumerate(csv.reader(file), start=1):
            if line_number < first_line or not row:
                continue
            if len(row) != n_columns:
                return f"line {line_number} has {len(row)} columns, expected {n_columns} like the first row"
            for column, cell in enumerate(row):
                if not _is_number(cell):
                    return f"line {line_number}, column {column}: {cell!r} is not a number"
    return "a row could not be parsed"


def read_table(path: str | os.PathLike, header: bool | None = None) -> tuple[np.ndarray, list[str], bool]:
    """Read a CSV of numbers into a float32 table (N, C), every cell finite.

    Args:
        path: the CSV file.
        header: whether the first row holds column names; None detects it (a first row with any non-number).

    Returns:
        the table, the C column names (`x0`, `x1`, ... without a header), and whether there was a header.

    Raises:
        DataError: naming the file, and the line and column where there is one, for any unusable content.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="") as file:
        first_row = next(csv.reader(file), None)
    if not first_row or not any(cell.strip() for cell in first_row):
        raise DataError(f"{path}: the file is empty; expected rows of comma-separated numbers")
    first_row = [cell.strip() for cell in first_row]
    if header is None:
        header = not all(_is_number(cell) for cell in first_row)
    n_columns = len(first_row)

    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, skiprows=int(header), ndmin=2, encoding="utf-8")
    except ValueError:
        raise DataError(f"{path}: {_first_bad_row(path, 1 + int(header), n_columns)}") from None
    if table.shape[0] == 0:
        raise DataError(f"{path}: no data rows after the header line")
    if table.shape[1] != n_columns:  # loadtxt reads a one-column body after a wider header without complaint
        raise DataError(f"{path}: {_first_bad_row(path, 1 + int(header), n_columns)}")
    not_finite = ~np.isfinite(table)
    if not_finite.any():
        row, column = np.argwhere(not_finite)[0]
        raise DataError(
            f"{path}: line {row + 1 + int(header)}, column {column}: {table[row, column]} is not a finite number; "
            "remove or impute such rows"
        )
    names = first_row if header else [f"x{i}" for i in range(n_columns)]
    return table, names, header


def column_index(path: str | os.PathLike, names: list[str], header: bool, column: int | str) -> int:
    """The index of `column` (an index, negative from the end, or a header name) among `names`."""
    if isinstance(column, str):
        if not header:
            raise DataError(f"{path}: label_column={column!r} names a column, but the file has no header row")
        if column not in names:
            raise DataError(f"{path}: no column named {column!r}; the header has {names}")
        return names.index(column)
    if not -len(names) <= column < len(names):
        raise DataError(f"{path}: label_column={column} is out of range for {len(names)} columns")
    return column % len(names)


def read_csv(
    path: str | os.PathLike, header: bool | None = None, label_column: int | str = -1
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV of numbers: one label column (0/1) and feature columns (all the others).

    Args:
        path: the CSV file.
        header: whether the first row holds column names; None detects it (a first row with any non-number).
        label_column: the label's column, by index (negative counts from the end) or by header name.

    Returns:
        features (N, F) float32, labels (N,) float32, and the F feature names (`x0`, `x1`, ... without a header).

    Raises:
        DataError: naming the file, and the line and column where there is one, for any unusable content.
    """
    table, names, header = read_table(path, header)
    if len(names) < 2:
        raise DataError(f"{path}: line 1 has 1 column; expected at least one feature column and one label column")
    label_index = column_index(path, names, header, label_column)
    labels = table[:, label_index]
    found = np.unique(labels)
    if not np.isin(found, (0.0, 1.0)).all():
        shown = ", ".join(f"{value:g}" for value in found[:10]) + (", ..." if len(found) > 10 else "")
        raise DataError(f"{path}: column {label_index} (the label) must hold only 0 and 1; found {shown}")
    feature_columns = [i for i in range(len(names)) if i != label_index]
    features = np.ascontiguousarray(table[:, feature_columns])
    return features, np.ascontiguousarray(labels), [names[i] for i in feature_columns]


# ----------------------------------------------------------------------------------------------- fetching a file


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(path: str, data_dir: str, url: str | None = None, sha256: str | None = None) -> Path:
    """Return a local, verified copy of the file `path`.

    Looks for `path` as given, then inside `data_dir`; if neither exists and `url` is set, downloads it into
    `data_dir` under a temporary name, checks `sha256`, and only then renames it into place, so an interrupted or
    corrupt download never passes for the real file.
    """
    given = Path(path).expanduser()
    target = given if given.is_absolute() else Path(data_dir).expanduser() / given
    local = next((p for p in (given, target) if p.is_file()), None)
    if local is not None:
        if sha256 and (actual := sha256_of(local)) != sha256:
            raise DataError(
                f"{local}: sha256 is {actual}, expected {sha256}; the file is not the expected dataset. "
                f"Delete it to download a fresh copy{f' from {url}' if url else ''}."
            )
        return local
    if url is None:
        raise DataError(f"{path}: file not found (looked in {Path.cwd()} and {Path(data_dir).expanduser()})")

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, partial.open("wb") as file:
            while chunk := response.read(1 << 20):
                file.write(chunk)
        if sha256 and (actual := sha256_of(partial)) != sha256:
            raise DataError(f"{url}: downloaded file has sha256 {actual}, expected {sha256}; it was discarded")
        partial.replace(target)  # atomic on one filesystem: readers see no file or the whole verified file
    except (urllib.error.URLError, OSError) as error:
        raise DataError(
            f"could not download {url} ({error}). Put a copy of {given.name} at {target}, "
            "or point data.data_dir (or the LOGREG_DATA_DIR environment variable) at a folder that holds it."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------------------------------- splitting, serving


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices of train, val and test: each class is shuffled with `seed` and cut test first, then val.

    numpy's PCG64 generator gives the same split for the same seed on every machine. Indices are sorted, so with
    both fractions 0 the training rows keep the file's order.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for label in (0.0, 1.0):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(test_fraction * len(rows))
        n_val = round(val_fraction * len(rows))
        parts["test"].append(rows[:n_test])
        parts["val"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    return {split: np.sort(np.concatenate(chunks)) for split, chunks in parts.items()}


class ShardSampler:
    """The rows one process visits in one epoch: a contiguous block of the row order, `world_size` blocks in all.

    Unshuffled, the order is the rows themselves: the block is rows `start:stop`, which TensorBatches serves as views
    (no copy, no work per epoch). With `shuffle` the order is a permutation drawn anew each epoch from `seed + epoch`
    (Lightning calls `set_epoch` before each one).
    With `pad`, every block has ceil(n_rows / world_size) rows, so every process takes the same number of steps (as
    DistributedSampler does, needed for training): the last block starts early enough to be full, repeating a few rows
    of the block before it. Without `pad` (evaluation) the blocks split the rows exactly, each row counted once.
    """

    def __init__(
        self, n_rows: int, shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True
    ):
        self.n_rows, self.shuffle, self.seed = n_rows, shuffle, seed
        self.epoch = 0
        if pad:
            size = math.ceil(n_rows / world_size)
            self.start = max(min(rank * size, n_rows - size), 0)
            self.stop = self.start + size
        else:
            self.start, self.stop = n_rows * rank // world_size, n_rows * (rank + 1) // world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.stop - self.start

    def indices(self) -> torch.Tensor:
        """This epoch's rows, (len(self),) row indices."""
        if not self.shuffle:
            return torch.arange(self.start, self.stop)
        order = torch.randperm(self.n_rows, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return order[self.start : self.stop]


class TensorBatches:
    """Serve `(features, labels)` batches as slices of in-memory tensors: an iterable Lightning accepts as a loader.

    `batch_size=None` gives the whole shard as one batch (full-batch gradient descent, the lab's setting).
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int | None, sampler: ShardSampler):
        self.features, self.labels = features, labels  # (N, F), (N,)
        self.sampler, self.batch_sampler = sampler, None  # the DataLoader attributes Lightning reads (set_epoch)
        self.batch_size = batch_size or max(len(sampler), 1)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        if not self.sampler.shuffle:  # a contiguous block of rows: views, no copy
            block = slice(self.sampler.start, self.sampler.stop)
            features, labels = self.features[block], self.labels[block]
            for start in range(0, len(labels), self.batch_size):
                yield features[start : start + self.batch_size], labels[start : start + self.batch_size]
            return
        rows = self.sampler.indices().to(self.features.device)
        for start in range(0, len(rows), self.batch_size):
            batch_rows = rows[start : start + self.batch_size]  # (B,)
            yield self.features[batch_rows], self.labels[batch_rows]


# -------------------------------------------------------------------------------------------------- DataModules


class TabularDataModule(L.LightningDataModule):
    """Holds a table of features and 0/1 labels, split into seeded, stratified train/val/test rows.

    Subclasses say where the table comes from (`read`); this class splits it and serves it as tensors.
    """

    def __init__(
        self,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int | None = None,
        shuffle: bool = True,
        standardize: bool = False,
        seed: int = 0,
        test_split: str = "test",
        move_to_device: bool = True,
    ):
        """
        Args:
            val_fraction: share of each class held out for validation (cut after the test rows).
            test_fraction: share of each class held out for the final test.
            batch_size: rows per step; None trains full batch, one step per epoch.
            shuffle: reshuffle training rows each epoch (only matters for mini-batches).
            standardize: offer the training split's per-feature mean and std as `feature_stats`; the model folds
                them into its weights, so the rows themselves stay as read (one copy) and checkpoints carry the scaler.
            seed: seeds the split and the shuffling; the same seed gives the same rows on any machine.
            test_split: the rows `trainer.test` scores: "test" (held out), or "train"/"val".
            move_to_device: put the tensors on the training device once, in `setup`, when they fit in its memory.
        """
        super().__init__()
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= fraction < 1:
                raise DataError(f"data.{name}={fraction}: expected a fraction in [0, 1)")
        if val_fraction + test_fraction >= 1:
            raise DataError(
                f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction:g}: "
                "expected < 1, so rows are left to train on"
            )
        if batch_size is not None and batch_size < 1:
            raise DataError(f"data.batch_size={batch_size}: expected a positive number of rows, or null for full batch")
        if test_split not in SPLITS:
            raise DataError(f"data.test_split={test_split!r}: expected one of {', '.join(SPLITS)}")
        self.save_hyperparameters()
        self.features: torch.Tensor | None = None  # (N, F) float32, all rows
        self.labels: torch.Tensor | None = None  # (N,) float32 in {0, 1}
        self.feature_names: list[str] = []
        self.split_rows: dict[str, torch.Tensor] = {}  # row indices of each split into the table
        self.split_tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # (features, labels) of each split
        self.feature_stats: tuple[torch.Tensor, torch.Tensor] | None = None  # (F,) mean and std, if standardize

    def read(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Return features (N, F) float32, labels (N,) in {0, 1} and the F feature names."""
        raise NotImplementedError

    def load(self) -> None:
        """Read the table and cut the split, once; later calls return at once."""
        if self.split_rows:
            return
        features, labels, self.feature_names = self.read()
        rows = stratified_split(labels, self.hparams.val_fraction, self.hparams.test_fraction, self.hparams.seed)
        for split, index in rows.items():
            fraction = {"train": 1.0, "val": self.hparams.val_fraction, "test": self.hparams.test_fraction}[split]
            if fraction == 0:
                continue
            if len(index) == 0:
                raise DataError(
                    f"too few rows for the requested split: {len(labels)} rows with data.val_fraction="
                    f"{self.hparams.val_fraction} and data.test_fraction={self.hparams.test_fraction} leave no "
                    f"{split} rows. Use more data or change those fractions"
                )
            counts = np.bincount(labels[index].astype(np.int64), minlength=2)
            if counts.min() == 0:
                raise DataError(
                    f"the {split} split has {counts[0]} rows of class 0 and {counts[1]} of class 1: a stratified split "
                    "needs both classes in each split. Use more data (of both classes) or smaller "
                    "data.val_fraction / data.test_fraction."
                )
        self.features, self.labels = torch.from_numpy(features), torch.from_numpy(labels)
        self.split_rows = {split: torch.from_numpy(index) for split, index in rows.items()}

    @property
    def n_features(self) -> int:
        self.load()
        return len(self.feature_names)

    def setup(self, stage: str | None = None) -> None:
        """Move the table to the training device once (when it fits there) and cut it into split tensors."""
        if self.split_tensors:
            return
        self.load()
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        features, labels = self.features, self.labels
        if self.hparams.move_to_device and device.type != "cpu" and self._fits_on(device):
            features, labels = features.to(device), labels.to(device)
        for split, index in self.split_rows.items():
            if len(index) == len(labels):  # every row (lab 5 trains on all): a view, no copy
                self.split_tensors[split] = (features, labels)
            else:
                index = index.to(features.device)
                self.split_tensors[split] = (features[index], labels[index])
        self.features = self.labels = None  # the splits hold the rows now: keep one copy, not two
        if self.hparams.standardize:
            std, mean = torch.std_mean(self.split_tensors["train"][0], dim=0)
            self.feature_stats = mean, torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays

    def _fits_on(self, device: torch.device) -> bool:
        if device.type != "cuda":
            return True
        free_bytes, _ = torch.cuda.mem_get_info(device)
        return 2 * (self.features.nbytes + self.labels.nbytes) < free_bytes  # leave room for the step's temporaries

    def _loader(self, split: str, train: bool) -> TensorBatches | list:
        features, labels = self.split_tensors[split]
        if len(labels) == 0:
            return []  # Lightning skips a stage with no loaders
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        shuffle = train and self.hparams.shuffle and self.hparams.batch_size is not None
        sampler = ShardSampler(len(labels), shuffle, self.hparams.seed, rank, world_size, pad=train)
        return TensorBatches(features, labels, self.hparams.batch_size, sampler)

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False)

    def test_dataloader(self):
        return self._loader(self.hparams.test_split, train=False)

    def predict_dataloader(self):
        return self._loader(self.hparams.test_split, train=False)


class CSVDataModule(TabularDataModule):
    """A CSV of numbers with a 0/1 label column: lab 5's `data-03-diabetes.csv`, or any file of that kind."""

    def __init__(
        self,
        path: str,
        data_dir: str = "data",
        url: str | None = None,
        sha256: str | None = None,
        header: bool | None = None,
        label_column: int | str = -1,
        **split_options,
    ):
        """
        Args:
            path: the CSV file; a relative path is looked for in the working directory, then in `data_dir`.
            data_dir: where local copies are looked for and downloads are kept.
            url: where to download the file when no local copy exists (None: never download).
            sha256: expected checksum; a file that does not match is refused.
            header: whether the first row names the columns; None detects it.
            label_column: the 0/1 label's column, by index (-1: the last) or by header name.
            split_options: the split and loading options of `TabularDataModule`.
        """
        super().__init__(**split_options)
        self.source = dict(path=path, data_dir=data_dir, url=url, sha256=sha256)
        self._local_file: Path | None = None  # fetched and verified once per process

    def local_file(self) -> Path:
        if self._local_file is None:
            self._local_file = fetch(**self.source)
        return self._local_file

    def prepare_data(self) -> None:
        self.local_file()

    def read(self):
        return read_csv(self.local_file(), self.hparams.header, self.hparams.label_column)


class BreastCancerDataModule(TabularDataModule):
    """scikit-learn's Wisconsin breast-cancer table (569 rows, 30 features), shipped inside scikit-learn: no download.

    Labels are as scikit-learn gives them (1 = benign). The features span very different scales: standardize them.
    """

    def read(self):
        try:  # optional (the breast-cancer extra): installed, it brings scipy, which torchmetrics imports in every run
            from sklearn.datasets import load_breast_cancer
        except ImportError as error:
            raise ConfigError(
                "data=breast_cancer reads its table from scikit-learn, which is not installed: "
                "pip install 'logreg[breast-cancer]' (or pip install scikit-learn)"
            ) from error
        table = load_breast_cancer()
        return table.data.astype(np.float32), table.target.astype(np.float32), list(table.feature_names)
