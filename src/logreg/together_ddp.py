"""Trials trained together under DDP (`trainer=ddp_cpu`, `trainer=ddp`): the group's Trainer runs Lightning's DDP with
the trials' strategy, devices and num_nodes, and the extra processes Lightning's launcher starts train the same group.

- `GroupDDPStrategy`: Lightning's DDPStrategy without torch's DistributedDataParallel wrapper, which would have no
  parameters to reduce: a group's weights are buffers its module steps itself, after one all-reduce of each update's
  sums (`logreg.together.TogetherModule`).
- `group_processes(configs, changes, group_file)`: within it, Lightning's launcher starts each extra process as
  `python -m logreg.together_ddp <group_file>`, the group's typed configs pickled into that file (in the sweep folder
  the launcher claimed), the process's output going to `<group_file stem>_process_<local rank>.log` beside it. After
  it: the processes have ended, the file is gone, the process group is closed, and the environment (and torch's thread
  count) is as before, so the next group or job of the sweep does not take itself for a process torchrun started.
- `python -m logreg.together_ddp <group_file>`: an extra process trains the group under the DDP environment Lightning
  set, then exits; it writes no trial's outputs (the launcher writes them in rank zero, after the group).

Under an external launch (torchrun, SLURM: LOCAL_RANK set from outside) a sweep's DDP trials train alone, as before:
every process would run the whole sweep and write every trial (`ddp_refusal`).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy

from logreg.ddp import ddp_children_started_by
from logreg.schema import TrainConfig, value_of
from logreg.shares import launch

DDP_TARGETS = ("lightning.pytorch.strategies.DDPStrategy", "lightning.pytorch.strategies.ddp.DDPStrategy")
CHILD_EXIT_S = 120.0  # how long the launching process waits for a child to end after the group trained
_started: list[subprocess.Popen] = []  # the extra processes of the group being trained (`GroupDDPStrategy`)


class GroupDDPStrategy(DDPStrategy):
    """DDP as Lightning runs it (processes, process group, ranks, `reduce`), with the module left unwrapped."""

    def configure_ddp(self) -> None:
        pass  # no DistributedDataParallel: the module reduces its own sums (and has no parameters for it)

    def setup_environment(self) -> None:
        super().setup_environment()
        _started.extend(getattr(self.launcher, "procs", []))  # started just before, by Lightning's launcher


def uses_ddp(trainer: Any) -> bool:
    """Whether the trainer config runs several processes (or asks for a DDP strategy)."""
    return str(trainer.strategy) != "auto" or trainer.devices not in (1, "1") or trainer.num_nodes != 1


def ddp_refusal(trainer: Any) -> str | None:
    """Why trials with this (DDP) trainer config cannot train together, or None where they can."""
    strategy = trainer.strategy
    if isinstance(strategy, str):
        if strategy not in ("auto", "ddp"):
            return f"trainer.strategy={strategy}"
    elif value_of(strategy, "_target_") not in DDP_TARGETS:
        return f"trainer.strategy={str(value_of(strategy, '_target_')).rsplit('.', 1)[-1]}"
    if trainer.num_nodes != 1:
        return "trainer.num_nodes>1 (several nodes)"
    if launch().external or "LOCAL_RANK" in os.environ:
        return "DDP under torchrun or SLURM (each process runs the whole sweep)"
    return None


def group_strategy(trainer: Any) -> Any:
    """The strategy of a group's Trainer for the trials' trainer config."""
    if not uses_ddp(trainer):
        return "auto"
    strategy = trainer.strategy
    if isinstance(strategy, str):  # "ddp", or "auto" on several devices (Lightning's choice there: ddp)
        return GroupDDPStrategy()
    from logreg.training import plain

    return GroupDDPStrategy(**{key: value for key, value in plain(strategy).items() if key != "_target_"})


def child_command(group_file: Path, local_rank: int) -> tuple[list[str], str]:
    """The command (and working folder) of the extra process of `local_rank`: the same group, from its file."""
    return [sys.executable, "-m", __name__, str(group_file)], os.getcwd()


@contextmanager
def group_processes(configs: list[TrainConfig], changes: list[dict[str, Any]], group_file: Path) -> Iterator[None]:
    """Within: a DDP Trainer's extra processes train the group of `configs` (and `changes`, `train_group`'s), read
    from `group_file` (a new file). After: they have ended, and this process is as before the launch."""
    with group_file.open("xb") as file:  # a new file: never another's
        pickle.dump((configs, changes), file)
    package_root = str(Path(__file__).resolve().parent.parent)  # the children import this logreg
    env_before = {key: os.environ.get(key) for key in ("PYTHONPATH", "OMP_NUM_THREADS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env_before["PYTHONPATH"]]))
    threads = torch.get_num_threads()  # Lightning's launcher sets it per process, and OMP_NUM_THREADS
    trained = False
    try:
        with ddp_children_started_by(partial(child_command, group_file)):
            try:
                yield
                trained = True
            finally:
                _end_children(wait=trained)
    finally:
        group_file.unlink(missing_ok=True)
        torch.set_num_threads(threads)
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _end_children(wait: bool) -> None:
    """The group's extra processes, ended: waited for after the group trained (they end with it), else stopped."""
    for process in _started:
        if not wait:
            process.terminate()
        try:
            process.wait(timeout=CHILD_EXIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _started.clear()


def main(group_file: str) -> None:
    """An extra process of a group's DDP run: train the group of `group_file` (its output into a log beside it)."""
    path = Path(group_file)
    log_file = path.with_name(f"{path.stem}_process_{os.environ.get('LOCAL_RANK', '?')}.log")
    with log_file.open("x") as output:  # a new file, this process's
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    with path.open("rb") as file:
        configs, changes = pickle.load(file)  # the launcher's own file: typed configs of plain values
    from logreg.together_runs import train_group

    log = logging.getLogger(__name__)
    rank, world_size = os.environ.get("LOCAL_RANK"), os.environ.get("WORLD_SIZE")
    log.info("process %s of %s trains the group of %d trials of %s", rank, world_size, len(configs), path.name)
    train_group(configs, changes)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    log.info("process %s of %s: the group trained", rank, world_size)


if __name__ == "__main__":
    main(sys.argv[1])
