"""Faults: data that cannot train, a diverging run, a full disk, a folder that cannot be written, a download that
breaks, Ctrl-C and SIGTERM. Each ends in one line naming what is wrong, and nothing already written is lost."""

import json
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
import warm

from conftest import DEFAULT_SIGNALS, REPO, started_after
from logreg.data import CSVDataModule
from logreg.errors import DataError, TrainingDiverged
from logreg.fetch import fetch

GOOD_ROWS = "0.1,0.2,0\n0.3,0.4,1\n"


def csv_file(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------- data


def test_a_missing_csv_names_the_file_and_where_it_was_looked_for(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.csv: file not found \(looked in .*\)"):
        CSVDataModule("nowhere.csv", data_dir=str(tmp_path)).prepare_data()


def test_a_data_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match=r": is a folder; data\.path names a CSV file"):
        CSVDataModule(str(tmp_path), data_dir=str(tmp_path)).prepare_data()


def test_too_few_rows_for_the_split_says_which_split_is_empty(tmp_path):
    datamodule = CSVDataModule(str(csv_file(tmp_path, GOOD_ROWS * 2)), val_fraction=0.1, test_fraction=0.1)

    with pytest.raises(DataError, match=r"too few rows for the requested split: 4 rows .* leave no val rows"):
        datamodule.load()


def test_a_split_with_one_class_only_is_refused(tmp_path):
    rows = "0.1,0.2,0\n" * 20 + "0.3,0.4,1\n" * 3
    datamodule = CSVDataModule(str(csv_file(tmp_path, rows)), val_fraction=0.1, test_fraction=0.1)

    with pytest.raises(DataError, match=r"the val split has 2 rows of class 0 and 0 of class 1: a stratified split"):
        datamodule.load()


def test_labels_other_than_0_and_1_name_their_line(tmp_path):
    path = csv_file(tmp_path, "dose,weight,outcome\n" + GOOD_ROWS + "\n0.5,0.6,2\n", name="labels.csv")

    with pytest.raises(DataError, match=r"labels\.csv: line 5, column 3 \(outcome\): the label is 2; labels must be"):
        CSVDataModule(str(path), header=True, label_column="outcome").load()


# ------------------------------------------------------------------------------------------------------ download


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


# ---------------------------------------------------------------------------------------------------- divergence


def exploding_csv(tmp_path):
    """Features of size 1e30: SGD at lr=1e-10 is fine for one step, then the logits overflow and the loss turns NaN."""
    rng = np.random.default_rng(0)
    features = rng.uniform(-1, 1, size=(80, 2))
    labels = (features[:, 0] > 0).astype(float)
    path = tmp_path / "exploding.csv"
    np.savetxt(path, np.column_stack([features * 1e30, labels]), delimiter=",")
    return path


@pytest.mark.parametrize("gradient", ["analytic", "autograd"])
def test_a_diverging_run_stops_with_the_likely_cause_and_keeps_the_good_checkpoint(run, tmp_path, gradient):
    message = r"NaN or infinite during epoch 1; the learning rate \(lr=1e-10.*smaller lr, e\.g\. lr=1e-11"
    with pytest.raises(TrainingDiverged, match=message):
        run(
            "data=csv",
            f"data.path={exploding_csv(tmp_path)}",
            "data.standardize=false",
            "lr=1e-10",
            "epochs=20",
            f"model.gradient={gradient}",
        )

    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(tensor).all() for tensor in last["state_dict"].values())


# ------------------------------------------------------------------------------------------ the disk, the folders


def limited_file_size(max_bytes):
    """Set-up for `started_after`: files may grow to max_bytes, and a write past that fails with EFBIG (a full disk,
    as the process sees it), instead of the signal that would kill it."""
    return (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_bytes}, {max_bytes}))"
    )


@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_naming_the_file_and_keeps_the_earlier_checkpoints(tiny_csv, tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        started_after(
            limited_file_size(60_000),
            [
                sys.executable,
                str(REPO / "train.py"),
                "data=csv",
                f"data.path={tiny_csv}",
                "epochs=1000",
                "logger=csv",
                "~callbacks.plots",
                f"hydra.run.dir={run_dir}",
            ],
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-3000:]
    assert lines[-1].startswith(f"error: {run_dir}") and "File too large" in lines[-1], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)  # still a whole checkpoint
    assert last["epoch"] >= 0


def test_a_run_folder_that_cannot_be_created_ends_in_one_line(tiny_csv, tmp_path):
    (tmp_path / "file").write_text("not a folder")

    result = warm.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "data=csv",
            f"data.path={tiny_csv}",
            f"hydra.run.dir={tmp_path / 'file' / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip() == f"error: {tmp_path / 'file' / 'run'}: Not a directory", result.stderr[-2000:]


