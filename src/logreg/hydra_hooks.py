"""What Hydra needs from the package: the schemas in its ConfigStore, the resolvers the configs use, and the callback
that checks a config before anything is written.

Importing this module registers them (`logreg.checking` imports it, so every entry script and every composition
through the package has them).
"""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from logreg.errors import exit_on
from logreg.metric_names import metric_direction, metric_mode
from logreg.schema import ENTRY_SCHEMAS, SCHEMA_GROUPS
from logreg.sweep import short_values


class CheckConfig(Callback):
    """Hydra callback: refuse a bad config before anything is written, not even the run folder.

    A single run is checked whole (the entry script checks it again, in case this callback is left out of a config);
    a sweep is checked for what all its trials share (what it optimizes), and each trial when it starts.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from logreg.checking import check_config  # which imports this module

        early = config.copy()
        with open_dict(early):  # what ${hydra:runtime.output_dir} will be, so the paths in the config resolve
            early.hydra.runtime.output_dir = os.path.abspath(early.hydra.run.dir)
        HydraConfig.instance().set_config(early)  # Hydra sets it again for the job
        self._check(lambda: check_config(early))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from logreg.checking import raise_first
        from logreg.schema import sweep_problems

        if "optimized_metric" in config:
            self._check(lambda: raise_first(config, sweep_problems(config), ""))

    @staticmethod
    def _check(check: Any) -> None:
        try:
            check()
        except Exception as error:  # raised, Hydra would only warn and go on
            from logreg.errors import as_user_error

            user_error = as_user_error(error)
            if user_error is None:
                raise
            exit_on(user_error)


def optuna_seed(seed: int, storage: str | None) -> int:
    """The Optuna sampler's seed: `seed` itself, except with a shared study storage, where workers with equal seeds
    would propose identical trials: there each process mixes in its host and process id."""
    if not storage:
        return seed
    digest = hashlib.sha256(f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


OmegaConf.register_new_resolver("metric_mode", metric_mode, replace=True)
OmegaConf.register_new_resolver("metric_direction", metric_direction, replace=True)
OmegaConf.register_new_resolver("optuna_seed", optuna_seed, replace=True, use_cache=True)
OmegaConf.register_new_resolver("short_values", short_values, replace=True)  # conf/train.yaml, hydra.sweep.subdir

_store = ConfigStore.instance()
for _name, _node in ENTRY_SCHEMAS.items():
    _store.store(group="schema", name=_name, node=_node)
for _group, _nodes in SCHEMA_GROUPS.items():
    for _name, _node in _nodes.items():
        _store.store(group=f"schema/{_group}", name=_name, node=_node)
