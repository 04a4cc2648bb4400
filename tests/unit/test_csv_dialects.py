"""CSV files as spreadsheets write them: the delimiter told from the header (comma,
semicolon, tab, pipe) or named by the batch, TSV files, and headers that miss or misspell
a column said plainly (what was read, and the column meant)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from loadbay.errors import InvalidInput, MalformedFile, MissingColumn, UnknownColumn
from loadbay.readers import Columns, ReadOptions, format_for_content_type, open_reader, read_through

COLUMNS = Columns(names=("name", "email", "amount"), required=("name", "email"))
DEFAULT = ReadOptions()
ANN = {"name": "Ann", "email": "a@x.io"}


def values(data: bytes, fmt: str = "csv", options: ReadOptions = DEFAULT) -> list[dict[str, Any]]:
    with open_reader(io.BytesIO(data), fmt, COLUMNS, options=options) as reader:
        records = list(reader)
    assert all(r.problem is None for r in records), records
    return [r.values for r in records]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_told_from_the_header(delimiter: str) -> None:
    rows = [["name", "email", "amount"], ["Ann", "ann@example.com", "1,50"], ["Bob", "bob@example.com", ""]]
    text = "".join(delimiter.join(f'"{c}"' if "," in c else c for c in row) + "\r\n" for row in rows)
    expected = [
        {"name": "Ann", "email": "ann@example.com", "amount": "1,50"},
        {"name": "Bob", "email": "bob@example.com"},
    ]
    assert values(text.encode()) == expected
    assert read_through(io.BytesIO(text.encode()), "csv", COLUMNS) == 2


def test_a_header_found_after_blank_lines_and_a_bom_tells_it_too() -> None:
    assert values("\ufeff\n\nname;email\nAnn;a@x.io\n".encode()) == [{"name": "Ann", "email": "a@x.io"}]


def test_a_tie_or_a_single_column_is_read_as_comma_separated() -> None:
    one = Columns(names=("name",), required=("name",))
    with open_reader(io.BytesIO(b"name\nAnn;Lee\n"), "csv", one) as reader:
        assert [r.values for r in reader] == [{"name": "Ann;Lee"}]


def test_the_batch_can_name_the_delimiter() -> None:
    data = b"name,email;amount\nAnn,a@x.io;3\n"  # told from the header: comma (3 cells v 2)
    with pytest.raises(MissingColumn, match="semicolon-separated"):
        values(data, options=ReadOptions.of({"csv_delimiter": ";"}))
    assert values(b"name|email\nAnn|a@x.io\n", options=ReadOptions.of({"csv_delimiter": "|"})) == [
        {"name": "Ann", "email": "a@x.io"}
    ]


@pytest.mark.parametrize("options", [{"csv_delimiter": "x"}, {"csv_delimiter": 4}, {"unknown_columns": "no"}])
def test_read_options_not_understood_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        ReadOptions.of(options)


def test_tsv_files_are_tab_separated_whatever_the_header() -> None:
    assert format_for_content_type("text/tab-separated-values") == "tsv"
    assert format_for_content_type("application/octet-stream", "export.tsv") == "tsv"
    data = b"name\temail\tamount\nAnn, Lee\tann@example.com\t1;5\n"
    assert values(data, "tsv") == [{"name": "Ann, Lee", "email": "ann@example.com", "amount": "1;5"}]


def test_a_missing_column_shows_the_header_read_and_the_column_meant() -> None:
    with pytest.raises(MissingColumn) as caught:
        values(b"name;e-mail;amount\nAnn;a@x.io;3\n")
    assert caught.value.message == (
        "missing required column: email (did you mean 'e-mail'?); "
        "the header, read as semicolon-separated, has: 'name', 'e-mail', 'amount'"
    )


def test_an_unknown_column_is_ignored_with_the_column_meant() -> None:
    with open_reader(io.BytesIO(b"name,email,amuont\nAnn,a@x.io,3\n"), "csv", COLUMNS) as reader:
        assert reader.warnings == ["unknown column 'amuont' ignored (did you mean 'amount'?)"]
        assert [r.values for r in reader] == [{"name": "Ann", "email": "a@x.io"}]


def test_a_batch_that_refuses_unknown_columns_fails_the_file() -> None:
    refuse = ReadOptions.of({"unknown_columns": "refuse"})
    with pytest.raises(UnknownColumn, match=r"'amuont' \(did you mean 'amount'\?\), 'notes'"):
        values(b"name,email,amuont,notes\nAnn,a@x.io,3,x\n", options=refuse)
    assert values(b"name,email\nAnn,a@x.io\n", options=refuse) == [{"name": "Ann", "email": "a@x.io"}]


def test_a_record_over_the_limit_is_read_past_with_the_files_delimiter() -> None:
    big = "x" * 3000
    data = f'name;email\nAnn;a@x.io\n"{big}\n{big}";b@x.io\nCy;c@x.io\n'.encode()
    with open_reader(io.BytesIO(data), "csv", COLUMNS, max_record_bytes=4096) as reader:
        records = list(reader)
    assert [r.values for r in records] == [
        {"name": "Ann", "email": "a@x.io"},
        {},
        {"name": "Cy", "email": "c@x.io"},
    ]
    assert records[1].problem is not None and records[1].problem[0] == "RECORD_TOO_LARGE"
    broken = f'name;email\n"{big}\n{big}"x;b\n'.encode()
    with pytest.raises(MalformedFile, match="';' expected after"):
        list(open_reader(io.BytesIO(broken), "csv", COLUMNS, max_record_bytes=4096))
