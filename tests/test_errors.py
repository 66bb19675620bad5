"""Bad input and faults: each gets one clear message naming the file, line, column or key, and nothing is lost."""

import random
import re
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException

from conftest import REPO
from logreg.checkpoints import AtomicCheckpointIO
from logreg.cli import user_error
from logreg.data import CSVDataModule, fetch, read_csv
from logreg.errors import ConfigError, DataError, TrainingDiverged
from train import train


def csv_file(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_train(*overrides, cwd, timeout=120):
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------------------------------------------- CSV files

GOOD_ROWS = "0.1,0.2,0\n0.3,0.4,1\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"bad\.csv: the file is empty"),
        ("a,b,label\n", r"bad\.csv: no data rows after the header line"),
        (GOOD_ROWS + "0.5,1\n", r"bad\.csv: line 3 has 2 columns, expected 3"),
        (GOOD_ROWS + "0.5,0.6,0.7,1\n", r"bad\.csv: line 3 has 4 columns, expected 3"),
        (GOOD_ROWS + "0.5,abc,1\n", r"bad\.csv: line 3, column 1: 'abc' is not a number"),
        (GOOD_ROWS + "nan,0.6,1\n", r"bad\.csv: line 3, column 0: nan is not a finite number"),
        (GOOD_ROWS + "0.5,inf,1\n", r"bad\.csv: line 3, column 1: inf is not a finite number"),
        (GOOD_ROWS + "0.5,0.6,2\n0.5,0.6,-1\n",
         r"bad\.csv: column 2 \(the label\) must hold only 0 and 1; found -1, 0, 1, 2"),
    ],
    ids=["empty", "header-only", "short-row", "long-row", "non-numeric", "nan", "inf", "labels"],
)
def test_malformed_csv_is_refused_with_its_line_and_column(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_csv(csv_file(tmp_path, text))


def test_missing_csv_names_the_file_and_where_it_was_looked_for(tmp_path):
    datamodule = CSVDataModule("nowhere.csv", data_dir=str(tmp_path))

    with pytest.raises(DataError, match=r"nowhere\.csv: file not found \(looked in .*\)"):
        datamodule.prepare_data()


def test_a_label_column_that_does_not_exist_lists_the_columns(tmp_path):
    path = csv_file(tmp_path, "age,dose,outcome\n" + GOOD_ROWS)

    with pytest.raises(DataError, match=r"no column named 'label'; the header has \['age', 'dose', 'outcome'\]"):
        read_csv(path, label_column="label")
    with pytest.raises(DataError, match=r"label_column=5 is out of range for 3 columns"):
        read_csv(path, label_column=5)


def test_too_few_rows_for_the_split_says_which_split_is_empty(tmp_path):
    datamodule = CSVDataModule(str(csv_file(tmp_path, GOOD_ROWS * 2)), val_fraction=0.1, test_fraction=0.1)

    with pytest.raises(DataError, match=r"too few rows for the requested split: 4 rows .* leave no val rows"):
        datamodule.setup("fit")


def test_a_split_with_one_class_only_is_refused(tmp_path):
    rows = "0.1,0.2,0\n" * 20 + "0.3,0.4,1\n" * 3
    datamodule = CSVDataModule(str(csv_file(tmp_path, rows)), val_fraction=0.1, test_fraction=0.1)

    message = r"the val split has 2 rows of class 0 and 0 of class 1: a stratified split needs both"
    with pytest.raises(DataError, match=message):
        datamodule.setup("fit")


def test_fuzzed_csvs_either_load_or_fail_with_a_data_error(tmp_path):
    """Seeded mutations of a valid CSV: never an exception other than DataError, never a bad table."""
    rng = random.Random(1234)
    valid = [f"{rng.uniform(-1, 1):.3f},{rng.uniform(-1, 1):.3f},{rng.randint(0, 1)}" for _ in range(8)]
    junk = ["", " ", "x", "nan", "-inf", "1e999", '"1"', "0x1F", "1,2", ";", "\t", "é", "\x00", "1.2.3", "--1", "#"]
    path = tmp_path / "fuzz.csv"
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        lines = list(valid)
        for _ in range(rng.randint(1, 3)):
            row = rng.randrange(len(lines))
            cells = lines[row].split(",")
            action = rng.choice(["replace", "drop", "add", "blank_line", "truncate", "duplicate"])
            if action == "replace":
                cells[rng.randrange(len(cells))] = rng.choice(junk)
            elif action == "drop":
                cells.pop(rng.randrange(len(cells)))
            elif action == "add":
                cells.insert(rng.randrange(len(cells) + 1), rng.choice(junk))
            elif action == "blank_line":
                cells = [""]
            elif action == "truncate":
                lines = lines[: row + 1]
                row = min(row, len(lines) - 1)
            else:
                lines.insert(row, lines[row])
            lines[row] = ",".join(cells)
        path.write_text("\n".join(lines) + rng.choice(["", "\n"]), encoding="utf-8")
        try:
            features, labels, _ = read_csv(path)
        except DataError:
            outcomes["refused"] += 1
            continue
        assert features.ndim == 2 and len(features) == len(labels) > 0
        assert np.isfinite(features).all() and set(np.unique(labels)) <= {0.0, 1.0}
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 10, outcomes  # the generator exercises both outcomes


# ---------------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr=0", r"^model: optimizer lr=0: expected a positive float32 number"),
        ("lr=-1", r"^model: optimizer lr=-1: expected a positive"),
        ("lr=1e39", r"^model: optimizer lr=1e\+39: expected a positive float32 number"),
        ("epochs=0", r"epochs=0: expected a whole number of at least 1"),
        ("data.val_fraction=1.5", r"data\.val_fraction=1\.5: expected a fraction in \[0, 1\)"),
        ("data.test_fraction=-0.1", r"data\.test_fraction=-0\.1: expected a fraction in \[0, 1\)"),
        ("data.val_fraction=0.9", r"data\.val_fraction \+ data\.test_fraction = 1: expected < 1"),
        ("model.optimizer.name=rmsprop",
         r"optimizer name 'rmsprop' is unknown; expected one of: sgd, adam, adamw, lbfgs"),
        ("+model.optimizer.betas=[0.9,0.99]", r"optimizer 'sgd' has no option betas; its options are: lr, momentum"),
    ],
)
def test_bad_config_values_are_refused_before_training(compose, diabetes_dir, tmp_path, override, message):
    with pytest.raises(Exception) as raised:
        train(compose(override))

    assert re.search(message, user_error(raised.value) or "not a UserError: " + repr(raised.value))
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_trainer_gpu_without_a_gpu_suggests_trainer_cpu(compose, diabetes_dir):
    with pytest.raises(ConfigError, match=r"no CUDA GPU .* use trainer=cpu"):
        train(compose("trainer=gpu"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer=rmsprop", r"(?s)Could not find 'optimizer/rmsprop'.*Available options.*adam.*lbfgs.*sgd"),
        ("data=iris", r"(?s)Could not find 'data/iris'.*Available options.*breast_cancer.*csv.*diabetes"),
        ("trainer=tpu", r"(?s)Could not find 'trainer/tpu'.*Available options.*cpu.*ddp.*gpu"),
        ("lrr=1", r"Could not override 'lrr'"),
        ("data.val_fractoin=0.2", r"Could not override 'data.val_fractoin'"),
    ],
)
def test_unknown_options_and_misspelled_keys_are_named_with_the_valid_ones(compose, override, message):
    with pytest.raises(ConfigCompositionException, match=message):
        compose(override)


