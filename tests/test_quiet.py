"""What a run does not print, also where Lightning was imported before any logging was set up (a script, a notebook)."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

NO_BAR = ["trainer.enable_progress_bar=false", "~callbacks.plots"]

SCRIPT = """
import logging
import lightning  # before any logging set-up: Lightning gives its subpackages console handlers of their own
from logreg.quiet import quiet_third_parties

quiet_third_parties()
for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
    logging.getLogger(name + ".some_module").info("an informational line")
logging.getLogger("lightning.pytorch.some_module").warning("a warning still shows")
"""


@pytest.mark.slow
def test_lightnings_informational_lines_stay_off_the_console_and_its_warnings_do_not():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    printed = result.stdout + result.stderr
    assert "an informational line" not in printed
    assert "a warning still shows" in printed


def first_use(command: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("logger", sorted(path.stem for path in (REPO / "conf" / "logger").glob("*.yaml")))
def test_the_first_run_with_each_offered_logger_prints_no_third_party_lines(tiny_csv, tmp_path, logger):
    if logger == "mlflow" and importlib.util.find_spec("mlflow") is None:
        pytest.skip("needs the mlflow extra")
    result = first_use(
        [str(REPO / "train.py"), "data=csv", f"data.path={tiny_csv}", "epochs=1", f"logger={logger}", *NO_BAR], tmp_path
    )

    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    if logger == "mlflow":
        assert (tmp_path / "logs" / "mlflow.db").is_file()  # it did create the database and the experiment


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_export_prints_only_what_it_wrote(trained_once, module_tiny_csv, tmp_path, fmt):
    if fmt == "onnx" and importlib.util.find_spec("onnxscript") is None:
        pytest.skip("needs the export extra")
    # what train.py prints is the test above's: here the checkpoint is trained once, in this process
    run_dir = trained_once("data=csv", f"data.path={module_tiny_csv}", "epochs=1", "logger=none", *NO_BAR)
    ckpt = run_dir / "checkpoints" / "last.ckpt"

    result = first_use([str(REPO / "export.py"), f"ckpt_path={ckpt}", f"format={fmt}"], tmp_path)

    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    assert result.stdout.startswith(f"{fmt} model written to ")
