"""A table streamed from disk block by block (`logreg.stream_source`), never held whole: its split, what is fitted on
its training rows, and the loaders that serve each process its share.

Memory: one block at a time for every pass (a few blocks for shuffled mini-batches), plus, per row of the table, its
label and its split (1 byte each) and, while the split is cut, the row indices of one class (8 bytes a row); the
held-out stages' metrics keep one logit per held-out row, as in memory. Under DDP only a node's first process makes
the passes; the others take its plan (`logreg.shares`), with labels and splits memory-mapped from it.

- The split is the in-memory one (`logreg.data.cut_split` on the same labels, in the same file order): the same rows.
- Passes over the training rows give the scaler (mean and standard deviation, merged block by block in float64,
  Chan's pairwise update), the class counts and the fingerprint of the rows (the in-memory `Table.sha256`).
- Each process takes a run of whole blocks holding about 1/P of the split's rows (`shard_blocks`), and reads only
  those in every epoch.
- Full batch: one `StreamedRows` per epoch; the model's gradient (and Newton's Hessian) is a sum over its blocks,
  divided by the split's rows over P, so the mean over processes is the whole split's mean: the in-memory numbers, to
  float rounding, on any number of processes (no padding needed).
- Mini-batches: each epoch, a process reads its blocks in an order drawn from (seed, epoch, rank), SHUFFLE_BLOCKS
  at a time, and permutes the rows of each such buffer. A row can thus land anywhere within its buffer, and buffers
  follow in random order; rows of blocks that are never in one buffer together are never in one mini-batch, and a
  block's rows stay within SHUFFLE_BLOCKS blocks' rows of each other. Reproducible from the seed; not the in-memory
  permutation. Processes with fewer rows than the largest share repeat their epoch's first rows, so all step alike.
  Under DDP each update averages the P processes' mini-batches of B rows, B from each process's own blocks: an update
  over P*B rows drawn by shard, which no single process's run reproduces (the numbers depend on P).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np
import torch

from logreg.errors import DataError
from logreg.gradient import BatchGradient, bce_gradient, bce_gradient_and_hessian
from logreg.inference import RowSums
from logreg.shares import Plan
from logreg.stream_source import BlockSource, remember, remembered
from logreg.table import spec_differences

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
SHUFFLE_BLOCKS = 4  # blocks whose rows are shuffled together, for mini-batches
_LABEL_CHUNK = 1 << 20  # labels fingerprinted this many at a time


def shard_blocks(counts: np.ndarray, rank: int, world_size: int) -> list[int]:
    """The blocks process `rank` takes: a run of whole blocks with about 1/world_size of the rows `counts` (per
    block) holds; every block with rows goes to exactly one process."""
    total = int(counts.sum())
    if world_size == 1:
        return [int(b) for b in np.flatnonzero(counts)]
    middles = np.cumsum(counts) - counts / 2  # each block's middle row
    owners = np.minimum((middles * world_size / max(total, 1)).astype(np.int64), world_size - 1)
    return [int(b) for b in np.flatnonzero((owners == rank) & (counts > 0))]


class StreamedTable:
    """Labels in memory, features on disk: the table at `source` with its label column and feature columns."""

    def __init__(
        self,
        source: BlockSource,
        label: int,
        features: list[int],
        dtype: type = np.float32,
        has_header: bool = True,
        plan: Plan | None = None,
    ):
        self.source, self.label, self.columns, self.dtype, self.has_header = source, label, features, dtype, has_header
        self.feature_names = [source.names[c] for c in features]
        self._counts: dict[str, np.ndarray] = {}  # split -> (blocks,) its rows in each block
        self._fitted: tuple[list[float], list[float], str] | None = None
        self._constant: list[str] = []  # features with one value in every training row
        self._classes: dict[str, tuple[int, int]] = {}  # split -> its class counts, once counted
        if plan is not None:  # another process's passes (`logreg.shares`): its labels and splits, mapped from disk
            self.labels, self.codes = plan.array("labels", mapped=True), plan.array("codes", mapped=True)
            self._counts = {split: np.asarray(counts, dtype=np.int64) for split, counts in plan["counts"].items()}
            self._classes = {split: (int(a), int(b)) for split, (a, b) in plan["classes"].items()}
            self._fitted = (list(plan["mean"]), list(plan["std"]), str(plan["sha256"]))
            return
        self.labels = np.empty(source.n_rows, dtype=np.uint8)  # (N,) 0/1, file order
        for block in source.blocks:  # the first pass: the label column alone
            values = source.read(block, [label], np.float64)[:, 0]
            bad = np.flatnonzero((values != 0) & (values != 1))
            if len(bad):
                row = int(bad[0]) + 1 + block.start - source.file_starts[block.file]
                raise DataError(
                    f"{source.shown}: {block.file.name}, row {row}"
                    f", column {source.names[label]!r}: the label is {values[bad[0]]:g}; labels must be 0 or 1. "
                    "Check data.label_column"
                )
            self.labels[block.start : block.start + block.n_rows] = values
        self.codes = np.zeros(source.n_rows, dtype=np.uint8)  # (N,) each row's split (SPLIT_CODES)

    @property
    def n_rows(self) -> int:
        return len(self.labels)

    @property
    def n_features(self) -> int:
        return len(self.columns)

    def assign(self, rows: dict[str, np.ndarray]) -> None:
        """Take the split: row indices of each split (`logreg.data.cut_split`); kept as one byte per row."""
        for split, index in rows.items():
            self.codes[index] = SPLIT_CODES[split]
        for split, code in SPLIT_CODES.items():
            self._counts[split] = np.array(
                [np.count_nonzero(self.codes[b.start : b.start + b.n_rows] == code) for b in self.source.blocks]
            )

    def split_size(self, split: str) -> int:
        return int(self._counts[split].sum())

    def class_counts(self, split: str) -> tuple[int, int]:
        """(rows of class 0, rows of class 1) of `split`."""
        if split not in self._classes:
            positives = int(np.count_nonzero(self.labels[self.codes == SPLIT_CODES[split]]))
            self._classes[split] = (self.split_size(split) - positives, positives)
        return self._classes[split]

    def plan(self) -> tuple[dict, list[tuple[str, np.ndarray]]]:
        """What another process needs to serve this table without a pass of its own (`logreg.shares`): the split's
        counts, the fitted values (plain values) and each row's label and split (arrays)."""
        mean, std, digest = self._fit()
        values = {
            "kind": "stream",
            "counts": {split: counts.tolist() for split, counts in self._counts.items()},
            "classes": {split: list(self.class_counts(split)) for split in SPLIT_CODES},
            "mean": mean,
            "std": std,
            "sha256": digest,
        }
        return values, [("labels", self.labels), ("codes", self.codes)]

    def read(self, block_index: int, split: str | None, dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """Block `block_index`'s features (n, F) column-major and labels (n,), of `split`'s rows (None: every row)."""
        block = self.source.blocks[block_index]
        values = self.source.read(block, self.columns, dtype)  # (n_rows, F)
        labels = self.labels[block.start : block.start + block.n_rows]
        if split is None:
            return values, labels
        mask = self.codes[block.start : block.start + block.n_rows] == SPLIT_CODES[split]
        if mask.all():
            return values, labels
        return np.asfortranarray(values[mask]), labels[mask]

    def _fit(self) -> tuple[list[float], list[float], str]:
        """One pass over every block: the training rows' mean and std (float64), and the rows' fingerprint. Kept in
        the cache folder under the files' identity and the split, so that the processes DDP starts after the first
        (and later runs) read the result instead of every row."""
        if self._fitted is None:
            identity = {
                "files": self.source.identity(),
                "label": self.label,
                "columns": self.columns,
                "dtype": np.dtype(self.dtype).name,
                "split": hashlib.sha256(self.codes.tobytes()).hexdigest(),
                "version": 1,
            }
            saved = remembered(identity)
            if saved is not None:
                self._constant = list(saved["constant"])
                self._fitted = (list(saved["mean"]), list(saved["std"]), str(saved["sha256"]))
                return self._fitted
            count, mean, squares = 0, np.zeros(self.n_features), np.zeros(self.n_features)
            low, high = np.full(self.n_features, np.inf), np.full(self.n_features, -np.inf)
            digest = hashlib.sha256()
            for index in range(len(self.source.blocks)):
                values, _ = self.read(index, None, self.dtype)
                digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
                block = self.source.blocks[index]
                rows = values[self.codes[block.start : block.start + block.n_rows] == SPLIT_CODES["train"]]
                if not len(rows):
                    continue
                rows = rows.astype(np.float64)
                low, high = np.minimum(low, rows.min(axis=0)), np.maximum(high, rows.max(axis=0))
                block_mean = rows.mean(axis=0)
                block_squares = ((rows - block_mean) ** 2).sum(axis=0)
                total = count + len(rows)
                delta = block_mean - mean
                mean = mean + delta * len(rows) / total
                squares = squares + block_squares + delta**2 * count * len(rows) / total
                count = total
            for start in range(0, self.n_rows, _LABEL_CHUNK):
                digest.update(self.labels[start : start + _LABEL_CHUNK].astype(np.float32).tobytes())
            std = np.sqrt(squares / (count - 1)) if count > 1 else np.ones(self.n_features)
            std = np.where(std > 0, std, 1.0)
            self._constant = [name for name, a, b in zip(self.feature_names, low, high) if a == b]
            self._fitted = (mean.tolist(), std.tolist(), digest.hexdigest())
            fitted = {"mean": self._fitted[0], "std": self._fitted[1], "sha256": self._fitted[2]}
            remember(identity, {**fitted, "constant": self._constant})
        return self._fitted

    def check_training_columns(self) -> None:
        """Refuse a feature with one value in every training row (in memory it is dropped; a streamed table keeps
        its columns as they are, so it says so before training)."""
        self._fit()
        if self._constant:
            raise DataError(
                f"{self.source.shown}: column {self._constant[0]!r} has one value in every training row; a streamed "
                "table drops no column: leave it out with data.exclude (or set data.stream=false)"
            )

    def source_spec(self) -> dict:
        """What predict.py needs to read a file laid out as this one (as the in-memory DataModule records)."""
        names = self.source.names
        return {
            "columns": list(names),
            "header": self.has_header,
            "raw_positions": list(self.columns),
            "label": names[self.label],
        }

    def data_report(self) -> list[dict]:
        """The data report's rows (`logreg.data_report`): per column, as far as the passes know it (a streamed table
        is checked to have no missing value; zeros and distinct values are not counted: '')."""
        used = dict(zip(self.columns, self.feature_names))
        return [
            {
                "column": name,
                "type": self.source.kinds[index] or "other",
                "missing": 0 if index in used or index == self.label else "",
                "zeros": "",
                "distinct": "",
                "done": "the label" if index == self.label else "as is (streamed)" if index in used else "excluded",
            }
            for index, name in enumerate(self.source.names)
        ]

    def scaler(self) -> tuple[list[float], list[float]]:
        """The training rows' mean and standard deviation (F,) each (ddof=1; a constant feature gets std 1)."""
        mean, std, _ = self._fit()
        return mean, std

    def spec(self) -> dict:
        """What a checkpoint records (as `Table.spec`: the same digest for the same rows)."""
        return {"n_rows": self.n_rows, "table_sha256": self._fit()[2], "feature_names": list(self.feature_names)}

    def differences(self, spec: dict) -> str | None:
        return spec_differences(self.spec(), spec)

    def row_sums(self, theta: np.ndarray, pos_weight: float = 1.0) -> RowSums:
        """One pass over the training rows: the sums `logreg.inference.infer_from_sums` takes, at theta (F+1,)."""
        sums = RowSums(np.asarray(theta, dtype=np.float64), pos_weight)
        for index in self.blocks_of("train", 0, 1):
            features, labels = self.read(index, "train", self.dtype)
            sums.add(features, labels)
        return sums

    def blocks_of(self, split: str, rank: int, world_size: int) -> list[int]:
        return shard_blocks(self._counts[split], rank, world_size)

    def rows_in(self, split: str, blocks: list[int]) -> int:
        return int(self._counts[split][blocks].sum())


class StreamedRows:
    """One process's rows of a split, block by block: a full batch that is never in memory at once.

    `share` is the split's rows over the number of processes: `gradient` divides the process's sums by it, so the
    mean over processes is the gradient of the mean loss over the whole split.
    """

    def __init__(
        self, table: StreamedTable, split: str, blocks: list[int], share: float, dtype: type, device: torch.device
    ):
        self.table, self.split, self.blocks, self.share = table, split, blocks, share
        self.dtype, self.device = dtype, device
        self.n_rows = table.rows_in(split, blocks)

    def __len__(self) -> int:
        return self.n_rows

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """features (n, F) column-major and labels (n,), one block at a time."""
        for index in self.blocks:
            values, labels = self.table.read(index, self.split, self.dtype)
            features = torch.from_numpy(values).to(self.device)
            yield features, torch.from_numpy(labels.astype(self.dtype)).to(self.device)

    def gradient(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        pos_weight: float,
        threshold: float,
        with_hessian: bool = False,
    ) -> tuple[BatchGradient, torch.Tensor | None]:
        """`bce_gradient` (and `bce_gradient_and_hessian`'s Hessian) over every block, as sums over this process's
        rows divided by `share`; the loss sum and correct count are this process's sums."""
        loss_sum, correct = torch.zeros_like(bias), torch.zeros((), dtype=torch.int64, device=bias.device)
        grad_weight, grad_bias = torch.zeros_like(weight), torch.zeros_like(bias)
        hessian = torch.zeros(len(weight) + 1, len(weight) + 1, dtype=weight.dtype, device=weight.device)
        for features, labels in self:
            n = len(labels)
            if with_hessian:
                result, block_hessian = bce_gradient_and_hessian(features, labels, weight, bias, pos_weight, threshold)
                hessian += block_hessian * n
            else:
                result = bce_gradient(features, labels, weight, bias, pos_weight, threshold)
            loss_sum += result.loss_sum
            correct += result.correct
            grad_weight += result.weight * n
            grad_bias += result.bias * n
        scale = 1 / self.share
        return BatchGradient(loss_sum, correct, grad_weight * scale, grad_bias * scale), (
            hessian * scale if with_hessian else None
        )


class StreamedTraining:
    """The training loader of a streamed table: full batch, one `StreamedRows` per epoch, as the chunk
    `(rows, rows, None, 0)`; mini-batches, chunks `(features, labels, None, B)` of K mini-batches of B rows, as
    `logreg.splits.TrainingChunks` gives (see the module's docstring for the order)."""

    def __init__(
        self,
        table: StreamedTable,
        rank: int,
        world_size: int,
        batch_size: int | None,
        batches_per_step: int,
        shuffle: bool,
        seed: int,
        dtype: type,
        device: torch.device,
    ):
        self.table, self.rank, self.world_size = table, rank, world_size
        self.batch_size, self.shuffle, self.seed, self.dtype, self.device = batch_size, shuffle, seed, dtype, device
        self.blocks = table.blocks_of("train", rank, world_size)
        every = [table.rows_in("train", table.blocks_of("train", r, world_size)) for r in range(world_size)]
        if min(every) == 0:
            raise DataError(
                f"data.stream: {table.source.shown} has {len(table.source.blocks)} row groups, too few to give each "
                f"of {world_size} processes training rows; write it with more, smaller row groups"
            )
        self.rows = max(every)  # every process steps through this many rows per epoch (padded)
        self.rows_per_chunk = (batch_size or 1) * batches_per_step
        self.epoch = 0
        self.sampler, self.batch_sampler = self, None  # what Lightning calls set_epoch on

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 1 if self.batch_size is None else math.ceil(self.rows / self.rows_per_chunk)

    def order(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This epoch's training rows of this process, in buffers: features (n, F) row-major and labels (n,)."""
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        blocks = list(rng.permutation(self.blocks)) if self.shuffle else list(self.blocks)
        for start in range(0, len(blocks), SHUFFLE_BLOCKS):
            parts = [self.table.read(int(b), "train", self.dtype) for b in blocks[start : start + SHUFFLE_BLOCKS]]
            features = np.concatenate([np.ascontiguousarray(p[0]) for p in parts])
            labels = np.concatenate([p[1] for p in parts])
            if self.shuffle:
                permutation = rng.permutation(len(labels))
                features, labels = features[permutation], labels[permutation]
            yield features, labels

    def _padded(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """`order()`, then its first rows again until this process has `self.rows` rows."""
        left = self.rows
        while left > 0:
            for features, labels in self.order():
                yield features[:left], labels[:left]
                left -= min(left, len(labels))
                if left == 0:
                    return

    def __iter__(self) -> Iterator[tuple]:
        if self.batch_size is None:
            share = self.table.split_size("train") / self.world_size
            rows = StreamedRows(self.table, "train", self.blocks, share, self.dtype, self.device)
            yield rows, rows, None, 0
            return
        held: list[tuple[np.ndarray, np.ndarray]] = []
        count = 0
        for features, labels in self._padded():
            held.append((features, labels))
            count += len(labels)
            while count >= self.rows_per_chunk:
                yield self._chunk(held, self.rows_per_chunk)
                count -= self.rows_per_chunk
        if count:
            yield self._chunk(held, count)

    def _chunk(self, held: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple:
        """The first `n` rows of `held` (taken out of it) as a training chunk."""
        features = np.concatenate([f for f, _ in held])
        labels = np.concatenate([y for _, y in held])
        held[:] = [(features[n:], labels[n:])] if len(labels) > n else []
        assert self.batch_size is not None
        return (
            torch.from_numpy(np.ascontiguousarray(features[:n])).to(self.device),
            torch.from_numpy(labels[:n].astype(self.dtype)).to(self.device),
            None,
            self.batch_size,
        )


class StreamedEvaluation:
    """An evaluation loader of a streamed table: this process's blocks of `split`, `(features, labels)` per block
    (at least one, maybe empty, item per process, so every process takes part in gathering the metrics)."""

    def __init__(self, table: StreamedTable, split: str, rank: int, world_size: int, dtype: type, device: torch.device):
        self.rows = StreamedRows(table, split, table.blocks_of(split, rank, world_size), 1.0, dtype, device)
        self.sampler, self.batch_sampler = None, None
        self.n_features, self.dtype, self.device = table.n_features, dtype, device

    def __len__(self) -> int:
        return max(len(self.rows.blocks), 1)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.rows.blocks:
            empty = torch.zeros(0, self.n_features, dtype=getattr(torch, np.dtype(self.dtype).name))
            yield empty.to(self.device), torch.zeros(0, dtype=empty.dtype, device=self.device)
            return
        yield from self.rows
