"""Behaviour the fast paths of CSV reading and result rows must keep exactly.

CSV rows are checked for NUL characters and undecodable bytes a block of text at a time,
and turned into records without a call per row; result rows are written without a call
per cell. These tests pin what those shortcuts must not change.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbay.core.results import RESULT_COLUMNS, escape_cell, header_row, result_rows
from loadbay.domain.records import Action, FieldError, OutcomeStatus, RecordOutcome, StagedRecord
from loadbay.errors import BadEncoding, MalformedFile, MissingColumn
from loadbay.readers import MAX_RECORD_BYTES, Columns, RawRecord, open_reader, read_through

COLUMNS = Columns(names=("name", "email", "age"), required=("name",))
NUL_PROBLEM = ("MALFORMED_ROW", "row holds a NUL character (byte 0x00), which text cannot hold")
FILLER = b"".join(b"user%d,u%d@example.com,%d\n" % (i, i, i % 90) for i in range(400))  # lines 2-401


def read_all(data: bytes, columns: Columns = COLUMNS) -> list[RawRecord]:
    return list(open_reader(io.BytesIO(data), "csv", columns))


# --------------------------------------------------------------------------- CSV


def test_csv_values_keep_the_header_order() -> None:
    records = read_all(b"age,email,name\n3,,Ada\n4,b@example.com,Bob\n5\n")
    assert [list(r.values.items()) for r in records] == [
        [("age", "3"), ("name", "Ada")],
        [("age", "4"), ("email", "b@example.com"), ("name", "Bob")],
        [("age", "5")],
    ]


def test_csv_unknown_columns_between_and_after_known_ones() -> None:
    records = read_all(b"name,foo,age,bar\nAda,x,36,y\nBob,,,\nCy,z\n")
    assert [list(r.values.items()) for r in records] == [
        [("name", "Ada"), ("age", "36")],
        [("name", "Bob")],
        [("name", "Cy")],
    ]
    trailing = read_all(b"name,age,bar\nAda,36,y\nBob,,\n")
    assert [r.values for r in trailing] == [{"name": "Ada", "age": "36"}, {"name": "Bob"}]


def test_csv_nul_deep_in_the_file_is_a_problem_of_that_record_only() -> None:
    data = b"name,email,age\n" + FILLER + b"Ada,a\x00b,1\nBob,b,2\n\x00\nCy,c,3,4\x00\n"
    records = read_all(data)
    assert len(records) == 404
    assert all(r.problem is None for r in records[:400])
    assert records[400] == RawRecord({}, NUL_PROBLEM)
    assert records[401] == RawRecord({"name": "Bob", "email": "b", "age": "2"})
    assert records[402] == RawRecord({}, NUL_PROBLEM)  # a line of a NUL alone is not blank
    assert records[403] == RawRecord({}, ("MALFORMED_ROW", "row has 4 cells; the header has 3"))


def test_csv_bad_byte_in_a_multiline_cell_deep_in_the_file_names_its_line() -> None:
    data = b"name,email,age\n" + FILLER + b'Ada,"one\ntwo\nthr\xffee",1\nBob,b,2\n'
    reader = open_reader(io.BytesIO(data), "csv", COLUMNS)
    assert sum(1 for _ in zip(range(400), reader, strict=False)) == 400  # the rows before it
    with pytest.raises(BadEncoding, match=r"^line 404: the file is not valid UTF-8 \(byte 0xff\)"):
        next(reader)


def test_csv_bad_byte_after_a_clean_record_spanning_many_lines() -> None:
    long_cell = b"\n".join(b"line %d of a long note" % i for i in range(300))  # over a block of text
    data = b'\xef\xbb\xbfname,email\r\nAda,"' + long_cell + b'"\r\nBob,b\r\nC\xe9,c\r\n'
    records: list[RawRecord] = []
    with pytest.raises(BadEncoding, match=r"^line 303: .*byte 0xe9"):
        records.extend(open_reader(io.BytesIO(data), "csv", COLUMNS))
    assert [r.values.get("name") for r in records] == ["Ada", "Bob"]
    assert records[0].values["email"] == long_cell.decode()


def test_csv_embedded_line_breaks_blank_lines_and_bom() -> None:
    data = b'\xef\xbb\xbf\r\nname,email\r\n\r\n"A\rB","x\r\ny"\r\n   \r\nC,"\n"\r\n'
    assert [r.values for r in read_all(data)] == [
        {"name": "A\rB", "email": "x\r\ny"},
        {"name": "C", "email": "\n"},
    ]


def test_csv_syntax_error_after_many_rows_names_the_record_start() -> None:
    data = b"name,email,age\n" + FILLER + b'\n\nAda,"open\nstill open\n'
    records: list[RawRecord] = []
    with pytest.raises(MalformedFile, match="line 404: .*still open at line 405"):
        records.extend(open_reader(io.BytesIO(data), "csv", COLUMNS))
    assert len(records) == 400


# --------------------------------------------------------------------------- result rows


def reference_rows(columns: list[str], records: list[StagedRecord], outcomes: list[RecordOutcome]) -> str:
    """The result rows as first written: a call per cell, then csv.writer."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, dict | list):
            return escape_cell(json.dumps(value, default=str, ensure_ascii=False))
        return escape_cell(value if value.__class__ is str else str(value))

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for record, outcome in zip(records, outcomes, strict=True):
        row = [cell(record.raw.get(name)) for name in columns]
        row += [outcome.status.value, outcome.action.value if outcome.action else "", outcome.entity_id or ""]
        if outcome.errors:
            row.append(";".join(e.code for e in outcome.errors))
            row.append(escape_cell("; ".join(e.message for e in outcome.errors)))
        else:
            row += ["", ""]
        writer.writerow(row)
    return buffer.getvalue()


