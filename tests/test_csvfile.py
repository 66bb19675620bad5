"""logreg.csvfile: the CSV reader's values, header detection, line numbers, messages, and its agreement with pyarrow."""

from __future__ import annotations

import gzip
import io
import lzma
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from conftest import make_table
from logreg import csvfile
from logreg.csvfile import NumericTable, column_index, read_numbers
from logreg.errors import DataError


def write(tmp_path, data: bytes | str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def error_of(path, **options) -> str:
    """The DataError message of reading `path`; checks it is one line that starts with the path."""
    with pytest.raises(DataError) as caught:
        read_numbers(path, **options)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, message
    return message.removeprefix(f"{path}: ")


# ------------------------------------------------------------------------------------------------------- values


def test_values_are_float64_parses_cast_to_float32(tmp_path):
    rng = np.random.default_rng(0)
    numbers = rng.normal(0, 1, size=(300, 4)) * 10.0 ** rng.integers(-30, 30, size=(300, 4))
    texts = [[f"{x:.{d}g}" for x, d in zip(row, rng.integers(6, 18, size=4))] for row in numbers]
    texts[0][0] = "3.4028235e38"  # rounds to float32's largest value, not to inf
    texts[1][1] = "1.00000005960464477539"  # halfway between two float32s: a direct float32 parse may differ
    path = write(tmp_path, "\n".join(",".join(row) for row in texts) + "\n")

    table = read_numbers(path)

    expected = np.array([[np.float32(float(text)) for text in row] for row in texts], dtype=np.float32)
    np.testing.assert_array_equal(table.values, expected)
    assert table.values.dtype == np.float32 and table.values.shape == (300, 4)
    assert table.values.flags.f_contiguous  # column-major: what the model's matrix-vector products read fastest
    assert table.names == ["x1", "x2", "x3", "x4"] and not table.has_header and table.path == path


def test_values_match_the_projects_savetxt_tables(tmp_path):
    features, labels = make_table()
    path = tmp_path / "tiny.csv"
    np.savetxt(path, np.column_stack([features, labels]), delimiter=",", fmt="%.6g", header="a,b,c,y", comments="")

    table = read_numbers(path)

    expected = np.array([[np.float32(float(f"{x:.6g}")) for x in row] for row in np.column_stack([features, labels])])
    np.testing.assert_array_equal(table.values, expected)
    assert table.names == ["a", "b", "c", "y"] and table.has_header


def test_a_large_file_is_read_in_several_blocks(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.uniform(-1, 1, size=(120_000, 3)).astype(np.float32)  # ~3 MB: several of pyarrow's 1 MiB blocks
    path = tmp_path / "big.csv"
    np.savetxt(path, values, delimiter=",", fmt="%.9g")

    np.testing.assert_array_equal(read_numbers(path).values, values)


def test_a_chunk_is_read_at_its_offset_without_a_copy():
    values = pa.array([0.5, -1.25, 3.0, 1e-7, 2.0])
    chunk = values.slice(1, 3)  # offset 1 into the shared buffer

    view = csvfile._float64_view(chunk)

    np.testing.assert_array_equal(view, chunk.to_numpy())
    assert np.shares_memory(view, values.to_numpy())
    with pytest.raises(TypeError, match="nulls"):
        csvfile._float64_view(pa.array([1.0, None]))


def test_reading_does_not_import_pandas(tmp_path):
    pytest.importorskip("pandas")  # without it, nothing to check: pyarrow's to_numpy imports it whenever installed
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    code = f"import sys, logreg.csvfile as c; c.read_numbers({str(path)!r}); print(sorted(sys.modules))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "'pandas'" not in result.stdout  # 0.2 to 0.3 s of every run's start-up


# ------------------------------------------------------------------------------------------------------- header


@pytest.mark.parametrize(
    "text, header, names",
    [
        ("a,b\n1,2\n", True, ["a", "b"]),
        ("1,2\n3,4\n", False, ["x1", "x2"]),
        ("1,dose\n3,4\n", True, ["1", "dose"]),
        ("\n\n\r\na,b\n1,2\n", True, ["a", "b"]),  # blank lines before the header
        ('"age", " dose "\n1,2\n', True, ["age", "dose"]),  # quoted names; whitespace and the quotes after it go
        ("+1,.5,1.,-0,1e3\n1,2,3,4,5\n", False, ["x1", "x2", "x3", "x4", "x5"]),
    ],
)
def test_header_is_detected(tmp_path, text, header, names):
    table = read_numbers(write(tmp_path, text))

    assert table.has_header is header and table.names == names
    assert len(table.values) == text.strip().count("\n") + 1 - header


def test_header_can_be_forced_either_way(tmp_path):
    numbers = write(tmp_path, "1,2\n3,4\n")
    words = write(tmp_path, "a,b\n3,4\n", "words.csv")

    assert read_numbers(numbers, header=True).names == ["1", "2"]
    assert read_numbers(numbers, header=True).values.tolist() == [[3, 4]]
    assert error_of(words, header=False) == "line 1, column 1: 'a' is not a number"


def test_a_first_row_of_numbers_with_a_gap_is_a_data_row_not_a_header(tmp_path):
    message = error_of(write(tmp_path, "1,,3\n4,5,6\n"))

    assert message == "line 1, column 2: the cell is empty; remove or impute such rows"


def test_a_first_row_with_nan_is_data(tmp_path):
    assert error_of(write(tmp_path, "nan,1\n2,3\n")).startswith("line 1, column 1: nan is not a finite number")


# --------------------------------------------------------------------------------------------- BOM, line ends, ...


def test_a_byte_order_mark_is_skipped(tmp_path):
    with_header = read_numbers(write(tmp_path, b"\xef\xbb\xbfage,dose\n1,2\n"))
    without = read_numbers(write(tmp_path, b"\xef\xbb\xbf1,2\n3,4\n", "n.csv"))
    blank_first = read_numbers(write(tmp_path, b"\xef\xbb\xbf\n1,2\n", "b.csv"))

    assert with_header.names == ["age", "dose"] and with_header.values.tolist() == [[1, 2]]
    assert not without.has_header and without.values.tolist() == [[1, 2], [3, 4]]
    assert blank_first.values.tolist() == [[1, 2]] and blank_first.line_of(0) == 2


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_line_ends(tmp_path, end):
    path = write(tmp_path, end.join(["a,b", "1,2", "", "3,4", "5,x"]) + end)

    assert error_of(path) == "line 5, column 2 (b): 'x' is not a number"
    table = read_numbers(write(tmp_path, end.join(["a,b", "1,2", "", "3,4"]), "ok.csv"))  # no final line end
    assert table.values.tolist() == [[1, 2], [3, 4]] and table.line_of(1) == 4


def test_quoted_numbers_and_whitespace(tmp_path):
    table = read_numbers(write(tmp_path, 'a,b,c\n"1.5", 2 ,\t3\t\n" -4 ",5,"6"\n'))

    assert table.values.tolist() == [[1.5, 2, 3], [-4, 5, 6]]


def test_a_quote_after_a_space_is_text(tmp_path):
    message = error_of(write(tmp_path, 'a,b\n1, "2"\n'))

    assert message.startswith("line 2, column 2 (b): ' \"2\"' is not a number (a quote must be the cell's first")


def test_a_quote_left_open_is_named(tmp_path):
    assert error_of(write(tmp_path, 'a,b\n1,2\n3,"4\n5,6\n')) == (
        "line 3, column 2 (b): a quote opens this cell and is not closed on its line"
    )
    assert error_of(write(tmp_path, 'a,"b\n1,2\n', "h.csv")).startswith("line 1, column 2: a quote opens this cell")


@pytest.mark.parametrize("blank", ["", "\r"])
def test_blank_lines_are_skipped_but_counted(tmp_path, blank):
    lines = ["a,b", blank, "1,2", blank, blank, "3,4", blank, "5,6,7"]
    path = write(tmp_path, "\n".join(lines) + "\n")

    assert error_of(path) == "line 8 has 3 columns, expected 2 like line 1"
    table = read_numbers(write(tmp_path, "\n".join(lines[:-1]) + "\n", "ok.csv"))
    assert len(table.values) == 2 and [table.line_of(0), table.line_of(1)] == [3, 6]


def test_a_line_of_spaces_is_a_row(tmp_path):
    assert error_of(write(tmp_path, "a,b\n1,2\n   \n3,4\n")) == "line 3 has 1 column, expected 2 like line 1"
    assert error_of(write(tmp_path, "a\n1\n  \n3\n", "one.csv")) == "line 3, column 1 (a): '  ' is not a number"


def test_a_hash_is_not_a_comment(tmp_path):
    assert error_of(write(tmp_path, "a,b\n1,2\n#0.5,3\n")) == "line 3, column 1 (a): '#0.5' is not a number"
    assert error_of(write(tmp_path, "a,b\n1,2\n# note\n", "n.csv")) == "line 3 has 1 column, expected 2 like line 1"


# ---------------------------------------------------------------------------------------------- ragged, non-numbers


def test_the_first_ragged_line_in_file_order_is_named(tmp_path):
    rows = ["1,2,3"] * 120_000  # several blocks, parsed on several threads
    rows[90_000], rows[50_000], rows[50_001] = "1,2", "1,2,3,4", "9"
    rows[10:10] = ["", "\r"]  # blank lines shift every later line by 2
    path = write(tmp_path, "x,y,z\n" + "\n".join(rows) + "\n")

    assert error_of(path) == "line 50004 has 4 columns, expected 3 like line 1"


def test_pyarrow_invalid_row_number_quirk():
    """Why line numbers come from our own scan: pyarrow's InvalidRow.number is None with threads, and without them
    it counts rows, not lines: blank lines are left out (here the bad row is on line 5, pyarrow says 3)."""
    data = b"a,b,c\n\n1,2,3\n\n4,5\n"
    for use_threads, expected in ((True, None), (False, 3)):
        seen = []
        options = pacsv.ReadOptions(use_threads=use_threads)
        parse = pacsv.ParseOptions(invalid_row_handler=lambda row: seen.append(row) or "skip")
        pacsv.read_csv(io.BytesIO(data), read_options=options, parse_options=parse)
        assert [(row.number, row.text) for row in seen] == [(expected, "4,5")]


def test_pyarrow_invalid_row_handler_quirk_with_bytes_that_are_not_utf8(monkeypatch):
    """Why the reader sets no invalid_row_handler: pyarrow cannot build the InvalidRow of a row that is not UTF-8; it
    reports that through sys.unraisablehook ("Exception ignored" on stderr), never calls the handler, and fails."""
    unraisable, handled = [], []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    parse = pacsv.ParseOptions(invalid_row_handler=lambda row: handled.append(row) or "skip")

    with pytest.raises(pa.ArrowInvalid, match="Expected 2 columns, got 1"):
        pacsv.read_csv(io.BytesIO(b"a,b\n1,2\n\xe9\n3,4\n"), parse_options=parse)
    assert handled == [] and isinstance(unraisable[0].exc_value, UnicodeDecodeError)


def test_the_first_bad_cell_in_file_order_is_named(tmp_path):
    path = write(tmp_path, "id,dose,age\n1,2,3\n4,5,zz\n6,abc,x\n7,8,9,10\n")

    assert error_of(path) == "line 3, column 3 (age): 'zz' is not a number"
    assert error_of(write(tmp_path, "1,2,3\n4,abc,x\n", "n.csv")) == "line 2, column 2: 'abc' is not a number"


@pytest.mark.parametrize(
    "cell, problem",
    [
        ("nan", "nan is not a finite number; remove or impute such rows"),
        ("NaN", "NaN is not a finite number; remove or impute such rows"),
        ("-inf", "-inf is not a finite number; remove or impute such rows"),
        ("Infinity", "Infinity is not a finite number; remove or impute such rows"),
        ("1e999", "1e999 is not a finite number; remove or impute such rows"),
        ("-1e39", "-1e39 is beyond float32's range (about ±3.4e38); rescale this column"),
        ("", "the cell is empty; remove or impute such rows"),
        ('""', "the cell is empty; remove or impute such rows"),
        ("N/A", "'N/A' is not a number"),
        ("NULL", "'NULL' is not a number"),
        ("NA", "'NA' is not a number"),
        ("#N/A", "'#N/A' is not a number"),
        ("null", "'null' is not a number"),
        ("1_000", "'1_000' is not a number"),
        ("0x1F", "'0x1F' is not a number"),
        ("1.2.3", "'1.2.3' is not a number"),
        ("\x0c1", "'\\x0c1' is not a number"),
        ("a" * 60, f"'{'a' * 37}...' is not a number"),
    ],
)
def test_unusable_cells(tmp_path, cell, problem):
    path = write(tmp_path, f"id,dose\n1,2\n\n3,{cell}\n4,5\n")

    assert error_of(path) == f"line 4, column 2 (dose): {problem}"


@pytest.mark.parametrize("separator, name", [("\t", "tab"), (";", "semicolon")])
def test_a_file_separated_by_another_character_is_named_as_such(tmp_path, separator, name):
    path = write(tmp_path, "".join(f"0.{i}{separator}0.5{separator}{i % 2}\n" for i in range(5)))

    assert error_of(path).endswith(f"is not a number: the file looks {name}-separated; save it comma-separated")


def test_float32_overflow_threshold_is_numpys():
    limit = csvfile._FLOAT32_OVERFLOW
    below = float(np.nextafter(limit, 0))
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(limit)) and np.isfinite(np.float32(below))
    assert csvfile._cell_problem(repr(limit)) is not None and csvfile._cell_problem(repr(below)) is None


# Cells whose fate pyarrow decides; ours must agree (both refuse, or both read the same finite value).
TOKENS = [
    "1",
    " 1 ",
    "\t1\t",
    "+1",
    "-1",
    "1.",
    ".5",
    "+.5",
    "-.5e-3",
    "1e5",
    "1E+05",
    "1.e5",
    "00012",
    "-0",
    "1e-400",
    "3.4028235e38",
    "3.4028236e38",
    "1e38",
    "1e39",
    "9" * 38,
    "9" * 39,
    "0." + "1" * 60,
    "1" * 400,
    ".",
    "-",
    "+",
    "e5",
    "1e",
    "1e+",
    "+-1",
    "1e5.5",
    "1.2.3",
    "0x1F",
    "0b1",
    "1_000",
    "1,5",
    "1 2",
    "1d5",
    "1f",
    "nan",
    "NaN",
    "-nan",
    "+nan",
    "inf",
    "-inf",
    "Infinity",
    "iNfInItY",
    "infin",
    "nana",
    "snan",
    "nan(1)",
    "N/A",
    "NULL",
    "null",
    "NA",
    "#N/A",
    "true",
    "",
    " ",
    "#",
    ";",
    "'1'",
    "\u0661",
    "\xa01",
    "\x0c1",
    "1\x0b",
    "é",
]


@pytest.mark.parametrize("token", TOKENS)
def test_number_syntax_agrees_with_pyarrow(token):
    convert = pacsv.ConvertOptions(default_column_type=pa.float64(), null_values=[""])
    try:
        column = pacsv.read_csv(io.BytesIO(f"a\n{token}\n".encode()), convert_options=convert).column(0)
        value = column[0].as_py() if column.null_count == 0 and len(column) == 1 else None
    except pa.ArrowInvalid:
        value = None
    with np.errstate(over="ignore"):
        arrow_reads_it = value is not None and bool(np.isfinite(np.float32(value)))

    assert (csvfile._cell_problem(token) is None) == arrow_reads_it
    if arrow_reads_it:
        assert np.float32(value) == np.float32(float(token.strip(" \t")))


def test_cell_splitting_agrees_with_pyarrow():
    rng = np.random.default_rng(2)
    pieces = ["1", "x", ",", '"', '""', " ", "2.5", "\t"]
    for _ in range(500):
        line = "".join(rng.choice(pieces, size=rng.integers(1, 9)))
        cells, open_quote = csvfile._split(line)
        if open_quote is not None or not line.strip("\r\n"):
            continue
        options = pacsv.ReadOptions(column_names=[f"c{i}" for i in range(len(cells))])
        convert = pacsv.ConvertOptions(default_column_type=pa.string(), null_values=[])
        table = pacsv.read_csv(io.BytesIO(line.encode() + b"\n"), read_options=options, convert_options=convert)
        assert [table.column(i)[0].as_py() for i in range(len(cells))] == cells, line


def test_rows_the_fast_scan_skips_are_sound():
    rng = np.random.default_rng(3)
    plain = re.compile(rf"{csvfile._PLAIN}(?:,{csvfile._PLAIN}){{2}}")
    for _ in range(2000):
        cells = [
            rng.choice([" ", "", "\t"])
            + rng.choice(["", "+", "-"])
            + str(rng.integers(0, 10 ** rng.integers(1, 19)))
            + rng.choice(["", ".", f".{rng.integers(0, 999)}"])
            + rng.choice(["", " "])
            for _ in range(3)
        ]
        line = ",".join(cells)
        if plain.fullmatch(line):
            assert csvfile._row_problem(line, ["a", "b", "c"], True, 1) is None, line
    assert plain.fullmatch("9" * 38 + ",1,2") and not plain.fullmatch("9" * 39 + ",1,2")


# ------------------------------------------------------------------------------------------------------ encodings


def test_an_invalid_byte_names_its_line_and_column(tmp_path):
    path = write(tmp_path, b"a,b\n1,2\n\n\xe9,5\n")

    assert error_of(path) == (
        "line 4, column 1: byte 0xe9 is not valid utf-8 text; save the file as UTF-8 or set data.encoding=latin-1"
    )
    assert error_of(write(tmp_path, b"a,d\xf6se\n1,2\n", "h.csv")).startswith("line 1, column 2: byte 0xf6 is not")
    assert error_of(write(tmp_path, b"a,b\n1,x\n1,\xe9\n", "o.csv")) == "line 2, column 2 (b): 'x' is not a number"


def test_other_encodings(tmp_path):
    latin = write(tmp_path, "døse,b\n1,2\n".encode("latin-1"))
    utf16 = write(tmp_path, "dose,b\n1,2\n\n3,x\n".encode("utf-16"), "u16.csv")
    ascii_ = write(tmp_path, b"a,b\n1,2\n3,\xe9\n", "a.csv")

    assert read_numbers(latin, encoding="latin-1").names == ["døse", "b"]
    assert error_of(utf16, encoding="utf-16") == "line 4, column 2 (b): 'x' is not a number"
    assert error_of(utf16) == "starts with a UTF-16 byte-order mark: it is UTF-16 text; set data.encoding=utf-16"
    assert error_of(ascii_, encoding="ascii").startswith("line 3, column 2: byte 0xe9 is not valid ascii text; check")
    assert error_of(latin, encoding="no-such-codec").startswith("data.encoding='no-such-codec' is not a text encoding")
    bom = write(tmp_path, b"\xef\xbb\xbfa,b\n1,2\n", "bom.csv")
    assert error_of(bom, encoding="latin-1").startswith("starts with a UTF-8 byte-order mark, but data.encoding=latin")
    assert read_numbers(bom, encoding="utf-8-sig").names == ["a", "b"]


# ------------------------------------------------------------------------------------------- compression, binaries


def compress(data: bytes, codec: str) -> bytes:
    if codec == "xz":
        return lzma.compress(data)
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, codec) as stream:
        stream.write(data)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz", "zstd"])
