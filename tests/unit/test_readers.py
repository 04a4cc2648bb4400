"""Tests for loadbay.readers: streaming CSV, JSON Lines and JSON array readers."""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbay.errors import BadEncoding, MalformedFile, MissingColumn, UnsupportedMediaType
from loadbay.readers import (
    FORMATS,
    Columns,
    RawRecord,
    RecordReader,
    format_for_content_type,
    iter_json_items,
    open_reader,
)

COLUMNS = Columns(names=("name", "email", "age"), required=("name",))


def read(data: bytes, fmt: str = "csv", columns: Columns = COLUMNS) -> RecordReader:
    return open_reader(io.BytesIO(data), fmt, columns)


def values(data: bytes, fmt: str = "csv", columns: Columns = COLUMNS) -> list[dict[str, Any]]:
    records = list(read(data, fmt, columns))
    assert all(r.problem is None for r in records), records
    return [r.values for r in records]


def problems(data: bytes, fmt: str) -> list[tuple[str, str] | None]:
    return [r.problem for r in read(data, fmt)]


# --------------------------------------------------------------------------- CSV


def test_csv_basic_rows_keep_values_as_text() -> None:
    data = b"name,email,age\nAda,ada@example.com,36\nBob,bob@example.com,007\n"
    assert values(data) == [
        {"name": "Ada", "email": "ada@example.com", "age": "36"},
        {"name": "Bob", "email": "bob@example.com", "age": "007"},
    ]


def test_csv_utf8_bom_is_dropped() -> None:
    data = "\ufeffname,email\nJosé,j@example.com\n".encode()
    reader = read(data)
    assert reader.warnings == []
    assert [r.values for r in reader] == [{"name": "José", "email": "j@example.com"}]


def test_csv_crlf_line_endings() -> None:
    data = b"name,age\r\nAda,36\r\nBob,40\r\n"
    assert values(data) == [{"name": "Ada", "age": "36"}, {"name": "Bob", "age": "40"}]


def test_csv_quoted_newlines_commas_and_quotes() -> None:
    data = b'name,email\r\n"Ada\r\nLovelace","say ""hi"", bye"\r\nBob,"a\nb"\r\n'
    assert values(data) == [
        {"name": "Ada\r\nLovelace", "email": 'say "hi", bye'},
        {"name": "Bob", "email": "a\nb"},
    ]


def test_csv_headers_match_case_insensitively_and_ignore_spaces() -> None:
    data = b" NAME , Email\t,AGE\nAda,a@example.com,36\n"
    reader = read(data)
    assert reader.warnings == []
    assert [r.values for r in reader] == [{"name": "Ada", "email": "a@example.com", "age": "36"}]


def test_csv_unknown_column_is_ignored_with_a_warning() -> None:
    reader = read(b"name,foo,age\nAda,x,36\n")
    assert reader.warnings == ["unknown column 'foo' ignored"]
    assert [r.values for r in reader] == [{"name": "Ada", "age": "36"}]


def test_csv_unnamed_column_is_ignored_with_a_warning() -> None:
    reader = read(b"name,,age\nAda,x,36\n")
    assert reader.warnings == ["column 2 has no name; ignored"]
    assert [r.values for r in reader] == [{"name": "Ada", "age": "36"}]


def test_csv_missing_required_column_raises_when_opened() -> None:
    with pytest.raises(MissingColumn, match="missing required column: name"):
        read(b"email,age\nx@example.com,3\n")


def test_csv_missing_several_required_columns_names_them_all() -> None:
    columns = Columns(names=("name", "email", "age"), required=("name", "email"))
    with pytest.raises(MissingColumn, match="missing required columns: name, email"):
        read(b"age\n3\n", columns=columns)


def test_csv_duplicate_header_is_malformed() -> None:
    with pytest.raises(MalformedFile, match=r"duplicate column 'Name'.*columns 1 and 3"):
        read(b"name,age,Name\nA,1,B\n")


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b"\r\n"])
def test_csv_empty_file_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFile, match="the file is empty; a CSV needs a header row"):
        read(data)


def test_csv_header_only_has_no_records() -> None:
    assert values(b"name,age\n") == []


