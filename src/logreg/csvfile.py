"""The project's one CSV reader: a file of comma-separated numbers in, a float32 table (N, C) out, or one clear error.

Two paths:

- fast: pyarrow's multi-threaded CSV reader parses every cell as float64, numpy casts the table to float32 (so a value
  equals `np.float32(float(text))`, as `np.loadtxt` gives), and the table is checked: no ragged row, no empty cell,
  every value finite.
- slow, only after the fast path failed: `_diagnose` re-reads the file in Python, line by line, and names the first
  bad line (and column) in file order. pyarrow cannot do this itself: with threads its `InvalidRow.number` is None,
  without them it counts rows skipping blank lines, and its conversion errors name no row.

Lines count the physical lines of the (decompressed, decoded) text from 1, blank lines included; columns count from 1.
Every message is one line that starts with the path as given.
"""

from __future__ import annotations

import codecs
import lzma
import math
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from logreg.errors import DataError

_COMPRESSIONS = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with files, an empty archive
_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_LINE_END = re.compile(r"\r\n|\r|\n")  # pyarrow's line ends; not str.splitlines, which also splits on \f, \x85, ...
_NOT_BLANK = re.compile(r"[^\r\n]")
# What pyarrow parses as a finite float64 (checked against it in the tests). Python's float() accepts more ("1_000",
# "١", "\xa01"), so it alone would call cells numbers that pyarrow refuses.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_SPACE = " \t"  # pyarrow trims only these around a number
# A number no float32 can overflow on (at most 38 digits before the point, no exponent), spaces around it: a row of
# these needs no closer look, which keeps the slow path at about a second per 50 MB instead of a Python call per cell.
_PLAIN = r"[ \t]*[+-]?(?:[0-9]{1,38}(?:\.[0-9]*)?|\.[0-9]+)[ \t]*"
_FLOAT32_OVERFLOW = float(2**128 - 2**103)  # halfway between float32's largest value and 2**128: rounds to inf
_CHUNK = 1 << 16  # bytes read at a time while looking for the first row
MISSING_CELLS = ("", "NA", "N/A", "NaN", "nan")  # what reads as a missing value where missing values are allowed
_MISSING_TEXT = frozenset(cell for cell in MISSING_CELLS if cell)
_READ_ERRORS = (pa.ArrowException, OSError, EOFError, ValueError, lzma.LZMAError)  # what reading a stream may raise


