"""`hydra/launcher=together` (the default for `python train.py -m`): trials that share their rows train together, as
one Lightning run per group, then each is still a whole run of its own through Hydra's `run_job` (its folder,
`.hydra/`, callbacks, outputs). `hydra/launcher=basic` is Hydra's launcher: one trial after the other.

This module is imported by Hydra's plugin scan in every run: it imports nothing heavy (the work is in
`logreg.together_launch`), and it has no `from __future__ import annotations`, which Hydra's scan cannot load with a
dataclass.
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class TogetherLauncherConf:
    _target_: str = "hydra_plugins.logreg_together.together_launcher.TogetherLauncher"
    train_together: bool = True  # false: every trial trains alone (as hydra/launcher=basic, with the fast composes)


ConfigStore.instance().store(group="hydra/launcher", name="together", node=TogetherLauncherConf, provider="logreg")


class TogetherLauncher(Launcher):
    runs_jobs_in_this_process = True  # every job runs in the sweeper's process: its Optuna trial is at hand (pruning)

    def __init__(self, train_together: bool = True) -> None:
        super().__init__()
        self.train_together = train_together
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from logreg.sweep_compose import CachingConfigLoader

        if not isinstance(hydra_context.config_loader, CachingConfigLoader):  # shared with the sweeper: one cache
            hydra_context.config_loader = CachingConfigLoader(hydra_context.config_loader)  # type: ignore[assignment]
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from logreg.together_launch import launch

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        runs: Any = launch(
            self.hydra_context, self.task_function, self.config, job_overrides, initial_job_idx, self.train_together
        )
        return runs
