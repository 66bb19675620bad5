"""Shared fixtures: the lab's CSV where a copy can be reached, tiny tables made on the spot, and composed configs."""

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import logreg.hydra_hooks  # noqa: F401 - registers the config schemas and resolvers, as the entry scripts do

REPO = Path(__file__).resolve().parents[1]
DIABETES = "data-03-diabetes.csv"
DIABETES_SHA256 = "89e33de71cd5afdcd4fe8a722b60c4d69eb8f9b96446cea9347d735ff2df395e"


# experiment=optimum's settings for a generated table (data=csv data.path=...): Newton's method to the exact optimum,
# in float64, on every row
OPTIMUM = (
    "data=csv",
    "optimizer=newton",
    "trainer.precision=64-true",
    "epochs=1",
    "data.val_fraction=0",
    "data.test_fraction=0",
    "data.test_on=train",
    "monitor=train/loss",
    "callbacks.checkpoint=null",
    "logger=none",
    "~callbacks.plots",
)


# The same optimum by L-BFGS (the optimizer=lbfgs path), on every row, in float64; no logger, no images
LBFGS_OPTIMUM = (
    "data.val_fraction=0",
    "data.test_fraction=0",
    "data.test_on=train",
    "optimizer=lbfgs",
    "model.optimizer.tolerance_change=1e-15",
    "trainer.precision=64-true",
    "epochs=5",
    "monitor=train/loss",
    "callbacks.checkpoint=null",
    "logger=none",
    "~callbacks.plots",
)


def sampled(argnames: str, cases, every: int = 3, ids=None):
    """`pytest.mark.parametrize(argnames, cases)` over a generated grid, with every `every`-th case (from the first) in
    the fast subset and the rest marked slow: `pytest -m "not slow"` samples the grid, the whole suite runs all of it.
    A case is what parametrize takes (one value, or a tuple for several names, or a `pytest.param`: its marks and id
    are kept); `ids`: one per case."""
    several = "," in argnames
    params = []
    for n, case in enumerate(cases):
        if isinstance(case, type(pytest.param())):
            values, marks, case_id = case.values, list(case.marks), case.id
        else:
            values, marks, case_id = (tuple(case) if several else (case,)), [], None
        if ids is not None:
            case_id = ids[n]
        if n % every:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(*values, marks=marks, id=case_id))
    return pytest.mark.parametrize(argnames, params)


def pytest_addoption(parser, pluginmanager):
    """Without pytest-xdist (`-p no:xdist`, or not installed), pyproject's `-n auto --dist loadfile` are taken and
    have no effect: the tests run one after another in this process."""
    if pluginmanager.has_plugin("xdist"):
        return
    group = parser.getgroup("xdist", "pytest-xdist is not loaded: these options have no effect")
    # _addoption, as pytest-xdist registers -n: addoption reserves lowercase short options to pytest itself
    group._addoption("-n", "--numprocesses", dest="numprocesses", metavar="N", help="ignored without pytest-xdist")
    group.addoption("--dist", dest="dist", metavar="MODE", help="ignored without pytest-xdist")


def _diabetes_dir() -> Path | None:
    """A folder holding the lab's CSV: $LOGREG_DATA_DIR, else ../shared/data beside the checkout."""
    for folder in (os.environ.get("LOGREG_DATA_DIR"), REPO.parent / "shared" / "data"):
        if folder and (Path(folder) / DIABETES).is_file():
            return Path(folder)
    return None


