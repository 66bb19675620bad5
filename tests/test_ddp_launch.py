"""The one private Lightning function the project replaces (the command of DDP's extra processes under Hydra): it is
called, replaced only within a job, put back after, and its absence fails loudly. These break first if Lightning
renames it, before DDP under `-m` could quietly re-run whole sweeps."""

import importlib
import os

import pytest
from lightning.fabric.plugins.environments import LightningEnvironment

from logreg.ddp import CHILD_COMMAND, LAUNCHER_MODULE, ddp_child_command, ddp_processes_of_this_job


@pytest.fixture
def launcher_module():
    return importlib.import_module(LAUNCHER_MODULE)


def test_lightnings_launcher_starts_its_extra_processes_with_the_command_of_this_hydra_job(
    compose, launcher_module, monkeypatch
):
    compose("trainer=ddp_cpu", "lr=0.5")  # a job's Hydra config, as a run has it
    for key in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    started = []

    class RecordingPopen:
        def __init__(self, command, env=None, cwd=None):
            started.append((command, env["LOCAL_RANK"]))

    monkeypatch.setattr(launcher_module.subprocess, "Popen", RecordingPopen)
    launcher = launcher_module._SubprocessScriptLauncher(LightningEnvironment(), num_processes=2, num_nodes=1)

    with ddp_processes_of_this_job(script="train.py"):
        launcher._call_children_scripts()
        expected = ddp_child_command("train.py", 1)[0]

    assert started == [(expected, "1")]
    assert "lr=0.5" in expected and "hydra.mode=RUN" in expected and "-m" not in expected
    assert os.environ.get("LOCAL_RANK") is None  # the environment the launch set up is gone again


def test_lightnings_own_command_is_back_after_the_job(launcher_module):
    original = getattr(launcher_module, CHILD_COMMAND)

    with ddp_processes_of_this_job(script="train.py"):
        assert getattr(launcher_module, CHILD_COMMAND) is not original

    assert getattr(launcher_module, CHILD_COMMAND) is original


def test_a_lightning_without_the_function_is_refused_loudly(launcher_module, monkeypatch):
    monkeypatch.delattr(launcher_module, CHILD_COMMAND)

    with pytest.raises(RuntimeError, match=r"_hydra_subprocess_cmd no longer exists .* logreg\.ddp must be updated"):
        with ddp_processes_of_this_job(script="train.py"):
            pass