def test_csv_row_with_extra_cells_is_a_record_problem() -> None:
    records = list(read(b"name,email,age\nAda,a,1,2,3\nBob,b,2\n"))
    assert records[0] == RawRecord({}, ("MALFORMED_ROW", "row has 5 cells; the header has 3"))
    assert records[1] == RawRecord({"name": "Bob", "email": "b", "age": "2"}, None)


def test_csv_short_row_leaves_trailing_cells_absent() -> None:
    assert values(b"name,email,age\nAda\nBob,b\n") == [
        {"name": "Ada"},
        {"name": "Bob", "email": "b"},
    ]


def test_csv_empty_cells_are_absent_keys() -> None:
    assert values(b"name,email,age\n,,\nAda,,3\n") == [{}, {"name": "Ada", "age": "3"}]


def test_csv_blank_lines_are_skipped() -> None:
    data = b"\nname,age\n\nAda,1\n\r\n   \nBob,2\n\n"
    assert values(data) == [{"name": "Ada", "age": "1"}, {"name": "Bob", "age": "2"}]


def test_csv_values_are_not_stripped() -> None:
    assert values(b"name,age\n  Ada , 1\n") == [{"name": "  Ada ", "age": " 1"}]


def test_csv_unclosed_quote_at_end_of_file_names_the_line() -> None:
    reader = read(b'name,age\nAda,1\nBob,"2\nCy,3\n')
    with pytest.raises(MalformedFile, match="line 3") as info:
        list(reader)
    assert "still open at line 4" in str(info.value)


def test_csv_text_after_closing_quote_is_malformed() -> None:
    reader = read(b'name,age\nAda,1\n"Bob"x,2\n')
    with pytest.raises(MalformedFile, match="line 3"):
        list(reader)


def test_csv_records_before_a_syntax_error_are_yielded() -> None:
    reader = read(b'name\nAda\n"Bob\n')
    assert next(reader).values == {"name": "Ada"}
    with pytest.raises(MalformedFile):
        next(reader)


def test_csv_latin1_bytes_are_bad_encoding_with_the_line_number() -> None:
    data = b"name,age\n" + b"Ada,1\n" * 3000 + "Jos\xe9,2\n".encode("latin-1")
    reader = read(data)
    with pytest.raises(BadEncoding, match=r"line 3002: .*byte 0xe9"):
        list(reader)


def test_csv_bad_encoding_in_a_multiline_record_names_its_line() -> None:
    reader = read(b'name,email\nAda,"a\nb\n\xff"\n')
    with pytest.raises(BadEncoding, match="line 4"):
        list(reader)


def test_csv_bad_encoding_in_the_header_raises_when_opened() -> None:
    with pytest.raises(BadEncoding, match="line 1"):
        read(b"n\xe4me,age\nAda,1\n")


def test_csv_reader_never_closes_the_stream() -> None:
    stream = io.BytesIO(b"name\nAda\n")
    assert [r.values for r in open_reader(stream, "csv", COLUMNS)] == [{"name": "Ada"}]
    assert not stream.closed
    stream.seek(0)
    with open_reader(stream, "csv", COLUMNS):  # closed early, before reading
        pass
    assert not stream.closed
    stream.seek(0)
    abandoned = open_reader(stream, "csv", COLUMNS)
    del abandoned
    gc.collect()
    assert not stream.closed
    with pytest.raises(MissingColumn):
        open_reader(stream := io.BytesIO(b"age\n1\n"), "csv", COLUMNS)
    gc.collect()
    assert not stream.closed


