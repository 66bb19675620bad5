"""Checkpoints: any file that is not one of ours is refused in one line, nothing inside a checkpoint is imported or run,
a run reads its checkpoint once, data that changed under a checkpoint is caught, and saving never loses or replaces
a file that is not this run's."""

import os
import random
import sys

import numpy as np
import pytest
import torch

from conftest import make_table, write_table
from logreg.checkpoints import AtomicCheckpointIO, datamodule_from_checkpoint, model_from_checkpoint, read_checkpoint
from logreg.errors import CheckpointError, ConfigError, DataError, OutputError


@pytest.fixture
def trained(trained_once, module_tiny_csv, tmp_path):
    """A one-epoch run's last checkpoint, in this test's copy of the run folder (the module trains it once)."""
    run_dir = trained_once(
        "data=csv", f"data.path={module_tiny_csv}", "epochs=1", "logger=none", run_dir=tmp_path / "first"
    )
    return run_dir / "checkpoints" / "last.ckpt"


def damaged_files(tmp_path, trained) -> dict:
    good = trained.read_bytes()
    rng = random.Random(7)
    files = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "random bytes": bytes(rng.randrange(256) for _ in range(4096)),
        "text": b"epoch,loss\n1,0.5\n",
        "flipped bytes": bytes(b ^ 0xFF if 200 < i < 260 else b for i, b in enumerate(good)),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.ckpt"
        paths[name].write_bytes(content)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.ckpt")  # a torch file, but not Lightning's
    paths["not lightning"] = tmp_path / "plain.ckpt"
    other = torch.load(trained, weights_only=True)
    other["state_dict"] = {"encoder.weight": torch.zeros(2, 2)}  # a Lightning checkpoint of another model
    torch.save(other, tmp_path / "other_model.ckpt")
    paths["other model"] = tmp_path / "other_model.ckpt"
    return paths


def test_any_file_that_is_not_our_checkpoint_is_refused_in_one_line_without_trust_advice(trained, tmp_path):
    for name, path in damaged_files(tmp_path, trained).items():
        with pytest.raises(CheckpointError) as raised:
            model_from_checkpoint(read_checkpoint(path), path)
        message = str(raised.value)
        assert f"ckpt_path={path}: not a checkpoint of this project" in message, name
        assert "\n" not in message and "trust_checkpoint" not in message, name


