"""Each trial's own rows in a group that trains together: its training rows and their order in every epoch, its
validation rows and its test rows, as its own DataModule cuts and orders them (`logreg.data.cut_split` and the
DataModule's own `sampler`), so a trial of a group sees the rows it would see trained alone; and how each Lightning
step's mini-batches are served to the group's `logreg.together.TogetherModule`.

Three ways, one per case (`GroupRows.kind`):
- "shared": every trial trains on the same rows in the same order: one batch of rows for all, `(B, F)`;
- "masked" (full batch, rows that differ: folds, other seeds' splits): the rows any trial trains on, `(n, F)`, and a
  `(n, K)` 0/1 weight: trial k's loss and gradient are the mean over its own rows;
- "gathered" (mini-batches in orders that differ: each seed its own order): a `(K, B, F)` gather per mini-batch from
  each trial's own order, padded with weight 0 where a trial's batch is shorter (its last one) or it has no more.

Under DDP (`share`), the P processes serve the batches of one process with batch size P x B (`data.batch_size` is
per process, as for one run): process r takes rows [n r / P, n (r + 1) / P) of each such batch of n rows, and its
gradient sums of them, summed over the processes (`logreg.together.TogetherModule`), are the whole batch's. A batch's
`rows` and `scale` are the whole batch's; no row is repeated, so P processes give the numbers of one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

from logreg.splits import ShardSampler

if TYPE_CHECKING:
    from logreg.data import TabularDataModule


@dataclass
class TrialRows:
    """One trial's rows, as table row indices: train (n,), val (v,), test (t,) or None (a fold: scored on val only),
    and the sampler whose positions into `train` are the order of each epoch."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor | None
    sampler: ShardSampler

    @classmethod
    def of(cls, datamodule: TabularDataModule, tested: bool = True) -> TrialRows:
        """The rows of the trial whose DataModule (loaded, in memory) this is; `tested`: it scores `test_on`."""

        def rows(split: str) -> torch.Tensor:
            return torch.from_numpy(datamodule.split_rows(split)).long()

        test_on = datamodule.options.test_on
        return cls(rows("train"), rows("val"), rows(test_on) if tested else None, datamodule.sampler("train", True))

    def order(self, epoch: int) -> torch.Tensor:
        """(n,) the table rows of `epoch`'s training pass, in its order."""
        self.sampler.set_epoch(epoch)
        block = self.sampler.block()
        return self.train[block] if block is not None else self.train[self.sampler.indices()]

    def same_pass(self, other: TrialRows) -> bool:
        """Whether this trial's training passes are `other`'s: the same rows, in the same order every epoch."""
        mine, theirs = self.sampler, other.sampler
        same_order = mine.shuffle == theirs.shuffle and (not mine.shuffle or mine.seed == theirs.seed)
        return same_order and mine.contiguous == theirs.contiguous and torch.equal(self.train, other.train)


class Batch(NamedTuple):
    """One mini-batch of every trial (or the full batch)."""

    features: torch.Tensor  # (B, F) every trial's rows; or (K, B, F) each trial's own ("gathered")
    labels: torch.Tensor  # (B,); or (K, B)
    weights: torch.Tensor | None  # (B, K): 1 where a row is the trial's, else 0; None: every row is every trial's
    rows: torch.Tensor  # (K,) int64 on the CPU: each trial's rows in the batch (0: it has no batch here)
    scale: torch.Tensor  # (K,) 1 / rows in the weights' dtype, on their device (0 where a trial has no rows)


