from __future__ import annotations

import csv
import io
import time

from loadbay.core.results import escape_cell, header_row, result_rows, rows_of_status
from loadbay.domain.records import Action, FieldError, OutcomeStatus, RecordOutcome, StagedRecord


def test_formula_cells_are_escaped_and_numbers_are_not() -> None:
    assert escape_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert escape_cell("+1+2") == "'+1+2"
    assert escape_cell("@SUM(A1)") == "'@SUM(A1)"
    assert escape_cell("-2+3") == "'-2+3"
    assert escape_cell("-12.50") == "-12.50"
    assert escape_cell("plain") == "plain"


def test_rows_echo_input_and_outcome() -> None:
    records = [
        StagedRecord(0, "A", {"key": "A", "name": "=x"}, {"key": "A"}),
        StagedRecord(1, "B", {"key": "B"}, None, (FieldError("REQUIRED", "name: missing", "name"),)),
    ]
    outcomes = [
        RecordOutcome(OutcomeStatus.SUCCEEDED, Action.CREATED, "7"),
        RecordOutcome(OutcomeStatus.INVALID, errors=records[1].errors),
    ]
    text = header_row(["key", "name"]) + result_rows(["key", "name"], records, outcomes)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["key", "name"] and rows[0][2] == "loadbay_status"
    assert rows[1] == ["A", "'=x", "succeeded", "created", "7", "", ""]
    assert rows[2] == ["B", "", "invalid", "", "", "REQUIRED", "name: missing"]


def test_a_nested_value_is_json_with_its_text_as_given() -> None:
    """A JSON item's object or array value (Click2Mail's recipients) is its JSON in the cell,
    non-ASCII text as it came: it was escaped ("Zo\\u00eb") where a reader of the file wants "Zoë"."""
    value = {"recipients": [{"name": "Zoë Brontë", "city": "東京"}], "tags": ["=x"]}
    records = [StagedRecord(0, "A", value, value)]
    outcomes = [RecordOutcome(OutcomeStatus.SUCCEEDED, Action.CREATED, "1")]
    [row] = list(csv.reader(io.StringIO(result_rows(["recipients", "tags"], records, outcomes))))
    assert row[0] == '[{"name": "Zoë Brontë", "city": "東京"}]' and row[1] == '["=x"]'


def test_rows_of_a_text_with_a_long_tail_without_a_line_end_are_read_in_linear_time() -> None:
    """Every row ends in CRLF; a tail without one is no row. It was scanned from each of its
    characters: 40,000 of them took ~33 s."""
    rows = 'succeeded,"b"\r\ninvalid,y\r\n'
    started = time.monotonic()
    assert rows_of_status(rows + 'q"' + "w" * 40_000, 0, {"invalid"}) == "invalid,y\r\n"
    assert time.monotonic() - started < 1
