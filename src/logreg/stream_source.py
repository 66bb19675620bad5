"""Where a streamed table's rows come from: Parquet row groups, read one block at a time, never the whole table.

A block is one row group of one file (files in path order, as the in-memory reader reads them). A CSV is converted
once into a streaming copy: Parquet with row groups of BLOCK_ROWS rows, in a cache folder of the project's own
(`$LOGREG_CACHE_DIR`, else `$XDG_CACHE_HOME/logreg`, else `~/.cache/logreg`; never beside the user's file), keyed by
the file's absolute path, size and modification time and the read options, and written atomically (a temporary
folder renamed into place), so a changed file gets a new copy and two processes converting at once both end with
one whole copy. `table_bytes` and `should_stream` decide `data.stream=auto`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from logreg.errors import ConfigError, DataError
from logreg.parquetfile import column_kind, is_parquet, parquet_files

BLOCK_ROWS = 1 << 16  # rows per row group of a CSV's streaming copy: a few MB per block at tens of columns
# data.stream=auto streams a table whose values take more than this share of the memory this process may use (the
# machine's, or less under `ulimit -v`): reading a table into memory holds it about three times over for a moment
# (pyarrow's columns, their float64 conversion, the float32 table), and the rest of the machine needs the remainder.
MEMORY_SHARE = 0.25
_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_COPY_VERSION = 1  # bump when the streaming copy's layout changes: older copies are then not reused


@dataclass(frozen=True)
class Block:
    """One row group: rows start .. start + n_rows of the table."""

    file: Path
    row_group: int
    start: int
    n_rows: int


class BlockSource:
    """The row groups of Parquet data (a file, a folder of files, a glob), read from their metadata alone."""

    def __init__(self, path: str | os.PathLike, shown: str | None = None):
        self.shown = shown or os.fspath(path)
        self.files = parquet_files(path)
        self.names: list[str] = []
        self.kinds: list[str | None] = []
        self.blocks: list[Block] = []
        self._open: dict[Path, pq.ParquetFile] = {}
        start = 0
        for file in self.files:
            reader = self._reader(file)
            schema = reader.schema_arrow
            if not self.names:
                self.names = list(schema.names)
                self.kinds = [column_kind(schema.field(name).type) for name in self.names]
            elif sorted(schema.names) != sorted(self.names):
                extra = sorted(set(schema.names) ^ set(self.names))
                raise DataError(
                    f"{file}: column {extra[0]!r} is in this file or in {self.files[0].name} but not both; every file "
                    "must have the same columns"
                )
            for group in range(reader.metadata.num_row_groups):
                n_rows = reader.metadata.row_group(group).num_rows
                if n_rows:
                    self.blocks.append(Block(file, group, start, n_rows))
                    start += n_rows
        self.n_rows = start
        self.file_starts = {b.file: b.start for b in reversed(self.blocks)}  # each file's first row in the table
        if self.n_rows == 0:
            raise DataError(f"{self.shown}: no rows")

    def _reader(self, file: Path) -> pq.ParquetFile:
        if file not in self._open:
            try:
                self._open[file] = pq.ParquetFile(file)
            except (pa.ArrowException, OSError) as error:
                reason = (str(error).splitlines() or [type(error).__name__])[0]
                raise DataError(f"{file}: cannot be read as Parquet ({reason})") from None
        return self._open[file]

    def identity(self) -> list[list]:
        """Each file's absolute path, size and modification time: what tells whether the data changed."""
        return [[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in self.files]

    def numeric(self, column: int, key: str) -> None:
        """Refuse, naming `key`, a column that is not numbers (text is one-hot encoded only in memory)."""
        if self.kinds[column] != "number":
            what = "text" if self.kinds[column] == "text" else "values that are not numbers"
            raise ConfigError(
                f"data.stream: column {self.names[column]!r} of {self.shown} holds {what}; a streamed table takes "
                f"number columns only (one-hot categories are learned in memory): leave it out with {key}, or set "
                "data.stream=false"
            )

    def read(self, block: Block, columns: list[int], dtype: type) -> np.ndarray:
        """The block's `columns` as (n_rows, len(columns)) of `dtype`, column-major; refuses a missing or infinite
        value (or one beyond `dtype`'s range), naming the file, its row and the column."""
        names = [self.names[c] for c in columns]
        table = self._reader(block.file).read_row_group(block.row_group, columns=names)
        values: np.ndarray = np.empty((block.n_rows, len(columns)), dtype=dtype, order="F")
        largest = float(np.finfo(dtype).max)
        file_start = self.file_starts[block.file]
        for k, name in enumerate(names):
            column = table.column(name)
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            if not (pa.types.is_float32(column.type) or pa.types.is_float64(column.type)):
                column = pc.cast(column, pa.float64())
            array = column.combine_chunks()
            if array.null_count:
                row = int(np.flatnonzero(np.asarray(array.is_null()))[0])
                raise DataError(
                    f"{self.shown}: {block.file.name}, row {block.start - file_start + row + 1}, column {name!r}: the "
                    "value is missing (a streamed table takes no missing values; data.stream=false reads them with "
                    "data.impute)"
                )
            kind = np.float32 if pa.types.is_float32(array.type) else np.float64
            size = np.dtype(kind).itemsize
            numbers = np.frombuffer(array.buffers()[1], kind, len(array), array.offset * size)
            if not np.isfinite(numbers).all() or (size > np.dtype(dtype).itemsize and np.abs(numbers).max() > largest):
                bad = ~np.isfinite(numbers) | (np.abs(numbers) > largest)
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{self.shown}: {block.file.name}, row {block.start - file_start + row + 1}, column {name!r}: the "
                    f"value is {numbers[row]:g}; expected a finite number within {np.dtype(dtype).name}'s range"
                )
            values[:, k] = numbers
        return values