class _Unusable(Exception):
    """The fast path cannot produce the table; the message is pyarrow's or ours, shown only if the slow path finds
    nothing to name."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing tables field by field would compare arrays
class NumericTable:
    """A CSV of numbers as read: the values and what is needed to point back into the file.

    A text column (`levels` has its index) holds codes: value k is the text `levels[column][k]`. Where missing
    values were allowed, a missing cell is NaN; every other value is finite.
    """

    values: np.ndarray  # (N, C) float32, column-major; finite, or NaN for a missing cell where allowed
    names: list[str]  # C column names: the header's cells, or "x1".."xC" without a header
    has_header: bool
    path: Path
    encoding: str = "utf-8"  # the file's text encoding, kept so `line_of` can read the file again
    levels: dict[int, list[str]] = field(default_factory=dict)  # text column -> its distinct texts (code order)

    def line_of(self, row: int) -> int:
        """The 1-based physical line of data row `row` (0-based). Re-reads the file: for error messages only."""
        if not 0 <= row < len(self.values):
            raise IndexError(f"row {row} is out of range for {len(self.values)} rows")
        shown = str(self.path)
        text, _ = _decode(_read_all(self.path, shown, _compression(self.path, shown)), _codec(self.encoding, shown))
        wanted, seen = row + int(self.has_header), -1  # the header is the first non-blank line
        for number, line in enumerate(_LINE_END.split(text), start=1):
            if line:
                seen += 1
                if seen == wanted:
                    return number
        raise DataError(f"{self.path}: the file changed since it was read; read it again")

    def row_label(self, row: int) -> str:
        """Where data row `row` (0-based) is, for messages: 'line L'."""
        return f"line {self.line_of(row)}"

    def column_label(self, column: int) -> str:
        """'column 3', or 'column 3 (glucose)' with a header: `column` 0-based in, 1-based out."""
        return _column_label(column, self.names, self.has_header)


TextChooser = Callable[[list[str], bool, list[str]], Collection[int]]  # (names, header?, first data cells) -> text


def read_numbers(
    path: str | os.PathLike,
    header: bool | None = None,
    encoding: str = "utf-8",
    text_columns: TextChooser | None = None,
    allow_missing: bool = False,
    dtype: type = np.float32,
) -> NumericTable:
    """Read a CSV file of numbers (plain, or gzip/bz2/xz/zstd compressed) into a float32 table.

    Args:
        path: the file.
        header: whether the first non-blank row names the columns; None detects it: a header is a first row with a
            cell that is text and not a number (an empty cell alone does not make one).
        encoding: the file's text encoding (a UTF-8 byte-order mark is skipped).
        text_columns: given the column names, whether there is a header and the first data row's cells, the
            0-based columns to read as text
            (coded, see `NumericTable`); None: every column is numeric.
        allow_missing: read an empty cell, NA, N/A or NaN as a missing value (NaN) instead of refusing it.
        dtype: np.float32, or np.float64 to keep every digit pyarrow parsed (trainer.precision=64-true).

    Raises:
        DataError: one line naming the file, and the line and column where there is one, for anything unusable.
    """
    shown = os.fspath(path)
    path = Path(path)
    codec = _codec(encoding, shown)
    compression = _compression(path, shown)
    first = _first_row(path, shown, compression, encoding, codec)
    if first is None:
        raise DataError(f"{shown}: the file is empty; expected rows of comma-separated numbers")
    first_line, cells = first
    if header is None:
        header = any(cell.strip(_SPACE) and not _looks_numeric(cell) for cell in cells)
    names = [_name(cell) for cell in cells] if header else [f"x{i}" for i in range(1, len(cells) + 1)]
    data_cells = cells
    if header and text_columns:
        data_cells = _second_row_cells(path, compression, codec) or []
    text = sorted(set(text_columns(names, header, data_cells))) if text_columns else []
    repeated = [names[i] for i in text if header and names.count(names[i]) > 1]
    if repeated:
        raise DataError(f"{shown}: the header names the text column {repeated[0]!r} more than once; rename one")
    levels: dict[int, list[str]] = {}
    values = None
    try:
        values = _parse(path, compression, encoding, names, header, text, allow_missing, levels, dtype)
    except (_Unusable, *_READ_ERRORS) as error:
        failure = error  # diagnosed below, outside this block, so the DataError carries no pyarrow traceback
    else:
        failure = None
    if failure is not None:
        problem = _diagnose(
            path, shown, compression, encoding, codec, first_line, names, header, set(text), allow_missing
        )
        reason = (str(failure).splitlines() or [type(failure).__name__])[0]
        raise DataError(f"{shown}: {problem or f'could not be read as comma-separated numbers ({reason})'}")
    assert values is not None, "read, or the failure raised above"
    if len(values) == 0:
        raise DataError(f"{shown}: no data rows after the header line")
    return NumericTable(values, names, header, path, encoding, levels)


def column_index(table: NumericTable, column: int | str, key: str = "data.label_column") -> int:
    """The 0-based index of `column`: a header name, a number counting from 1, or a negative number from the end.

    Raises:
        DataError: naming the file and `key`, for a column that is not there or not said clearly.
    """
    return index_of(table.names, table.has_header, table.path, column, key)


def index_of(names: list[str], has_header: bool, path: str | os.PathLike, column: int | str, key: str) -> int:
    """`column_index` on a file's column names (and whether they come from a header)."""
    where = f"{path}: {key}={column!r}"
    if isinstance(column, str):
        if not has_header:
            raise DataError(f"{where} names a column, but the file has no header row; give its number (1 = first)")
        found = [i for i, name in enumerate(names) if name == column]
        if not found:
            listed = ", ".join(repr(name) for name in names[:20]) + (", ..." if len(names) > 20 else "")
            raise DataError(f"{where}: the header has no column of that name; its names are {listed}")
        if len(found) > 1:
            times = "twice" if len(found) == 2 else f"{len(found)} times"
            numbers = ", ".join(str(i + 1) for i in found[:-1]) + f" and {found[-1] + 1}"
            raise DataError(f"{where}: the header names {column!r} {times} (columns {numbers}); rename one")
        return found[0]
    if isinstance(column, (bool, np.bool_)) or not isinstance(column, (int, np.integer)):
        raise DataError(f"{where}: expected a column name or a column number (1 = first, -1 = last)")
    count = len(names)
    if column == 0:
        raise DataError(f"{where}: columns count from 1 (or -1 for the last)")
    if not -count <= column <= count:
        raise DataError(f"{where}: the file has {count} column{'s' * (count != 1)}; use 1..{count}, or -1 for the last")
    return int(column) - 1 if column > 0 else count + int(column)