def test_result_rows_escape_input_cells_and_messages_only() -> None:
    columns = ["phone", "balance", "note", "data", "n", "b"]
    raw = {"phone": "+1-555-0100", "balance": "-12.50", "note": "-x", "data": {"f": "=1"}, "n": -3, "b": True}
    records = [StagedRecord(0, None, raw, None), StagedRecord(1, None, {"note": "a,=b"}, None)]
    outcomes = [
        RecordOutcome(OutcomeStatus.FAILED, errors=(FieldError("=CODE", "=bad, really"),)),
        RecordOutcome(OutcomeStatus.SUCCEEDED, Action.CREATED, "-7"),
    ]
    text = result_rows(columns, records, outcomes)
    assert text == reference_rows(columns, records, outcomes)
    first, second = csv.reader(io.StringIO(text))
    assert first[:6] == ["'+1-555-0100", "-12.50", "'-x", '{"f": "=1"}', "-3", "True"]
    assert first[6:] == ["failed", "", "", "=CODE", "'=bad, really"]  # codes are not escaped
    assert second == ["", "", "a,=b", "", "", "", "succeeded", "created", "-7", "", ""]


def test_result_rows_quote_cells_as_csv_writer_does() -> None:
    columns = ["a", "b"]
    values = ["x,y", 'say "hi"', "l1\nl2", "l1\rl2", "", " ", "'", "\t=1"]
    records = [StagedRecord(i, None, {"a": v, "b": v}, None) for i, v in enumerate(values)]
    outcomes = [RecordOutcome(OutcomeStatus.INVALID, errors=(FieldError("C", v),)) for v in values]
    assert result_rows(columns, records, outcomes) == reference_rows(columns, records, outcomes)
    assert result_rows(["a"], records, outcomes) == reference_rows(["a"], records, outcomes)
    assert result_rows([], records, outcomes) == reference_rows([], records, outcomes)
    assert header_row(["a", "b,c"]) == ",".join(["a", '"b,c"', *RESULT_COLUMNS]) + "\r\n"


formula_text = st.text(alphabet=st.sampled_from(list("=+-@\t\r\n,\"' a1.é")), max_size=6)
any_value = st.one_of(
    formula_text,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(formula_text, max_size=2),
    st.dictionaries(formula_text, formula_text, max_size=2),
)
outcome = st.builds(
    RecordOutcome,
    st.sampled_from(list(OutcomeStatus)),
    st.one_of(st.none(), st.sampled_from(list(Action))),
    st.one_of(st.none(), formula_text),
    st.lists(st.builds(FieldError, formula_text, formula_text), max_size=2).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(min_value=0, max_value=4),
    rows=st.lists(st.tuples(st.dictionaries(st.sampled_from("abcdz"), any_value), outcome), max_size=8),
)
def test_result_rows_match_the_cell_by_cell_reference(
    width: int, rows: list[tuple[dict[str, Any], RecordOutcome]]
) -> None:
    columns = list("abcd"[:width])
    records = [StagedRecord(i, None, raw, None) for i, (raw, _) in enumerate(rows)]
    outcomes = [o for _, o in rows]
    assert result_rows(columns, records, outcomes) == reference_rows(columns, records, outcomes)


# --------------------------------------------------------------------------- reading through


