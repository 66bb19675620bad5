"""Reading and encoding a table of 8 numeric and 2 text columns (and a 0/1 label), CSV and Parquet: the project's
readers + `logreg.encoding` against pandas + scikit-learn's ColumnTransformer(OneHotEncoder) on the same file.

    python benchmarks/bench_tables.py                   # 1,000,000 rows
    python benchmarks/bench_tables.py --rows 100000     # smaller

Writes the files into a temporary folder, then for each format times, in this one process, each side once after
one untimed warm-up read: the project reads the file (pyarrow), learns the encoding on every row and applies it
(float32 features out, the first category of each text column dropped); the reference reads it with pandas (its
pyarrow engine where it has one) and fits and applies `ColumnTransformer([OneHotEncoder(drop="first")], remainder=
"passthrough")`. Prints the times and their ratio; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from logreg.encoding import Encoding
from logreg.table import encode, read_labeled_csv

NUMERIC = [f"x{i}" for i in range(1, 9)]
TEXT = ["city", "plan"]


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {name: pa.array(rng.uniform(-1, 1, rows).round(6)) for name in NUMERIC}
    columns["city"] = pa.array(rng.choice(["Berlin", "Lyon", "Oslo", "Porto", "Quito"], rows))
    columns["plan"] = pa.array(rng.choice(["basic", "plus"], rows))
    columns["y"] = pa.array(rng.integers(0, 2, rows))
    return pa.table(columns)


def project(path: Path) -> np.ndarray:
    table = read_labeled_csv(path, label_column="y")
    every_row = np.arange(table.n_rows)
    encoding = Encoding.fit(table.features, table.feature_names, table.levels, every_row)
    return encode(table, encoding).features


def reference(path: Path) -> np.ndarray:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, engine="pyarrow")
    features = frame.drop(columns="y")
    encoder = ColumnTransformer(
        [("text", OneHotEncoder(drop="first", sparse_output=False, dtype=np.float32), TEXT)],
        remainder="passthrough",
        sparse_threshold=0,
    )
    return encoder.fit_transform(features)


def timed(function, path: Path) -> tuple[float, np.ndarray]:
    function(path)  # warm-up: imports, page cache
    start = time.perf_counter()
    result = function(path)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    arguments = parser.parse_args()
    table = make_table(arguments.rows)
    with tempfile.TemporaryDirectory() as folder:
        paths = {"csv": Path(folder) / "table.csv", "parquet": Path(folder) / "table.parquet"}
        pacsv.write_csv(table, paths["csv"], pacsv.WriteOptions(quoting_style="none"))
        pq.write_table(table, paths["parquet"])
        print(f"{arguments.rows:,} rows: 8 numeric, 2 text columns, a label; {os.cpu_count()} CPUs")
        print("| format | file | project | pandas + scikit-learn | reference / project |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, path in paths.items():
            ours, ours_features = timed(project, path)
            theirs, their_features = timed(reference, path)
            assert ours_features.shape == their_features.shape, (ours_features.shape, their_features.shape)
            size = path.stat().st_size / 1e6
            print(f"| {name} | {size:.0f} MB | {ours:.3f} s | {theirs:.3f} s | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
