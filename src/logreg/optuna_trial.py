"""How a trial's job finds its Optuna trial (hparams_search=optuna): the sweeper sets `LOGREG_OPTUNA_TRIAL` to the
trial's number in the job's environment (hydra.job.env_set, so it is neither an override nor part of the folder's
name). A job in the sweeper's own process (the basic launcher, or a launcher that trains a batch together) finds the
live trial in `trials_in_this_process`; a job in another process (joblib, submitit) loads it from the study's shared
storage. A pruned trial leaves `pruned.json` in its folder: the sweeper tells the study, the summary lists it."""

from __future__ import annotations

import os
from typing import Any

TRIAL_ENV = "LOGREG_OPTUNA_TRIAL"
PRUNED_FILE = "pruned.json"

trials_in_this_process: dict[int, Any] = {}  # trial number -> optuna.Trial, while the sweeper's batch runs


def this_jobs_trial(sweeper: Any) -> Any:
    """The optuna.Trial this job runs, or None outside an Optuna sweep. `sweeper` is the job's hydra.sweeper config."""
    number = os.environ.get(TRIAL_ENV)
    if number is None:
        return None
    trial = trials_in_this_process.get(int(number))
    if trial is not None or not sweeper.get("storage"):
        return trial
    import optuna
    from hydra.utils import instantiate

    study = optuna.load_study(
        study_name=sweeper.study_name,
        storage=sweeper.storage,
        sampler=optuna.samplers.RandomSampler(),  # a trial loaded here samples nothing: no sampler state to set up
        pruner=instantiate(sweeper.pruner),
    )
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == int(number))
    if not hasattr(frozen, "_trial_id"):  # optuna offers no public way to reopen a trial in another process
        raise RuntimeError("optuna.trial.FrozenTrial has no _trial_id any more: remote pruning needs updating")
    return optuna.trial.Trial(study, frozen._trial_id)
