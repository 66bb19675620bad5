"""A sweep's job configs at a fraction of a compose each: compose once per distinct set of config-group choices, then
apply each job's value overrides (`lr=0.1`) with Hydra's own override code, as its compose would.

Hydra's compose applies value overrides after the defaults list is composed (`ConfigLoaderImpl._apply_overrides_to_
config`): a job whose other overrides (group choices, `hydra.*` keys) are another job's gets that job's composed config
before its values, and then its own values. The Hydra node is then what a compose of the whole job gives:
`hydra.overrides.task` in the job's order, `hydra.job.override_dirname` by Hydra's function. Anything else (`+key`,
`~key`, `key@pkg`) is composed whole. tests/test_together.py compares every key with Hydra's compose.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

_apply_overrides: Callable[[list[Override], DictConfig], None] | None
get_overrides_dirname: Callable[..., str]
try:  # private to Hydra: guarded, so a rename falls back to a whole compose per job (slower, the same configs)
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname

    _apply_overrides = ConfigLoaderImpl._apply_overrides_to_config
except (ImportError, AttributeError):  # pragma: no cover - another Hydra
    _apply_overrides = None


class SweepComposer:
    """Composes a sweep's jobs like `config_loader.load_sweep_config(master, overrides)`, each distinct set of group
    choices once. `composed` counts whole composes (what the cache saved is the difference)."""

    def __init__(self, config_loader: Any):
        self.config_loader = config_loader
        self.parser = OverridesParser.create()
        self._groups: dict[str, bool] = {}
        self._bases: dict[tuple, DictConfig] = {}
        self._last: dict[tuple, DictConfig] = {}  # a job composed once, for the one next request of it
        self.composed = 0
        self.jobs = 0

    def _is_group(self, key: str) -> bool:
        if key not in self._groups:
            self._groups[key] = bool(self.config_loader.get_group_options(key))
        return self._groups[key]

    def _is_value(self, override: Override) -> bool:
        return (
            override.type == OverrideType.CHANGE
            and override.package is None
            and not override.is_hydra_override()
            and not self._is_group(override.key_or_group)
        )

    def compose(self, master: DictConfig, overrides: list[str]) -> DictConfig:
        """The job's config. A job asked for twice in a row (the basic sweeper checks each job of a batch, then the
        launcher composes it) is composed once: the second request gets the first one's config (the sweeper drops
        it), any later one a new compose."""
        request = (id(master), tuple(overrides))
        if request in self._last:
            return self._last.pop(request)
        cfg = self._compose(master, overrides)
        self._last[request] = cfg
        return cfg

    def _compose(self, master: DictConfig, overrides: list[str]) -> DictConfig:
        self.jobs += 1
        parsed = self.parser.parse_overrides(list(overrides))
        values = [o for o in parsed if self._is_value(o)]
        if _apply_overrides is None or any(o.is_sweep_override() for o in values):
            self.composed += 1
            return self.config_loader.load_sweep_config(master, list(overrides))
        others = [o.input_line for o in parsed if not self._is_value(o)]
        key = (id(master), tuple(others), tuple(o.key_or_group for o in values))
        if key not in self._bases:
            self.composed += 1
            self._bases[key] = self.config_loader.load_sweep_config(master, [str(line) for line in others])
        cfg = pickle.loads(pickle.dumps(self._bases[key]))  # a deep copy, in a third of copy.deepcopy's time
        _apply_overrides(values, cfg)
        task = [o for o in parsed if not o.is_hydra_override()]
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in task]
            naming = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task,
                kv_sep=naming.kv_sep,
                item_sep=naming.item_sep,
                exclude_keys=list(naming.exclude_keys),
            )
        OmegaConf.copy_cache(from_config=master, to_config=cfg)
        return cfg


class CachingConfigLoader:
    """A config loader that composes sweep jobs through a `SweepComposer`, and is the wrapped loader otherwise: the
    launcher puts it into the HydraContext it shares with the sweeper, so the sweeper's check of a batch
    (`validate_batch_is_legal`, a compose per job) and the launcher's own composes share one cache."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.composer = SweepComposer(inner)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        return self.composer.compose(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
