"""What TensorBoard shows of a run beyond scalars, read back from the event files and from a real TensorBoard server."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import event_entries


@pytest.fixture
def run_dir(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", "epochs=3", "callbacks.plots.histograms=true")
    return tmp_path


def tags(run_dir, kind: str) -> dict[str, int]:
    """tag -> number of entries of one kind ("images", "histograms", "scalars") over the run's event files."""
    return {tag: len(entries) for tag, entries in event_entries(run_dir, kind).items()}


def test_confusion_matrix_roc_pr_and_reliability_images_for_val_and_test(run_dir):
    images = tags(run_dir, "images")

    for stage in ("val", "test"):
        for name in ("confusion_matrix", "roc", "pr_curve", "reliability"):
            assert images.get(f"{stage}/{name}") == 1, f"{stage}/{name}"


def test_without_matplotlib_the_run_says_how_to_get_images_and_still_writes_histograms(
    run, tiny_csv, tmp_path, monkeypatch, caplog
):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "matplotlib" else real_find_spec(name, *args)
    )

    run("data=csv", f"data.path={tiny_csv}", "epochs=2", "callbacks.plots.histograms=true")

    assert "TensorBoard images need matplotlib: pip install 'logreg[plots]'" in caplog.text
    assert tags(tmp_path, "images") == {} and tags(tmp_path, "histograms")["weights/linear.weight"] == 2


def tags_of(event_file) -> list[str]:
    return EventAccumulator(str(event_file)).Reload().Tags()["images"]


def test_images_are_real_pictures(run_dir):
    event_file = next(f for f in run_dir.glob("events.out.tfevents.*") if "test/roc" in tags_of(f))
    image = EventAccumulator(str(event_file)).Reload().Images("test/roc")[0]

    assert image.encoded_image_string.startswith(b"\x89PNG") and image.width > 100 and image.height > 100


def test_weight_histograms_every_epoch_when_asked_for(run_dir):
    histograms = tags(run_dir, "histograms")

    assert histograms == {"weights/linear.weight": 3, "weights/linear.bias": 3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_server_serves_the_runs_scalar_tags(run_dir, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(run_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, served = time.monotonic() + 90, {}
        while time.monotonic() < deadline and "train/loss" not in str(served):
            assert server.poll() is None, "tensorboard exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as reply:
                    served = json.load(reply)
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
    finally:  # the server stops with the test, whatever happened
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    run_tags = set().union(*(set(run) for run in served.values())) if served else set()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/ece", "test/acc", "test/brier"} <= run_tags, served
