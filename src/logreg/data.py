"""The DataModules: any CSV of lab 5's kind, or scikit-learn's offline breast-cancer set, split and served as tensors.

Public surface (what train.py, eval.py and the model may use): `load()` / `table` (a `logreg.table.Table`),
`has_rows(split)`, `split_rows(split)` (row indices into the table), `rows(split)` (the split's tensors, on the
training device after `setup`), `scaler()` (the training rows' mean and std, when standardizing),
`balanced_pos_weight()`, `data_report()` (per source column: what it holds, what was done with it), and
`state_dict()`: the data spec a checkpoint records (rows and fingerprint, checked again on resume; the columns and
their encoding, which predict.py and eval.py apply). Before loading: `keep_float64()` (trainer.precision=64-true)
and `use_encoding(...)` (a checkpoint's encoding instead of learning one). Under DDP, `share(world_size)` writes what
the node's other processes take instead of reading the table (`logreg.shares`); `setup` checks that every process sees
the same table.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch

from logreg import shares
from logreg.checking import check_arguments
from logreg.csvfile import index_of
from logreg.data_report import column_report
from logreg.encoding import ColumnEncoding, Encoding
from logreg.errors import ConfigError, DataError
from logreg.fetch import fetch
from logreg.outputs import process_rank
from logreg.parquetfile import is_parquet, parquet_files
from logreg.schema import BreastCancerDataConfig, CSVDataConfig, DataConfig
from logreg.shares import Launch, Plan, launch, read_plan, wait_for_plan, write_plan
from logreg.splits import SPLITS, EvaluationBlocks, ShardSampler, TrainingChunks, stratified_folds, stratified_split
from logreg.stream import StreamedEvaluation, StreamedTable, StreamedTraining
from logreg.stream_source import BlockSource, should_stream, streaming_copy
from logreg.table import Table, choose_columns, encode, read_labeled_csv, spec_differences

log = logging.getLogger(__name__)


def column_major(features: torch.Tensor) -> torch.Tensor:
    """features (N, F) stored column by column (strides (1, N)); as they are if they already are. A matrix-vector
    product over many rows and few columns, the model's work, runs 5x faster this way than row by row (BLAS's gemv).
    Gathering shuffled rows is the opposite: each row's F values then lie N apart, so mini-batch training stays
    row-major."""
    if features.stride() == (1, max(len(features), 1)):
        return features
    return features.t().contiguous().t()


def cut_split(labels: np.ndarray, options: DataConfig, folds: int = 0, fold: int = 0) -> dict[str, np.ndarray]:
    """The row indices (sorted) of train, val and test for the table's labels (N,) in file order: the seeded,
    stratified split (or fold `fold` of `folds`, for cv.folds), the same for a table in memory and a streamed one;
    refuses a split with no rows or one class only."""
    n_rows = len(labels)
    fractions = {"train": 1.0, "val": options.val_fraction, "test": options.test_fraction}
    rows = stratified_split(labels, 0.0 if folds else options.val_fraction, options.test_fraction, options.seed)
    if folds:
        parts = stratified_folds(rows["train"], labels, folds, options.seed)
        rows["val"] = parts[fold]
        rows["train"] = np.sort(np.concatenate([part for k, part in enumerate(parts) if k != fold]))
        fractions["val"] = 1 / folds
    for split, index in rows.items():
        if fractions[split] == 0:
            continue
        if len(index) == 0:
            raise DataError(
                f"too few rows for the requested split: {n_rows} rows with data.val_fraction="
                f"{options.val_fraction} and data.test_fraction={options.test_fraction}"
                f"{f' and {folds} folds' if folds else ''} leave no {split} rows. Use more data or "
                "change those fractions"
            )
        counts = np.bincount(labels[index].astype(np.int64), minlength=2)
        if counts.min() == 0:
            raise DataError(
                f"the {split} split has {counts[0]} rows of class 0 and {counts[1]} of class 1: a stratified split "
                "needs both classes in each split. Use more data (of both classes) or smaller "
                "data.val_fraction / data.test_fraction (or fewer cv.folds)."
            )
    return rows


class TabularDataModule(L.LightningDataModule):
    """Holds a table of features and 0/1 labels, split into seeded, stratified train/val/test rows.

    Subclasses say where the table comes from (`read`); this class splits it and serves it as tensors.

    Args:
        val_fraction: share of each class held out for validation (cut after the test rows).
        test_fraction: share of each class held out for the final test.
        batch_size: rows per update; None trains full batch, one update per epoch.
        batches_per_step: mini-batches per Lightning training step (the model steps through them): Lightning's
            per-step cost is paid once per this many updates, the numbers are the same.
        shuffle: reshuffle training rows each epoch (only matters for mini-batches).
        standardize: offer the training rows' per-feature mean and std as `scaler()`; the model folds them into its
            weights, so the rows stay as read (one copy) and checkpoints carry the scaler.
        seed: seeds the split, the folds and the shuffling; the same seed gives the same rows on any machine.
        test_on: the rows `trainer.test` scores: "test" (held out), or "train" / "val".
        move_to_device: put the tensors on the training device once, in `setup`, when they fit in its memory.
        folds: >= 2 for cross-validation: the non-test rows are cut into this many stratified folds (val_fraction is
            then not used), and `fold` of them is the validation split.
        fold: which fold validates, 0 <= fold < folds.
    """

    schema: ClassVar[type[DataConfig]] = DataConfig  # what `options` holds: the arguments, checked and typed
    options: DataConfig

    def __init__(
        self,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int | None = None,
        batches_per_step: int = 256,
        shuffle: bool = True,
        standardize: bool = False,
        seed: int = 1,
        test_on: str = "test",
        move_to_device: bool = True,
        folds: int = 0,
        fold: int = 0,
    ):
        super().__init__()
        if folds and not (folds >= 2 and 0 <= fold < folds):
            raise ConfigError(f"data.fold={fold}, data.folds={folds}: expected folds >= 2 and 0 <= fold < folds")
        # `hparams`: the arguments of this constructor and a subclass's, as given (plain values), for the checkpoint
        self.save_hyperparameters()
        knobs = {item.name for item in dataclasses.fields(self.schema)}
        self.options = check_arguments(self.schema, {k: v for k, v in self.hparams.items() if k in knobs}, "data.")
        self.folds, self.fold = folds, fold  # the fold of cross-validation (cv.folds), not a knob of the data
        self._table: Table | None = None
        self._source_spec: dict = {}  # what predict.py needs to read a file as this one: columns, their encoding
        self._dtype: type = np.float32  # of the features as read and kept
        self._given_encoding: Encoding | None = None  # a trained model's encoding, applied instead of learning one
        self._raw: Table | None = None  # the feature columns as read, before the encoding
        self._encoding: Encoding | None = None  # the encoding in use (learned, or given)
        self._split_rows: dict[str, np.ndarray] = {}  # row indices of each split into the table
        self._split_tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # (features, labels) of each split
        self._streamed: StreamedTable | None = None  # a table streamed from disk (data.stream), never in memory
        self._read_by: TabularDataModule | None = None  # a DataModule of the same table whose reading this one shares
        self._whole_table = False  # `read_whole_table`: never take a plan (logreg.shares) instead of the table
        self._plan: Plan | None = None  # the node's first process's plan of an in-memory table, taken instead of it
        self._shared: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # this process's rows from the plan, by name
        self._checked_same_table = False  # (under DDP, once)

    def read(self) -> Table:
        """Return the whole table, in its source's row order: its feature columns as read (see `logreg.table`)."""
        raise NotImplementedError

    def open_stream(self, plan: Plan | None = None) -> StreamedTable | None:
        """The table as a `StreamedTable`, when it is to be streamed (data.stream, or a streamed table's `plan`,
        whose passes it then takes instead of making its own); None: read it into memory."""
        return None

    def source_identity(self) -> list:
        """What tells whether the table's source changed (each file's absolute path, size and modification time)."""
        return []

    def keep_float64(self) -> None:
        """Read and keep the features in float64 (trainer.precision=64-true), not rounded to float32; before `load`."""
        if self._table is not None and self._dtype is not np.float64:
            raise RuntimeError("keep_float64() after the table was read")
        self._dtype = np.float64

    def share_reading(self, other: TabularDataModule) -> None:
        """Take the table as `other` (a DataModule of the same file and columns, loaded) read it, instead of reading
        it again: its split, encoding and scaler are still this one's own; before `load`."""
        if self._table is not None or other._raw is None:
            raise RuntimeError("share_reading() before load(), from a DataModule that read its table in memory")
        self._read_by = other

    def read_whole_table(self) -> None:
        """Read the table whole in every process, never taking the node's plan (`logreg.shares`) in its place:
        trials trained together under DDP, where every process serves every trial's rows; before `load`."""
        self._whole_table = True

    def use_encoding(self, state: dict) -> None:
        """Encode the features as a trained model did (`Encoding.to_dict`), instead of learning the encoding from
        the training rows (eval.py, whose data may differ); before `load`."""
        self._given_encoding = Encoding.from_dict(state)

    def encoding_options(self) -> dict[str, Any]:
        """How `Encoding.fit` learns the features from the training rows (impute, reference level, ...)."""
        return {}

    # ------------------------------------------------------------------------------------------ the public surface

    def load(self) -> Table | None:
        """Read the table and cut the split, once; later calls return the same table at once. A streamed table
        (`streams`) is never read whole: its labels are, for the split, and its training rows are fitted in
        passes; None is returned. Under DDP, a process other than its node's first takes that process's plan
        (`logreg.shares`) instead: None is returned, and it reads only its own rows."""
        if self._table is not None or self._streamed is not None or self._plan is not None:
            return self._table
        started = launch()
        if started.follows and not self._whole_table and self._take_plan(started):
            return None
        table = self._read_and_fit()
        if started.leads:  # torchrun or SLURM started the node's other processes with this one: they wait for it
            self.share(started.world_size)
        return table

    def plan_identity(self, world_size: int) -> dict:
        """What decides the plan of `world_size` processes (`logreg.shares`): source, options, fold, dtype, encoding."""
        return {
            "datamodule": type(self).__qualname__,
            "options": dataclasses.asdict(self.options),
            "fold": [self.folds, self.fold],
            "dtype": np.dtype(self._dtype).name,
            "encoding": None if self._given_encoding is None else self._given_encoding.to_dict(),
            "files": self.source_identity(),
            "world_size": world_size,
        }

    def _take_plan(self, started: Launch) -> bool:
        """Take the plan of this node's first process, when there is one (`logreg.shares` says when it waits)."""
        identity = self.plan_identity(started.world_size)
        plan = wait_for_plan(identity) if started.external else read_plan(identity)
        if plan is None:
            if started.external:
                waited = shares.PLAN_WAIT_S
                log.warning("no data plan from this node's first process after %.0f s: reading the table", waited)
            return False
        if plan["kind"] == "stream":
            streamed = self.open_stream(plan)
            assert streamed is not None, "a streamed table's plan opens it as a stream"
            self._streamed, self._source_spec = streamed, self._streamed_spec(streamed)
        else:
            self._plan, self._source_spec = plan, dict(plan["source_spec"])
        log.info(
            "data: process %d of %d on this node takes the plan of its first process (%s) and reads only its rows",
            started.local_rank,
            started.world_size,
            plan.folder,
        )
        return True

    def share(self, world_size: int) -> None:
        """Under DDP (`world_size` > 1), in the first process of a node: write its plan (`logreg.shares`), which the
        node's other processes take instead of reading the table: what is fitted on the training rows and, for a
        table in memory, each process's rows; once (a plan already there is kept). Called before Lightning starts
        the other processes (training.py, evaluation.py), and by `load` where torchrun or SLURM started them all."""
        if world_size <= 1 or launch().follows or self._plan is not None:
            return
        identity = self.plan_identity(world_size)
        if read_plan(identity) is not None:
            return
        if (streamed := self.streamed_table) is not None:
            values, arrays = streamed.plan()
            write_plan(identity, values, arrays)
            return
        values = {
            "kind": "memory",
            "source_spec": self._source_spec,
            "feature_names": list(self.feature_names),
            "split_sizes": {split: self.split_size(split) for split in SPLITS},
            "scaler": self.scaler(),
            "pos_weight": self.balanced_pos_weight(),
            "spec": self.spec(),
        }
        write_plan(identity, values, self._shares(world_size))

    def _share_layout(self, rank: int) -> list[tuple[str, str, bool | None]]:
        """The rows process `rank` serves from a plan, by name: (name, split, pad), pad None for the whole split, else
        the split's `ShardSampler` block with that padding. Mini-batches need the whole training split (every
        process takes every P-th row of an order drawn anew each epoch); full batch and evaluation, one block."""
        options = self.options
        if options.batch_size is not None:
            training: tuple[str, str, bool | None] = ("train.all", "train", None)
        else:
            training = (f"train.fit.{rank}", "train", True)
        held_out = [(f"{split}.eval.{rank}", split, False) for split in dict.fromkeys(("val", options.test_on))]
        return [training, *held_out]

    def _shares(self, world_size: int) -> Iterator[tuple[str, np.ndarray]]:
        """The arrays of an in-memory table's plan: the features and labels of each other process's rows, in turn."""
        table, written = self.table, set()
        for rank in range(1, world_size):
            for name, split, pad in self._share_layout(rank):
                if name in written:
                    continue
                written.add(name)
                index = self._split_rows[split]
                if pad is not None:
                    block = ShardSampler(len(index), rank=rank, world_size=world_size, pad=pad).block()
                    assert block is not None, "an unshuffled sampler's rows are one block"
                    index = index[block]
                yield f"{name}.features", table.features[index]
                yield f"{name}.labels", table.labels[index]

    def _streamed_spec(self, streamed: StreamedTable) -> dict:
        names = streamed.feature_names
        return {
            "encoding": Encoding([ColumnEncoding(name) for name in names]).to_dict(),
            "raw_features": list(names),
            **streamed.source_spec(),
        }

    def _read_and_fit(self) -> Table | None:
        """`load`'s work in the process that reads the table (or streams it, returning None)."""
        streamed = self.open_stream()
        if streamed is not None:
            streamed.assign(cut_split(streamed.labels, self.options, self.folds, self.fold))
            streamed.check_training_columns()
            self._source_spec = self._streamed_spec(streamed)
            self._streamed = streamed
            return None
        table = self._read_by._raw if self._read_by is not None and self._read_by._raw is not None else self.read()
        rows = cut_split(table.labels, self.options, self.folds, self.fold)
        encoding = self._given_encoding or Encoding.fit(
            table.features,
            table.feature_names,
            table.levels,
            rows["train"],
            **self.encoding_options(),
            where=f"{table.source.path}: " if table.source else "",
        )
        self._source_spec = {"encoding": encoding.to_dict(), "raw_features": list(table.feature_names)}
        if table.source is not None:
            self._source_spec |= {
                "columns": list(table.source.names),
                "header": table.source.has_header,
                "raw_positions": list(table.source_columns),
                "label": None if table.label_column is None else table.source.names[table.label_column],
            }
        if process_rank() == 0:
            for note in encoding.notes():
                log.warning("%s%s", f"{table.source.path}: " if table.source else "", note)
        self._raw, self._encoding = table, encoding
        self._table, self._split_rows = encode(table, encoding), rows
        return self._table

    @property
    def streams(self) -> bool:
        """Whether the table is streamed from disk (data.stream), never held in memory whole."""
        self.load()
        return self._streamed is not None

    @property
    def streamed_table(self) -> StreamedTable | None:
        """The streamed table (`logreg.stream`) when the table streams, else None."""
        self.load()
        return self._streamed

    @property
    def table(self) -> Table:
        table = self.load()
        if table is None and self._plan is not None:  # a process that took the plan: the whole table only on demand
            table = self._read_and_fit()
        if table is None:
            raise ConfigError(
                "data.stream: this needs the whole table in memory, and a streamed table is never read whole; set "
                "data.stream=false for a table that fits in memory"
            )
        return table

    @property
    def n_features(self) -> int:
        if self._plan is not None:
            return len(self._plan["feature_names"])
        streamed = self.streamed_table
        return streamed.n_features if streamed is not None else self.table.n_features

    @property
    def feature_names(self) -> list[str]:
        if self._plan is not None:
            return list(self._plan["feature_names"])
        streamed = self.streamed_table
        return streamed.feature_names if streamed is not None else self.table.feature_names

    def split_rows(self, split: str) -> np.ndarray:
        """The row indices of `split` ("train", "val" or "test") into the table, sorted."""
        self.table  # a streamed table keeps no row indices: refused in one line
        return self._split_rows[split]

    def split_size(self, split: str) -> int:
        """The number of rows of `split`."""
        if self._plan is not None:
            return int(self._plan["split_sizes"][split])
        if (streamed := self.streamed_table) is not None:
            return streamed.split_size(split)
        return len(self.split_rows(split))

    def has_rows(self, split: str) -> bool:
        return self.split_size(split) > 0

    def rows(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's features (n, F) and labels (n,), on the training device once `setup` has run."""
        self.table  # a streamed table has no split tensors: refused in one line
        self.setup()
        return self._split_tensors[split]

    def scaler(self) -> tuple[list[float], list[float]] | None:
        """Mean and standard deviation (F,) of the training rows' features when standardizing, else None. A constant
        feature gets std 1, so it stays as it is."""
        if not self.options.standardize:
            return None
        if self._plan is not None:
            mean, std = self._plan["scaler"]
            return list(mean), list(std)
        if (streamed := self.streamed_table) is not None:
            return streamed.scaler()
        features = self.table.features[self.split_rows("train")].astype(np.float64)
        mean, std = features.mean(axis=0), features.std(axis=0, ddof=1) if len(features) > 1 else np.ones(1)
        std = np.where(std > 0, std, 1.0) * np.ones(self.n_features)
        return mean.tolist(), std.tolist()

    def column(self, name: str, key: str) -> np.ndarray:
        """The values (N,) of the table's column `name`, in the table's row order: a feature's, by its name. For
        grouping rows (the clusters of robust standard errors); `key` is the config key that named it, for errors."""
        if name in self.feature_names:
            return np.asarray(self.table.features[:, self.feature_names.index(name)])
        raise ConfigError(f"{key}={name}: no such column; the features are {', '.join(self.feature_names)}")

    def data_report(self) -> list[dict[str, Any]]:
        """Per column of the source: its type, missing values, share of zeros, distinct values, and what was done
        with it (`logreg.data_report`)."""
        if (streamed := self.streamed_table) is not None:
            return streamed.data_report()
        self.load()
        assert self._raw is not None and self._encoding is not None, "load() sets both"
        return column_report(self._raw, self._encoding)

    def balanced_pos_weight(self) -> float:
        """n_negative / n_positive of the training rows: the class-1 weight that gives both classes equal weight in
        the loss (scikit-learn's class_weight="balanced", up to a common factor)."""
        if self._plan is not None:
            return float(self._plan["pos_weight"])
        if (streamed := self.streamed_table) is not None:
            negatives, positives = streamed.class_counts("train")
            return negatives / positives
        labels = self.table.labels[self.split_rows("train")]
        return float((labels == 0).sum() / (labels == 1).sum())

    def state_dict(self) -> dict:
        """The data spec a checkpoint records (Lightning stores it under this class's name): rows and fingerprint."""
        return {**self.spec(), **self._source_spec}  # (reading the table sets both)

    def spec(self) -> dict:
        """What a checkpoint records of the rows (`Table.spec`), streamed or in memory alike."""
        if self._plan is not None:
            return dict(self._plan["spec"])
        if (streamed := self.streamed_table) is not None:
            return streamed.spec()
        return self.table.spec()

    def differences(self, spec: dict) -> str | None:
        """How this data differs from a checkpoint's `spec` (`Table.differences`), streamed or in memory alike."""
        return spec_differences(self.spec(), spec)

    def load_state_dict(self, state_dict: dict) -> None:
        """On resume: refuse to go on training on other data than the checkpoint's."""
        difference = self.differences(state_dict)
        if difference:
            raise DataError(f"the data differs from the checkpoint's: {difference}. Resume on the data it trained on")

    # -------------------------------------------------------------------------------------------------- Lightning

    def setup(self, stage: str | None = None) -> None:
        """Move the table to the training device once (when it fits there) and cut it into split tensors (a process
        that took its node's plan: its own rows alone). Under DDP, first check that every process sees one table."""
        if stage is not None and self.trainer is not None:
            self._check_same_table()
        if self._split_tensors or self._shared or self.streams:  # a streamed table's loaders read it block by block
            return
        if self._plan is not None:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            for name, split, pad in self._share_layout(rank):
                shared = self._on_device(
                    torch.from_numpy(self._plan.array(f"{name}.features")),
                    torch.from_numpy(self._plan.array(f"{name}.labels")),
                )
                self._shared[name] = (shared[0].contiguous() if pad is None else column_major(shared[0]), shared[1])
            return
        table = self.table
        features, labels = self._on_device(torch.from_numpy(table.features), torch.from_numpy(table.labels))
        for split in SPLITS:
            index = self._split_rows[split]
            if len(index) == len(labels):  # every row (lab 5 trains on all): a view, no copy
                split_features, split_labels = features, labels
            else:
                index_tensor = torch.from_numpy(index).to(features.device)
                split_features, split_labels = features[index_tensor], labels[index_tensor]
            # Mini-batch training gathers rows: those stay row-major (a row's F values in one cache line). Every
            # other use runs matrix-vector products over blocks of rows, 5x faster on columns.
            if split == "train" and self.options.batch_size is not None:
                split_features = split_features.contiguous()
            else:
                split_features = column_major(split_features)
            self._split_tensors[split] = (split_features, split_labels)

    def _on_device(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (N, F) and labels (N,) in the run's precision, on the training device when they fit there."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.trainer is not None and str(self.trainer.precision).startswith("64"):  # once, not at every step
            features, labels = features.double(), labels.double()
        if self.options.move_to_device and device.type != "cpu" and self._fits_on(device, features, labels):
            features, labels = features.to(device), labels.to(device)
        return features, labels

    def _check_same_table(self) -> None:
        """Under DDP, once: refuse processes that see different tables (one shard of files per node, say): each
        must see the whole table, and they compare its fingerprint (`spec`) before training."""
        import torch.distributed as dist

        if self._checked_same_table or not (dist.is_available() and dist.is_initialized()):
            return
        self._checked_same_table = True
        spec = self.spec()
        seen: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(seen, [spec["n_rows"], spec["table_sha256"]])
        other = next((rank for rank, table in enumerate(seen) if table != seen[0]), None)
        if other is not None:
            raise DataError(
                f"data.path: the DDP processes see different tables (process 0: {seen[0][0]} rows, sha256 "
                f"{seen[0][1][:12]}...; process {other}: {seen[other][0]} rows, sha256 {seen[other][1][:12]}...); "
                "every process must see the whole table (a shared filesystem, or the same files on every node): one "
                "shard of files per node is not supported"
            )

    @staticmethod
    def _fits_on(device: torch.device, features: torch.Tensor, labels: torch.Tensor) -> bool:
        if device.type != "cuda":
            return True
        free_bytes, _ = torch.cuda.mem_get_info(device)
        return 2 * (features.nbytes + labels.nbytes) < free_bytes  # leave room for the step's temporaries

    def _served(self, split: str, train: bool) -> tuple[torch.Tensor, torch.Tensor, ShardSampler]:
        """The features and labels a loader of `split` serves from, and the sampler of this process's rows of them."""
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        minibatches = train and self.options.batch_size is not None
        if self._plan is not None and not minibatches:  # this process's block of rows alone, from the plan
            self.setup()
            features, labels = self._shared[f"{split}.{'fit' if train else 'eval'}.{rank}"]
            return features, labels, ShardSampler(len(labels), pad=train)
        if self._plan is not None:
            self.setup()
            features, labels = self._shared["train.all"]
        else:
            features, labels = self.rows(split)
        return features, labels, self.sampler(split, train, rank, world_size)

    def sampler(self, split: str, train: bool, rank: int = 0, world_size: int = 1) -> ShardSampler:
        """The positions into `split`'s rows that process `rank` of `world_size` visits each epoch (its order, for
        training), as this DataModule's loaders serve them."""
        minibatches = train and self.options.batch_size is not None
        # Mini-batches: the processes share each batch of the epoch's order (DDP gives one process's numbers); full
        # batch and evaluation: each takes a block of rows, as views.
        return ShardSampler(
            self.split_size(split),
            minibatches and self.options.shuffle,
            self.options.seed,
            rank,
            world_size,
            pad=train,
            contiguous=not minibatches,
        )

    def _streamed_options(self) -> tuple[StreamedTable, int, int, type, torch.device]:
        """The streamed table, this process's rank, the process count, the rows' dtype and device."""
        assert self._streamed is not None
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        float64 = self._dtype is np.float64 or (self.trainer is not None and str(self.trainer.precision)[:2] == "64")
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        device = device if self.options.move_to_device else torch.device("cpu")
        return self._streamed, rank, world_size, np.float64 if float64 else np.float32, device

    def train_dataloader(self) -> TrainingChunks | StreamedTraining | list:
        if not self.has_rows("train"):
            return []
        if self.streams:
            table, rank, world_size, dtype, device = self._streamed_options()
            options = self.options
            serving = (options.batch_size, options.batches_per_step, options.shuffle, options.seed)
            return StreamedTraining(table, rank, world_size, *serving, dtype, device)
        return TrainingChunks(
            *self._served("train", train=True), self.options.batch_size, self.options.batches_per_step
        )

    def _evaluation(self, split: str) -> EvaluationBlocks | StreamedEvaluation | list:
        if not self.has_rows(split):
            return []  # Lightning skips a stage with no loaders
        if self.streams:
            table, rank, world_size, dtype, device = self._streamed_options()
            return StreamedEvaluation(table, split, rank, world_size, dtype, device)
        return EvaluationBlocks(*self._served(split, train=False))

    def val_dataloader(self) -> EvaluationBlocks | StreamedEvaluation | list:
        return self._evaluation("val")

    def test_dataloader(self) -> EvaluationBlocks | StreamedEvaluation | list:
        return self._evaluation(self.options.test_on)


class CSVDataModule(TabularDataModule):
    """A CSV of numbers with a 0/1 label column: lab 5's `data-03-diabetes.csv`, or any file of that kind.

    Args:
        path: the CSV file (plain or compressed); a relative path is looked for in the working directory, then in
            `data_dir`.
        data_dir: where local copies are looked for and downloads are kept.
        url: where to download the file when no local copy exists (None: never download).
        sha256: expected checksum of the file; a file that does not match is refused.
        header: whether the first row names the columns; None detects it.
        label_column: the 0/1 label's column: a number counting from 1 (-1: the last) or the header's name.
        encoding: the file's text encoding.
        features: the feature columns, by name or number from 1 (None: every column but the label and `exclude`).
        exclude: columns that are not features (an ID column, ...).
        categorical: columns one-hot encoded (besides those whose first data row holds text).
        impute: None (a missing value is refused), or mean / median / most_frequent / constant: fill missing values
            (empty, NA, N/A, NaN) with that statistic of the training rows (a text column: its most frequent
            category, or the category "missing" for constant).
        impute_value: the fill of numeric columns under impute=constant.
        missing_indicator: add a 0/1 column `<name>:missing` for each column with missing training values.
        reference_level: "first": a categorical column's first category (sorted) gets no column; "none": all do.
        unseen_category: a category the training rows lack: "error" (refused), or "zero" (all-zero columns).
        stream: True: stream the table from disk in blocks (`logreg.stream`), never holding it whole; False: read
            it into memory; "auto": stream when it is larger than a share of this machine's memory
            (`logreg.stream_source.should_stream`).
        **split_options: the split and serving options of `TabularDataModule`.
    """

    schema = CSVDataConfig
    options: CSVDataConfig  # pyright: ignore[reportIncompatibleVariableOverride] - the base sets it from `schema`

    def __init__(
        self,
        path: str,
        data_dir: str = "data",
        url: str | None = None,
        sha256: str | None = None,
        header: bool | None = None,
        label_column: int | str = -1,
        encoding: str = "utf-8",
        features: list | None = None,
        exclude: list | None = None,
        categorical: list | None = None,
        impute: str | None = None,
        impute_value: float = 0.0,
        missing_indicator: bool = False,
        reference_level: str = "first",
        unseen_category: str = "error",
        stream: bool | str = "auto",
        **split_options: Any,
    ):
        # plain lists (not Hydra's ListConfig): save_hyperparameters reads these locals, and checkpoints keep plain
        # values, which torch's weights_only loader reads
        features = None if features is None else list(features)
        exclude = None if exclude is None else list(exclude)
        categorical = None if categorical is None else list(categorical)
        super().__init__(**split_options)
        self._local_file: Path | None = None  # fetched and verified once per process

    def local_file(self) -> Path:
        if self._local_file is None:
            options = self.options
            if is_parquet(options.path):  # a Parquet file, folder or glob, read where it is
                self._local_file = Path(options.path).expanduser()
            else:
                self._local_file = fetch(options.path, options.data_dir, options.url, options.sha256)
        return self._local_file

    def prepare_data(self) -> None:
        self.local_file()

    def column(self, name: str, key: str) -> np.ndarray:
        """The values (N,) of the file's column `name` (a header name, or a number counting from 1), whether it is
        a feature or not (an excluded ID column too), as read: numbers, or the codes of a text column; in the table's
        row order."""
        self.table  # a streamed table's columns are never in memory: refused in one line
        source = self._raw.source if self._raw is not None else None
        assert source is not None, "a table read from a file keeps what was read"
        column: int | str = int(name) if name.lstrip("-").isdigit() else name
        index = index_of(source.names, source.has_header, source.path, column, key)
        return np.ascontiguousarray(source.values[:, index])

    def source_identity(self) -> list:
        path = self.local_file()
        files = parquet_files(path) if is_parquet(path) else [path]
        return [[str(file.resolve()), file.stat().st_size, file.stat().st_mtime_ns] for file in files]

    def open_stream(self, plan: Plan | None = None) -> StreamedTable | None:
        options = self.options
        path = self.local_file()
        if plan is None and not should_stream(options.stream, path):
            return None
        for key in ("impute", "categorical"):
            if getattr(options, key):
                raise ConfigError(
                    f"data.{key}: not with a streamed table (data.stream={options.stream}): imputation and one-hot "
                    "categories are fitted in memory; set data.stream=false, or leave that column out"
                )
        if self._given_encoding is not None and not self._given_encoding.is_identity:
            raise ConfigError(
                f"data.stream={options.stream}: the model's features are encoded (categories or imputed values), "
                "which a streamed table does not do; set data.stream=false"
            )
        if is_parquet(path):
            source, has_header = BlockSource(path), True
        else:
            folder, has_header = streaming_copy(path, options.header, options.encoding)
            source = BlockSource(folder, shown=str(path))
        columns = choose_columns(
            source.names,
            has_header,
            source.shown,
            options.label_column,
            None if options.features is None else list(options.features),
            list(options.exclude or []),
        )
        for column in [columns.label, *columns.features]:
            source.numeric(column, "data.exclude")
        return StreamedTable(source, columns.label, columns.features, self._dtype, has_header, plan)

    def read(self) -> Table:
        options = self.options
        return read_labeled_csv(
            self.local_file(),
            options.header,
            options.label_column,
            options.encoding,
            None if options.features is None else list(options.features),
            list(options.exclude or []),
            list(options.categorical or []),
            allow_missing=options.impute is not None,
            dtype=self._dtype,
        )

    def encoding_options(self) -> dict[str, Any]:
        options = self.options
        return {
            "impute": options.impute,
            "impute_value": options.impute_value,
            "missing_indicator": options.missing_indicator,
            "reference_level": options.reference_level,
            "unseen": options.unseen_category,
        }


class BreastCancerDataModule(TabularDataModule):
    """scikit-learn's Wisconsin breast-cancer table (569 rows, 30 features), shipped inside scikit-learn: no download.

    Labels are as scikit-learn gives them (1 = benign). The features span very different scales: standardize them.
    """

    schema = BreastCancerDataConfig

    def read(self) -> Table:
        try:  # optional (the breast-cancer extra): installed, it brings scipy, which torchmetrics imports in every run
            from sklearn.datasets import load_breast_cancer
        except ImportError as error:
            raise ConfigError(
                "data=breast_cancer reads its table from scikit-learn, which is not installed: "
                "pip install 'logreg[breast-cancer]' (or pip install scikit-learn)"
            ) from error
        source: Any = load_breast_cancer()  # a Bunch (typed as a Bunch or an (X, y) tuple)
        features = source.data.astype(self._dtype)  # float64 as shipped, or rounded to float32
        # str(): plain Python strings (scikit-learn < 1.5 gives numpy.str_, which a checkpoint would pickle as numpy
        # objects that the weights-only loader refuses)
        return Table(features, source.target.astype(np.float32), [str(name) for name in source.feature_names])


DATAMODULES = {cls.__qualname__: cls for cls in (CSVDataModule, BreastCancerDataModule)}  # what a checkpoint may name
