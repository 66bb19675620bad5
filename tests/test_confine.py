"""Every path a logger, callback or the trainer writes is resolved when the config is checked, and one outside the
run folder (another run's folder included) is refused in one line naming its key, before anything is written."""

import json
import sys

import pytest
import warm

from conftest import REPO, sampled
from logreg.checking import as_dict, check_config
from logreg.confine import FOLDER_KEYS, written_paths
from logreg.errors import ConfigError, as_user_error

# Every option that brings path keys of its own: each composed config's path keys are found, not listed here.
OPTIONS = [
    "",
    "logger=csv",
    "logger=mlflow logger.save_dir=${hydra:runtime.output_dir}/mlruns",
    "callbacks=early_stopping",
    "debug=profiler",
    "trainer=ddp_cpu",
    "experiment=optimum",
]


def path_keys(compose, overrides: str, run_dir) -> list[str]:
    cfg = compose(*overrides.split(), run_dir=run_dir)
    return sorted({key for key, _ in written_paths(as_dict(cfg, resolve=True))})


def refusal(compose, run_dir, *overrides: str) -> str | None:
    try:
        check_config(compose(*overrides, run_dir=run_dir))
    except Exception as error:
        user_error = as_user_error(error)
        assert isinstance(user_error, ConfigError), repr(error)
        assert "\n" not in str(user_error)
        return str(user_error)
    return None


@pytest.fixture
def other_run(tmp_path):
    """Another run's folder: claimed, holding its files."""
    folder = tmp_path / "logs" / "runs" / "other"
    (folder / "csv").mkdir(parents=True)
    (folder / "run.json").write_text("{}\n")
    (folder / "csv" / "metrics.csv").write_text("epoch,train/loss\n0,0.7\n")
    return folder


def escapes(tmp_path, other_run, key: str) -> dict[str, str]:
    """Values of a path key that leave the run folder, by kind (a relative folder is relative to the working
    directory; a relative part below a folder, to that folder)."""
    relative = {"the working directory": "."} if key.endswith(FOLDER_KEYS) else {"a parent folder": "../.."}
    return relative | {
        "another run's folder": str(other_run),
        "an absolute path elsewhere": str(tmp_path / "elsewhere"),
    }


@sampled("options", OPTIONS, every=2)
def test_the_offered_configs_write_only_inside_their_run_folder(compose, diabetes_dir, tmp_path, options):
    run_dir = tmp_path / "run"
    keys = path_keys(compose, options, run_dir)

    assert {"trainer.default_root_dir", "callbacks.last_checkpoint.dirpath", "logger.save_dir"} <= set(keys)
    assert refusal(compose, run_dir, *options.split()) is None


def refused_escapes(compose, tmp_path, other_run, options: str, tried) -> tuple[int, int, set[str]]:
    """Each path key of the options' config, set to each kind of escape that tried(key's index, kind's index) picks:
    each is refused in one line naming the key. Returns the number of keys, of values tried, and the kinds (indices)
    tried."""
    run_dir = tmp_path / "run"
    keys = path_keys(compose, options, run_dir)
    values_tried, kinds_tried = 0, set()
    for n, key in enumerate(keys):
        for k, (kind, value) in enumerate(escapes(tmp_path, other_run, key).items()):
            if not tried(n, k):
                continue
            message = refusal(compose, run_dir, *options.split(), f"{key}={value}")
            assert message is not None and message.startswith(f"{key}={value}: writes to "), (key, kind, message)
            assert "outside this run's folder" in message
            values_tried += 1
            kinds_tried.add(k)
    assert len(keys) >= 4
    return len(keys), values_tried, kinds_tried


KINDS = 3  # escapes() offers three kinds for every key: a relative path, another run's folder, elsewhere


@sampled("options", OPTIONS[:5], every=3)
def test_every_path_key_leaving_the_run_folder_is_refused_naming_the_key(
    compose, diabetes_dir, tmp_path, other_run, options
):
    """Every key with one kind of escape, the kinds in turn (the slow test below tries the other two on each key)."""
    keys, tried, kinds = refused_escapes(compose, tmp_path, other_run, options, lambda n, k: k == n % KINDS)

    assert tried == keys and len(kinds) == KINDS


@pytest.mark.slow
@pytest.mark.parametrize("options", OPTIONS[:5])
def test_every_path_key_leaving_the_run_folder_by_any_kind_of_escape_is_refused(
    compose, diabetes_dir, tmp_path, other_run, options
):
    """With the test above: every key with every kind of escape."""
    keys, tried, kinds = refused_escapes(compose, tmp_path, other_run, options, lambda n, k: k != n % KINDS)

    assert tried == keys * (KINDS - 1) and len(kinds) == KINDS


@pytest.mark.parametrize(
    "key",
    ["callbacks.checkpoint.filename", "callbacks.last_checkpoint.filename", "logger.version", "logger.name"],
)
def test_a_file_name_climbing_out_of_its_folder_is_refused(compose, diabetes_dir, tmp_path, key):
    message = refusal(compose, tmp_path / "run", f"{key}=../../x-epoch")

    assert message is not None and message.startswith(f"{key}=../../x-epoch: writes to /")
    assert "x-epoch, outside this run's folder" in message


def test_a_path_key_inside_the_run_folder_is_accepted(compose, diabetes_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [f"callbacks.checkpoint.dirpath={run_dir}/best", "callbacks.checkpoint.filename='sub/b-{epoch}'"]

    assert refusal(compose, run_dir, *overrides) is None


def test_a_logger_aimed_at_another_run_leaves_that_run_untouched(diabetes_dir, tmp_path, other_run):
    before = {path: path.read_bytes() for path in other_run.rglob("*") if path.is_file()}
    result = warm.run(
        [sys.executable, str(REPO / "train.py"), "logger=csv", f"logger.save_dir={other_run}", "epochs=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("error: logger.save_dir=") and result.stderr.count("\n") == 1, result.stderr
    assert {path: path.read_bytes() for path in other_run.rglob("*") if path.is_file()} == before
    assert sorted(p.name for p in (tmp_path / "logs" / "runs").iterdir()) == ["other"]  # no folder claimed either


def test_a_run_folder_inside_another_runs_folder_is_refused(tiny_csv, tmp_path, other_run):
    result = warm.run(
        [sys.executable, str(REPO / "train.py"), "data=csv", f"data.path={tiny_csv}", f"hydra.run.dir={other_run}/sub"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert result.stderr.startswith(f"error: hydra.run.dir={other_run}/sub: inside the folder of another run")
    assert not (other_run / "sub").exists()
    assert json.loads((other_run / "run.json").read_text()) == {}
