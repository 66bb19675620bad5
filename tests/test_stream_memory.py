"""Bounded memory: a streamed table several times larger than the memory a training process may use beyond what it
needs anyway trains, and ends where the same table trained in memory does, which needs more than that limit.

The limit is on the address space (`resource.setrlimit(RLIMIT_AS)`, set in a fresh interpreter that then becomes
`python train.py`). torch, Lightning and their threads map a few GB of address space before any data is read, so the
test first measures that: the peak address space (VmPeak) of the same streamed run on a small table with the same
columns and row groups. The limit is that peak plus HEADROOM; the large table takes TABLE_TIMES times HEADROOM as
float32 values. glibc's per-thread heaps (MALLOC_ARENA_MAX) and Arrow's own allocator reserve address space they may
never use; both runs use the system allocator with two heaps, so the peaks measure what is used.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, started_after

pytestmark = pytest.mark.slow

HEADROOM = 48 << 20  # bytes of address space beyond the small run's peak
TABLE_TIMES = 3  # the large table's float32 values: this many times HEADROOM
N_FEATURES, ROW_GROUP_ROWS = 63, 8192
ENV = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}
# Runs the script named next on the command line, then prints the process's peak address space
PEAK = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print(next(l for l in open('/proc/self/status') if l.startswith('VmPeak')), "
    "file=sys.stderr))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def write_table(path, n_rows, seed=0):
    """n_rows rows of N_FEATURES float32 features and a 0/1 label, in row groups of ROW_GROUP_ROWS, written a
    row group at a time (the test process never holds the large table either)."""
    rng = np.random.default_rng(seed)
    weights = np.linspace(1, -1, N_FEATURES)
    schema = pa.schema([(f"f{k}", pa.float32()) for k in range(N_FEATURES)] + [("label", pa.float32())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n_rows, ROW_GROUP_ROWS):
            n = min(ROW_GROUP_ROWS, n_rows - start)
            features = rng.uniform(-1, 1, size=(n, N_FEATURES)).astype(np.float32)
            labels = (features @ weights + rng.normal(0, 1, n) > 0).astype(np.float32)
            columns = [pa.array(features[:, k]) for k in range(N_FEATURES)] + [pa.array(labels)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=ROW_GROUP_ROWS)
    return path


def train(tmp_path, name, table, stream, setup=""):
    """`python train.py` on `table` (2 full-batch epochs) into its own run folder; the completed process."""
    run_dir = tmp_path / name
    command = [
        sys.executable,
        "-c",
        PEAK,
        str(REPO / "train.py"),
        "data=csv",
        f"data.path={table}",
        f"data.stream={stream}",
        "epochs=2",
        "logger=none",
        "callbacks=none",
        f"hydra.run.dir={run_dir}",
    ]
    return subprocess.run(
        started_after(setup, command) if setup else command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **ENV},
    )


def peak_bytes(result) -> int:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return int(re.search(r"VmPeak:\s+(\d+) kB", result.stderr).group(1)) * 1024


def test_a_streamed_table_several_times_the_memory_allowed_trains_to_the_in_memory_numbers(tmp_path):
    small = write_table(tmp_path / "small.parquet", 4 * ROW_GROUP_ROWS)
    n_rows = -(-TABLE_TIMES * HEADROOM // (4 * N_FEATURES))  # rounded up
    large = write_table(tmp_path / "large.parquet", n_rows, seed=1)
    baseline = peak_bytes(train(tmp_path, "baseline", small, "true"))
    limit = baseline + HEADROOM
    set_limit = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))"

    streamed = train(tmp_path, "streamed", large, "true", set_limit)
    in_memory = train(tmp_path, "in_memory", large, "false")

    assert n_rows * N_FEATURES * 4 >= TABLE_TIMES * (limit - baseline)  # the table: several times what is allowed
    assert peak_bytes(streamed) <= limit
    assert peak_bytes(in_memory) > limit + HEADROOM  # the limit binds: in memory, the table needs far more
    numbers = json.loads((tmp_path / "streamed" / "metrics.json").read_text())
    reference = json.loads((tmp_path / "in_memory" / "metrics.json").read_text())
    assert set(numbers) == set(reference)
    for name, value in reference.items():
        assert numbers[name] == pytest.approx(value, rel=5e-5, abs=1e-7), name
