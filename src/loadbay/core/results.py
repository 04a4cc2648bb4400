"""The result file: every input record, in order, with what happened to it."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

import msgspec

from loadbay.arrow import pa, pc
from loadbay.domain.cells import FORMULA_START as _FORMULA_START
from loadbay.domain.cells import NUMBER_RE2, RESULT_COLUMNS, RUNS_AS_FORMULA_RE2
from loadbay.domain.cells import protect as escape_cell
from loadbay.domain.records import RecordOutcome, StagedRecord

__all__ = [
    "RESULT_COLUMNS",
    "RestColumn",
    "column_input_parts",
    "escape_cell",
    "header_row",
    "input_parts",
    "outcome_text",
    "protect_column",
    "result_rows",
    "rows_of_status",
]


class RestColumn(str):
    """A column whose cell holds a record's values under names no column of the type has,
    as one JSON object (numbers as they were read), for a type that keeps such values (a
    generic hook: a type names one among its columns, and spreads the object out again when
    it reads the column back). A record with no such values shows the column's own value, as
    any column does; one with both shows the own value inside the object, under the
    column's name. So a record in column form, which only ever holds the type's columns,
    gets the same cell on either path."""

    __slots__ = ()


def header_row(columns: Sequence[str]) -> str:
    return _csv_text([[*columns, *RESULT_COLUMNS]])


def result_rows(
    columns: Sequence[str],
    records: Sequence[StagedRecord],
    outcomes: Sequence[RecordOutcome],
    inputs: Sequence[str] | None = None,
) -> str:
    """CSV rows (no header) for one chunk: the record's input values, then its outcome.

    `inputs` is `input_parts(columns, records)`, when the caller made it already (before its
    write transaction: the input half of a row does not depend on the outcome).
    """
    if inputs is None:
        inputs = input_parts(columns, records)
    parts = [outcome_text(o) for o in outcomes]
    if not columns:
        return "".join(f"{part}\r\n" for part in parts)
    return "".join(f"{i},{part}\r\n" for i, part in zip(inputs, parts, strict=True))


def rows_of_status(text: str, status_column: int, statuses: Collection[str]) -> str:
    """Those of a chunk's result rows (as `result_rows` wrote them) whose `loadbay_status`
    (cell `status_column`) is one of `statuses`, as they were written."""
    if status_column:
        found = _rows_marked(text, status_column, statuses)
        if found is not None:
            return found
    return "".join(f"{row}\r\n" for row in _rows(text) if _status(row, status_column) in statuses)


def _rows_marked(text: str, status_column: int, statuses: Collection[str]) -> str | None:
    """`rows_of_status` for a status past the first cell, reading only the rows that hold
    ",status," (hot: the refused-records file reads every chunk, and most of its rows are
    not refused). A status cell is never quoted and has cells on both sides, so each row
    wanted holds one. None when a row found so holds a quoted line break: then the text's rows
    are not its CRLFs, and the caller reads them all."""
    hits = sorted(at for status in statuses for at in _find_all(text, f",{status},"))
    rows: list[str] = []
    quotes = scanned = 0
    last = -1
    for at in hits:
        start = text.rfind("\r\n", 0, at)
        start = 0 if start == -1 else start + 2
        if start == last:
            continue
        end = text.find("\r\n", at)
        if end == -1:
            return None
        quotes += text.count('"', scanned, start)
        scanned = last = start
        if quotes % 2 or text.count('"', start, end) % 2:  # a CRLF inside quotes: not a row's end
            return None
        row = text[start:end]
        if _status(row, status_column) in statuses:
            rows.append(f"{row}\r\n")
    return "".join(rows)


def _find_all(text: str, word: str) -> Iterator[int]:
    at = text.find(word)
    while at != -1:
        yield at
        at = text.find(word, at + 1)


def _rows(text: str) -> list[str]:
    """The rows of a chunk's result text, found by their quotes, not by a CSV parser: it would
    refuse a cell longer than its field size limit, which a JSON record's value can be."""
    if '"' not in text:
        return text.split("\r\n")[:-1]
    whole = text[: text.rfind("\r\n") + 2]  # (every row ends in CRLF: a tail without one would
    return [m.group()[:-2] for m in _ROW.finditer(whole)]  # be scanned from each of its characters)


