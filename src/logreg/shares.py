"""The plan: what the first DDP process of a node fits on the training rows, kept for the node's other processes, so
that those read neither the whole table nor its label column, only their own rows.

The first process on a node (local rank 0) reads the table, cuts the split and fits what is fitted on the training
rows (encoding, scaler, class counts, fingerprint; for a streamed table also each row's label and split). It writes
that into the project's cache folder (`logreg.stream_source.cache_dir()`/plan/<key>), keyed by what decides it: the
files' paths, sizes and modification times, the data options, the fold, the dtype and the number of processes. For a
table held in memory the plan also holds, for each other process, its rows of each split (`.npy` arrays). A plan is
written into a temporary folder and renamed into place, `plan.json` last, so a reader sees a whole plan or none.

When it is written and read (`launch()` tells the cases apart from the environment):
- Processes that torchrun or SLURM start at once know their ranks from the start: local rank 0 writes the plan as
  soon as it has read the table; the others wait for it (up to PLAN_WAIT_S, then read the table themselves).
- Lightning's own launcher (`python train.py trainer=ddp`) starts the other processes inside `trainer.fit`: the
  first process writes the plan just before (`TabularDataModule.share`), and the others take it when it is there
  (else they read the table, as one process does).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logreg.errors import DataError
from logreg.stream_source import cache_dir, moved_into_place

PLAN_VERSION = 1  # bump when a plan's layout changes: older plans are then not read
PLAN_WAIT_S = 1800.0  # how long a process started with the others waits for its node's plan
_POLL_S = 0.2


@dataclass(frozen=True)
class Launch:
    """How this process was started: its rank on its node, the number of processes, and whether torchrun or SLURM
    started every process at once (`external`) rather than Lightning's launcher starting the others later."""

    local_rank: int = 0
    world_size: int = 1
    external: bool = False

    @property
    def follows(self) -> bool:
        """Whether this process takes its node's plan rather than reading the table (not local rank 0)."""
        return self.world_size > 1 and self.local_rank > 0

    @property
    def leads(self) -> bool:
        """Whether this process writes the plan as soon as it has read the table (local rank 0 of torchrun/SLURM)."""
        return self.world_size > 1 and self.local_rank == 0 and self.external


def launch() -> Launch:
    """This process's `Launch`, from the variables torchrun, SLURM or Lightning's launcher set (none: one process)."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env and "LOCAL_RANK" in env:  # torchrun
        return Launch(int(env["LOCAL_RANK"]), int(env.get("WORLD_SIZE", 1)), True)
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_LOCALID" in env:  # srun, one task per process
        return Launch(int(env["SLURM_LOCALID"]), int(env["SLURM_NTASKS"]), True)
    if "LOCAL_RANK" in env and "WORLD_SIZE" in env:  # Lightning's launcher (it sets both for the processes it starts)
        return Launch(int(env["LOCAL_RANK"]), int(env["WORLD_SIZE"]), False)
    return Launch()


class Plan:
    """A plan as written: its values (plain JSON) and its arrays, read from its folder on demand."""

    def __init__(self, folder: Path, values: dict[str, Any]):
        self.folder, self.values = folder, values

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def array(self, name: str, mapped: bool = False) -> np.ndarray:
        """The array `name`; `mapped`: memory-mapped (read-only), so only the parts used are read from disk."""
        return np.load(self.folder / f"{name}.npy", mmap_mode="r" if mapped else None)


def plan_folder(identity: dict) -> Path:
    text = json.dumps({**identity, "version": PLAN_VERSION}, sort_keys=True, default=str)
    return cache_dir() / "plan" / hashlib.sha256(text.encode()).hexdigest()[:32]


def read_plan(identity: dict) -> Plan | None:
    """The plan written under `identity`, or None."""
    folder = plan_folder(identity)
    try:
        return Plan(folder, json.loads((folder / "plan.json").read_text()))
    except (OSError, ValueError):
        return None


def wait_for_plan(identity: dict) -> Plan | None:
    """The plan under `identity` once it is there, or None after PLAN_WAIT_S seconds."""
    deadline = time.monotonic() + PLAN_WAIT_S
    while True:
        plan = read_plan(identity)
        if plan is not None or time.monotonic() >= deadline:
            return plan
        time.sleep(_POLL_S)


def write_plan(identity: dict, values: dict[str, Any], arrays: Iterable[tuple[str, np.ndarray]]) -> Plan:
    """Write the plan (its `values`, plain JSON, and `arrays`, made one at a time) under `identity`, atomically; a
    plan already there (another process's, or an earlier run's) is kept."""
    final = plan_folder(identity)
    if (plan := read_plan(identity)) is not None:
        return plan
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    except OSError as error:
        raise DataError(
            f"cannot write the DDP processes' data plan into {final.parent} ({error.strerror}): set LOGREG_CACHE_DIR "
            "to a writable folder"
        ) from None
    with moved_into_place(work, final, "plan.json"):  # plan.json last: a plan whole, or none
        for name, array in arrays:
            np.save(work / f"{name}.npy", np.ascontiguousarray(array))
        (work / "plan.json").write_text(json.dumps(values))
    plan = read_plan(identity)
    assert plan is not None, "written just now"
    return plan
