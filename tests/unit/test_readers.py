"""Tests for loadbay.readers: streaming CSV, JSON Lines and JSON array readers."""

from __future__ import annotations

import csv
import gc
import io
import json
from collections.abc import Iterator
from contextlib import suppress
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbay import readers
from loadbay.domain.text import byte_size
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
from loadbay.types.billing import CustomerType

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
    """It keeps the cells under the header's columns (its key, what its result row shows)."""
    records = list(read(b"name,email,age\nAda,a,1,2,3\nBob,b,2\n,,,4\n"))
    problem = ("MALFORMED_ROW", "row has 5 cells; the header has 3")
    assert records[0] == RawRecord({"name": "Ada", "email": "a", "age": "1"}, problem)
    assert records[1] == RawRecord({"name": "Bob", "email": "b", "age": "2"}, None)
    assert records[2] == RawRecord({}, ("MALFORMED_ROW", "row has 4 cells; the header has 3"))


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
    # an unreadable line keeps its text, to show in its result row
    assert [r.text for r in records] == [None, '{"name": "Bob" "age": 2}', "[1, 2]", None, "NaN"]


def test_an_unreadable_jsonl_line_keeps_its_text_as_text_can_hold_it() -> None:
    [record] = read(b'  {"name": "A\x00", \r\n', "jsonl")
    assert record.problem is not None and record.problem[0] == "INVALID_JSON"
    assert record.text == '{"name": "A\ufffd",'  # (PostgreSQL's text holds no NUL)


def test_jsonl_trailing_garbage_is_a_record_problem() -> None:
    assert problems(b'{"name": "Ada"} x\n', "jsonl") == [("INVALID_JSON", "line 1: Extra data (column 17)")]


def test_jsonl_keys_map_to_canonical_names_ignoring_case() -> None:
    data = b'{"NAME": "Ada", "Email": "a@example.com", "Other": 1}\r\n'
    reader = read(data, "jsonl")
    assert [r.values for r in reader] == [{"name": "Ada", "email": "a@example.com", "Other": 1}]
    assert reader.warnings == []


def test_json_null_and_empty_string_are_absent_values_as_an_empty_csv_cell_is() -> None:
    lines = b'{"name": "", "email": null, "age": 0}\n{"name": " ", "email": false}\n'
    assert values(lines, "jsonl") == [{"age": 0}, {"name": " ", "email": False}]
    assert values(b'[{"name": null, "Email": ""}]', "json") == [{}]
    assert [r.values for r in iter_json_items([{"NAME": "", "x": None}], COLUMNS)] == [{}]
    assert values(b"name,email,age\n,,0\n", "csv") == [{"age": "0"}]
    kept = Columns(names=COLUMNS.names, required=COLUMNS.required, blank_is_absent=False)
    as_given = [{"name": "", "email": None, "age": 0}, {"name": " ", "email": False}]
    assert values(lines, "jsonl", kept) == as_given


def test_a_blank_required_field_is_refused_alike_from_csv_and_json() -> None:
    customer = CustomerType()
    csv_file = b"customer_number,name,email,currency\nC1,,,\n,Ada,,\nC3,Cy,,EUR\n"
    jsonl_file = (
        b'{"customer_number": "C1", "name": "", "email": null, "currency": ""}\n'
        b'{"customer_number": null, "name": "Ada", "email": ""}\n'
        b'{"customer_number": "C3", "name": "Cy", "email": "", "currency": "EUR"}\n'
    )
    outcomes = [
        customer.validate_many([r.values for r in read(data, fmt, customer.columns())])
        for data, fmt in ((csv_file, "csv"), (jsonl_file, "jsonl"))
    ]
    assert outcomes[0] == outcomes[1]
    assert [[e.code for e in errors] for _, errors in outcomes[1]] == [["REQUIRED"], ["REQUIRED"], []]
    assert outcomes[1][2][0] is not None and outcomes[1][2][0]["currency"] == "EUR"


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


# --------------------------------------------------------------------------- record size


def too_large(where: str, limit: int) -> RawRecord:
    message = f"{where}: the record is over {byte_size(limit)}, the most LOADBAY_MAX_RECORD_BYTES allows"
    return RawRecord({}, ("RECORD_TOO_LARGE", f"{message}; it was not read"))


def read_limited(data: bytes, fmt: str, limit: int) -> list[RawRecord]:
    return list(open_reader(io.BytesIO(data), fmt, COLUMNS, max_record_bytes=limit))


