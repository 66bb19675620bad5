"""hydra/sweeper=optuna: the sweeper's config (the official hydra-optuna-sweeper's key names), the samplers and
pruners by name, and the Sweeper Hydra instantiates; logreg.optuna_search does the work on Optuna's public API.

No `from __future__ import annotations` here: Hydra's plugin scan runs this module before it is in sys.modules, and
dataclasses with string annotations cannot be resolved then.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig

from logreg.quiet import quiet_third_parties

quiet_third_parties()  # before Hydra instantiates a sampler (QMC's warns that it is experimental)


@dataclass
class TPESamplerConfig:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 5  # random trials before TPE starts modelling
    n_ei_candidates: int = 24
    multivariate: bool = True  # models the parameters jointly (lr and batch size interact)
    constant_liar: bool = True  # trials running in a batch count as bad guesses: the batch's proposals stay apart


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class GridSamplerConfig:
    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True  # the grid comes from hydra.sweeper.params at sweep time
    seed: Optional[int] = None  # the order the grid's points are run in


@dataclass
class CmaEsSamplerConfig:
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 1
    sigma0: Optional[float] = None
    warn_independent_sampling: bool = False  # choice() parameters are sampled at random: CMA-ES models numbers only


@dataclass
class GPSamplerConfig:
    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10


@dataclass
class QMCSamplerConfig:
    _target_: str = "optuna.samplers.QMCSampler"
    seed: Optional[int] = None
    qmc_type: str = "sobol"
    scramble: bool = True  # without scrambling the sequence ignores the seed


@dataclass
class NopPrunerConfig:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # trials completed before any is pruned
    n_warmup_steps: int = 0  # epochs of each trial before it may be pruned
    interval_steps: int = 1


@dataclass
class PercentilePrunerConfig:
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0  # pruned unless among the best 25% of the earlier trials at this epoch
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class SuccessiveHalvingPrunerConfig:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.logreg_optuna.optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    direction: Any = "minimize"  # or a list, one per objective (optimized_metric=[val/loss,val/auroc])
    storage: Optional[str] = None
    study_name: Optional[str] = None
    n_trials: int = 20  # new trials this sweep runs (a resumed study keeps its earlier ones besides)
    n_jobs: int = 1  # trials asked at once, handed to the launcher as one batch
    max_failure_rate: float = 0.0
    params: Optional[Dict[str, str]] = None


class OptunaSweeper(Sweeper):
    """Hydra's Sweeper interface over logreg.optuna_search."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: List[str]) -> None:
        from logreg.optuna_search import sweep

        assert self.config is not None, "Hydra calls setup() before sweep()"
        sweep(self.settings, self.launcher, self.config, arguments)


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="logreg")
for _name, _node in {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "gp": GPSamplerConfig,
    "qmc": QMCSamplerConfig,
}.items():
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="logreg")
for _name, _node in {
    "none": NopPrunerConfig,
    "median": MedianPrunerConfig,
    "percentile": PercentilePrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
}.items():
    _store.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="logreg")
