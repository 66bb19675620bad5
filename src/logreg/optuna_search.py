"""hparams_search=optuna: the search space read from Hydra's sweep grammar, and the study run as batches of
ask -> launch -> tell on Optuna's public API. The Hydra plugin (src/hydra_plugins/logreg_optuna) is only the sweeper's
config and its entry point; this module does the work.

A batch is `n_jobs` trials asked at once and handed to the launcher in one `launch` call (a launcher that trains a
batch together gets all of it). Optuna sees a batch's trials as running until the whole batch is told.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, Transformer
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from logreg.errors import ConfigError, UserError, exit_on
from logreg.optuna_trial import PRUNED_FILE, TRIAL_ENV, trials_in_this_process

log = logging.getLogger(__name__)

GRID_STOPPED = "`Study.stop` is supposed to be invoked inside an objective function or a callback"


@dataclass
class Search:
    """What the sweeper was configured with (hydra.sweeper.*), samplers and pruner already instantiated."""

    sampler: Any  # an optuna sampler, or functools.partial(GridSampler) waiting for its search space
    pruner: Any
    directions: list[str]
    storage: str | None
    study_name: str | None
    n_trials: int
    n_jobs: int
    max_failure_rate: float
    params: Mapping[str, str]


def sweep(settings: Mapping[str, Any], launcher: Any, config: DictConfig, arguments: Sequence[str]) -> None:
    """The sweeper's work: check what cannot work (one line, before any trial), then run the study."""
    try:
        search = Search(
            sampler=settings["sampler"],
            pruner=settings["pruner"],
            directions=directions_of(settings["direction"]),
            storage=settings["storage"],
            study_name=settings["study_name"],
            n_trials=settings["n_trials"],
            n_jobs=settings["n_jobs"],
            max_failure_rate=settings["max_failure_rate"],
            params=dict(settings["params"] or {}),
        )
        for key, problem in problems(search, launcher, config):
            raise ConfigError(f"hydra.sweeper.{key}: {problem}")
        run_study(search, launcher, config, arguments)
    except UserError as error:
        exit_on(error)


# Samplers whose package Optuna imports only when they first sample (after trials were asked), by class name: the
# package and the install that brings it
SAMPLER_NEEDS = {
    "GPSampler": ("scipy", "pip install scipy (or the breast-cancer extra)"),
    "QMCSampler": ("scipy", "pip install scipy (or the breast-cancer extra)"),
    "CmaEsSampler": ("cmaes", "pip install 'logreg[sweep]'"),
}


def problems(search: Search, launcher: Any, config: DictConfig) -> Any:
    """(key, what to do) for each setting of the sweep that cannot work."""
    import optuna

    sampler = type(search.sampler).__name__
    if sampler in SAMPLER_NEEDS and importlib.util.find_spec(SAMPLER_NEEDS[sampler][0]) is None:
        package, install = SAMPLER_NEEDS[sampler]
        yield f"sampler={sampler}", f"needs {package}, which is not installed: {install}, or another sampler"
    if search.n_trials < 0:
        yield "n_trials", f"{search.n_trials}: expected a number of trials >= 0"
    if search.n_jobs < 1:
        yield "n_jobs", f"{search.n_jobs}: expected a batch size >= 1"
    if not 0 <= search.max_failure_rate <= 1:
        yield "max_failure_rate", f"{search.max_failure_rate}: expected a fraction in [0, 1]"
    metric = OmegaConf.select(config, "optimized_metric")
    objectives = list(metric) if OmegaConf.is_list(metric) else [metric]
    if len(objectives) != len(search.directions):
        yield "direction", f"one direction per optimized_metric ({len(objectives)}), got {len(search.directions)}"
    if isinstance(search.pruner, optuna.pruners.NopPruner):
        return
    pruner = f"pruner={type(search.pruner).__name__}"
    if len(objectives) > 1:
        yield pruner, "Optuna prunes single-objective studies only: hydra/sweeper/pruner=none with several objectives"
    elif not str(objectives[0]).startswith("val/"):
        yield pruner, f"prunes by a val/* optimized_metric at each epoch; {objectives[0]} is known only at the end"
    every = OmegaConf.select(config, "trainer.check_val_every_n_epoch") or 1
    if every >= config.epochs:
        yield (
            pruner,
            (
                f"trials validate every {every} epochs of {config.epochs}: nothing to prune by before the end; "
                "add trainer.check_val_every_n_epoch=1"
            ),
        )
    in_process = type(launcher).__name__ == "BasicLauncher" or getattr(launcher, "runs_jobs_in_this_process", False)
    if not in_process and not search.storage:
        yield (
            pruner,
            (
                f"trials run in other processes ({type(launcher).__name__}): they reach their trial through a shared "
                "storage: add hydra.sweeper.storage=sqlite:///logs/optuna.db"
            ),
        )


