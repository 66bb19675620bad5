"""Training rows per second on a streamed table (`data.stream=true`) against the same table in memory, inside
Lightning, in mini-batches and full batch; and a streamed full-batch epoch against reading the file once.

    python benchmarks/bench_stream.py                          # 2,000,000 rows x 16 features, 3 rounds
    python benchmarks/bench_stream.py --rows 500000 --rounds 2

Writes a float32 Parquet table (row groups of 65,536 rows) into a temporary folder. Each side is a `CSVDataModule`
(stream true or false; no validation or test rows) loaded before timing, `LogisticRegression` with SGD, and a
Trainer with no logger, checkpoints or progress bar; its time per epoch is (fit of E epochs - fit of 1) / (E - 1), so
what each epoch does is counted and the set-up (reading the table into memory, or the streaming passes) is not. The
sides run interleaved, round after round, in this one process on one thread; both wall and CPU time are printed (on a
loaded machine the wall time carries other processes' work: there the CPU time is the fairer figure). The file stays
in the page cache, so "from disk" means from the operating system's cache; the memory a streamed run needs is shown
by tests/test_stream_memory.py, not here. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from logreg.data import CSVDataModule
from logreg.model import LogisticRegression
from logreg.quiet import quiet_third_parties


def write_table(path: Path, rows: int, features: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    weights = np.linspace(1, -1, features)
    schema = pa.schema([(f"f{k}", pa.float32()) for k in range(features)] + [("label", pa.float32())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 1 << 16):
            n = min(1 << 16, rows - start)
            x = rng.uniform(-1, 1, size=(n, features)).astype(np.float32)
            y = (x @ weights + rng.normal(0, 1, n) > 0).astype(np.float32)
            arrays = [pa.array(x[:, k]) for k in range(features)] + [pa.array(y)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=1 << 16)
    return path


def fit_seconds(path: Path, stream: bool, batch_size: int | None, epochs: int) -> tuple[float, float]:
    """(wall, CPU) seconds of `epochs` epochs of fit, the data loaded before."""
    datamodule = CSVDataModule(
        str(path), stream=stream, batch_size=batch_size, val_fraction=0.0, test_fraction=0.0, test_on="train"
    )
    datamodule.load()
    model = LogisticRegression(datamodule.n_features, optimizer={"name": "sgd", "lr": 0.1})
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(model, datamodule=datamodule)
    return time.perf_counter() - wall, time.process_time() - cpu


def per_epoch(path: Path, stream: bool, batch_size: int | None, epochs: int) -> tuple[float, float]:
    long, short = fit_seconds(path, stream, batch_size, epochs), fit_seconds(path, stream, batch_size, 1)
    return (long[0] - short[0]) / (epochs - 1), (long[1] - short[1]) / (epochs - 1)


def read_once(path: Path) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    pq.read_table(path)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    arguments = parser.parse_args()
    quiet_third_parties()
    torch.set_num_threads(1)
    rows = arguments.rows
    with tempfile.TemporaryDirectory() as folder:
        path = write_table(Path(folder) / "table.parquet", rows, arguments.features)
        print(f"{rows:,} rows x {arguments.features} float32 features ({rows * arguments.features * 4 / 1e6:.0f} MB)")
        cases = {"mini-batch 256": 256, "full batch": None}
        times: dict[tuple[str, bool], list[tuple[float, float]]] = {}
        reads = []
        for _ in range(arguments.rounds):
            for name, batch_size in cases.items():
                for stream in (False, True):
                    times.setdefault((name, stream), []).append(per_epoch(path, stream, batch_size, arguments.epochs))
            reads.extend(read_once(path) for _ in range(3))  # the first read of a round pays for fresh memory
        best_read = min(reads)
        print("| batch | in memory rows/s (wall, CPU) | streamed rows/s (wall, CPU) | streamed / in memory (CPU) |")
        print("| --- | ---: | ---: | ---: |")
        for name in cases:
            memory, streamed = min(times[(name, False)]), min(times[(name, True)])
            print(
                f"| {name} | {rows / memory[0]:,.0f}, {rows / memory[1]:,.0f} | {rows / streamed[0]:,.0f}, "
                f"{rows / streamed[1]:,.0f} | {memory[1] / streamed[1]:.2f}x |"
            )
        full = min(times[("full batch", True)])
        print(
            f"streamed full-batch epoch: {full[0]:.3f} s wall, {full[1]:.3f} s CPU; reading the file once "
            f"(pyarrow.parquet.read_table): {best_read[0]:.3f} s wall, {best_read[1]:.3f} s CPU: "
            f"{full[0] / best_read[0]:.2f}x wall, {full[1] / best_read[1]:.2f}x CPU"
        )


if __name__ == "__main__":
    main()