def outcome_of_reading(read: Any) -> tuple[str, Any]:
    """("count", n) or (the error's type, its message)."""
    try:
        return "count", read()
    except (BadEncoding, MalformedFile, MissingColumn) as exc:
        return type(exc).__name__, str(exc)


def assert_read_through_as_reading(data: bytes, fmt: str = "csv", limit: int = MAX_RECORD_BYTES) -> None:
    def reading() -> int:
        return sum(1 for _ in open_reader(io.BytesIO(data), fmt, COLUMNS, max_record_bytes=limit))

    through = outcome_of_reading(lambda: read_through(io.BytesIO(data), fmt, COLUMNS, max_record_bytes=limit))
    assert through == outcome_of_reading(reading)


@pytest.mark.parametrize(
    "data",
    [
        b"name,email,age\n" + FILLER,
        b"\xef\xbb\xbfname,email,age\n" + FILLER + b"\n \n\t\n" + FILLER,
        b"name,email,age\n" + FILLER + b'\n\nAda,"open\nstill open\n',
        b"name,email,age\n" + FILLER + b'Ada,"a"b,3\n' + FILLER,
        b"name,email,age\n" + FILLER + b"Ada,caf\xe9,3\n",
        b"name,email,age\n" + FILLER + b'Ada,"two\nlines \xff",3\n',
        b"name,email,age\n" + FILLER + b"Ada,\x00,3\n",  # a problem of one record, not of the file
        b"name,email,age,extra\nAda,a@example.com,3,x,too many\n",
        b"email,age\nAda,3\n",
        b"name,name\n",
        b"",
        b"\n\n",
    ],
)
def test_reading_a_csv_through_raises_what_reading_it_raises(data: bytes) -> None:
    assert_read_through_as_reading(data)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b'{"name": "Ada"}\n{"name": \n\n[1]\n', "jsonl"),
        (b'[{"name": "Ada"}, {"name": ]', "json"),
        (b'[{"name": "Ada"}, 42]', "json"),
    ],
)
def test_reading_other_formats_through_raises_what_reading_them_raises(data: bytes, fmt: str) -> None:
    assert_read_through_as_reading(data, fmt)


LONG = b"x" * 300


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"name,email,age\n" + FILLER + b"Ada," + LONG + b"\n" + FILLER, "csv"),
        (b"name,email,age\n" + FILLER + b'Ada,"' + LONG + b'\n",1\n' + FILLER, "csv"),
        (b'name,email,age\nAda,"' + b"\n".join([b"y" * 60] * 3) + b'"\n' + FILLER, "csv"),
        (b"name,email,age\n" + b"\t" * 200 + b"\n" + FILLER, "csv"),  # a blank line over the limit
        (b'name,email,age\nAda,"' + LONG, "csv"),
        (b'name,email,age\nAda,"' + LONG + b'"x\n' + FILLER, "csv"),
        (b"name," + LONG + b"\n" + FILLER, "csv"),
        (b'{"name": "Ada"}\n{"name": "' + LONG + b'"}\n[1]\n' + LONG, "jsonl"),
        (b'[{"name": "Ada"}, {"name": "' + LONG + b'"}, 42]', "json"),
        (b'[{"name": "Ada"},' + b" " * 300 + b'"' + LONG + b'", [[' + LONG + b"]]]", "json"),
        (b'[{"name": "Ada"}, {"name": "' + LONG + b'"}, ]', "json"),
        (b'[{"name": "Ada"}, {"name": "' + LONG, "json"),
        (b'[{"name": "Ada"}' + b', {"name": "Bob"}' * 100 + b"]", "json"),
    ],
)
def test_reading_through_with_a_record_limit_counts_what_reading_counts(data: bytes, fmt: str) -> None:
    assert_read_through_as_reading(data, fmt, limit=100)


csv_text = st.lists(
    st.sampled_from(["a", "é", ",", '"', "\n", "\r\n", " ", "\x00", "\udcff", "name", "email"]), max_size=40
).map("".join)


@settings(max_examples=400, deadline=None)
@given(body=csv_text)
def test_reading_any_csv_through_raises_what_reading_it_raises(body: str) -> None:
    assert_read_through_as_reading(("name,email\n" + body).encode("utf-8", "surrogateescape"))
    assert_read_through_as_reading(body.encode("utf-8", "surrogateescape"))


@settings(max_examples=400, deadline=None)
@given(body=csv_text, limit=st.integers(min_value=1, max_value=40))
def test_reading_any_csv_through_with_a_record_limit_counts_what_reading_counts(
    body: str, limit: int
) -> None:
    assert_read_through_as_reading(("name,email\n" + body).encode("utf-8", "surrogateescape"), limit=limit)