# ------------------------------------------------------------------------------------------------------ the fast path


def category_codes(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, list[str]]:
    """A text column as float64 codes 0, 1, ... (null where a cell is missing), and its categories in the order of
    first appearance (code k is category k)."""
    # call_function: pyarrow.compute's functions are generated when it is imported, unseen by type checkers
    distinct = pc.call_function("unique", [column]).drop_null()
    codes = pc.call_function("index_in", [column], pc.SetLookupOptions(value_set=distinct))
    return pc.cast(codes, pa.float64()), [str(level) for level in distinct.to_pylist()]


def _parse(
    path: Path,
    compression: str | None,
    encoding: str,
    names: list[str],
    header: bool,
    text: Collection[int] = (),
    allow_missing: bool = False,
    levels: dict[int, list[str]] | None = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """All rows after the header as float32 (N, C), parsed by pyarrow on all cores; raises _Unusable on any problem.
    The `text` columns are read as strings and coded (their distinct texts go into `levels`)."""
    read_options = pacsv.ReadOptions(
        use_threads=True,
        column_names=None if header else names,  # with a header, pyarrow reads (and we ignore) its names
        autogenerate_column_names=False,
        encoding=encoding,
    )
    # No invalid_row_handler: a ragged row fails the read (ArrowInvalid), and the slow path names the first one. A
    # handler would add nothing but quirks: InvalidRow.number is None with threads (and counts rows, not lines,
    # without them), and a row that is not UTF-8 makes pyarrow print "Exception ignored" before it fails anyway.
    parse_options = pacsv.ParseOptions()  # ',' and '"', no escapes, empty lines skipped
    convert_options = pacsv.ConvertOptions(
        default_column_type=pa.float64(),  # every column, whatever its name (names may repeat)
        column_types={names[i]: pa.string() for i in text},  # text columns' names are unique (checked)
        # not pyarrow's default list: "nan", "NULL", ... must not become silent nulls
        null_values=list(MISSING_CELLS) if allow_missing else [""],
        strings_can_be_null=True,  # an empty text cell is missing too
        quoted_strings_can_be_null=True,  # "" is empty too, and reported as such
    )
    with _open(path, compression) as stream:
        table = pacsv.read_csv(stream, read_options, parse_options, convert_options)
    if table.num_columns != len(names):
        raise _Unusable(f"pyarrow found {table.num_columns} columns, expected {len(names)}")
    # (N, C), column-major: each column is written in one stretch, and the model reads features column by column
    values = np.empty((table.num_rows, len(names)), dtype=dtype, order="F")
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf, refused just below
        for column, chunked in enumerate(table.columns):
            if chunked.null_count and not allow_missing:
                raise _Unusable("a cell is empty")
            if column in text:
                chunked, column_levels = category_codes(chunked)
                if levels is not None:
                    levels[column] = column_levels
            if chunked.null_count:
                chunked = pc.fill_null(chunked, math.nan)
            start = 0
            for chunk in chunked.chunks:  # numpy rounds each float64 chunk to float32 while copying it in
                values[start : start + len(chunk), column] = _float64_view(chunk)
                start += len(chunk)
    finite = np.isfinite(values).all() if not allow_missing else not np.isinf(values).any()
    if not finite:
        raise _Unusable("a value is not finite")
    return values


def _float64_view(chunk: pa.Array) -> np.ndarray:
    """A float64 array without nulls as a numpy view of its values buffer, no copy. (`Array.to_numpy` gives the same
    view, but its first call imports pandas whenever pandas is installed: 0.2 to 0.3 s of every run.)"""
    if chunk.type != pa.float64() or chunk.null_count:
        raise TypeError(f"expected float64 values without nulls, got {chunk.type} with {chunk.null_count} nulls")
    return np.frombuffer(chunk.buffers()[1], dtype=np.float64, count=len(chunk), offset=chunk.offset * 8)


# ------------------------------------------------------------------------------------------------------ the slow path


def _diagnose(
    path: Path,
    shown: str,
    compression: str | None,
    encoding: str,
    codec: str,
    first_line: int,
    names: list[str],
    header: bool,
    text_columns: Collection[int] = (),
    allow_missing: bool = False,
) -> str | None:
    """The first problem in file order, as 'line L...' (without the path), or None if none is found."""
    text, bad = _decode(_read_all(path, shown, compression), codec)
    lines, partial = _LINE_END.split(text), ""
    if bad is not None:  # the text stops at the bad byte: its line is the last, incomplete one
        lines, partial = lines[:-1], lines[-1]
    plain_row = re.compile(rf"{_PLAIN}(?:,{_PLAIN}){{{len(names) - 1}}}")
    for number, line in enumerate(lines, start=1):
        if not line or number < first_line + int(header) or plain_row.fullmatch(line):
            continue
        problem = _row_problem(line, names, header, first_line, text_columns, allow_missing)
        if problem:
            return f"line {number}{problem}"
    if bad is not None:
        column = len(_split(partial)[0])
        if codec == "utf-8":
            hint = "save the file as UTF-8 or set data.encoding=latin-1"
        else:
            hint = "check data.encoding, the file's text encoding"
        byte = bad.object[bad.start]
        return f"line {len(lines) + 1}, column {column}: byte 0x{byte:02x} is not valid {encoding} text; {hint}"
    return None


def _row_problem(
    line: str, names: list[str], header: bool, first_line: int, text: Collection[int] = (), allow_missing: bool = False
) -> str | None:
    """What is wrong with one non-blank data line, as ' has ...' or ', column C: ...', or None."""
    cells, open_quote = _split(line)
    if open_quote is not None:
        return f", {_column_label(open_quote, names, header)}: a quote opens this cell and is not closed on its line"
    if len(cells) != len(names):
        plural = "s" * (len(cells) != 1)
        return f" has {len(cells)} column{plural}, expected {len(names)} like line {first_line}"
    for column, cell in enumerate(cells):
        if allow_missing and (not cell or cell in _MISSING_TEXT):
            continue
        if column in text:  # any text is a value; only a missing one is not
            problem = None if cell else "the cell is empty; remove such rows or set data.impute"
        else:
            problem = _cell_problem(cell, allow_missing)
        if problem:
            return f", {_column_label(column, names, header)}: {problem}"
    return None


def _cell_problem(cell: str, allow_missing: bool = False) -> str | None:
    """Why a cell (unquoted) is not a finite float32 number, or None if it is one (or NaN, where allowed)."""
    if not cell:
        return "the cell is empty; remove or impute such rows"
    text = cell.strip(_SPACE)
    if _NUMBER.fullmatch(text):
        value = abs(float(text))
        if math.isinf(value):  # "1e999": beyond float64
            return f"{text} is not a finite number; remove or impute such rows"
        if value >= _FLOAT32_OVERFLOW:  # what numpy's cast to float32 would turn into inf
            return f"{text} is beyond float32's range (about ±3.4e38); rescale this column"
        return None
    if _NOT_FINITE.fullmatch(text):
        if allow_missing and text.lstrip("+-").lower() == "nan":
            return None
        return f"{text} is not a finite number; remove or impute such rows"
    if "\x00" in cell:
        return f"{_shown(cell)} holds a NUL byte: binary data, not CSV text"
    if text.startswith('"'):  # `1, "2"`: a quote after a space is plain text, to pyarrow as to the CSV standard
        return f"{_shown(cell)} is not a number (a quote must be the cell's first character, with no space before it)"
    for separator, name in (("\t", "tab"), (";", "semicolon")):  # another program's "CSV"
        parts = text.split(separator)
        if len(parts) > 1 and all(_NUMBER.fullmatch(part.strip(_SPACE)) for part in parts):
            return f"{_shown(cell)} is not a number: the file looks {name}-separated; save it comma-separated"
    return f"{_shown(cell)} is not a number"


def _split(line: str) -> tuple[list[str], int | None]:
    """The cells of one line as pyarrow splits them, unquoted, and the 0-based column of a quote left open, if any.

    pyarrow's rules: a quote opens a quoted cell only as the cell's first character; inside it, "" is one quote and a
    lone quote closes it; text after the closing quote, up to the comma, is kept as plain text.
    """
    if '"' not in line:
        return line.split(","), None  # nearly every line: no quotes at all
    cells: list[str] = []
    start = 0
    while True:
        cell = ""
        if line.startswith('"', start):
            start += 1
            while True:
                close = line.find('"', start)
                if close < 0:
                    return [*cells, cell + line[start:]], len(cells)
                cell += line[start:close]
                if line.startswith('"', close + 1):  # "" inside quotes: one quote
                    cell, start = cell + '"', close + 2
                else:
                    start = close + 1
                    break
        comma = line.find(",", start)
        end = len(line) if comma < 0 else comma
        cells.append(cell + line[start:end])
        if comma < 0:
            return cells, None
        start = comma + 1


# ------------------------------------------------------------------------------------------------ opening the file


def _codec(encoding: str, shown: str = "") -> str:
    """Python's name for `encoding` ('utf-8' for utf8, UTF-8, utf-8-sig: the BOM is stripped by hand, see _decode)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):  # e.g. "base64" is a codec, not a text encoding
        raise DataError(f"{shown}: data.encoding={encoding!r} is not a text encoding Python knows; e.g. utf-8, latin-1")
    return "utf-8" if info.name == "utf-8-sig" else info.name


def _compression(path: Path, shown: str) -> str | None:
    """The file's compression, from its first bytes whatever its name; refuses what is not a readable file."""
    try:
        with path.open("rb") as file:
            magic = file.read(8)
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{shown}: is a folder, not a CSV file") from None
    except OSError as error:
        raise DataError(f"{shown}: cannot be read ({error.strerror or error})") from None
    if path.is_dir():  # Windows opens folders without IsADirectoryError on some Pythons
        raise DataError(f"{shown}: is a folder, not a CSV file")
    if magic.startswith(_ZIP_MAGIC):
        raise DataError(f"{shown}: is a zip archive; unzip it and point at the CSV inside")
    return next((name for prefix, name in _COMPRESSIONS if magic.startswith(prefix)), None)


def _open(path: Path, compression: str | None) -> pa.NativeFile:
    """A pyarrow stream of the file's (decompressed) bytes."""
    if compression == "xz":  # pyarrow's wheels have no lzma codec: Python's module decompresses
        return pa.PythonFile(lzma.open(path, "rb"), mode="r")
    return pa.input_stream(str(path), compression=compression)  # None: plain bytes, whatever the file's name says


def _read_all(path: Path, shown: str, compression: str | None) -> bytes:
    """The file's (decompressed) bytes, for the slow path."""
    try:
        with _open(path, compression) as stream:
            return stream.read()
    except _READ_ERRORS as error:
        raise _unreadable(shown, compression, error) from None


def _unreadable(shown: str, compression: str | None, error: Exception) -> DataError:
    if compression:
        return DataError(f"{shown}: cannot decompress its {compression} data ({error}); it may be truncated or corrupt")
    return DataError(f"{shown}: cannot be read ({error})")


def _decode(data: bytes, codec: str) -> tuple[str, UnicodeDecodeError | None]:
    """The text of `data`, or the text before its first undecodable byte and that error (offsets into `data`)."""
    skipped = len(_UTF8_BOM) if codec == "utf-8" and data.startswith(_UTF8_BOM) else 0  # pyarrow skips it too
    try:
        return data[skipped:].decode(codec), None
    except UnicodeDecodeError as error:
        text = codecs.getincrementaldecoder(codec)().decode(data[skipped : skipped + error.start])
        return text, UnicodeDecodeError(error.encoding, data, skipped + error.start, skipped + error.end, error.reason)


def _first_row(
    path: Path, shown: str, compression: str | None, encoding: str, codec: str
) -> tuple[int, list[str]] | None:
    """The first non-blank row: its 1-based line and its cells; None if the file has no such row.

    Reads only as far as that row's end (and at least the first 64 KiB). Refuses binary data, a byte-order mark that
    disagrees with `encoding`, and a first row that cannot be decoded or leaves a quote open.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig" if codec == "utf-8" else codec)()  # strict; skips a UTF-8 BOM
    raw, text, bad = bytearray(), "", False
    start = end = None  # where the first non-blank line starts; the line end after it
    try:
        with _open(path, compression) as stream:
            while end is None:
                chunk = stream.read(_CHUNK)
                if not raw:
                    _check_first_bytes(chunk, shown, encoding, codec)
                raw += chunk
                scanned = max(len(text) - 1, 0)  # from the old last character: a "\r" there may pair with a "\n"
                try:
                    text += decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError:
                    text, bad, chunk = _decode(bytes(raw), codec)[0], True, b""  # the text before the bad byte
                if start is None and (found := _NOT_BLANK.search(text, scanned)):
                    start = found.start()
                if start is not None:
                    end = _LINE_END.search(text, max(start, scanned))
                if not chunk:
                    break
    except DataError:
        raise
    except _READ_ERRORS as error:
        raise _unreadable(shown, compression, error) from None
    if bad and end is None:  # the bad byte is in the first row, or before it: nothing earlier to report
        raise DataError(f"{shown}: {_diagnose(path, shown, compression, encoding, codec, 1, [''], False)}")
    if start is None:
        return None
    line = text[start : end.start() if end else len(text)]
    number = 1 + len(_LINE_END.findall(text, 0, start))
    cells, open_quote = _split(line)
    if open_quote is not None:
        label = f"line {number}, column {open_quote + 1}"
        raise DataError(f"{shown}: {label}: a quote opens this cell and is not closed on its line")
    return number, cells


def _second_row_cells(path: Path, compression: str | None, codec: str) -> list[str] | None:
    """The cells of the second non-blank row (the first data row under a header), or None; undecodable bytes are
    replaced (the full read names them)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig" if codec == "utf-8" else codec)(errors="replace")
    text = ""
    try:
        with _open(path, compression) as stream:
            while True:
                chunk = stream.read(_CHUNK)
                text += decoder.decode(chunk, final=not chunk)
                lines = [line for line in _LINE_END.split(text, maxsplit=64) if line]  # the rest stays in the last
                if len(lines) > 2 or not chunk:  # the second line is complete once a third begins, or at the end
                    break
    except _READ_ERRORS:
        return None
    return _split(lines[1])[0] if len(lines) > 1 else None


def _check_first_bytes(chunk: bytes, shown: str, encoding: str, codec: str) -> None:
    """Refuse binary data (NUL bytes in the first 64 KiB, as git and grep tell) and a byte-order mark that says the
    file is in another encoding than `encoding`."""
    wide = codec.startswith(("utf-16", "utf-32"))  # their text is full of NUL bytes
    if chunk.startswith(_UTF8_BOM) and codec != "utf-8":
        raise DataError(f"{shown}: starts with a UTF-8 byte-order mark, but data.encoding={encoding}; use utf-8")
    if chunk.startswith(_UTF16_BOMS) and not wide:
        raise DataError(f"{shown}: starts with a UTF-16 byte-order mark: it is UTF-16 text; set data.encoding=utf-16")
    if b"\x00" in chunk and not wide:
        raise DataError(
            f"{shown}: holds NUL bytes, so it is binary data, not CSV text (UTF-16 text would need "
            "data.encoding=utf-16)"
        )


# ----------------------------------------------------------------------------------------------------------- helpers


def _looks_numeric(cell: str) -> bool:
    """Whether pyarrow reads the cell as a float64, finite or not (header detection)."""
    text = cell.strip(_SPACE)
    return bool(_NUMBER.fullmatch(text) or _NOT_FINITE.fullmatch(text))


def _name(cell: str) -> str:
    """A header cell as a column name: without surrounding whitespace, nor the quotes of `a, "b"` (after a space)."""
    name = cell.strip()
    return name[1:-1].strip() if len(name) >= 2 and name[0] == name[-1] == '"' else name


def _column_label(column: int, names: list[str], header: bool) -> str:
    name = names[column] if header and column < len(names) else ""
    if not name:
        return f"column {column + 1}"
    return f"column {column + 1} ({name if name.isprintable() else repr(name)})"  # repr: one line whatever the name


def _shown(cell: str) -> str:
    """A cell as quoted in a message: repr (escapes, so one line), cut short."""
    return repr(cell if len(cell) <= 40 else cell[:37] + "...")