# A row: quoted runs (a doubled quote is two runs back to back) among other characters but
# line ends, then CRLF (written unrolled: five times faster than an alternation). A cell:
# quoted runs, or anything up to the next comma.
_ROW = re.compile(r'[^"\r\n]*(?:"[^"]*"[^"\r\n]*)*\r\n')
_CELL = re.compile(r'(?:"[^"]*")+|[^,]*')


def _status(row: str, number: int) -> str:
    """Cell `number` of a row: split at commas when no quote comes before its end (cells after
    it, the error message, may hold quotes and commas of their own)."""
    parts = row.split(",", number + 1)
    rest = len(parts[number + 1]) + 1 if len(parts) > number + 1 else 0
    if '"' in row[: len(row) - rest]:
        return _nth_cell(row, number)
    return parts[number] if len(parts) > number else ""


def _nth_cell(row: str, number: int) -> str:
    """Cell `number` (from 0) of a result row, as written (quoted cells keep their quotes)."""
    position = 0
    for _ in range(number):
        position = _match(row, position).end() + 1
    return _match(row, position).group()


def _match(row: str, position: int) -> re.Match[str]:
    found = _CELL.match(row, position)
    assert found is not None  # (the cell pattern matches the empty string)
    return found


def input_parts(columns: Sequence[str], records: Sequence[StagedRecord]) -> list[str]:
    """Each record's input cells as CSV text: the first part of its result row."""
    cells = _InputCells(columns)
    return [_csv_line(cells.of(r.raw)) for r in records]


def column_input_parts(columns: Sequence[str], raw: Mapping[str, pa.Array], count: int) -> pa.Array:
    """`input_parts` of a chunk in column form (`raw[name]`: string arrays, null: absent), as
    a string array, made a column at a time: a cell protected as a formula, then quoted if it
    holds a comma, a quote or a line break, as csv.writer quotes it. (A record in column form
    holds the type's columns only: a `RestColumn` shows its own value, as in `input_parts`.)"""
    if not columns:
        return pa.array([""] * count, pa.string())
    cells = [_column_cells(raw[name] if name in raw else pa.nulls(count, pa.string())) for name in columns]
    return pc.binary_join_element_wise(*cells, ",")


def protect_column(cells: pa.Array) -> pa.Array:
    """`escape_cell` of each cell of a string array."""
    if not _may_hold(cells, _FORMULA_BYTES):
        return cells
    runs = pc.match_substring_regex(cells, RUNS_AS_FORMULA_RE2)
    if not pc.any(runs).as_py():
        return cells
    protect = pc.and_(runs, pc.invert(pc.match_substring_regex(cells, NUMBER_RE2)))
    return pc.if_else(protect, pc.binary_join_element_wise("'", cells, ""), cells)


def _column_cells(values: pa.Array) -> pa.Array:
    cells = protect_column(pc.fill_null(values, ""))
    if not _may_hold(cells, b',"\r\n'):
        return cells
    quote = pc.match_substring_regex(cells, r'[,"\r\n]')
    if pc.any(quote).as_py():
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(cells, '"', '""'), '"', "")
        cells = pc.if_else(quote, quoted, cells)
    return cells


# A cell runs as a formula only if it holds one of these (after any number of quotes).
_FORMULA_BYTES = b"=+-@\t\r"


def _may_hold(cells: pa.Array, characters: bytes) -> bool:
    """Whether a cell of a string array may hold one of the (ASCII) `characters`: False when
    none is anywhere in its data (hot: one scan of the bytes per character, far quicker than
    a pattern per cell; a slice's data may hold more than its cells, so True may be wrong)."""
    data = cells.buffers()[2]
    if data is None:
        return False
    text = data.to_pybytes()
    return any(text.find(c) != -1 for c in characters)


