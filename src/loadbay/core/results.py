"""The result file: every input record, in order, with what happened to it."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from loadbay.core.records import RecordOutcome, StagedRecord

__all__ = ["RESULT_COLUMNS", "escape_cell", "header_row", "result_rows"]

RESULT_COLUMNS = (
    "loadbay_status",
    "loadbay_action",
    "loadbay_entity_id",
    "loadbay_error_code",
    "loadbay_error_message",
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_FORMULA_START = frozenset("=+-@\t\r")


def escape_cell(value: str) -> str:
    """Stop a spreadsheet from running a cell as a formula (negative numbers stay numbers)."""
    if value and value[0] in _FORMULA_START and not _NUMBER.match(value):
        return "'" + value
    return value


def header_row(columns: Sequence[str]) -> str:
    return _csv_text([[*columns, *RESULT_COLUMNS]])


def result_rows(
    columns: Sequence[str], records: Sequence[StagedRecord], outcomes: Sequence[RecordOutcome]
) -> str:
    """CSV rows (no header) for one chunk: the record's input values, then its outcome."""
    return _csv_text(_row(columns, r, o) for r, o in zip(records, outcomes, strict=True))


def _row(columns: Sequence[str], record: StagedRecord, outcome: RecordOutcome) -> list[str]:
    raw = record.raw
    values = [_cell(raw.get(name)) for name in columns]
    action = outcome.action.value if outcome.action else ""
    status = [outcome.status.value, action, outcome.entity_id or ""]
    if outcome.errors:
        codes = ";".join(e.code for e in outcome.errors)
        messages = escape_cell("; ".join(e.message for e in outcome.errors))
        return [*values, *status, codes, messages]
    return [*values, *status, "", ""]


def _cell(value: Any) -> str:
    if value.__class__ is str:
        return escape_cell(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return escape_cell(json.dumps(value, default=str))
    return escape_cell(str(value))


def _csv_text(rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()
