"""The cells of loadbay's result files: the columns it adds, and formula protection.

A result file (and the file of refused records, which is part of it) is made to be opened
in a spreadsheet and, for refused records, fixed and sent again. A spreadsheet runs a cell
that starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula, so loadbay
writes such a cell with a `'` in front (`protect`); a number such as `-12.50` stays a number.

The protection is undone when such a file comes back: a CSV file whose header names any
of `RESULT_COLUMNS` is a result file, and each of its cells that `protect` would have
written loses its one `'` (`unprotect`). Cells that already start with `'` and then a
formula character are protected too (one more `'`), so `unprotect(protect(v)) == v` for
every text: the round trip changes nothing the customer sent.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "FORMULA_START",
    "NUMBER_RE2",
    "RESULT_COLUMNS",
    "RUNS_AS_FORMULA_RE2",
    "protect",
    "protected",
    "unprotect",
]

RESULT_COLUMNS: Final = (
    "loadbay_status",
    "loadbay_action",
    "loadbay_entity_id",
    "loadbay_error_code",
    "loadbay_error_message",
)
# What a cell that may need protecting starts with (a quick test before the exact one).
FORMULA_START: Final = frozenset("=+-@\t\r'")
_RUNS_AS_FORMULA = re.compile(r"'*[=+\-@\t\r]")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
# The same two tests in RE2 (pyarrow's), for cells protected a column at a time: `protect`
# puts a ' before a value that matches the first and not the second (\d is any Unicode
# decimal digit in Python, \p{Nd} in RE2).
RUNS_AS_FORMULA_RE2: Final = r"^'*[=+\-@\t\r]"
NUMBER_RE2: Final = r"^-?\p{Nd}+(\.\p{Nd}+)?$"


def protected(value: str) -> bool:
    """Whether `protect` puts a `'` in front of `value`."""
    return (
        bool(value)
        and value[0] in FORMULA_START
        and _RUNS_AS_FORMULA.match(value) is not None
        and _NUMBER.fullmatch(value) is None
    )


def protect(value: str) -> str:
    """`value` as a result file's cell: with a `'` in front if a spreadsheet would run it as a
    formula (or it starts with `'` and then a formula character)."""
    return "'" + value if protected(value) else value


def unprotect(value: str) -> str:
    """A result file's cell as the customer sent it: `protect` undone."""
    if value[:1] == "'" and protected(value[1:]):
        return value[1:]
    return value
