"""A streamed table trained by 2 DDP processes (`trainer=ddp_cpu`, each reading only its own row groups) against one
process (`trainer=cpu`), full batch, as whole `python train.py` runs.

    python benchmarks/bench_stream_ddp.py                      # 4,000,000 rows x 16 features, 2 rounds
    python benchmarks/bench_stream_ddp.py --rows 1000000 --rounds 3

Writes a float32 Parquet table (row groups of 65,536 rows) into a temporary folder, and a cache folder of its own
(LOGREG_CACHE_DIR) there. Each side runs `train.py data=csv data.path=<table> data.stream=true` with no held-out rows,
no logger, checkpoint or plots, and a callback (`epoch_timer.EpochTimer`) that records every process's wall and CPU
seconds per training epoch, so the processes' start, the streaming passes and the final report are not counted. Per
epoch: the median over epochs after the first of rank zero's wall time (the processes wait for each other at every
update) and of the CPU time summed over the processes. The sides run interleaved, round after round; the best round
of each is printed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_stream import write_table  # noqa: E402 - the same table as bench_stream.py


def epoch_seconds(path: Path, trainer: str, epochs: int, env: dict[str, str], folder: Path) -> tuple[float, float]:
    """(wall, CPU over all processes) seconds of a training epoch of one `train.py` run (medians, first left out)."""
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
        "+callbacks.epoch_timer._target_=epoch_timer.EpochTimer",
        f"+callbacks.epoch_timer.folder={folder / 'epochs'}",
        f"hydra.run.dir={folder}",
    ]
    result = subprocess.run(command, cwd=folder.parent, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    ranks = [json.loads(file.read_text()) for file in sorted((folder / "epochs").glob("epochs-*.json"))]
    walls = [wall for wall, _ in ranks[0][1:]]
    cpus = [sum(rank[epoch][1] for rank in ranks) for epoch in range(1, epochs)]
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    arguments = parser.parse_args()
    rows = arguments.rows
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        path = write_table(folder / "table.parquet", rows, arguments.features)
        env = {**os.environ, "LOGREG_CACHE_DIR": str(folder / "cache")}
        paths = [str(REPO / "src"), str(REPO / "benchmarks"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        print(f"{rows:,} rows x {arguments.features} float32 features ({rows * arguments.features * 4 / 1e6:.0f} MB)")
        sides = {"1 process (trainer=cpu)": "cpu", "2 DDP processes (trainer=ddp_cpu)": "ddp_cpu"}
        timed: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for round_ in range(arguments.rounds):
            for name, trainer in sides.items():
                run = folder / f"run{round_}-{trainer}"
                timed[name].append(epoch_seconds(path, trainer, arguments.epochs, env, run))
        print("| side | epoch wall s | epoch CPU s (all processes) | rows/s (wall) |")
        print("| --- | ---: | ---: | ---: |")
        best = {name: min(times) for name, times in timed.items()}
        for name, (wall, cpu) in best.items():
            print(f"| {name} | {wall:.3f} | {cpu:.3f} | {rows / wall:,.0f} |")
        (one_wall, one_cpu), (two_wall, two_cpu) = best.values()
        print(f"2 processes / 1 process per epoch: {two_wall / one_wall:.2f}x wall, {two_cpu / one_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()
