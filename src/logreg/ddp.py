"""Lightning's DDP processes under Hydra: each extra process runs the current Hydra job, not the whole command line.

Lightning's launcher (`_SubprocessScriptLauncher`) starts the extra processes of a DDP run with the command that
`lightning.fabric.strategies.launchers.subprocess_script._hydra_subprocess_cmd` returns: sys.argv again, so under
`-m` every child would start the whole sweep again. Within `ddp_processes_of_this_job`, that function is replaced by
`ddp_child_command`, and put back after. It is a private function of Lightning: if it is gone, this fails loudly
(tests/test_ddp_launch.py also checks that the launcher still calls it), rather than letting DDP re-run sweeps.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd

LAUNCHER_MODULE = "lightning.pytorch.strategies.launchers.subprocess_script"  # imports the function it calls by name
CHILD_COMMAND = "_hydra_subprocess_cmd"
# What Lightning's DDP launcher sets in os.environ for the processes it starts (lightning/pytorch/strategies/launchers).
DDP_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def ddp_child_command(script: str, local_rank: int) -> tuple[list[str], str]:
    """The command Lightning's DDP launcher runs for the process of `local_rank` (1, 2, ...): this Hydra job alone,
    by the entry `script`.

    It runs the job's own config (one trial of a sweep) as a single run in the job's folder, without writing .hydra/
    a second time; the child's log goes to train_ddp_process_<local_rank>.log beside train.log. Everything comes from
    the job's Hydra config, not sys.argv, so it also holds in a launcher's worker process.
    """
    hydra_cfg = HydraConfig.get()
    flags = [f"--config-name={hydra_cfg.job.config_name}"]
    for source in hydra_cfg.runtime.config_sources:  # conf/ (or --config-path), and a --config-dir
        where = source.path if source.schema == "file" else f"{source.schema}://{source.path}"
        if source.provider == "main":
            flags.append(f"--config-path={where}")
        elif source.provider == "command-line":
            flags.append(f"--config-dir={where}")
    ours = ("hydra.mode", "hydra.run.dir", "hydra.output_subdir", "hydra.job.name")
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if o.split("=", 1)[0].lstrip("+~") not in ours]
    command = [sys.executable, os.path.abspath(script), *flags, *hydra_cfg.overrides.task, *hydra_overrides]
    command += [
        "hydra.mode=RUN",
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',  # quoted: a sweep folder's name holds "=" and ","
        "hydra.output_subdir=null",  # rank zero wrote .hydra/
        f"hydra.job.name=train_ddp_process_{local_rank}",
    ]
    return command, get_original_cwd()


@contextmanager
def ddp_processes_of_this_job(script: str) -> Iterator[None]:
    """Within: a DDP trainer's extra processes run this Hydra job. After: Lightning's own command is back, and the
    processes are gone, as if never launched (`ddp_children_started_by`)."""
    with ddp_children_started_by(partial(ddp_child_command, script)):
        yield


@contextmanager
def ddp_children_started_by(child_command: Callable[[int], tuple[list[str], str]]) -> Iterator[None]:
    """Within: Lightning's DDP launcher starts the process of local rank r (1, 2, ...) with `child_command(r)`, a
    command and its working folder. After: Lightning's own command is back, and the process group and environment
    are as before the launch.

    Lightning's launcher leaves LOCAL_RANK, MASTER_PORT, ... in os.environ and the process group open for the life of
    the process; the next job of a `-m` sweep would take them for an external launch (torchrun) and wait for children
    that have exited. So the process that launched them closes the group and restores the environment.
    """
    import torch.distributed as dist

    launcher = importlib.import_module(LAUNCHER_MODULE)
    lightning_command = getattr(launcher, CHILD_COMMAND, None)
    if lightning_command is None:
        raise RuntimeError(
            f"{LAUNCHER_MODULE}.{CHILD_COMMAND} no longer exists in this Lightning version: logreg.ddp must be updated "
            "to give Lightning's DDP launcher the command of this Hydra job (or DDP under -m would re-run sweeps)"
        )
    setattr(launcher, CHILD_COMMAND, child_command)
    env_before = {key: os.environ.get(key) for key in DDP_LAUNCH_ENV}
    try:
        yield
    finally:
        setattr(launcher, CHILD_COMMAND, lightning_command)
        if env_before["LOCAL_RANK"] is None and "LOCAL_RANK" in os.environ:  # this process launched the children
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
            for key, value in env_before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