@pytest.mark.slow
def test_the_command_line_prints_one_clear_line_not_a_traceback(diabetes_dir, tmp_path):
    result = run_train("data.val_fraction=1.5", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: data.val_fraction=1.5: expected a fraction in [0, 1)"
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------------------- download


def test_an_interrupted_download_leaves_no_file_behind(tmp_path, monkeypatch, tiny_csv):
    class BrokenResponse:
        def __init__(self):
            self.chunks = [tiny_csv.read_bytes()[:100]]

        def read(self, size):
            if self.chunks:
                return self.chunks.pop()
            raise ConnectionResetError("connection reset by peer")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: BrokenResponse())

    with pytest.raises(DataError, match=r"could not download .*connection reset"):
        fetch("lab.csv", str(tmp_path / "data"), url="https://example.invalid/lab.csv", sha256="0" * 64)

    assert list((tmp_path / "data").iterdir()) == []


def test_a_local_copy_with_the_wrong_checksum_is_refused_and_left_alone(tmp_path, tiny_csv):
    with pytest.raises(DataError, match=r"tiny\.csv: sha256 is [0-9a-f]{64}, expected 0{64}"):
        fetch(str(tiny_csv), str(tmp_path), sha256="0" * 64)

    assert tiny_csv.is_file()  # the user's file: refused, not deleted


