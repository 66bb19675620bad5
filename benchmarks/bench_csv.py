"""Reading a ~50 MB CSV of numbers: the old reader (csv module + np.loadtxt) against `logreg.csvfile.read_numbers`.

    python benchmarks/bench_csv.py                  # 600,000 rows x 9 columns, median of 3
    python benchmarks/bench_csv.py --rows 100000    # smaller

Writes the file into a temporary folder (8 uniform features with 6 to 9 significant digits and a 0/1 label, no
header), reads it with both readers in this one process, median of 3 each after one untimed read, and prints the
times and their ratio; then the first read of a fresh process, as a run reads its data (median of 3 processes each).
Also prints, for information, the new reader on one thread (pyarrow's gain grows with cores), on a gzip copy, and
the time it takes to name a bad cell on the file's last line (its slow path). Ratios compare numbers measured in
this run only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from logreg.csvfile import read_numbers
from logreg.errors import DataError

# ----------------------------------------------------------------------------------------------- the old reader
# `read_table` as src/logreg/data.py had it before csvfile.py (verbatim but for names): the baseline stays measurable
# after data.py moves to the new reader.


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def old_read_table(path: str | os.PathLike, header: bool | None = None) -> tuple[np.ndarray, list[str], bool]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="") as file:
        first_row = next(csv.reader(file), None)
    if not first_row or not any(cell.strip() for cell in first_row):
        raise DataError(f"{path}: the file is empty; expected rows of comma-separated numbers")
    first_row = [cell.strip() for cell in first_row]
    if header is None:
        header = not all(_is_number(cell) for cell in first_row)
    n_columns = len(first_row)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, skiprows=int(header), ndmin=2, encoding="utf-8")
    except ValueError:
        raise DataError(f"{path}: a row could not be parsed") from None  # (the old slow scan is not timed here)
    if table.shape[0] == 0:
        raise DataError(f"{path}: no data rows after the header line")
    if table.shape[1] != n_columns:
        raise DataError(f"{path}: a row has the wrong number of columns")
    if not np.isfinite(table).all():
        raise DataError(f"{path}: a value is not finite")
    names = first_row if header else [f"x{i}" for i in range(n_columns)]
    return table, names, header


# ---------------------------------------------------------------------------------------------------- the bench

ENGINE_ONLY = pacsv.ReadOptions(autogenerate_column_names=True)  # the parse alone: no checks, no float32 table
FLOAT64 = pacsv.ConvertOptions(default_column_type=pa.float64())


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """rows x 9: 8 features in [-1, 1) with 6 to 9 significant digits each, then a 0/1 label; no header."""
    rng = np.random.default_rng(seed)
    features = rng.uniform(-1, 1, size=(rows, 8))  # (rows, 8)
    digits = rng.integers(6, 10, size=8)  # significant digits of each feature column
    labels = rng.integers(0, 2, size=rows)  # (rows,)
    block = 50_000  # format in blocks: the text of the whole file at once would double the memory
    with path.open("w", newline="") as file:
        for start in range(0, rows, block):
            stop = min(start + block, rows)
            columns = [[f"{value:.{d}g}" for value in features[start:stop, j]] for j, d in enumerate(digits)]
            columns.append([str(label) for label in labels[start:stop]])
            file.write("".join(",".join(row) + "\n" for row in zip(*columns)))


def median_time(read, repeats: int) -> tuple[float, object]:
    """The median time of `repeats` calls, after one untimed call (pyarrow's first read in a process also starts its
    thread and memory pools: printed apart, as `first_read_time`)."""
    result = read()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = read()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def first_read_time(path: Path, reader: str, repeats: int) -> float:
    """The median, over `repeats` fresh processes, of a process's first read of `path` (the imports not counted)."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[2])\n"
        "from bench_csv import old_read_table; from logreg.csvfile import read_numbers\n"
        f"start = time.perf_counter(); {reader}(sys.argv[1]); print(time.perf_counter() - start)"
    )
    here = str(Path(__file__).parent)
    runs = [subprocess.run([sys.executable, "-c", code, str(path), here], capture_output=True, text=True, check=True)]
    runs += [subprocess.run(runs[0].args, capture_output=True, text=True, check=True) for _ in range(repeats - 1)]
    return statistics.median(float(run.stdout) for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"numpy {np.__version__}, pyarrow {pa.__version__} ({pa.cpu_count()} threads)"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "numbers.csv"
        write_csv(path, args.rows)
        print(f"file: {args.rows:,} rows x 9 columns, {path.stat().st_size / 1e6:.1f} MB; median of {args.repeats}")

        old_s, (old_table, _, _) = median_time(lambda: old_read_table(path), args.repeats)
        new_s, new = median_time(lambda: read_numbers(path), args.repeats)
        print(f"old reader (csv + np.loadtxt):      {old_s:7.3f} s")
        print(f"new reader (pyarrow, read_numbers): {new_s:7.3f} s   ratio old/new: {old_s / new_s:.1f}x")
        print(f"same float32 values: {np.array_equal(old_table, new.values)}")
        old_first = first_read_time(path, "old_read_table", args.repeats)
        new_first = first_read_time(path, "read_numbers", args.repeats)
        print(
            f"first read in a fresh process: old {old_first:.3f} s, new {new_first:.3f} s   "
            f"ratio old/new: {old_first / new_first:.1f}x"
        )
        engine_s, _ = median_time(lambda: pacsv.read_csv(path, ENGINE_ONLY, convert_options=FLOAT64), args.repeats)
        print(f"pyarrow's read_csv alone (float64): {engine_s:7.3f} s   ratio old/engine: {old_s / engine_s:.1f}x")
        try:
            import pandas as pd  # not a dependency (statsmodels brings it): the yardstick issue 10 timed against
        except ImportError:
            pass
        else:
            pandas_s, _ = median_time(lambda: pd.read_csv(path, header=None, dtype=np.float32), args.repeats)
            print(f"pandas.read_csv (C engine):         {pandas_s:7.3f} s   ratio pandas/new: {pandas_s / new_s:.1f}x")
        threads = pa.cpu_count()
        pa.set_cpu_count(1)  # how much of the gain is pyarrow's threads: more cores, more gain
        try:
            one_s, _ = median_time(lambda: read_numbers(path), args.repeats)
        finally:
            pa.set_cpu_count(threads)
        print(f"new reader on 1 thread:             {one_s:7.3f} s   ratio old/new: {old_s / one_s:.1f}x")

        packed = path.with_suffix(".csv.gz")
        with path.open("rb") as source, gzip.open(packed, "wb", compresslevel=6) as target:
            shutil.copyfileobj(source, target)
        gzip_s, _ = median_time(lambda: read_numbers(packed), args.repeats)
        print(f"new reader, gzip copy ({packed.stat().st_size / 1e6:.1f} MB):  {gzip_s:7.3f} s")

        with path.open("a") as file:
            file.write("0.5,0.5,0.5,0.5,0.5,abc,0.5,0.5,1\n")
        start, message = time.perf_counter(), "read without error (unexpected)"
        try:
            read_numbers(path)
        except DataError as error:
            message = str(error).split(": ", 1)[1]
        print(f"new reader naming a bad cell on the last line: {time.perf_counter() - start:7.3f} s  ({message})")


if __name__ == "__main__":
    main()