def test_compressed_files_are_sniffed_whatever_their_name(tmp_path, codec):
    path = write(tmp_path, compress(b"a,b\n1,2\n\n3,4\n", codec), "data.txt")
    bad = write(tmp_path, compress(b"a,b\n1,2\n\n3,x\n", codec), "bad.csv")

    table = read_numbers(path)

    assert table.values.tolist() == [[1, 2], [3, 4]] and table.line_of(1) == 4
    assert error_of(bad) == "line 4, column 2 (b): 'x' is not a number"


def test_a_plain_file_named_gz_is_read_as_plain(tmp_path):
    assert read_numbers(write(tmp_path, "1,2\n", "plain.csv.gz")).values.tolist() == [[1, 2]]


def test_truncated_or_corrupt_compressed_files(tmp_path):
    whole = gzip.compress(b"a,b\n" + b"1,2\n" * 20_000)
    assert "cannot decompress its gzip data" in error_of(write(tmp_path, whole[:-40], "cut.gz"))
    assert "cannot decompress its bz2 data" in error_of(write(tmp_path, b"BZh9garbage", "x.bz2"))
    assert "cannot decompress its xz data" in error_of(write(tmp_path, lzma.compress(b"1,2\n" * 9)[:-9], "x.xz"))


def test_zip_archives_and_binary_files_are_refused(tmp_path):
    assert error_of(write(tmp_path, b"PK\x03\x04\x14\x00rest")) == (
        "is a zip archive; unzip it and point at the CSV inside"
    )
    png = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "p.csv")
    assert error_of(png).startswith("holds NUL bytes, so it is binary data, not CSV text")
    assert error_of(write(tmp_path, b"a,b\n1,2\n3,\x00\n", "n.csv")).startswith("holds NUL bytes")
    late = write(tmp_path, b"a,b\n" + b"1,2\n" * 20_000 + b"3,\x00\n", "late.csv")  # past the first 64 KiB
    assert error_of(late) == "line 20002, column 2 (b): '\\x00' holds a NUL byte: binary data, not CSV text"


