"""Which rows go where: seeded stratified splits and folds, each process's shard, and the loaders that serve them.

The rows live in memory as tensors, `features` (N, F) and `labels` (N,); loaders hand out slices of them (views where
the rows are contiguous), no per-row `Dataset.__getitem__`, no collate. numpy's PCG64 and torch's CPU generator give
the same rows for the same seed on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

SPLITS = ("train", "val", "test")
EVAL_BLOCK_ROWS = 1 << 16  # rows per evaluation step: bounds a step's temporaries, whatever the split's size


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices of train, val and test: each class is shuffled with `seed` and cut test first, then val.

    Indices are sorted, so with both fractions 0 the training rows keep the file's order.
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


def stratified_folds(rows: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """`rows` cut into `folds` disjoint folds of near-equal size and class balance, each sorted.

    Each class's rows are shuffled with `seed`, then dealt out to the folds in turn (fold sizes differ by at most one
    row per class), as scikit-learn's StratifiedKFold(shuffle=True) does in spirit; the same seed, the same folds.
    """
    rng = np.random.default_rng([seed, folds])  # a stream of its own: the folds do not depend on the split's draws
    assigned: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for label in (0.0, 1.0):
        members = rng.permutation(rows[labels[rows] == label])
        for fold in range(folds):
            assigned[fold].append(members[fold::folds])
    return [np.sort(np.concatenate(parts)) for parts in assigned]


class ShardSampler:
    """The rows one process visits in one epoch, as positions into its split: this process's share of the epoch's
    order (the rows in order, or a permutation drawn anew each epoch from `seed + epoch`, the same on every process;
    Lightning calls `set_epoch` before each epoch).

    `contiguous`: each process takes one block of the order (evaluation, full-batch training: unshuffled, a slice,
    served as views). Otherwise each takes every `world_size`-th position from its rank, so the processes' k-th
    mini-batches of B rows together are positions k*P*B .. (k+1)*P*B of the order: what one process training with
    batches of P*B rows takes, so DDP on P processes gives the numbers of one.
    `pad`: every process gets ceil(n_rows / world_size) positions, so all take the same number of steps (as
    DistributedSampler does, needed for training), repeating a few rows; without it (evaluation) the blocks split the
    rows exactly, each row counted once.
    """

    def __init__(
        self,
        n_rows: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
        contiguous: bool = True,
    ):
        self.n_rows, self.shuffle, self.seed = n_rows, shuffle, seed
        self.rank, self.world_size, self.contiguous = rank, world_size, contiguous or world_size == 1
        self.epoch = 0
        if pad:
            self.size = math.ceil(n_rows / world_size)
            self.start = max(min(rank * self.size, n_rows - self.size), 0)
        else:
            self.start = n_rows * rank // world_size
            self.size = n_rows * (rank + 1) // world_size - self.start

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def block(self) -> slice | None:
        """This epoch's positions as a slice, when they are one unshuffled range; else None."""
        return slice(self.start, self.start + self.size) if self.contiguous and not self.shuffle else None

    def indices(self) -> torch.Tensor:
        """This epoch's positions, (len(self),)."""
        if self.shuffle:
            order = torch.randperm(self.n_rows, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n_rows)
        if self.contiguous:
            return order[self.start : self.start + self.size]
        padded = torch.cat([order, order[: self.size * self.world_size - self.n_rows]])  # DistributedSampler's padding
        return padded[self.rank :: self.world_size]


GATHER_BYTES = 1 << 21  # a shuffled chunk of at most 2 MiB is gathered whole (it stays in cache); larger, per batch


class TrainingChunks:
    """The training loader: each item is one Lightning step's worth of mini-batches, `(features, labels, rows, B)`.

    The step's K mini-batches of B rows are, in order, B positions at a time: rows `rows[k*B : (k+1)*B]` of
    `features` (N, F) and `labels` (N,), or, where `rows` is None, rows `k*B : (k+1)*B` of them. An unshuffled
    block is served as views; a shuffled chunk is gathered whole when it is small (one gather, while it stays in
    cache), else the model gathers each mini-batch as it steps, as a plain loop does. So Lightning's per-step cost is
    paid once per K updates, and the numbers are those of serving each mini-batch on its own: the same permutation,
    cut at the same rows. `batch_size=None` is one batch of the whole shard (full batch).
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        sampler: ShardSampler,
        batch_size: int | None,
        batches_per_step: int = 1,
    ):
        self.features, self.labels = features, labels  # (N, F), (N,)
        self.sampler, self.batch_sampler = sampler, None  # the DataLoader attributes Lightning reads (set_epoch)
        self.batch_size = min(batch_size or len(sampler), len(sampler)) or 1
        self.rows_per_chunk = self.batch_size * batches_per_step

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.rows_per_chunk)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]]:
        block = self.sampler.block()
        if block is not None:  # a contiguous block of rows: views, no copy
            features, labels = self.features[block], self.labels[block]
            for start in range(0, len(labels), self.rows_per_chunk):
                stop = start + self.rows_per_chunk
                yield features[start:stop], labels[start:stop], None, self.batch_size
            return
        order = self.sampler.indices().to(self.features.device)
        gather_whole = self.rows_per_chunk * self.features.shape[1] * self.features.element_size() <= GATHER_BYTES
        for start in range(0, len(order), self.rows_per_chunk):
            rows = order[start : start + self.rows_per_chunk]  # (K*B,)
            if gather_whole:
                yield self.features[rows], self.labels[rows], None, self.batch_size
            else:
                yield self.features, self.labels, rows, self.batch_size


def minibatches(
    chunk: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The mini-batches of a training chunk, in order: features (B, F) and labels (B,) each."""
    features, labels, rows, batch_size = chunk
    if rows is None:
        for start in range(0, len(labels), batch_size):
            yield features[start : start + batch_size], labels[start : start + batch_size]
        return
    for start in range(0, len(rows), batch_size):
        batch_rows = rows[start : start + batch_size]  # (B,)
        yield features[batch_rows], labels[batch_rows]


class EvaluationBlocks:
    """An evaluation loader: this process's rows in order, as `(features, labels)` views of up to EVAL_BLOCK_ROWS."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, sampler: ShardSampler):
        self.features, self.labels = features, labels  # (N, F), (N,)
        self.sampler, self.batch_sampler = sampler, None

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / EVAL_BLOCK_ROWS)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rows = self.sampler.block()
        assert rows is not None, "evaluation serves each process one unshuffled block of rows"
        for start in range(rows.start, rows.stop, EVAL_BLOCK_ROWS):
            block = slice(start, min(start + EVAL_BLOCK_ROWS, rows.stop))
            yield self.features[block], self.labels[block]
