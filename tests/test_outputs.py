"""Nothing an entry script writes replaces a file it did not create in this run: run folders are claimed atomically,
and single outputs (predictions, exports) never replace an input or another kind of file."""

import errno
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import warm

from conftest import REPO, make_table
from logreg.errors import OutputError, as_user_error
from logreg.outputs import CLAIM, check_output, claim_folder, write_output


def test_a_new_folder_is_claimed_with_a_claim_file(tmp_path):
    claim_folder(tmp_path / "run")

    assert [p.name for p in (tmp_path / "run").iterdir()] == [CLAIM]


def test_an_empty_existing_folder_can_be_claimed(tmp_path):
    claim_folder(tmp_path)

    assert (tmp_path / CLAIM).is_file()


def test_a_claimed_folder_is_refused_to_a_second_claim(tmp_path):
    claim_folder(tmp_path / "run")

    with pytest.raises(OutputError, match=r"already the folder of another run \(.*run\.json exists\)"):
        claim_folder(tmp_path / "run")


def test_a_folder_holding_anything_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(OutputError, match=r"not empty \(notes\.txt\); a run only writes into a new or empty folder"):
        claim_folder(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_claimed_sweep_folder_is_refused_naming_the_sweep_key(tmp_path):
    from omegaconf import OmegaConf

    from logreg.outputs import ClaimRunFolder

    claim_folder(tmp_path / "sweep")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})

    with pytest.raises(SystemExit, match=r"^error: .*already the folder of another run.* Leave hydra\.sweep\.dir at"):
        ClaimRunFolder().on_multirun_start(config)


def test_of_many_processes_claiming_one_folder_at_once_exactly_one_wins(tmp_path):
    outcomes, start = [], threading.Barrier(8)

    def claim():
        start.wait()
        try:
            claim_folder(tmp_path / "run")
            outcomes.append("claimed")
        except OutputError:
            outcomes.append("refused")

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["claimed"] + ["refused"] * 7