def test_csv_row_over_the_limit_is_its_own_problem_and_reading_goes_on() -> None:
    data = b"name,email\nAda,a\nBob," + b"x" * 300 + b"\nCy,c\n"
    assert read_limited(data, "csv", 100) == [
        RawRecord({"name": "Ada", "email": "a"}),
        too_large("line 3", 100),
        RawRecord({"name": "Cy", "email": "c"}),
    ]


def test_csv_row_of_the_limit_with_its_line_end_is_read() -> None:
    row = b"Ada," + b"x" * 94 + b"\r\n"
    assert len(row) == 100
    data = b"name,email\r\n" + row + b"B" + row
    assert read_limited(data, "csv", 100) == [
        RawRecord({"name": "Ada", "email": "x" * 94}),
        too_large("line 3", 100),
    ]


def test_csv_row_over_several_lines_counts_the_bytes_of_all_of_them() -> None:
    note = "\n".join(["y" * 30] * 4)  # 123 bytes, no line over 100
    short = note[:60]
    data = f'name,email\n"Ada","{note}"\nBob,"{short}"\nCy,"é{short}"\n'.encode()
    assert read_limited(data, "csv", 100) == [
        too_large("line 2", 100),
        RawRecord({"name": "Bob", "email": short}),
        RawRecord({"name": "Cy", "email": "é" + short}),
    ]
    assert read_limited(data, "csv", 67)[2] == too_large("line 8", 67)  # 67 characters, é two bytes


@pytest.mark.parametrize(
    "record",
    [
        b'Ada,"' + b"x" * 300 + b'\nstill the note, ""quoted""\n",extra\n',  # a long line opens a quote
        b'Ada,"a note\n' + b"x" * 300 + b'\nends here"\n',  # a long line inside one
        b'Ada,"' + b"\r\n".join([b"z" * 50] * 5) + b'"\r\n',  # short lines, long in all
        b"  " + b"\t" * 300 + b"\n",  # a blank line over the limit
    ],
)
def test_csv_record_over_the_limit_is_read_past_to_its_end(record: bytes) -> None:
    data = b"name,email\n" + record + b'Bob,b\n"Cy"x,c\n'
    reader = open_reader(io.BytesIO(data), "csv", COLUMNS, max_record_bytes=100)
    assert next(reader) == too_large("line 2", 100)
    assert next(reader) == RawRecord({"name": "Bob", "email": "b"})
    bad_line = 3 + record.count(b"\n")  # the lines are numbered on as if it had been read
    with pytest.raises(MalformedFile, match=f"^line {bad_line}: ',' expected after '\"'$"):
        next(reader)


@pytest.mark.parametrize(
    "tail",
    [
        b'Bob,"' + b"x\n" * 200,  # a quote open to the end of the file
        b'Bob,"' + b"x\r\n" * 100 + b'"x,2\nCy,c\n',  # a quote closed before other text
        b'Bob,"' + b"x\r" * 200,
    ],
)
def test_csv_record_over_the_limit_that_cannot_be_read_past_fails_as_without_a_limit(tail: bytes) -> None:
    data = b"name,email\nAda,a\n" + tail
    failures = []
    for limit in (100, 2**30):
        records: list[RawRecord] = []
        with pytest.raises(MalformedFile) as failure:
            records.extend(open_reader(io.BytesIO(data), "csv", COLUMNS, max_record_bytes=limit))
        assert records == [RawRecord({"name": "Ada", "email": "a"})]
        failures.append(str(failure.value))
    assert failures[0] == failures[1] and failures[0].startswith("line 3: ")


def test_csv_header_over_the_limit_is_malformed() -> None:
    data = b"\r\nname," + b"x" * 200 + b"\r\nAda\r\n"
    message = "^line 2: the header is over 100 bytes, the most LOADBAY_MAX_RECORD_BYTES allows$"
    with pytest.raises(MalformedFile, match=message):
        open_reader(io.BytesIO(data), "csv", COLUMNS, max_record_bytes=100)


def outcomes(data: bytes, limit: int) -> list[Any]:
    """What reading a CSV file gives: each record's values or problem code, then the name of
    the error that ended reading, if any."""
    got: list[Any] = []
    try:
        for record in open_reader(io.BytesIO(data), "csv", COLUMNS, max_record_bytes=limit):
            got.append(record.problem[0] if record.problem else record.values)
    except (BadEncoding, MalformedFile, MissingColumn) as exc:
        got.append(type(exc).__name__)
    return got