def test_a_checkpoint_with_pickled_objects_is_refused_unless_trusted(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["extra"] = np.float64(1.0).__class__  # a pickled global: loading it means importing numpy
    torch.save(checkpoint, tmp_path / "pickled.ckpt")

    with pytest.raises(CheckpointError, match=r"holds pickled Python objects .* refused.* trust_checkpoint=true"):
        read_checkpoint(tmp_path / "pickled.ckpt")
    assert read_checkpoint(tmp_path / "pickled.ckpt", trust=True)["extra"] is np.float64


class RunsACommand:
    """Unpickling this runs `os.system(command)`: what a malicious checkpoint carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


PICKLED_OBJECTS = {  # what a checkpoint carries -> the global the message names
    "a command": (lambda marker: RunsACommand(f"touch {marker}"), "posix.system"),
    "eval": (lambda marker: CallsEval(), "builtins.eval"),
    "a numpy class": (lambda marker: np.float64, "numpy.float64"),
    "a set of objects": (lambda marker: [{"deep": RunsACommand(f"touch {marker}")}], "posix.system"),
}


@pytest.mark.parametrize("protocol", [2, 4], ids=["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("carried", PICKLED_OBJECTS)
def test_pickled_globals_are_found_in_the_files_structure_and_nothing_runs(trained, tmp_path, carried, protocol):
    make, named = PICKLED_OBJECTS[carried]
    marker = tmp_path / "ran"
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["hyper_parameters"]["extra"] = make(marker)
    torch.save(checkpoint, tmp_path / "pickled.ckpt", pickle_protocol=protocol)

    with pytest.raises(CheckpointError) as raised:
        read_checkpoint(tmp_path / "pickled.ckpt")

    message = str(raised.value)
    assert message.startswith(f"ckpt_path={tmp_path / 'pickled.ckpt'} holds pickled Python objects ({named}")
    assert "nothing was run. trust_checkpoint=true would run them" in message and "Weights only" not in message
    assert not marker.exists()


def test_a_checkpoint_of_tensors_and_plain_values_names_no_global_outside_torchs_allowlist(trained, tmp_path):
    from logreg.checkpoints import pickled_globals, weights_only_globals

    for protocol in (2, 4):
        torch.save(torch.load(trained, weights_only=True), tmp_path / "plain.ckpt", pickle_protocol=protocol)
        found = pickled_globals(tmp_path / "plain.ckpt")
        assert found and set(found) <= weights_only_globals(), protocol


def test_a_data_class_named_inside_a_checkpoint_is_never_imported(trained, tmp_path, monkeypatch):
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\nclass Data: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    checkpoint = torch.load(trained, weights_only=True)
    for key in ("CSVDataModule", "BreastCancerDataModule"):
        checkpoint.pop(key, None)
    checkpoint["datamodule_class"] = "evil.Data"

    with pytest.raises(CheckpointError, match=r"records no data this project knows"):
        datamodule_from_checkpoint(checkpoint, "evil.ckpt")
    assert not (tmp_path / "ran").exists() and "evil" not in sys.modules


def test_resuming_reads_the_checkpoint_once(run, trained, tiny_csv, tmp_path, monkeypatch):
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(args[0]) or real_load(*args, **kwargs))

    run(
        "data=csv",
        f"data.path={tiny_csv}",
        "epochs=2",
        f"ckpt_path={trained}",
        "logger=none",
        run_dir=tmp_path / "resumed",
    )

    # the checkpoint resumed from, once; then only this run's own last.ckpt, read back to add the covariance
    own = os.fspath(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert [os.fspath(path) for path in loads] == [os.fspath(trained), own]


def test_resuming_on_other_data_is_refused_before_training(run, trained, tiny_csv, tmp_path):
    features, labels = make_table()
    other = write_table(tmp_path / "other.csv", features[::-1], labels[::-1])  # the same rows, reversed

    with pytest.raises(DataError, match=r"the data differs from the checkpoint's: 200 rows and sha256"):
        run("data=csv", f"data.path={other}", "epochs=2", f"ckpt_path={trained}", run_dir=tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "checkpoints").exists()


def test_resuming_with_a_checkpoint_of_another_width_is_refused(run, trained, tmp_path):
    features, labels = make_table(n_features=5)
    wider = write_table(tmp_path / "wide.csv", features, labels)

    with pytest.raises(CheckpointError, match=r"its model takes 3 features, this run's data has 5"):
        run("data=csv", f"data.path={wider}", f"ckpt_path={trained}", run_dir=tmp_path / "resumed")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer=adam", "lr=0.01"], r"trained with model\.optimizer\.name=sgd, this run sets adam; resuming"),
        (["lr=0.5"], r"trained with model\.optimizer\.lr=1\.0, this run sets 0\.5; resuming restores"),
        (["scheduler=step"], r"trained with model\.scheduler\.name=none, this run sets step; resuming restores"),
    ],
    ids=["another-optimizer", "another-lr", "another-scheduler"],
)
def test_resuming_with_other_optimizer_settings_is_refused(run, trained, tiny_csv, tmp_path, overrides, message):
    # The checkpoint's optimizer state would replace them: Adam cannot take SGD's, and another lr would be ignored.
    with pytest.raises(CheckpointError, match=message):
        run("data=csv", f"data.path={tiny_csv}", *overrides, f"ckpt_path={trained}", run_dir=tmp_path / "resumed")


def test_a_crash_while_saving_a_checkpoint_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    def crash_halfway(obj, file):
        file.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"epoch": 2}, path)

    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_checkpoint_this_run_did_not_write_is_never_replaced_nor_deleted(tmp_path):
    theirs = tmp_path / "last.ckpt"
    torch.save({"epoch": 7}, theirs)
    io = AtomicCheckpointIO()

    with pytest.raises(OutputError, match=r"last\.ckpt: a checkpoint this run did not write"):
        io.save_checkpoint({"epoch": 1}, theirs)
    io.remove_checkpoint(theirs)  # Lightning removes an earlier best this way

    assert torch.load(theirs, weights_only=True) == {"epoch": 7}


def test_the_package_refuses_a_model_argument_a_checkpoint_cannot_hold(tmp_path):
    from logreg.model import LogisticRegression

    with pytest.raises(ConfigError, match=r"model\.feature_std: expected numbers > 0"):
        LogisticRegression(2, feature_mean=[0.0, 0.0], feature_std=[1.0, 0.0])