@pytest.mark.slow
def test_an_output_that_cannot_be_written_ends_in_one_line(trained_ckpt, tmp_path):
    rows = tmp_path / "rows.csv"
    np.savetxt(rows, np.zeros((3, 3)), delimiter=",")
    (tmp_path / "file").write_text("not a folder")

    result = warm.run(
        [
            sys.executable,
            str(REPO / "predict.py"),
            f"ckpt_path={trained_ckpt}",
            f"input={rows}",
            f"output={tmp_path / 'file' / 'pred.csv'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert result.stderr.startswith(f"error: output={tmp_path / 'file' / 'pred.csv'}: "), result.stderr


@pytest.fixture
def trained_ckpt(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", "epochs=1", "logger=none", run_dir=tmp_path / "trained")
    return tmp_path / "trained" / "checkpoints" / "last.ckpt"


# ------------------------------------------------------------------------------------------------------- signals


def wait_for(path, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear in {seconds} s"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("signum, returncode", [(signal.SIGTERM, 143), (signal.SIGINT, 1)], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_run_ends_cleanly_and_leaves_a_resumable_checkpoint(tiny_csv, tmp_path, signum, returncode):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        started_after(
            DEFAULT_SIGNALS,
            [
                sys.executable,
                str(REPO / "train.py"),
                "data=csv",
                f"data.path={tiny_csv}",
                "epochs=100000",
                "logger=none",
                "~callbacks.plots",
                f"hydra.run.dir={run_dir}",
            ],
        ),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt", process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"still running 120 s after the signal; its stderr:\n{process.communicate()[1][-3000:]}")
    finally:
        process.kill()

    assert process.returncode == returncode, stderr[-2000:]
    assert f"Resume with: ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] >= 0
    assert json.loads((run_dir / "run.json").read_text())["pid"] == process.pid


@pytest.mark.slow
def test_a_disk_full_from_the_start_prints_one_line_and_no_traceback_of_tensorboards_writer_thread(tiny_csv, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, str(REPO / "train.py"), "data=csv", f"data.path={tiny_csv}", "epochs=300"]
    result = subprocess.run(
        started_after(limited_file_size(8_000), [*command, "~callbacks.plots", f"hydra.run.dir={run_dir}"]),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1, result.stderr[-3000:]
    assert "Exception in thread" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        result.stderr.strip().splitlines()[-1]
    ]
    assert "File too large" in result.stderr.strip().splitlines()[-1]


THREAD_FAILS = """
import errno, sys, threading
from logreg.errors import run_entry

def fail():
    if sys.argv[1] == "user":
        raise OSError(errno.ENOSPC, "No space left on device", "/logs/run/events.out.tfevents.1")
    raise KeyError("a bug")

def main():
    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    print("the command went on")

run_entry(main)
"""


def test_a_user_error_in_a_background_thread_reaches_the_one_line_report():
    result = subprocess.run([sys.executable, "-c", THREAD_FAILS, "user"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.startswith("error: /logs/run/events.out.tfevents.1: No space left on device: the disk")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bug_in_a_background_thread_keeps_its_traceback():
    result = subprocess.run([sys.executable, "-c", THREAD_FAILS, "bug"], capture_output=True, text=True, timeout=60)

    assert "Traceback" in result.stderr and "KeyError: 'a bug'" in result.stderr


# ------------------------------------------------------------------------------------ a run that fails is marked


def failures_before_training(tmp_path, tiny_csv) -> dict[str, list[str]]:
    broken = tmp_path / "broken.csv"
    broken.write_text("1,2,0\n3,abc,1\n")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    return {
        "no such data file": ["data=csv", f"data.path={tmp_path / 'missing.csv'}"],
        "a bad CSV": ["data=csv", f"data.path={broken}"],
        "a refused resume": ["data=csv", f"data.path={tiny_csv}", f"ckpt_path={junk}"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["no such data file", "a bad CSV", "a refused resume"])
def test_a_run_that_fails_before_training_keeps_its_folder_marked_failed_with_the_error(tiny_csv, tmp_path, failure):
    run_dir = tmp_path / "run"
    overrides = failures_before_training(tmp_path, tiny_csv)[failure]
    result = warm.run(
        [sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1 and result.stderr.startswith("error: "), result.stderr[-2000:]
    line = result.stderr.strip()
    claim = json.loads((run_dir / "run.json").read_text())
    assert claim["status"] == "failed" and f"error: {claim['error']}" == line
    assert line in (run_dir / "train.log").read_text().splitlines()[-1]