csv_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc")),
        st.sampled_from([",", '"', "\n", "\r", " ", "\t"]),
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(csv_text, csv_text, csv_text), max_size=20))
def test_csv_round_trips_anything_csv_writer_writes(rows: list[tuple[str, str, str]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS.names)
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    expected = [{k: v for k, v in zip(COLUMNS.names, row, strict=True) if v} for row in rows]
    assert values(data) == expected


class GeneratedStream(io.RawIOBase):
    """A raw binary stream whose bytes are produced on demand, one chunk at a time."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""
        self.exhausted = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.pending:
            self.pending = next(self.chunks, b"")
            self.exhausted = not self.pending
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def test_csv_streams_from_a_generator_backed_stream() -> None:
    produced = 0

    def rows() -> Iterator[bytes]:
        nonlocal produced
        yield b"name,age\r\n"
        for produced in range(1, 200_001):
            yield b'"user %d",%d\r\n' % (produced, produced % 90)

    source = GeneratedStream(rows())
    reader = open_reader(io.BufferedReader(source), "csv", COLUMNS)
    assert next(reader).values == {"name": "user 1", "age": "1"}
    assert not source.exhausted
    assert produced < 1_000  # no more than one read-ahead buffer
    assert sum(1 for _ in reader) == 199_999
    assert source.exhausted and produced == 200_000


# --------------------------------------------------------------------------- JSON Lines


def test_jsonl_records_and_bad_lines_with_line_numbers() -> None:
    data = (
        b'{"name": "Ada", "age": 36}\n'
        b"\n"
        b'{"name": "Bob" "age": 2}\n'
        b"[1, 2]\n"
        b'{"name": "Cy", "score": 1.5, "tags": {"a": [1]}}\n'
        b"NaN\n"
    )
    records = list(read(data, "jsonl"))
    assert [r.values for r in records] == [
        {"name": "Ada", "age": 36},
        {},
        {},
        {"name": "Cy", "score": Decimal("1.5"), "tags": {"a": [1]}},
        {},
    ]
    assert records[0].problem is None and records[3].problem is None
    assert records[1].problem == (
        "INVALID_JSON",
        "line 3: Expecting ',' delimiter (column 16)",
    )
    assert records[2].problem == ("INVALID_JSON", "line 4: expected an object, got an array")
    assert records[4].problem == ("INVALID_JSON", "line 6: NaN is not valid JSON")


def test_jsonl_trailing_garbage_is_a_record_problem() -> None:
    assert problems(b'{"name": "Ada"} x\n', "jsonl") == [("INVALID_JSON", "line 1: Extra data (column 17)")]


def test_jsonl_keys_map_to_canonical_names_ignoring_case() -> None:
    data = b'{"NAME": "Ada", "Email": "a@example.com", "Other": 1}\r\n'
    reader = read(data, "jsonl")
    assert [r.values for r in reader] == [{"name": "Ada", "email": "a@example.com", "Other": 1}]
    assert reader.warnings == []


def test_jsonl_keys_naming_the_same_column_are_a_record_problem() -> None:
    assert problems(b'{"name": "a", "Name": "b"}\n', "jsonl") == [
        ("INVALID_RECORD", "line 1: keys 'name' and 'Name' both name the column 'name'")
    ]


def test_jsonl_bom_and_missing_final_newline() -> None:
    data = '\ufeff{"name": "Ada"}\n{"name": "Bob"}'.encode()
    assert values(data, "jsonl") == [{"name": "Ada"}, {"name": "Bob"}]


def test_jsonl_non_utf8_is_bad_encoding() -> None:
    reader = read(b'{"name": "Ada"}\n{"name": "Jos\xe9"}\n', "jsonl")
    with pytest.raises(BadEncoding, match="line 2"):
        list(reader)


def test_jsonl_empty_file_has_no_records() -> None:
    assert values(b"", "jsonl") == []


# --------------------------------------------------------------------------- JSON array


def test_json_array_keeps_decimals_and_flags_non_objects() -> None:
    data = b'\xef\xbb\xbf [{"Name": "Ada", "age": 36, "score": 0.1}, 3, {"name": "Bob"}, null]'
    records = list(read(data, "json"))
    assert records == [
        RawRecord({"name": "Ada", "age": 36, "score": Decimal("0.1")}, None),
        RawRecord({}, ("INVALID_RECORD", "item 2 is not an object")),
        RawRecord({"name": "Bob"}, None),
        RawRecord({}, ("INVALID_RECORD", "item 4 is not an object")),
    ]
    assert isinstance(records[0].values["score"], Decimal)


def test_json_empty_array_has_no_records() -> None:
    assert values(b" [ ] ", "json") == []


def test_json_syntax_error_is_malformed_after_the_good_items() -> None:
    reader = read(b'[{"name": "Ada"} {"name": "Bob"}]', "json")
    with pytest.raises(MalformedFile, match="invalid JSON"):
        list(reader)


@pytest.mark.parametrize("data", [b'[{"name": "Ada"},', b"[1] x", b"[NaN]"])
def test_json_broken_files_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFile, match="invalid JSON"):
        list(read(data, "json"))


@pytest.mark.parametrize(
    ("data", "found"),
    [(b'{"items": []}', "an object"), (b'"x"', "a string"), (b"12", "a number")],
)
def test_json_top_level_must_be_an_array(data: bytes, found: str) -> None:
    with pytest.raises(MalformedFile, match=f"must be an array of objects, not {found}"):
        read(data, "json")


@pytest.mark.parametrize("data", [b"", b"  \n "])
def test_json_empty_file_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedFile, match="the file is empty"):
        read(data, "json")


def test_json_non_utf8_is_bad_encoding() -> None:
    with pytest.raises(BadEncoding):
        list(read(b'[{"name": "Jos\xe9"}]', "json"))


def test_json_array_streams_items() -> None:
    produced = 0

    def items() -> Iterator[bytes]:
        nonlocal produced
        yield b"["
        for produced in range(1, 200_000):
            yield b'{"name": "u%d", "score": %d.5},' % (produced, produced)
        yield b'{"name": "last"}]'

    source = GeneratedStream(items())
    reader = open_reader(io.BufferedReader(source), "json", COLUMNS)
    assert next(reader).values == {"name": "u1", "score": Decimal("1.5")}
    assert not source.exhausted
    assert produced < 10_000  # ijson reads 64 KiB at a time
    assert sum(1 for _ in reader) == 199_999
    assert source.exhausted


def test_iter_json_items_maps_keys_and_copies() -> None:
    item = {"NAME": "Ada", "x": 1}
    records = list(iter_json_items([item, "nope", {"name": "Bob"}], COLUMNS))
    assert records == [
        RawRecord({"name": "Ada", "x": 1}, None),
        RawRecord({}, ("INVALID_RECORD", "item 2 is not an object")),
        RawRecord({"name": "Bob"}, None),
    ]
    plain = {"name": "Cy"}
    (record,) = iter_json_items([plain], COLUMNS)
    assert record.values == plain and record.values is not plain


# --------------------------------------------------------------------------- misc


def test_open_reader_rejects_unknown_format() -> None:
    assert FORMATS == ("csv", "jsonl", "json")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        read(b"", "xml")


def test_columns_required_must_be_names() -> None:
    with pytest.raises(ValueError, match="required columns not in names: id"):
        Columns(names=("name",), required=("id",))


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("text/csv", None, "csv"),
        ("text/csv; charset=utf-8", None, "csv"),
        ('TEXT/CSV; Charset="UTF-8"', "x.json", "csv"),
        ("application/csv", None, "csv"),
        ("text/plain", "upload.CSV", "csv"),
        ("text/plain; charset=utf-8", "data.jsonl", "jsonl"),
        ("application/x-ndjson", None, "jsonl"),
        ("application/jsonl", None, "jsonl"),
        ("application/jsonlines", None, "jsonl"),
        ("application/x-jsonlines", None, "jsonl"),
        ("application/json", None, "json"),
        ("application/json; charset=us-ascii", None, "json"),
        (None, "rows.csv", "csv"),
        (None, "rows.ndjson", "jsonl"),
        ("", "rows.jsonl", "jsonl"),
        ("application/octet-stream", "dir/rows.json", "json"),
        ("application/vnd.ms-excel", "customers.csv", "csv"),  # a .csv file sent from Windows
    ],
)
def test_format_for_content_type(content_type: str | None, filename: str | None, expected: str) -> None:
    assert format_for_content_type(content_type, filename) == expected


@pytest.mark.parametrize(
    ("content_type", "filename"),
    [
        ("application/xml", "rows.csv"),
        ("text/plain", None),
        ("text/plain", "notes.txt"),
        (None, None),
        (None, "rows"),
        ("application/octet-stream", "rows.xlsx"),
        ("application/vnd.ms-excel", "book.xls"),  # a real workbook
        ("application/vnd.ms-excel", None),
    ],
)
def test_format_for_content_type_rejects(content_type: str | None, filename: str | None) -> None:
    with pytest.raises(UnsupportedMediaType, match="text/csv, application/x-ndjson"):
        format_for_content_type(content_type, filename)


def test_format_for_content_type_rejects_other_charsets() -> None:
    with pytest.raises(UnsupportedMediaType, match="charset 'iso-8859-1' is not supported"):
        format_for_content_type("text/csv; charset=ISO-8859-1")
