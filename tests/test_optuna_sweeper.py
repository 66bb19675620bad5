"""The project's Optuna sweeper (hydra/sweeper=optuna), driven the way Hydra drives it, on the real Optuna: the config
composed from conf/ (hparams_search=optuna), the sweeper instantiated from it, and a launcher that scores each trial
with a known function instead of training (train.py end to end: tests/test_sweeps.py)."""

import math
import sys

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hypothesis import given
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from conftest import REPO, sampled
from logreg.optuna_search import grid_of, search_space
from logreg.optuna_trial import TRIAL_ENV
from logreg.sweep import short_values

SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
}
GRID = ["hydra/sweeper/sampler=grid", "hydra.sweeper.params=null"]  # the space: the sweep's arguments alone
LRS = ["lr=choice(0.01,0.1,1.0)"]


def score(params: dict) -> float:
    """The known objective the fake launcher returns: best at lr=0.1, sgd, no weight decay, batch 128."""
    value = (math.log10(float(params["lr"])) + 1) ** 2 + 10 * float(params.get("model.optimizer.weight_decay", 0))
    value += {"sgd": 0.0, "adam": 0.1, "adamw": 0.2}[params.get("optimizer", "sgd")]
    return value + (0.0 if params.get("data.batch_size", "128") == "128" else 0.05)


class ScoringLauncher:
    """A launcher that records each batch it is given and returns `score` of each job's overrides (`fail` names
    values of lr whose jobs fail; `interrupt_at` raises KeyboardInterrupt at that launch call)."""

    runs_jobs_in_this_process = True  # as the basic launcher does: pruning needs no shared storage

    def __init__(self, fail=(), interrupt_at=None, objectives=1):
        self.batches, self.fail, self.interrupt_at, self.objectives = [], set(fail), interrupt_at, objectives

    def launch(self, job_overrides, initial_job_idx):
        if len(self.batches) == self.interrupt_at:
            raise KeyboardInterrupt
        self.batches.append([list(o) for o in job_overrides])
        returns = []
        for overrides in job_overrides:
            params = dict(o.split("=", 1) for o in overrides if not o.startswith("++hydra."))
            result = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            if params["lr"] in self.fail:
                result.status, result.return_value = JobStatus.FAILED, ValueError(f"lr={params['lr']} fails")
            else:
                value = score(params)
                result.return_value = value if self.objectives == 1 else [value, -float(params["lr"])]
            returns.append(result)
        return returns