def opening_error(data: bytes) -> str | None:
    """The name of the error opening a CSV file raises without a record limit (its header's)."""
    try:
        open_reader(io.BytesIO(data), "csv", COLUMNS, max_record_bytes=2**30)
    except (BadEncoding, MalformedFile, MissingColumn) as exc:
        return type(exc).__name__
    return None


def expected_outcomes(data: bytes, limit: int) -> list[Any]:
    """What reading with `limit` should give, from reading without one: a row over the limit
    (its lines' bytes, blank or not) is RECORD_TOO_LARGE, a header over it MalformedFile."""
    unlimited = iter(outcomes(data, 2**30))
    lines = list(io.StringIO(data.decode("utf-8-sig"), newline=""))  # split as csv.reader is handed them
    rows = csv.reader(lines, strict=True)
    expected: list[Any] = []
    start, header = 1, False
    with suppress(csv.Error):  # reading ends at a syntax error, as without a limit
        for row in rows:
            size = len("".join(lines[start - 1 : rows.line_num]).encode())
            start = rows.line_num + 1
            blank = not row or (len(row) == 1 and row[0].isspace())
            if size > limit and not header:
                return ["MalformedFile"]
            if size > limit:
                expected.append("RECORD_TOO_LARGE")
                next(unlimited) if not blank else None
            elif not (blank or header):
                header = True
                if (error := opening_error(data)) is not None:
                    return [error]
            elif not blank:
                expected.append(next(unlimited))
    return expected + list(unlimited)