@pytest.fixture(scope="session", autouse=True)
def own_cache_folder(tmp_path_factory):
    """Streamed tables' cache (a CSV's streaming copy, fitted values: `logreg.stream_source`) in the session's temporary
    folder, never the user's ~/.cache; child processes inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOGREG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own folder: whatever a run writes relative to the working directory (logs/, ...) lands
    there, never in the checkout. And torch's thread count (a run sets it) is put back after the test."""
    import torch

    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def diabetes_dir(monkeypatch) -> Path:
    """The folder with data-03-diabetes.csv, exported as LOGREG_DATA_DIR (as the configs read it)."""
    folder = _diabetes_dir()
    if folder is None:
        pytest.skip(f"{DIABETES} not found: set LOGREG_DATA_DIR or put it in ../shared/data")
    monkeypatch.setenv("LOGREG_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def diabetes_csv(diabetes_dir) -> Path:
    return diabetes_dir / DIABETES


def started_after(setup: str, command: list[str]) -> list[str]:
    """`command`, started by a fresh interpreter that first runs the Python statements `setup`, then becomes `command`
    (os.execv: the same pid, and what survives exec stays set: signals ignored or default, resource limits).

    subprocess's `preexec_fn` would do the same between fork and exec, in a copy of this test process and its
    threads (earlier tests leave some), where Python code can deadlock; CPython's documentation warns against it.
    """
    return [sys.executable, "-c", f"import os, sys\n{setup}\nos.execv(sys.argv[1], sys.argv[1:])", *command]


# A signal as a terminal delivers it, whatever the test runner's parent set: a background job ignores SIGINT, and its
# children inherit that.
DEFAULT_SIGNALS = "from signal import *\nsignal(SIGINT, SIG_DFL)\nsignal(SIGTERM, SIG_DFL)"


def event_entries(folder: Path, kind: str) -> dict[str, list]:
    """tag -> the entries of one kind ("scalars", "images", "histograms") in the folder's own event files, in step
    order (a run writes several files: fit, test, the final HPARAMS)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list] = {}
    for event_file in sorted(folder.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(event_file), size_guidance={kind: 0}).Reload()
        read = {"scalars": events.Scalars, "images": events.Images, "histograms": events.Histograms}[kind]
        for tag in events.Tags()[kind]:
            found.setdefault(tag, []).extend(read(tag))
    return {tag: sorted(entries, key=lambda e: e.step) for tag, entries in found.items()}


def scalars(folder: Path) -> dict[str, list[float]]:
    """Every scalar tag in the folder's event files -> its values in step order."""
    return {tag: [e.value for e in entries] for tag, entries in event_entries(folder, "scalars").items()}


def hparams(folder: Path) -> tuple[Any, Any]:
    """The HPARAMS tab's experiment (its metric tags) and session (the run's hyperparameters)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    experiment = session = None
    for event_file in folder.glob("events.out.tfevents.*"):
        events = EventAccumulator(str(event_file)).Reload()
        try:
            tagged = events.PluginTagToContent("hparams")
        except KeyError:  # this event file holds no HPARAMS data
            continue
        for tag, content in tagged.items():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if tag == "_hparams_/experiment":
                experiment = data.experiment
            elif tag == "_hparams_/session_start_info":
                session = data.session_start_info
    assert experiment is not None and session is not None, f"no HPARAMS data in {folder}"
    return experiment, session


def make_table(n_rows: int = 200, n_features: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A linearly separable-ish table: features (n, F) float32, labels (n,) in {0, 1}, both classes present."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(-1, 1, size=(n_rows, n_features)).astype(np.float32)
    logits = features @ np.linspace(2.0, -1.0, n_features) + rng.normal(0, 0.5, n_rows)
    labels = (logits > 0).astype(np.float32)
    return features, labels


def write_table(path: Path, features: np.ndarray, labels: np.ndarray, header: str | None = None) -> Path:
    """Features then the label per row, as lab 5's CSV is laid out (with `header` as a first line if given)."""
    np.savetxt(path, np.column_stack([features, labels]), delimiter=",", fmt="%.6g", header=header or "", comments="")
    return path


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    """200 rows, 3 features then a 0/1 label, no header: lab 5's format, made here."""
    return write_table(tmp_path / "tiny.csv", *make_table())


@pytest.fixture
def compose(tmp_path):
    """compose(*overrides, run_dir=tmp_path, config_name="train") -> the config `python train.py *overrides` builds.

    Hydra's compose API, with the hydra node set as a real run sets it, so ${hydra:runtime.output_dir} resolves.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    def _compose(*overrides: str, run_dir=tmp_path, config_name="train"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def run(compose, tmp_path):
    """run(*overrides, run_dir=tmp_path) -> the final metrics of `python train.py *overrides`, in process: the config
    composed and checked as train.py does, then trained into run_dir."""
    from logreg.checking import check_config
    from logreg.training import train

    def _run(*overrides: str, run_dir=tmp_path):
        cfg = compose(*overrides, run_dir=run_dir)
        cfg = check_config(cfg)
        return train(cfg)

    return _run


@pytest.fixture(scope="module")
def module_tiny_csv(tmp_path_factory) -> Path:
    """The tiny CSV's rows (make_table()), in one file for the whole module: what trained_once runs train on."""
    return write_table(tmp_path_factory.mktemp("tiny") / "tiny.csv", *make_table())


@pytest.fixture(scope="module")
def _module_runs() -> dict[tuple[str, ...], Path]:
    return {}


@pytest.fixture
def trained_once(_module_runs, run, tmp_path, tmp_path_factory):
    """trained_once(*overrides, run_dir=tmp_path / "run") -> run_dir, holding a copy of the run folder of
    `train.py *overrides`: trained the first time a test of this module asks for these overrides, copied for every
    test, which may then read and write its copy as its own. The same config trains to the same numbers, so each test
    sees what its own run would have written; a test needing another config or data passes other overrides.
    (pyproject's --dist loadfile runs a module's tests on one xdist worker, so each run trains once.)"""

    def _trained(*overrides: str, run_dir: Path = tmp_path / "run") -> Path:
        if overrides not in _module_runs:
            folder = tmp_path_factory.mktemp("trained") / "run"
            run(*overrides, run_dir=folder)
            _module_runs[overrides] = folder
        shutil.copytree(_module_runs[overrides], run_dir)
        return run_dir

    return _trained
