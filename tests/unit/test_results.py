from __future__ import annotations

import csv
import io

from loadbay.core.results import escape_cell, header_row, result_rows
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