# ------------------------------------------------------------------------------------------------- training faults


def exploding_csv(tmp_path):
    """Features of size 1e30: SGD at lr=1e-10 is fine for one step, then the logits overflow and the loss turns NaN."""
    rng = np.random.default_rng(0)
    features = rng.uniform(-1, 1, size=(80, 2))
    labels = (features[:, 0] > 0).astype(float)
    path = tmp_path / "exploding.csv"
    np.savetxt(path, np.column_stack([features * 1e30, labels]), delimiter=",")
    return path


def test_a_diverging_run_stops_with_the_likely_cause_and_keeps_the_good_checkpoint(compose, tmp_path):
    cfg = compose("data=csv", f"data.path={exploding_csv(tmp_path)}", "data.standardize=false", "lr=1e-10", "epochs=20")

    message = r"NaN or infinite during epoch 1; the learning rate \(lr=1e-10.*smaller lr, e\.g\. lr=1e-11"
    with pytest.raises(TrainingDiverged, match=message):
        train(cfg)

    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values())


def wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("signum, returncode", [(signal.SIGTERM, 143), (signal.SIGINT, 1)], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_run_ends_cleanly_and_leaves_a_resumable_checkpoint(tiny_csv, tmp_path, signum, returncode):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), "data=csv", f"data.path={tiny_csv}", "epochs=100000",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt")
        time.sleep(0.5)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()

    assert process.returncode == returncode, stderr[-2000:]
    assert f"Resume with: ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in stderr
    assert "Traceback" not in stderr
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] >= 0


# ------------------------------------------------------------------------------------------------------ nothing lost


def test_a_new_run_never_writes_into_an_existing_run_folder(compose, tiny_csv, tmp_path):
    train(compose("data=csv", f"data.path={tiny_csv}", "epochs=1"))
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()}

    with pytest.raises(ConfigError, match=r"already holds a run; a new run never writes into it"):
        train(compose("data=csv", f"data.path={tiny_csv}", "epochs=1"))

    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()} == before


def test_a_crash_while_saving_a_checkpoint_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)

    def crash_halfway(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2}, path)

    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


class NotATensor:
    """Stands for any pickled object a checkpoint could smuggle in."""


def test_a_checkpoint_with_pickled_objects_is_refused_unless_trusted(compose, tiny_csv, tmp_path):
    train(compose("data=csv", f"data.path={tiny_csv}", "epochs=1", run_dir=tmp_path / "first"))
    checkpoint_path = tmp_path / "first" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    checkpoint["extra"] = NotATensor()
    torch.save(checkpoint, checkpoint_path)
    resume = ("data=csv", f"data.path={tiny_csv}", "epochs=2", f"ckpt_path={checkpoint_path}")

    with pytest.raises(ConfigError, match=r"holds pickled Python objects .* refused.* trust_checkpoint=true"):
        train(compose(*resume, run_dir=tmp_path / "refused"))
    metrics = train(compose(*resume, "trust_checkpoint=true", run_dir=tmp_path / "trusted"))

    assert metrics["train/loss"] > 0
