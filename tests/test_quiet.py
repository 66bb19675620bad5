"""What a run does not print, also where Lightning was imported before any logging was set up (a script, a notebook)."""

import subprocess
import sys

import pytest

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