def table_bytes(path: str | os.PathLike) -> int:
    """About how many bytes the table at `path` takes in memory as float32: from Parquet's metadata (rows x columns
    x 4), or, for a CSV, its size on disk (the in-memory reader holds the whole text while it parses)."""
    if is_parquet(path):
        files = parquet_files(path)
        total = 0
        for file in files:
            metadata = pq.ParquetFile(file).metadata
            total += metadata.num_rows * metadata.num_columns * 4
        return total
    return os.stat(path).st_size


def memory_limit() -> int:
    """The bytes this process may use: the machine's memory, or the address-space limit where one is set."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return physical if soft == resource.RLIM_INFINITY else min(physical, soft)


def should_stream(setting: bool | str, path: str | os.PathLike) -> bool:
    """data.stream: true, false, or auto (stream when the table is over MEMORY_SHARE of `memory_limit()`)."""
    if setting == "auto":
        return table_bytes(path) > MEMORY_SHARE * memory_limit()
    return bool(setting)


def cache_dir() -> Path:
    """The project's own cache folder (see the module's docstring)."""
    if os.environ.get("LOGREG_CACHE_DIR"):
        return Path(os.environ["LOGREG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "logreg"


def streaming_copy(path: Path, header: bool | None, encoding: str) -> tuple[Path, bool]:
    """The Parquet streaming copy of the CSV at `path`, made once (see the module's docstring): its folder, and
    whether the CSV has a header row (the copy's columns are x1..xC without one)."""
    status = path.stat()
    identity = {
        "path": str(path.resolve()),
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
        "header": header,
        "encoding": encoding,
        "block_rows": BLOCK_ROWS,
        "version": _COPY_VERSION,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    final = cache_dir() / "stream" / key
    if (final / "part-0.parquet").is_file():
        return final, bool(json.loads((final / "source.json").read_text())["has_header"])
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    with moved_into_place(work, final, "part-0.parquet"):
        has_header = _convert(path, header, encoding, work / "part-0.parquet")
        (work / "source.json").write_text(json.dumps({**identity, "has_header": has_header}, indent=2) + "\n")
    return final, has_header


@contextmanager
def moved_into_place(work: Path, final: Path, marker: str) -> Iterator[None]:
    """The with-block fills `work`, a temporary folder beside `final`; then `work` is renamed to `final` (atomic), or
    dropped where another process renamed its own first (`final / marker` is there). It is removed if the block
    fails, so a reader sees a whole folder or none."""
    try:
        yield
        try:
            os.rename(work, final)  # fails when another process renamed its folder first
        except OSError:
            if not (final / marker).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _first_rows(path: Path, encoding: str) -> list[list[str]]:
    """The cells of the first two non-blank lines (enough to tell a header and each column's kind)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        text = stream.read(1 << 20).decode(encoding, errors="replace").lstrip("\ufeff")
    lines = [line for line in text.splitlines() if line.strip()][:2]
    return [[cell.strip().strip('"') for cell in line.split(",")] for line in lines]


def _convert(path: Path, header: bool | None, encoding: str, target: Path) -> bool:
    """Write the CSV's rows as Parquet, BLOCK_ROWS rows per row group: float64 columns where the first data row holds
    a number (as the in-memory reader decides), text columns as strings."""
    first = _first_rows(path, encoding)
    if not first:
        raise DataError(f"{path}: no rows")
    if header is None:
        header = any(not _NUMBER.fullmatch(cell) for cell in first[0])
    names = first[0] if header else [f"x{k + 1}" for k in range(len(first[0]))]
    data = first[1] if header and len(first) > 1 else first[0]
    read_options = pacsv.ReadOptions(
        column_names=names, skip_rows=1 if header else 0, encoding=encoding, block_size=1 << 22
    )
    types = {
        name: pa.float64() if k < len(data) and _NUMBER.fullmatch(data[k]) else pa.string()
        for k, name in enumerate(names)
    }
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            reader = pacsv.open_csv(stream, read_options=read_options, convert_options=convert)
            writer: pq.ParquetWriter | None = None
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                if writer is None:
                    writer = pq.ParquetWriter(target, batch.schema)
                pending.append(batch)
                rows += batch.num_rows
                while rows >= BLOCK_ROWS:
                    table = pa.Table.from_batches(pending)
                    writer.write_table(table.slice(0, BLOCK_ROWS), row_group_size=BLOCK_ROWS)
                    rest = table.slice(BLOCK_ROWS)
                    pending, rows = rest.to_batches(), rest.num_rows
            if writer is None:
                raise DataError(f"{path}: no rows")
            if rows:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=BLOCK_ROWS)
            writer.close()
        return header
    except pa.ArrowException as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise DataError(
            f"{path}: cannot be converted for streaming ({reason}); data.stream=false reads it in memory and names "
            "the line"
        ) from None


def _remembered_path(identity: dict) -> Path:
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "fitted" / f"{key}.json"


def remembered(identity: dict) -> dict | None:
    """What `remember` kept under `identity` (in the cache folder), or None."""
    try:
        return dict(json.loads(_remembered_path(identity).read_text()))
    except (OSError, ValueError):
        return None


def remember(identity: dict, values: dict) -> None:
    """Keep `values` (plain JSON) under `identity`, written atomically; a cache that cannot be written is skipped
    (it only saves a pass)."""
    path = _remembered_path(identity)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
            json.dump(values, file)
        os.replace(file.name, path)
    except OSError:
        return
