"""The refused-records file: a chunk's result rows kept or dropped by their loadbay_status,
each kept row exactly as the result file has it."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from loadbay.core.results import result_rows, rows_of_status
from loadbay.domain.records import FieldError, OutcomeStatus, RecordOutcome, StagedRecord

COLUMNS = ["key", "note"]
STATUSES = [s for s in OutcomeStatus]
cells = st.text(alphabet=st.sampled_from(list("ab,\"\r\n =+-@'x")), max_size=12)


def _chunk(values: list[tuple[str, str, OutcomeStatus]]) -> str:
    records = [
        StagedRecord(i, key, {"key": key, "note": note}, None) for i, (key, note, _) in enumerate(values)
    ]
    errors = (FieldError("CODE", 'a "quoted", message\r\nover lines', "note"),)
    outcomes = [
        RecordOutcome(status, errors=() if status == "succeeded" else errors) for *_, status in values
    ]
    return result_rows(COLUMNS, records, outcomes)


@given(
    st.lists(st.tuples(cells, cells, st.sampled_from(STATUSES)), max_size=20),
    st.sets(st.sampled_from(STATUSES)),
)
def test_kept_rows_are_those_of_the_statuses_as_written(
    values: list[tuple[str, str, OutcomeStatus]], wanted: set[OutcomeStatus]
) -> None:
    text = _chunk(values)
    kept = rows_of_status(text, len(COLUMNS), {s.value for s in wanted})
    rows = list(csv.reader(io.StringIO(text, newline="")))
    expected = [row for row in rows if row[len(COLUMNS)] in wanted]
    assert list(csv.reader(io.StringIO(kept, newline=""))) == expected
    assert all(part in text for part in kept.split("\r\n"))


def test_a_cell_longer_than_the_csv_modules_limit_is_no_problem() -> None:
    long = "x" * 200_000
    text = _chunk([("A", long, OutcomeStatus.INVALID), ("B", "short", OutcomeStatus.SUCCEEDED)])
    kept = rows_of_status(text, len(COLUMNS), {"invalid"})
    assert kept.startswith(f"A,{long},invalid,") and "B," not in kept


def test_no_rows() -> None:
    assert rows_of_status("", 2, {"invalid"}) == ""