# ------------------------------------------------------------------------------------------- no file, empty files


def test_missing_folder_and_empty_files(tmp_path):
    assert error_of(tmp_path / "missing.csv") == "no such file"
    assert error_of(tmp_path) == "is a folder, not a CSV file"
    for name, data in (("empty.csv", b""), ("blank.csv", b"\n\r\n\r\n"), ("bom.csv", b"\xef\xbb\xbf")):
        assert error_of(write(tmp_path, data, name)) == "the file is empty; expected rows of comma-separated numbers"
    assert error_of(write(tmp_path, "a,b\n\n", "h.csv")) == "no data rows after the header line"
    assert error_of(write(tmp_path, "1,2\n", "f.csv"), header=True) == "no data rows after the header line"


def test_the_message_uses_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a,b\n1,x\n")

    with pytest.raises(DataError, match=r"^t\.csv: line 2, column 2 \(b\): 'x' is not a number$"):
        read_numbers("t.csv")


@pytest.mark.parametrize("error", [pa.ArrowInvalid("boom"), pa.ArrowNotImplementedError("boom"), OSError("boom")])
def test_unexpected_pyarrow_errors_become_data_errors(tmp_path, monkeypatch, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(csvfile.pacsv, "read_csv", fail)

    assert error_of(write(tmp_path, "a,b\n1,2\n")) == "could not be read as comma-separated numbers (boom)"


# ----------------------------------------------------------------------------------- line_of, labels, column_index


def test_line_of_and_column_label(tmp_path):
    table = read_numbers(write(tmp_path, "\nid,dose\n\n1,2\n\r\n3,4\n5,6"))
    plain = read_numbers(write(tmp_path, "1,2\n\n3,4\n", "p.csv"))

    assert [table.line_of(row) for row in range(3)] == [4, 6, 7]
    assert [plain.line_of(row) for row in range(2)] == [1, 3]
    assert table.column_label(1) == "column 2 (dose)" and plain.column_label(1) == "column 2"
    with pytest.raises(IndexError):
        table.line_of(3)


@pytest.fixture
def table(tmp_path) -> NumericTable:
    return read_numbers(write(tmp_path, "id,dose,id,age\n1,2,3,4\n"))


def test_column_index_takes_names_numbers_from_1_and_negatives(table):
    assert column_index(table, "dose") == 1 and column_index(table, "age") == 3
    assert [column_index(table, n) for n in (1, 4, -1, -4, np.int64(2))] == [0, 3, 3, 0, 1]


@pytest.mark.parametrize(
    "column, message",
    [
        (0, "data.label_column=0: columns count from 1 (or -1 for the last)"),
        (5, "data.label_column=5: the file has 4 columns; use 1..4, or -1 for the last"),
        (-5, "data.label_column=-5: the file has 4 columns; use 1..4, or -1 for the last"),
        ("id", "data.label_column='id': the header names 'id' twice (columns 1 and 3); rename one"),
        ("weight", "data.label_column='weight': the header has no column of that name; its names are 'id', 'dose',"),
        (True, "data.label_column=True: expected a column name or a column number (1 = first, -1 = last)"),
        (2.0, "data.label_column=2.0: expected a column name or a column number (1 = first, -1 = last)"),
    ],
)
def test_column_index_refusals(table, column, message):
    with pytest.raises(DataError) as caught:
        column_index(table, column)

    assert str(caught.value).startswith(f"{table.path}: {message}")


def test_column_index_by_name_needs_a_header(tmp_path):
    table = read_numbers(write(tmp_path, "1,2\n"))

    with pytest.raises(DataError, match=r"t\.csv: predict.label_column='y' names a column, but the file has no header"):
        column_index(table, "y", key="predict.label_column")


# --------------------------------------------------------------------------------------------------------- fuzz

JUNK = ["", " ", "x", "nan", "-inf", "1e999", '"1"', "0x1F", "1,2", ";", "\t", "é", "\x00", "#", "1.2.3", "1e39"]
FINE = {'"1"': 1.0, " 2 ": 2.0, "+1": 1.0, "1.": 1.0, ".5": 0.5, "-0": 0.0, "1e3": 1000.0}


def mutate(rng: np.random.Generator) -> tuple[bytes, bool, list[str], list[list[float] | None]]:
    """A small valid CSV, mutated: (file bytes, header, each physical line's status, each line's values if known).

    Status: 'header', 'good', 'blank', 'bad' (must be refused) or 'maybe' (truncated: refused or not).
    """
    header = bool(rng.integers(2))
    lines: list[list] = [["a,b,c", "header", None]] if header else []
    for _ in range(rng.integers(1, 7)):
        values = [f"{x:.{rng.integers(6, 10)}g}" for x in rng.uniform(-5, 5, size=3)]
        lines.append([",".join(values), "good", [float(v) for v in values]])
    first_data = int(header)
    end = rng.choice(["\n", "\r\n", "\r"])
    for _ in range(rng.integers(1, 4)):
        kind = rng.integers(7)
        row = int(rng.integers(first_data, len(lines)))
        text, status, values = lines[row]
        if kind <= 1 and status == "good":  # replace a cell
            cells, column = text.split(","), int(rng.integers(3))
            token = str(rng.choice([t for t in JUNK if t != "1,2"] if row == 0 else JUNK + list(FINE)))
            cells[column] = token
            if token in FINE:
                values = list(values)
                values[column] = FINE[token]
                lines[row] = [",".join(cells), "good", values]
            else:
                lines[row] = [",".join(cells), "bad", None]
        elif kind == 2 and status == "good" and row > 0:  # drop or add a cell (the first row sets the width)
            cells = text.split(",")
            cells = cells[:-1] if rng.integers(2) else [*cells, "1"]
            lines[row] = [",".join(cells), "bad", None]
        elif kind == 3:  # a blank line ("\r" alone only where "\r\n" then ends it)
            lines.insert(row + 1, ["\r" if end == "\n" and rng.integers(2) else "", "blank", None])
        elif kind == 4:
            lines.insert(row + 1, list(lines[row]))  # a duplicate row
        elif kind == 5 and status == "good":  # a latin-1 byte in a cell
            lines[row] = [text[:2] + "\udce9" + text[2:], "bad", None]
        elif kind == 6:
            lines.insert(row + 1, ["  ", "bad", None])  # a line of spaces is a row
    truncated = rng.random() < 0.15
    if truncated:
        text = lines[-1][0]
        text = text[: rng.integers(0, len(text) + 1)]
        lines[-1] = [text, "maybe" if text.strip("\r") else "blank", None]
    data = end.join(line[0] for line in lines).encode("utf-8", "surrogateescape") + (b"" if truncated else end.encode())
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data
    if rng.random() < 0.1:
        data = gzip.compress(data)
    return data, header, [line[1] for line in lines], [line[2] for line in lines]


def test_fuzz(tmp_path):
    rng = np.random.default_rng(12345)
    path = tmp_path / "fuzz.csv"
    outcomes = {"read": 0, "refused": 0}
    for case in range(600):
        data, header, statuses, values = mutate(rng)
        path.write_bytes(data)
        refused = [n for n, s in enumerate(statuses, start=1) if s in ("bad", "maybe")]
        try:
            table = read_numbers(path, header=header)
        except DataError as error:
            outcomes["refused"] += 1
            message = str(error)
            assert message.startswith(f"{path}: ") and len(message.splitlines()) == 1, (case, message)
            line = re.match(rf"{re.escape(str(path))}: line (\d+)", message)
            if line:
                number = int(line.group(1))
                assert number in refused and all(n >= number for n in refused if statuses[n - 1] == "bad"), (
                    case,
                    message,
                    statuses,
                )
            else:
                assert re.search("NUL bytes|no data rows|the file is empty", message), (case, message)
            continue
        outcomes["read"] += 1
        assert "bad" not in statuses, (case, statuses)
        rows = [n for n, s in enumerate(statuses) if s in ("good", "maybe")]
        assert len(table.values) == len(rows) and np.isfinite(table.values).all(), case
        assert table.values.shape[1] == 3 or statuses[0] == "maybe", case  # a cut first row sets a narrower width
        for row, n in enumerate(rows):
            if values[n] is not None:
                assert table.values[row].tolist() == [np.float32(v) for v in values[n]], (case, row)
                assert table.line_of(row) == n + 1
    assert min(outcomes.values()) > 100, outcomes  # both outcomes are exercised


def test_fuzz_bytes_never_raise_anything_but_data_error(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "bytes.csv"
    alphabet = np.frombuffer(b'0123456789.,,,\n\n\r"e-+ \txa\xe9\x00#', dtype=np.uint8)
    for _ in range(300):
        data = bytes(rng.choice(alphabet, size=rng.integers(0, 60)))
        path.write_bytes(data)
        try:
            table = read_numbers(path)
        except DataError as error:
            assert str(error).startswith(f"{path}: ") and len(str(error).splitlines()) == 1, (data, error)
            continue
        text = data.decode("utf-8").removeprefix("\ufeff")
        non_blank = [line for line in re.split(r"\r\n|\r|\n", text) if line]
        assert len(table.values) == len(non_blank) - table.has_header and np.isfinite(table.values).all(), data
