"""The refused-records file: a chunk's result rows kept or dropped by their loadbay_status,
each kept row exactly as the result file has it."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadbay.core.results import result_rows, rows_of_status
from loadbay.domain.records import FieldError, OutcomeStatus, RecordOutcome, StagedRecord

COLUMNS = ["key", "note"]
STATUSES = [s for s in OutcomeStatus]
# cells that may hold what a row is split at, and the status words themselves
parts = st.sampled_from(["a", "b", ",", '"', "\r", "\n", "\r\n", " ", "=", "@", "'", *STATUSES])
cells = st.lists(parts, max_size=5).map("".join)
MESSAGES = ['a "quoted", message\r\nover lines', "one line, no quotes", "invalid,failed, unprocessed"]


def _chunk(
    values: list[tuple[str, str, OutcomeStatus]], columns: list[str] = COLUMNS, message: str = MESSAGES[0]
) -> str:
    records = [
        StagedRecord(i, key, {"key": key, "note": note}, None) for i, (key, note, _) in enumerate(values)
    ]
    errors = (FieldError("CODE", message, "note"),)
    outcomes = [
        RecordOutcome(status, errors=() if status == "succeeded" else errors) for *_, status in values
    ]
    return result_rows(columns, records, outcomes)


@given(
    st.lists(st.tuples(cells, cells, st.sampled_from(STATUSES)), max_size=20),
    st.sets(st.sampled_from(STATUSES)),
    st.sampled_from([[], ["key"], COLUMNS]),
    st.sampled_from(MESSAGES),
)
def test_kept_rows_are_those_of_the_statuses_as_written(
    values: list[tuple[str, str, OutcomeStatus]], wanted: set[OutcomeStatus], columns: list[str], message: str
) -> None:
    _check(_chunk(values, columns, message), len(columns), {s.value for s in wanted})


def _check(text: str, status_column: int, wanted: set[str]) -> None:
    """The kept rows are the wanted ones, in order, each as the text has it."""
    kept = rows_of_status(text, status_column, wanted)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    expected = [row for row in rows if row[status_column] in wanted]
    assert list(csv.reader(io.StringIO(kept, newline=""))) == expected
    assert all(part in text for part in kept.split("\r\n"))


OK, BAD = OutcomeStatus.SUCCEEDED, OutcomeStatus.INVALID


@pytest.mark.parametrize(
    ("values", "columns"),
    [
        ([("a", "b", OK), ("c", "d", BAD), ("e", "f", OK), ("g", "h", BAD)], COLUMNS),  # rows past the first
        ([("a", "x\r\ny", OK), ("b", ",invalid,\r\n", BAD), ("c", "d", OK)], COLUMNS),  # a CRLF in a cell
        (
            [("a", ",invalid,", OK), ("b", '"invalid"', OK), ("c", "d", BAD), ("e", ",invalid,", BAD)],
            COLUMNS,
        ),  # the word in a cell
        ([("", "", BAD), ("", "", OK), ("", "", BAD)], ["key"]),  # a row starting ",invalid,"
    ],
)
def test_rows_found_by_their_status_word(
    values: list[tuple[str, str, OutcomeStatus]], columns: list[str]
) -> None:
    _check(_chunk(values, columns, MESSAGES[1]), len(columns), {"invalid"})


def test_a_cell_longer_than_the_csv_modules_limit_is_no_problem() -> None:
    long = "x" * 200_000
    text = _chunk([("A", long, OutcomeStatus.INVALID), ("B", "short", OutcomeStatus.SUCCEEDED)])
    kept = rows_of_status(text, len(COLUMNS), {"invalid"})
    assert kept.startswith(f"A,{long},invalid,") and "B," not in kept


def test_no_rows() -> None:
    assert rows_of_status("", 2, {"invalid"}) == ""