csv_pieces = st.lists(
    st.sampled_from(
        ['"', ",", "\n", "\r\n", "\r", " ", "a", "é", "\x00", "\u2028", "\x0b", "name", "x" * 12]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(body=csv_pieces, limit=st.integers(min_value=1, max_value=60), with_header=st.booleans())
def test_a_record_limit_refuses_only_the_records_over_it(body: str, limit: int, with_header: bool) -> None:
    data = (("name,email\n" if with_header else "") + body).encode()
    assert outcomes(data, limit) == expected_outcomes(data, limit)


def test_jsonl_line_over_the_limit_is_its_own_problem_and_reading_goes_on() -> None:
    line = b'{"name": "' + b"x" * 87 + b'"}\n'
    assert len(line) == 100
    data = line + b'{"name": "' + b"x" * 300 + b'"}\n\n{"name": "Bob"\n' + b"y" * 101
    assert read_limited(data, "jsonl", 100) == [
        RawRecord({"name": "x" * 87}),
        too_large("line 2", 100),
        RawRecord({}, ("INVALID_JSON", "line 4: Expecting ',' delimiter (column 15)"), '{"name": "Bob"'),
        too_large("line 5", 100),
    ]


def test_json_array_item_over_the_limit_is_its_own_problem_and_reading_goes_on() -> None:
    long = b"x" * 300
    data = b'[{"name": "Ada"}, {"name": "' + long + b'"}, {"name": "Bob"}, "' + long + b'", 1' + b"2" * 300
    data += b', {"name": "Cy", "tags": [' + b'"]\\"{", ' * 40 + b'0]}, {"name": "Di"}]'
    assert read_limited(data, "json", 100) == [
        RawRecord({"name": "Ada"}),
        too_large("item 2", 100),
        RawRecord({"name": "Bob"}),
        too_large("item 4", 100),
        too_large("item 5", 100),
        too_large("item 6", 100),
        RawRecord({"name": "Di"}),
    ]


def test_json_array_spaces_between_items_are_no_items_bytes() -> None:
    data = b'[ \n{"name": "Ada"},' + b" " * 300 + b'{"name": "Bob"}' + b"\r\n" * 300 + b"]" + b" " * 300
    assert read_limited(data, "json", 5) == [too_large("item 1", 5), too_large("item 2", 5)]  # 15 bytes each
    assert read_limited(data, "json", 15) == [RawRecord({"name": "Ada"}), RawRecord({"name": "Bob"})]


@pytest.mark.parametrize(
    ("tail", "message", "read_past"),
    [
        (b'"}, ]', "^invalid JSON: parse error: ", True),  # the text after an item read past is read as ever
        (b'"}] x', "^invalid JSON: parse error: ", True),
        (
            b'", "a": ' + b"[" * 600 + b"]" * 600 + b"}]",
            "^invalid JSON: nested more than 512 levels deep$",
            False,
        ),
        (b"\\", "^invalid JSON: the file ends inside item 2, which is over 100 bytes, the most ", False),
    ],
)
def test_json_array_item_over_the_limit_in_a_broken_file(tail: bytes, message: str, read_past: bool) -> None:
    data = b'[{"name": "Ada"}, {"name": "' + b"x" * 300 + tail
    records: list[RawRecord] = []
    with pytest.raises(MalformedFile, match=message):
        records.extend(open_reader(io.BytesIO(data), "json", COLUMNS, max_record_bytes=100))
    assert records == [RawRecord({"name": "Ada"})] + ([too_large("item 2", 100)] if read_past else [])


json_text = st.text(st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", " ", "a", "é"]), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=12,
)
json_records = json_values | st.fixed_dictionaries({"name": json_values})
json_items = st.lists(st.tuples(json_records, st.sampled_from(["", " ", "\n" * 40])), max_size=8)


@settings(max_examples=500, deadline=None)
@given(items=json_items, limit=st.integers(1, 80), block=st.integers(1, 9))
def test_a_record_limit_refuses_only_the_json_items_over_it(
    items: list[tuple[Any, str]], limit: int, block: int
) -> None:
    """Items are read as without a limit, but some over it: each of more than `limit` bytes may be
    refused (the reader counts an item's bytes a read at a time, reads of at most `limit`), and
    each of `3 * limit` bytes or more is. Items are read past in blocks of `block` bytes here."""
    texts = [json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() for value, _ in items]
    spaced = [spaces.encode() + text for text, (_, spaces) in zip(texts, items, strict=True)]
    data = b"[" + b",".join(spaced) + b"]"
    unlimited = read_limited(data, "json", 2**30)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(readers, "_READ_PAST_BYTES", block)
        limited = read_limited(data, "json", limit)
    assert len(limited) == len(unlimited) == len(texts)
    for number, (got, whole, text) in enumerate(zip(limited, unlimited, texts, strict=True), start=1):
        if got != whole:
            assert got == too_large(f"item {number}", limit) and len(text) > limit
        assert got != whole or len(text) < 3 * limit


def test_json_array_of_items_within_the_limit_is_read_whatever_its_size() -> None:
    item = b'{"name": "' + b"x" * 75 + b'"}'
    data = b"[" + b", ".join([item] * 500) + b", 12345]"
    records = read_limited(data, "json", 100)
    assert len(records) == 501 and all(r.values == {"name": "x" * 75} for r in records[:-1])


# --------------------------------------------------------------------------- warnings


def ignored(count: int, named: list[str]) -> str:
    return (
        f"{count} columns are not fields of this type and were ignored: {', '.join(named)}, … (the first 20)"
    )


def test_csv_many_ignored_columns_make_one_warning() -> None:
    header = "name," + ",".join(f"c{i}" for i in range(100_000)) + ",,"
    reader = read(f"{header}\nAda\n".encode())
    assert reader.warnings == [ignored(100_002, [f"'c{i}'" for i in range(20)])]
    assert [r.values for r in reader] == [{"name": "Ada"}]
    unnamed = read(b"name" + b"," * 30 + b"\nAda\n").warnings
    assert unnamed == [ignored(30, [f"column {i} (no name)" for i in range(2, 22)])]


def test_csv_up_to_twenty_ignored_columns_get_a_warning_each() -> None:
    warnings = read(("name," + ",".join(f"c{i}" for i in range(19)) + ",\nAda\n").encode()).warnings
    assert warnings == [f"unknown column 'c{i}' ignored" for i in range(19)] + [
        "column 21 has no name; ignored"
    ]


def test_csv_long_column_names_are_cut_short_in_messages() -> None:
    assert read(b"name," + b"x" * 1000 + b"\n").warnings == [f"unknown column '{'x' * 40}…' ignored"]
    with pytest.raises(MalformedFile, match=f"^duplicate column '{'Y' * 40}…' in the header"):
        read(b"name," + b"y" * 50 + b"," + b"Y" * 50 + b"\n")


# --------------------------------------------------------------------------- misc


def test_open_reader_rejects_unknown_format() -> None:
    assert FORMATS == ("csv", "tsv", "jsonl", "json")
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
    accepted = "text/csv, text/tab-separated-values, application/x-ndjson"
    with pytest.raises(UnsupportedMediaType, match=accepted):
        format_for_content_type(content_type, filename)


def test_format_for_content_type_rejects_other_charsets() -> None:
    with pytest.raises(UnsupportedMediaType, match="charset 'iso-8859-1' is not supported"):
        format_for_content_type("text/csv; charset=ISO-8859-1")