def train_into(run_dir, tiny_csv, cwd, *extra, script="train.py"):
    return warm.run(
        [
            sys.executable,
            str(REPO / script),
            "data=csv",
            f"data.path={tiny_csv}",
            "epochs=1",
            "logger=none",
            "~callbacks.plots",
            f"hydra.run.dir={run_dir}",
            *extra,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def snapshot(folder):
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_a_run_never_writes_into_another_runs_folder_not_even_hydra_files(tiny_csv, tmp_path):
    assert train_into(tmp_path / "run", tiny_csv, tmp_path).returncode == 0
    before = snapshot(tmp_path / "run")

    again = train_into(tmp_path / "run", tiny_csv, tmp_path, "lr=0.5")
    evaluation = warm.run(
        [
            sys.executable,
            str(REPO / "eval.py"),
            f"ckpt_path={tmp_path / 'run/checkpoints/last.ckpt'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    for result in (again, evaluation):
        assert result.returncode == 1 and "already the folder of another run" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert snapshot(tmp_path / "run") == before  # .hydra/overrides.yaml, train.log, metrics.json: all untouched


@pytest.mark.slow
def test_two_runs_started_together_on_one_folder_do_not_share_it(tiny_csv, tmp_path):
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "train.py"),
                "data=csv",
                f"data.path={tiny_csv}",
                "epochs=1",
                "logger=none",
                "~callbacks.plots",
                f"hydra.run.dir={tmp_path / 'run'}",
                f"seed={seed}",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [(process.wait(timeout=180), process.stderr.read()) for process in processes]

    assert sorted(code for code, _ in results) == [0, 1], results
    refused = next(stderr for code, stderr in results if code == 1)
    assert "already the folder of another run" in refused


def test_an_output_may_not_be_an_input(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("1,2\n")

    with pytest.raises(OutputError, match=r"output=.*rows\.csv: is an input of this run"):
        check_output(source, inputs=[source], overwrite=True, same_kind=lambda path: True)
    os.link(source, tmp_path / "hardlink.csv")
    with pytest.raises(OutputError, match=r"is an input of this run"):  # the same file under another name
        check_output(tmp_path / "hardlink.csv", inputs=[source], overwrite=True, same_kind=lambda path: True)


def test_an_existing_output_is_replaced_only_with_overwrite_and_only_by_its_own_kind(tmp_path):
    earlier, other = tmp_path / "pred.csv", tmp_path / "notes.csv"
    earlier.write_text("ours\n")
    other.write_text("theirs\n")
    ours = lambda path: path.read_text() == "ours\n"  # noqa: E731

    with pytest.raises(OutputError, match=r"pred\.csv: exists; name a new file, or overwrite=true"):
        check_output(earlier, same_kind=ours)
    with pytest.raises(OutputError, match=r"notes\.csv: exists and is not an earlier output of this kind"):
        check_output(other, overwrite=True, same_kind=ours)
    assert check_output(earlier, overwrite=True, same_kind=ours) == earlier


def test_an_output_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"output=.*: is a folder; name a file"):
        check_output(tmp_path)


def test_an_output_in_a_missing_folder_creates_the_folder(tmp_path):
    with write_output(tmp_path / "new" / "deeper" / "out.csv") as partial:
        partial.write_text("x\n")

    assert (tmp_path / "new" / "deeper" / "out.csv").read_text() == "x\n"


def test_a_failed_write_leaves_no_file_and_the_earlier_output_intact(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("earlier\n")

    with pytest.raises(RuntimeError), write_output(target, overwrite=True, same_kind=lambda path: True) as partial:
        partial.write_text("half")
        raise RuntimeError("the writer failed")

    assert target.read_text() == "earlier\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.slow
def test_predict_never_writes_over_its_input_or_its_checkpoint(run, tiny_csv, tmp_path):
    run("data=csv", f"data.path={tiny_csv}", "epochs=1", "logger=none", run_dir=tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    rows = tmp_path / "rows.csv"
    np.savetxt(rows, make_table(n_rows=5)[0], delimiter=",")
    inputs = {path: path.read_bytes() for path in (rows, ckpt)}

    for output in (rows, ckpt):
        result = warm.run(
            [
                sys.executable,
                str(REPO / "predict.py"),
                f"ckpt_path={ckpt}",
                f"input={rows}",
                f"output={output}",
                "overwrite=true",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1 and "is an input of this run" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert {path: path.read_bytes() for path in inputs} == inputs


# ------------------------------------------------------------------------------------------- outputs claimed once

RACING_WRITER = """
import sys, time
from pathlib import Path
from logreg.errors import OutputError, as_user_error
from logreg.outputs import write_text

folder, me, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
(folder / f"ready-{me}").touch()
while len(list(folder.glob("ready-*"))) < 2:  # both start together
    time.sleep(0.001)
for i in range(n):
    try:
        write_text(folder / f"out{i}.csv", f"{me}\\n" * 20000)
        print(i, "written")
    except OutputError as error:
        print(i, "refused", "created by another process" in str(error) or "exists;" in str(error))
"""


def test_of_two_processes_writing_one_new_output_at_once_exactly_one_succeeds(tmp_path):
    n = 150
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", RACING_WRITER, str(tmp_path), me, str(n)], stdout=subprocess.PIPE, text=True
        )
        for me in ("a", "b")
    ]
    outcomes = {
        me: dict(line.split(" ", 1) for line in w.communicate(timeout=300)[0].splitlines())
        for me, w in zip("ab", writers)
    }

    for i in range(n):
        results = sorted(outcomes[me][str(i)] for me in "ab")
        assert results == ["refused True", "written"], (i, results)
        winner = next(me for me in "ab" if outcomes[me][str(i)] == "written")
        assert (tmp_path / f"out{i}.csv").read_text() == f"{winner}\n" * 20000
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_created_by_another_program_while_writing_is_left_alone(tmp_path, overwrite):
    target = tmp_path / "pred.csv"

    with pytest.raises(OutputError, match=r"pred\.csv: (was created by another process|exists and is not an earlier)"):
        with write_output(target, overwrite=overwrite, same_kind=lambda path: path.read_text() == "ours\n") as partial:
            partial.write_text("ours\n")
            target.write_text("theirs\n")  # another program, between the check and the end of the write

    assert target.read_text() == "theirs\n" and sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv"]


def test_an_earlier_output_of_the_same_kind_written_meanwhile_is_replaced_with_overwrite(tmp_path):
    target = tmp_path / "pred.csv"

    with write_output(target, overwrite=True, same_kind=lambda path: path.read_text().startswith("ours")) as partial:
        partial.write_text("ours, new\n")
        target.write_text("ours, earlier\n")

    assert target.read_text() == "ours, new\n"


@pytest.mark.parametrize("errno_", [errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EDQUOT])
def test_a_write_that_fails_is_named_by_its_key_and_path_not_the_temporary_file(tmp_path, errno_):
    target = tmp_path / "pred.csv"

    with pytest.raises(OSError) as raised, write_output(target, key="output") as partial:
        raise OSError(errno_, os.strerror(errno_), str(partial))  # as the OS says it, of the file being written

    assert raised.value.filename == f"output={target}" and raised.value.errno == errno_
    assert str(as_user_error(raised.value)).startswith(f"output={target}: {os.strerror(errno_)}")
    assert list(tmp_path.iterdir()) == []
