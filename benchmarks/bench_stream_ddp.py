"""A streamed table trained by 2 DDP processes (`trainer=ddp_cpu`, each reading only its own row groups) against one
process (`trainer=cpu`), full batch, as whole `python train.py` runs.

    python benchmarks/bench_stream_ddp.py                      # 4,000,000 rows x 16 features, 2 rounds
    python benchmarks/bench_stream_ddp.py --rows 1000000 --rounds 3

Writes a float32 Parquet table (row groups of 65,536 rows) into a temporary folder, and a cache folder of its own
(LOGREG_CACHE_DIR) there. Each side runs `train.py data=csv data.path=<table> data.stream=true` with no held-out rows,
no logger, checkpoint or plots; its time per epoch is (run of E epochs - run of 1) / (E - 1), so the processes'
start, the streaming passes and the final report cancel out and what each epoch does is counted. Wall time, and the
CPU time of the run's whole process tree (`RUSAGE_CHILDREN`; this script adopts and reaps every descendant, so
Lightning's second process counts too). The sides run interleaved, round after round, after one warm-up run of each
(it makes the streaming passes, which later runs find in the cache folder, as a user's second run would); per epoch
is taken from the best run of each length. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_stream import write_table  # noqa: E402 - the same table as bench_stream.py


def run_seconds(path: Path, trainer: str, epochs: int, env: dict[str, str], folder: Path) -> tuple[float, float]:
    """(wall, CPU of the whole process tree) seconds of one `train.py` run."""
    command = [
        sys.executable,
        str(REPO / "train.py"),
        f"trainer={trainer}",
        "data=csv",
        f"data.path={path}",
        "data.stream=true",
        "data.val_fraction=0",
        "data.test_fraction=0",
        "data.test_on=train",
        "monitor=train/loss",
        f"epochs={epochs}",
        "lr=0.5",
        "logger=none",
        "callbacks.checkpoint=null",
        "~callbacks.plots",
        f"hydra.run.dir={folder}",
    ]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(command, cwd=folder.parent, env=env, capture_output=True, text=True)
    while True:  # the processes Lightning's launcher started, orphaned when train.py ended: reaped here, and counted
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def adopt_orphans() -> None:
    """Make this process the one its descendants are handed to when their parent ends (Linux's child subreaper), so
    that a child process train.py did not wait for is still waited for, and its CPU time counted, here."""
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=21)
    arguments = parser.parse_args()
    rows, epochs = arguments.rows, arguments.epochs
    adopt_orphans()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        path = write_table(folder / "table.parquet", rows, arguments.features)
        env = {**os.environ, "LOGREG_CACHE_DIR": str(folder / "cache")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
        print(f"{rows:,} rows x {arguments.features} float32 features ({rows * arguments.features * 4 / 1e6:.0f} MB)")
        sides = {"1 process (trainer=cpu)": "cpu", "2 DDP processes (trainer=ddp_cpu)": "ddp_cpu"}
        for n, trainer in enumerate(sides.values()):  # warm-up: the streaming passes, the interpreter's caches
            run_seconds(path, trainer, 1, env, folder / f"warm{n}")
        timed: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for round_ in range(arguments.rounds):
            for name, trainer in sides.items():
                for n in (epochs, 1):
                    run = folder / f"run{round_}-{trainer}-{n}"
                    timed.setdefault((name, n), []).append(run_seconds(path, trainer, n, env, run))
        best: dict[str, tuple[float, float]] = {}
        for name in sides:  # the best run of each length, then their difference per epoch
            (long_wall, long_cpu), (short_wall, short_cpu) = min(timed[(name, epochs)]), min(timed[(name, 1)])
            best[name] = ((long_wall - short_wall) / (epochs - 1), (long_cpu - short_cpu) / (epochs - 1))
        print("| side | epoch wall s | epoch CPU s (all processes) | rows/s (wall) |")
        print("| --- | ---: | ---: | ---: |")
        for name, (wall, cpu) in best.items():
            print(f"| {name} | {wall:.3f} | {cpu:.3f} | {rows / wall:,.0f} |")
        (one_wall, one_cpu), (two_wall, two_cpu) = best.values()
        print(f"2 processes / 1 process per epoch: {two_wall / one_wall:.2f}x wall, {two_cpu / one_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()