def directions_of(direction: Any) -> list[str]:
    """hydra.sweeper.direction: one direction ("minimize"), or a list of them, one per objective."""
    items = list(direction) if isinstance(direction, Sequence) and not isinstance(direction, str) else [direction]
    directions = [str(getattr(item, "name", item)) for item in items]
    for item in directions:
        if item not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction={item}: expected minimize or maximize (or a list of them)")
    return directions


def search_space(params: Mapping[str, str], arguments: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The distributions to sample (name -> optuna distribution) and the fixed overrides every trial gets, from
    hydra.sweeper.params and the command line's overrides, in Hydra's sweep grammar (`interval`, `choice`, `range`,
    `tag(log, ...)`), read by Hydra's own override parser. A command-line value wins over the same key in params."""
    parsed = OverridesParser.create().parse_overrides([*(f"{k}={v}" for k, v in params.items()), *arguments])
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
    return space, list(fixed.values())


def distribution(override: Override) -> Any:
    """One swept key's optuna distribution: choice -> categorical; range (Hydra's: the stop excluded) -> int or float
    steps; interval -> uniform floats, log-uniform with tag(log, ...)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key, value = override.get_key_element(), override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and getattr(value, "shuffle", False)):
        choices: list[Any] = list(override.sweep_iterator(transformer=Transformer.encode))
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        values: list[Any] = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"{override.input_line}: the range is empty")
        step = value.step  # type: ignore[union-attr]
        if all(isinstance(v, int) for v in values) and isinstance(step, int):
            return IntDistribution(min(values), max(values), step=abs(step))
        return FloatDistribution(float(min(values)), float(max(values)), step=abs(float(step)))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags  # Hydra reads an interval's ends as floats: range(...) sweeps whole numbers
        if log_scale and not value.start > 0:  # type: ignore[operator]
            raise ConfigError(f"hydra.sweeper.params.{key}: tag(log, ...) needs an interval above 0")
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)  # type: ignore[arg-type]
    raise ConfigError(f"hydra.sweeper.params.{key}: expected choice(...), range(...) or interval(...)")


def grid_of(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The grid sampler's values: every distribution must be discrete (choice, range)."""
    from optuna.distributions import CategoricalDistribution

    grid: dict[str, list[Any]] = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif getattr(dist, "step", None) is not None and not getattr(dist, "log", False):
            count = round((dist.high - dist.low) / dist.step) + 1
            grid[key] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ConfigError(
                f"hydra.sweeper.params.{key}: hydra/sweeper/sampler=grid needs choice(...) or range(...), not an "
                "interval (a grid has finitely many points)"
            )
    return grid


def as_override(key: str, value: Any) -> str:
    """`key=value` for a sampled value, written so Hydra reads it back as the same value."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def run_study(search: Search, launcher: Any, config: DictConfig, arguments: Sequence[str]) -> None:
    """Run `search.n_trials` new trials (a resumed study keeps its earlier ones and adds these), `n_jobs` at a time,
    then write optimization_results.yaml (the best trial, or the Pareto front of several objectives)."""
    import optuna
    from optuna.trial import TrialState

    log_optuna_to(Path(config.hydra.sweep.dir) / "optuna.log")
    space, fixed = search_space(search.params, arguments)
    sampler, n_trials = search.sampler, search.n_trials
    if isinstance(sampler, functools.partial):  # the grid sampler, given its grid now
        grid = grid_of(space)
        sampler = sampler(grid)
        n_trials = min(n_trials, math.prod(len(values) for values in grid.values()))
    study = optuna.create_study(
        study_name=search.study_name,
        storage=search.storage,
        sampler=sampler,
        pruner=search.pruner,
        directions=search.directions,  # type: ignore[arg-type]  # checked: each is "minimize" or "maximize"
        load_if_exists=True,  # the same storage and study name continue the study
    )
    earlier = len(study.trials)
    if earlier:  # resumed: a seeded sampler would propose its first trials again
        sampler.reseed_rng()
    log.info(
        f"Optuna study {study.study_name}: {n_trials} new trials in batches of {search.n_jobs}, "
        f"{type(sampler).__name__}, {type(search.pruner).__name__}" + (f", {earlier} trials before" if earlier else "")
    )
    job_idx, done = 0, 0
    while done < n_trials and not (isinstance(search.sampler, functools.partial) and sampler.is_exhausted(study)):
        trials = [study.ask(space) for _ in range(min(search.n_jobs, n_trials - done))]
        overrides = [
            (
                *(as_override(k, v) for k, v in trial.params.items()),
                *fixed,
                f"++hydra.job.env_set.{TRIAL_ENV}={trial.number}",
            )
            for trial in trials
        ]
        trials_in_this_process.update({trial.number: trial for trial in trials})
        told: set[int] = set()
        failures: list[bool] = []
        try:
            returns = launcher.launch(overrides, initial_job_idx=job_idx)
            for trial, result in zip(trials, returns):
                failures.append(tell(study, trial, result))
                told.add(trial.number)
        finally:
            for trial in trials:  # interrupted (Ctrl-C) mid-batch: its trials are not left running in the study
                trials_in_this_process.pop(trial.number, None)
                if trial.number not in told:
                    record(study, trial, None, TrialState.FAIL)
        job_idx += len(returns)
        done += len(trials)
        failed = [result for result, failure in zip(returns, failures) if failure]
        if failed and len(failed) / len(returns) > search.max_failure_rate:
            log.error(f"{len(failed)} of {len(returns)} trials failed (max_failure_rate={search.max_failure_rate})")
            failed[0].return_value  # re-raises the trial's error
    write_results(study, Path(config.hydra.sweep.dir))


def log_optuna_to(path: Path) -> None:
    """Optuna's own log lines (the study created, each trial told) into `path` in the sweep folder, not the console."""
    import optuna

    from logreg.quiet import quiet_third_parties

    quiet_third_parties()  # alembic's set-up lines of a new database storage, and named upstream warnings
    optuna.logging.disable_default_handler()
    logger = logging.getLogger("optuna")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def tell(study: Any, trial: Any, result: JobReturn) -> bool:
    """Record one trial's outcome in the study: complete with its value(s), pruned, or failed. True if it failed."""
    from optuna.trial import TrialState

    state, values = TrialState.COMPLETE, None
    if result.status == JobStatus.FAILED:
        state = TrialState.FAIL
    elif result.hydra_cfg is not None and (Path(result.hydra_cfg.hydra.runtime.output_dir) / PRUNED_FILE).is_file():
        state = TrialState.PRUNED
    else:
        value = result.return_value
        values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
        if len(values) != len(study.directions) or any(math.isnan(v) for v in values):
            state, values = TrialState.FAIL, None
    record(study, trial, values, state)
    return state == TrialState.FAIL


def record(study: Any, trial: Any, values: list[float] | None, state: Any) -> None:
    """study.tell; the grid sampler asks the study to stop once its grid is done, which only `optimize` can do (the
    trial is recorded first): the sweep stops by its own count of trials."""
    try:
        study.tell(trial, values, state=state)
    except RuntimeError as error:
        if GRID_STOPPED not in str(error):
            raise


def write_results(study: Any, sweep_dir: Path) -> None:
    """optimization_results.yaml in the sweep folder, as the official Optuna sweeper writes it."""
    from optuna.trial import TrialState

    results: dict[str, Any] = {"name": "optuna"}
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning("No trial completed: no best trial to report")
    elif len(study.directions) == 1:
        results |= {"best_params": study.best_trial.params, "best_value": study.best_trial.value}
        log.info(f"Best trial {study.best_trial.number}: {study.best_trial.value:.6g} (optimization_results.yaml)")
    else:
        results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        log.info(f"{len(study.best_trials)} trials on the Pareto front")
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