class GroupRows:
    """The group's table (features (N, F), labels (N,)) and each trial's `TrialRows`; serves each Lightning step's
    mini-batches (`batch_size` rows, `batches_per_step` per step; None: full batch) and each trial's held-out rows.
    """

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        trials: list[TrialRows],
        batch_size: int | None,
        batches_per_step: int,
    ):
        self.features, self.labels, self.trials = features, labels, trials  # (N, F), (N,)
        self.batch_size, self.batches_per_step = batch_size, batches_per_step
        first = trials[0]
        if all(first.same_pass(trial) for trial in trials[1:]):
            self.kind = "shared"
        else:
            self.kind = "masked" if batch_size is None else "gathered"
        self.n_rows = torch.tensor([len(t.train) for t in trials])  # (K,)
        self._orders: torch.Tensor | None = None  # this epoch's (K, max n) orders ("gathered")
        self._mask: tuple[torch.Tensor, torch.Tensor] | None = None  # union rows (n,), 0/1 weights (n, K) ("masked")
        self._scales: dict[tuple[int, ...], torch.Tensor] = {}  # `_scale`'s, per distinct count
        self.full_rows = int(self.n_rows.min())  # below this, every trial's mini-batches are whole
        self.rank, self.world_size = 0, 1  # `share`: this process's part of each batch

    def share(self, rank: int, world_size: int) -> None:
        """Serve process `rank` of `world_size` its part of each batch, the batches being those of one process with
        `world_size` times the batch size; once, before serving."""
        assert self.world_size == 1, "a group's rows are shared out once"
        self.rank, self.world_size = rank, world_size
        if self.batch_size is not None:
            self.batch_size *= world_size

    def _mine(self, n_rows: int) -> slice:
        """This process's part of a batch of `n_rows` rows."""
        return slice(n_rows * self.rank // self.world_size, n_rows * (self.rank + 1) // self.world_size)

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        """The table on the training device, in the weights' dtype; mini-batches gather rows (row-major), a full
        batch runs matrix products over many rows (column-major is faster)."""
        features = self.features.to(device=device, dtype=dtype)
        if self.batch_size is None and len(features) > 0:
            features = features.t().contiguous().t()
        else:
            features = features.contiguous()
        self.features, self.labels = features, self.labels.to(device=device, dtype=dtype)
        self._scales = {}  # of the dtype before

    def _scale(self, rows: torch.Tensor) -> torch.Tensor:
        """(K,) 1 / rows (0 where none), as torch scales a mean: the double 1 / n in the weights' dtype; kept per
        distinct count (a mini-batch's, the last one's)."""
        key = tuple(rows.tolist())
        if key not in self._scales:
            inverse = torch.tensor([1 / n if n else 0.0 for n in key], dtype=torch.float64)
            self._scales[key] = inverse.to(device=self.features.device, dtype=self.labels.dtype)
        return self._scales[key]

    # ------------------------------------------------------------------------------------------------- training

    def batches_of(self, k: int) -> int:
        """How many mini-batches trial k takes per epoch."""
        n_rows = int(self.n_rows[k])
        return 1 if self.batch_size is None else math.ceil(n_rows / min(self.batch_size, n_rows))

    def steps_of(self, k: int) -> int:
        """How many Lightning steps trial k takes per epoch (alone: its loader's length)."""
        return math.ceil(self.batches_of(k) / (1 if self.batch_size is None else self.batches_per_step))

    @property
    def steps(self) -> int:
        """Lightning steps per epoch of the group: the most any trial takes."""
        return max(self.steps_of(k) for k in range(len(self.trials)))

    def start_epoch(self, epoch: int) -> None:
        """Draw every trial's order of `epoch` (where they differ)."""
        if self.kind == "gathered":
            orders = [trial.order(epoch) for trial in self.trials]
            padded = torch.zeros(len(orders), max(len(o) for o in orders), dtype=torch.long)
            for k, order in enumerate(orders):
                padded[k, : len(order)] = order
            self._orders = padded.to(self.features.device)
        elif self.kind == "shared" and self.batch_size is not None:
            self._orders = self.trials[0].order(epoch).to(self.features.device).view(1, -1)
        elif self._mask is None and self.kind == "masked":
            union = torch.unique(torch.cat([trial.train for trial in self.trials]))  # sorted
            mask = torch.stack([torch.isin(union, trial.train) for trial in self.trials], dim=1)  # (n, K)
            self._mask = union.to(self.features.device), mask.to(device=self.features.device, dtype=self.labels.dtype)

    def minibatches(self, step: int) -> Iterator[Batch]:
        """The mini-batches of Lightning step `step` of the epoch `start_epoch` began, in order."""
        if self.batch_size is None:
            yield self._full_batch()
            return
        size, per_step = self.batch_size, self.batches_per_step
        assert self._orders is not None, "start_epoch draws the orders"
        whole = torch.full_like(self.n_rows, size)
        for batch in range(step * per_step, (step + 1) * per_step):
            start = batch * size
            rows = whole if start + size <= self.full_rows else (self.n_rows - start).clamp(0, size)  # (K,)
            if start >= self.full_rows and not bool((rows > 0).any()):
                return
            scale = self._scale(rows)
            if self.kind == "shared":
                index = self._orders[0, start : start + size]
                index = index[self._mine(len(index))]
                yield Batch(self.features[index], self.labels[index], None, rows, scale)
                continue
            width = int(rows.max())
            mine = self._mine(width)
            index = self._orders[:, start : start + width][:, mine]  # (K, b)
            weights = None  # every trial's batch is whole: no weights
            if start + width > self.full_rows:
                weights = (torch.arange(width)[None, :] < rows[:, None]).T[mine]  # (b, K)
                weights = weights.to(device=self.features.device, dtype=self.labels.dtype)
            yield Batch(self.features[index], self.labels[index], weights, rows, scale)

    def _full_batch(self) -> Batch:
        if self.kind == "shared":
            train = self.trials[0].train
            if len(train) == len(self.labels):  # every row (lab 5 trains on all): the table itself (a view)
                mine = self._mine(len(train))
                return Batch(self.features[mine], self.labels[mine], None, self.n_rows, self._scale(self.n_rows))
            index = train[self._mine(len(train))].to(self.features.device)
            return Batch(self.features[index], self.labels[index], None, self.n_rows, self._scale(self.n_rows))
        assert self._mask is not None, "start_epoch builds the mask"
        union, mask = self._mask
        mine = self._mine(len(union))
        union, mask = union[mine], mask[mine]
        return Batch(self.features[union], self.labels[union], mask, self.n_rows, self._scale(self.n_rows))

    # ------------------------------------------------------------------------------------------------ held out

    def held_out(self, split: str) -> list[tuple[torch.Tensor, torch.Tensor, list[int]]]:
        """The trials' rows of `split` ("val" or "test"), each distinct set once: (features (n, F), labels (n,), the
        trials that score on them)."""
        sets: list[tuple[torch.Tensor, list[int]]] = []
        for k, trial in enumerate(self.trials):
            rows = trial.val if split == "val" else trial.test
            if rows is None or len(rows) == 0:
                continue
            same = next((members for index, members in sets if torch.equal(index, rows)), None)
            if same is not None:
                same.append(k)
            else:
                sets.append((rows, [k]))
        served = []
        for rows, members in sets:
            index = rows.to(self.features.device)
            served.append((self.features[index], self.labels[index], members))
        return served
