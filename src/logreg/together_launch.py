"""What `hydra/launcher=together` does with a batch of jobs: compose each (`logreg.sweep_compose`), check it, group
the jobs that can train together (`logreg.together_runs.group_key`), train each group as one Lightning run, then run
every job through Hydra's own `run_job`: a trained one with a task that writes its outputs, the others with train.py's
own task, one after the other, as Hydra's basic launcher does. One line says what trained together and why the rest
did not.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict, read_write

from logreg.checking import check_config
from logreg.errors import find_user_error
from logreg.schema import TrainConfig


@contextmanager
def as_job(cfg: DictConfig) -> Iterator[DictConfig]:
    """Within: Hydra's config is this job's, with the output folder it will have (so `${hydra:...}` resolves); run_job
    sets the same folder again. No copy: a config copy costs milliseconds, and a sweep makes many."""
    with read_write(cfg.hydra), open_dict(cfg.hydra):  # Hydra's set_config leaves the node read-only
        cfg.hydra.runtime.output_dir = os.path.abspath(os.path.join(cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir))
    instance = HydraConfig.instance()
    before = instance.cfg
    instance.set_config(cfg)
    try:
        yield cfg
    finally:
        instance.cfg = before


def plan(
    jobs: list[DictConfig], train_together: bool
) -> tuple[list[list[int]], dict[int, str], dict[int, TrainConfig]]:
    """The groups (job positions, two or more per group); for every other job, why it trains alone; and the typed
    config of each job that may train in a group, checked once, here."""
    from logreg.together_runs import group_key

    keys: dict[str, list[int]] = {}
    alone: dict[int, str] = {}
    typed: dict[int, TrainConfig] = {}
    for position, cfg in enumerate(jobs):
        if not train_together:
            alone[position] = "hydra.launcher.train_together=false"
            continue
        with as_job(cfg) as early:
            try:
                typed[position] = check_config(early, sweep=True)
            except Exception as error:
                if find_user_error(error) is None:
                    raise
                alone[position] = "its config is refused"
                continue
            key, reason = group_key(typed[position], early.hydra.runtime.output_dir)
        if key is None:
            alone[position] = reason
        else:
            keys.setdefault(key, []).append(position)
    groups = []
    for members in keys.values():
        if len(members) == 1:
            alone[members[0]] = "no other trial shares its rows and settings"
        else:
            groups.append(members)
    return groups, alone, typed


@contextmanager
def ddp_processes_of(
    first: DictConfig, configs: list[TrainConfig], changes: list[dict[str, Any]], config: DictConfig
) -> Iterator[None]:
    """Within: where the group trains under DDP, its extra processes train it too (`logreg.together_ddp`), from a
    file in the sweep folder named for its first job (`first`)."""
    from logreg.together_ddp import group_processes, uses_ddp

    if not uses_ddp(configs[0].trainer):
        yield
        return
    group_file = Path(str(config.hydra.sweep.dir)) / f"together_ddp_{first.hydra.job.num}.pkl"
    with group_processes(configs, changes, group_file):
        yield


def summary_line(groups: list[list[int]], alone: dict[int, str], n_jobs: int) -> str:
    together = sum(len(g) for g in groups)
    line = f"Sweep: {together} of {n_jobs} trials trained together, in {len(groups)} group{'s' * (len(groups) != 1)}"
    if alone:
        reasons = Counter(alone.values())
        line += "; alone: " + ", ".join(f"{count} ({reason})" for reason, count in reasons.most_common())
    return line + " (hydra/launcher=basic: every trial alone)"


def launch(
    hydra_context: HydraContext,
    task_function: Callable[[Any], Any],
    config: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    train_together: bool = True,
    line: Callable[[str], None] = print,
) -> list[JobReturn]:
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    jobs: list[DictConfig] = []
    for offset, overrides in enumerate(job_overrides):
        cfg = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        if any(cfg is job for job in jobs):  # a job repeated in the batch: its own config, not a shared one
            cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.hydra.job.id = initial_job_idx + offset
            cfg.hydra.job.num = initial_job_idx + offset
        jobs.append(cfg)
    groups, alone, typed = plan(jobs, train_together)
    if len(jobs) > 1:  # a batch of one (Optuna's n_jobs=1) has nothing to train with
        line(summary_line(groups, alone, len(jobs)))
    trained: dict[int, list[Any]] = {}  # each job's trial, or its folds
    if groups:
        from logreg.together_runs import train_group
        from logreg.training import fold_changes

        for members in groups:
            # a job with cv.folds=K is K trials of the group, one per fold (each with its own rows)
            owners, changes = [], []
            for position in members:
                folds = typed[position].cv.folds
                parts = fold_changes(folds) if folds >= 2 else [{}]
                owners += [position] * len(parts)
                changes += parts
            with (
                as_job(jobs[members[0]]),
                ddp_processes_of(jobs[members[0]], [typed[p] for p in owners], changes, config),
            ):
                try:
                    results = train_group([typed[position] for position in owners], changes)
                except Exception as error:  # a user error (the data, say): each job meets it again, alone
                    if find_user_error(error) is None:
                        raise
                    continue
            for position, result in zip(owners, results, strict=True):
                trained.setdefault(position, []).append(result)
    runs = []
    from logreg.together_runs import trial_task

    for position, cfg in enumerate(jobs):
        task = trial_task(trained[position], typed[position], line) if position in trained else task_function
        runs.append(
            run_job(
                hydra_context=hydra_context,
                task_function=task,
                config=cfg,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return runs