def compose_sweep(tmp_path, *overrides):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose(
            "train",
            ["hparams_search=optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides],
            return_hydra_config=True,
        )


def run_sweep(tmp_path, *overrides, launcher=None, arguments=()):
    """Compose, instantiate the sweeper as Hydra does (its sampler and pruner with it), and sweep."""
    config = compose_sweep(tmp_path, *overrides)
    (tmp_path / "sweep").mkdir(exist_ok=True)
    sweeper = instantiate(config.hydra.sweeper)
    sweeper.config, sweeper.launcher = config, launcher or ScoringLauncher()
    sweeper.sweep(list(arguments))
    return sweeper.launcher, config


def study_of(tmp_path, name="logreg"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def params_of(batches):
    return [tuple(o for o in job if not o.startswith("++hydra.")) for batch in batches for job in batch]


# -------------------------------------------------------------------------------------------------- search space


@pytest.mark.parametrize(
    "override, expected",
    [
        ("lr=interval(0.001, 3.0)", FloatDistribution(0.001, 3.0)),
        ("lr=tag(log, interval(0.001, 3.0))", FloatDistribution(0.001, 3.0, log=True)),
        ("lr=interval(1, 2)", FloatDistribution(1.0, 2.0)),  # Hydra's interval is of floats, whatever its ends
        ("epochs=range(10, 200)", IntDistribution(10, 199)),
        ("epochs=range(10, 50, 10)", IntDistribution(10, 40, step=10)),  # Hydra's range leaves out its stop
        ("lr=range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("optimizer=choice(sgd, adam)", CategoricalDistribution(["sgd", "adam"])),
        ("data.batch_size=choice(32, 1024)", CategoricalDistribution([32, 1024])),
    ],
)
def test_hydras_sweep_grammar_becomes_the_matching_optuna_distribution(override, expected):
    space, fixed = search_space({}, [override])

    key = override.split("=", 1)[0]
    assert space == {key: expected} and fixed == []


def test_a_command_line_value_replaces_the_same_key_of_hydra_sweeper_params():
    space, fixed = search_space({"lr": "interval(0.1, 1.0)", "epochs": "choice(5, 10)"}, ["epochs=3", "seed=2"])

    assert list(space) == ["lr"] and fixed == ["epochs=3", "seed=2"]


def test_the_grid_sampler_refuses_a_continuous_interval_in_one_line():
    space, _ = search_space({}, ["lr=interval(0.1, 1.0)"])

    with pytest.raises(ValueError, match=r"^hydra.sweeper.params.lr: hydra/sweeper/sampler=grid needs choice"):
        grid_of(space)


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda x: x != int(x)))
def test_trial_folder_names_write_floats_with_3_significant_digits(value):
    name = short_values(f"data=csv,lr={value!r},optimizer=adam,epochs=20")

    key, _, short = name.split(",")[1].partition("=")
    assert key == "lr" and len(short.lstrip("-").replace(".", "").lstrip("0").split("e")[0]) <= 3
    assert float(short) == pytest.approx(value, rel=5e-3)
    assert name.startswith("data=csv,lr=") and name.endswith(",optimizer=adam,epochs=20")


@pytest.mark.parametrize("dirname", ["", "data=csv", "epochs=20,seed=1", "lr=1,x=[0.123456,2]", "x=nan", "tag=v1.25a"])
def test_trial_folder_names_keep_whatever_is_not_a_long_float(dirname):
    assert short_values(dirname) == dirname  # a list is left whole


def test_a_trial_folder_name_is_one_folder_whatever_the_values():
    assert short_values("monitor=val/acc,x=a/b/c") == "monitor=val-acc,x=a-b-c"


# --------------------------------------------------------------------------------------------- samplers, batches


@sampled("name", SAMPLERS, every=2)
def test_each_sampler_by_name_is_seeded_and_proposes_the_same_trials_again(tmp_path, name):
    overrides = [f"hydra/sweeper/sampler={name}", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2"]
    overrides += GRID[1:] if name == "grid" else []
    arguments = LRS if name == "grid" else []
    sampler = instantiate(compose_sweep(tmp_path, *overrides).hydra.sweeper).settings["sampler"]
    first, _ = run_sweep(tmp_path, *overrides, arguments=arguments)
    again, _ = run_sweep(tmp_path, *overrides, arguments=arguments)

    assert sampler.func is SAMPLERS[name] if name == "grid" else isinstance(sampler, SAMPLERS[name])
    assert params_of(first.batches) == params_of(again.batches) and len(params_of(first.batches)) == 3
    assert len(set(params_of(first.batches))) == 3


@sampled("name", PRUNERS, every=2)
def test_each_pruner_by_name_is_optunas_and_a_sweep_runs_with_it(tmp_path, name):
    overrides = [f"hydra/sweeper/pruner={name}", "trainer.check_val_every_n_epoch=1", "hydra.sweeper.n_trials=2"]
    pruner = instantiate(compose_sweep(tmp_path, *overrides).hydra.sweeper).settings["pruner"]
    launcher, _ = run_sweep(tmp_path, *overrides)

    assert type(pruner) is PRUNERS[name] and len(params_of(launcher.batches)) == 2


def test_tpe_models_the_parameters_jointly_and_lies_about_running_trials(tmp_path):
    sampler = instantiate(compose_sweep(tmp_path).hydra.sweeper).settings["sampler"]

    assert sampler._multivariate and sampler._constant_liar  # what conf/hparams_search/optuna.yaml promises


def test_trials_are_asked_n_jobs_at_a_time_and_each_batch_is_one_launch(tmp_path):
    launcher, _ = run_sweep(tmp_path, "hydra.sweeper.n_trials=10", "hydra.sweeper.n_jobs=4")

    assert [len(batch) for batch in launcher.batches] == [4, 4, 2]
    numbers = [job[-1] for batch in launcher.batches for job in batch]
    assert numbers == [f"++hydra.job.env_set.{TRIAL_ENV}={n}" for n in range(10)]  # each job knows its trial


def test_the_grid_sampler_runs_each_point_once_and_no_more_than_the_grid(tmp_path):
    launcher, _ = run_sweep(tmp_path, *GRID, "hydra.sweeper.n_trials=20", arguments=[*LRS, "optimizer=sgd,adam"])

    runs = params_of(launcher.batches)
    assert len(runs) == 6 and len(set(runs)) == 6


def test_the_best_trial_is_written_to_optimization_results(tmp_path):
    import yaml

    run_sweep(tmp_path, *GRID, arguments=LRS)

    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_params"] == {"lr": 0.1} and results["best_value"] == pytest.approx(0.0)


def test_failed_trials_are_recorded_and_too_many_stop_the_sweep(tmp_path):
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}"
    grid = [*GRID, "hydra.sweeper.n_jobs=3", storage]
    run_sweep(
        tmp_path, *grid, launcher=ScoringLauncher(fail={"0.01"}), arguments=LRS
    )  # max_failure_rate: 1.0 in the config
    states = {t.params["lr"]: t.state for t in study_of(tmp_path).trials}
    assert states == {0.01: TrialState.FAIL, 0.1: TrialState.COMPLETE, 1.0: TrialState.COMPLETE}

    with pytest.raises(ValueError, match="lr=0.01 fails"):
        run_sweep(
            tmp_path,
            *grid,
            "hydra.sweeper.max_failure_rate=0.2",
            "hydra.sweeper.study_name=strict",
            launcher=ScoringLauncher(fail={"0.01"}),
            arguments=LRS,
        )


# ----------------------------------------------------------------------------------------------------- resuming


def test_the_same_storage_and_study_continue_and_n_trials_counts_the_new_ones(tmp_path):
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}"
    first, _ = run_sweep(tmp_path, storage, "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=3")
    second, _ = run_sweep(tmp_path, storage, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=3")

    trials = study_of(tmp_path).trials
    assert len(params_of(second.batches)) == 2 and [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5


def test_an_interrupted_batch_is_recorded_failed_and_the_next_sweep_goes_on_from_the_study(tmp_path):
    storage = f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during the second batch
        run_sweep(
            tmp_path,
            storage,
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=4",
            launcher=ScoringLauncher(interrupt_at=1),
        )
    states = [t.state for t in study_of(tmp_path).trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2  # as Optuna's optimize does: none left running

    run_sweep(tmp_path, storage, "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2")
    done = [t for t in study_of(tmp_path).trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4 and len({tuple(sorted(t.params.items())) for t in done}) == 4


# ------------------------------------------------------------------------------------------ several objectives


def test_several_directions_make_a_multi_objective_study_with_its_pareto_front(tmp_path):
    import yaml

    launcher = ScoringLauncher(objectives=2)
    run_sweep(
        tmp_path,
        "optimized_metric=[val/loss,val/auroc]",
        "hydra.sweeper.direction=[minimize,maximize]",
        *GRID,
        launcher=launcher,
        arguments=LRS,
    )

    front = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())["solutions"]
    # score falls from lr=0.01 to 0.1, and -lr falls from 0.01 on: 0.01 and 0.1 are both on the front, 1.0 is not
    assert sorted(solution["params"]["lr"] for solution in front) == [0.01, 0.1]


# ----------------------------------------------------------------------------------------- what is refused early


@sampled(
    "overrides, message",
    [
        (["hydra/sweeper/pruner=median"], "trials validate every 100 epochs of 100: nothing to prune by"),
        (
            ["hydra/sweeper/pruner=hyperband", "trainer.check_val_every_n_epoch=1", "optimized_metric=cv/val/loss"],
            "prunes by a val/\\* optimized_metric at each epoch; cv/val/loss is known only at the end",
        ),
        (
            [
                "hydra/sweeper/pruner=percentile",
                "trainer.check_val_every_n_epoch=1",
                "optimized_metric=[val/loss,val/acc]",
                "hydra.sweeper.direction=[minimize,maximize]",
            ],
            "Optuna prunes single-objective studies only",
        ),
        (["hydra.sweeper.direction=[minimize,maximize]"], "one direction per optimized_metric \\(1\\), got 2"),
        (["hydra.sweeper.direction=up"], "hydra.sweeper.direction=up: expected minimize or maximize"),
        (["hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs: 0: expected a batch size >= 1"),
        (["hydra.sweeper.max_failure_rate=2"], "hydra.sweeper.max_failure_rate: 2.0: expected a fraction in"),
        (["hydra/sweeper/sampler=grid"], "hydra.sweeper.params.lr: hydra/sweeper/sampler=grid needs choice"),
    ],
    every=2,
)
def test_a_sweep_that_cannot_work_is_refused_in_one_line_before_any_trial(tmp_path, overrides, message):
    launcher = ScoringLauncher()
    with pytest.raises(SystemExit) as stopped:
        run_sweep(tmp_path, *overrides, launcher=launcher)

    assert str(stopped.value).startswith("error: ") and "\n" not in str(stopped.value)
    assert __import__("re").search(message, str(stopped.value)) and launcher.batches == []


@pytest.mark.parametrize(("sampler", "package"), [("gp", "scipy"), ("qmc", "scipy"), ("cmaes", "cmaes")])
def test_a_sampler_whose_package_is_missing_is_refused_in_one_line_naming_it(tmp_path, monkeypatch, sampler, package):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: its import fails, find_spec finds nothing
    launcher = ScoringLauncher()
    with pytest.raises(SystemExit) as stopped:
        run_sweep(tmp_path, f"hydra/sweeper/sampler={sampler}", launcher=launcher)

    message = str(stopped.value)
    assert message.startswith("error: hydra.sweeper.sampler=") and "\n" not in message
    assert f"needs {package}, which is not installed: pip install" in message and launcher.batches == []


def test_pruning_trials_in_other_processes_needs_a_shared_storage(tmp_path):
    class OtherProcesses(ScoringLauncher):
        runs_jobs_in_this_process = False

    overrides = ["hydra/sweeper/pruner=median", "trainer.check_val_every_n_epoch=1"]
    with pytest.raises(SystemExit, match="add hydra.sweeper.storage=sqlite:///logs/optuna.db"):
        run_sweep(tmp_path, *overrides, launcher=OtherProcesses())
    run_sweep(
        tmp_path,
        *overrides,
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}",
        "hydra.sweeper.n_trials=1",
        launcher=OtherProcesses(),
    )


# ---------------------------------------------------------------------------------------------------- dashboard


@pytest.mark.slow  # the dashboard takes 10 to 20 s to start here
def test_optuna_dashboard_serves_a_sweeps_study_on_localhost(tmp_path):
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run_sweep(tmp_path, *GRID, f"hydra.sweeper.storage={storage}", arguments=LRS)
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    server = subprocess.Popen(
        [str(dashboard), storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return json.loads(answer.read())

    try:
        for _ in range(600):  # until it listens (a minute at most), or it has died
            try:
                studies = get("/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        [study] = studies
        trials = get(f"/api/studies/{study['study_id']}")["trials"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert study["study_name"] == "logreg"
    lrs = sorted(float(t["params"][0]["param_external_value"]) for t in trials)
    assert lrs == [0.01, 0.1, 1.0] and {t["state"] for t in trials} == {"Complete"}


def test_several_objectives_must_each_be_a_held_out_metric(compose, tiny_csv):
    from logreg.checking import check_config
    from logreg.errors import ConfigError

    cfg = compose("data=csv", f"data.path={tiny_csv}", "optimized_metric=[val/loss,test/acc]")
    with pytest.raises(ConfigError, match=r"^optimized_metric=.*test/acc.*: expected a held-out metric: val/loss"):
        check_config(cfg, sweep=True)
    check_config(compose("data=csv", f"data.path={tiny_csv}", "optimized_metric=[val/loss,val/auroc]"), sweep=True)