class _InputCells:
    """A record's input values as cells, in column order, as `_cell` makes them.

    Hot (once per record): a value is looked up without a call per column, and only a cell
    that is not text or starts like a formula takes a call.
    """

    __slots__ = ("_blank", "_columns", "_known", "_pick", "_rest")

    def __init__(self, columns: Sequence[str]) -> None:
        self._columns = columns
        self._rest = next((c for c in columns if isinstance(c, RestColumn)), None)
        self._known = frozenset(columns)
        self._blank = dict.fromkeys(columns, "")  # an absent value is an empty cell
        # (itemgetter of one name gives a value, not a tuple)
        self._pick: Callable[[dict[str, Any]], tuple[Any, ...]] | None = (
            itemgetter(*columns) if len(columns) > 1 else None
        )

    def of(self, raw: dict[str, Any]) -> list[str]:
        if self._rest is not None:
            raw = self._gathered(raw, self._rest)
        values = self._pick(self._blank | raw) if self._pick is not None else map(raw.get, self._columns)
        return [
            value if value.__class__ is str and not (value and value[0] in _FORMULA_START) else _cell(value)
            for value in values
        ]

    def _gathered(self, raw: dict[str, Any], rest: str) -> dict[str, Any]:
        """`raw` with its values under names no column has gathered into the rest column."""
        known = self._known
        others = {k: v for k, v in raw.items() if k not in known}
        if not others:
            return raw
        if rest in raw:
            others = {str(rest): raw[rest], **others}
        shown = {k: v for k, v in raw.items() if k in known}
        shown[rest] = _JSON.encode(others).decode()
        return shown


# Exact JSON of values as read: a Decimal (a JSON number with a fraction) as its digits, the
# text as given ("Zoë", not "Zo\u00eb").
_JSON = msgspec.json.Encoder(decimal_format="number", enc_hook=str)


def outcome_text(outcome: RecordOutcome) -> str:
    """The outcome's half of a result row, as CSV text."""
    return _csv_line(_outcome_cells(outcome))


def _outcome_cells(outcome: RecordOutcome) -> list[str]:
    # str() of a StrEnum member is its value (and cheaper than .value)
    action = str(outcome.action) if outcome.action else ""
    status = [str(outcome.status), action, outcome.entity_id or ""]
    if outcome.errors:
        codes = ";".join(e.code for e in outcome.errors)
        messages = escape_cell("; ".join(e.message for e in outcome.errors))
        return [*status, codes, messages]
    return [*status, "", ""]


def _cell(value: Any) -> str:
    if value.__class__ is str:
        return escape_cell(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):  # (as JSON, its text as given: "Zoë", not "Zo\\u00eb")
        return escape_cell(json.dumps(value, default=str, ensure_ascii=False))
    return escape_cell(str(value))


def _csv_line(cells: Sequence[str]) -> str:
    """Cells as csv.writer writes them inside a row (minimal quoting; no line end)."""
    line = ",".join(cells)
    if line.count(",") == len(cells) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
        return line
    return ",".join(_quoted(cell) for cell in cells)


def _quoted(cell: str) -> str:
    if "," in cell or '"' in cell or "\n" in cell or "\r" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _csv_text(rows: Iterable[list[str]]) -> str:
    """The rows as csv.writer writes them (minimal quoting, CRLF line ends).

    A row with a cell to quote (one holding a comma, a quote or a line break) goes through
    csv.writer; any other row is written as its cells joined with commas, which is what
    csv.writer writes for it (but for a row of one empty cell, which it writes as "").
    """
    buffer = io.StringIO()
    write = buffer.write
    writerow = csv.writer(buffer, lineterminator="\r\n").writerow
    for row in rows:
        try:
            line = ",".join(row)
        except TypeError:  # a cell that is not text: csv.writer writes its str()
            line = ""
        if (
            line
            and line.count(",") == len(row) - 1  # no comma inside a cell
            and '"' not in line
            and "\n" not in line
            and "\r" not in line
        ):
            write(line + "\r\n")
        else:
            writerow(row)
    return buffer.getvalue()
