"""JSON request bodies, read by one rule: every failure is a ValueError that says why.

Every JSON body loadbay reads (the native API's, and every profile's) goes through
`parse_json`, so each is read the same way:

- Its bytes are UTF-8 (a UTF-8 byte order mark first is skipped), as RFC 8259 §8.1 requires
  of JSON exchanged between systems; `json_text` decodes them strictly (`json.loads` of bytes
  would take an encoded surrogate, ED A0 80, and UTF-16 or UTF-32, which no seed sends).
- Arrays and objects nest at most `MAX_DEPTH` levels: `json.loads` alone answers a body
  nested 100,000 deep with a RecursionError. The nesting is measured first, without
  recursion and in time linear in the body.
- `NaN` and `Infinity` are refused: they are no JSON numbers, and no JSON encoder writes them
  back. So is a number too large for a float (`1e999`, which `json.loads` reads as infinity),
  and one past Python's integer digit limit.

The messages are predicates on the body, each starting with "not", that say where it went
wrong by line and column when the parser knows: "not valid JSON at line 1, column 29: the
body ends there, expecting a property name in double quotes", "not UTF-8 at line 2, column
6: byte 0xe9 (invalid continuation byte)". Each edge puts them in its own form.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import sys
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "json_text", "parse_json"]

MAX_DEPTH = 64  # arrays and objects inside each other; a record needs a handful of levels

# A string, or an unterminated one up to the end (so that a bad body costs one pass, not one
# pass per quote); what remains outside strings holds the brackets that nest.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# The first of NaN, Infinity or -Infinity outside a string (strings matched and passed over).
_CONSTANT = re.compile(r'"(?:[^"\\]++|\\.)*+"?|(-?Infinity|NaN)', re.DOTALL)
# Each number outside a string (strings matched and passed over).
_FLOAT = re.compile(r'"(?:[^"\\]++|\\.)*+"?|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)', re.DOTALL)


def parse_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `body` (bytes: see `json_text`), or a ValueError that says what is
    wrong and where: not UTF-8, not JSON, nested deeper than `max_depth`, NaN or Infinity, a
    number too large for a float."""
    text = body if isinstance(body, str) else json_text(body)
    depth = nesting(text)
    if depth > max_depth:
        raise ValueError(f"not read: it nests {depth} levels deep, and at most {max_depth} are taken")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise ValueError(_malformed(exc)) from None
    except _Overflow as exc:
        at, number = _number_place(text, str(exc)), _shown(str(exc))
        largest = "±1.8e308, the largest number this server reads"
        raise ValueError(f"not read at {at}: {number} is beyond {largest}") from None
    except _Constant as exc:
        raise ValueError(f"not valid JSON at {_constant_place(text)}: {exc} is not a JSON number") from None
    except RecursionError:  # not after the check above; a guard all the same
        raise ValueError(f"not read: it nests more than {max_depth} levels deep") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's limit, not a rule of JSON
            limit = sys.get_int_max_str_digits()
            raise ValueError(
                f"not read: a number has more than {limit:,} digits, the most this server reads"
            ) from None
        raise


def json_text(body: bytes) -> str:
    """The text of a JSON body in UTF-8, a byte order mark first skipped; bytes that are not
    UTF-8 (an encoded surrogate among them, or UTF-16 or UTF-32 text) are a ValueError that
    says where."""
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    elif (encoding := json.detect_encoding(body)) != "utf-8":
        raise ValueError(f"not UTF-8: it reads as {encoding.upper()} text; send JSON in UTF-8")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = _place(body[: exc.start].decode("utf-8"))
        raise ValueError(f"not UTF-8 at {at}: byte {body[exc.start]:#04x} ({exc.reason})") from None


def nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a bare value)."""
    steps = map(_STEP.__getitem__, _BRACKET.findall(_STRING.sub("", text)))
    return max(accumulate(steps), default=0)


def _malformed(exc: json.JSONDecodeError) -> str:
    at = _place(exc.doc[: exc.pos])
    ends = " the body ends there," if not exc.doc[exc.pos :].strip() else ""
    return f"not valid JSON at {at}:{ends} {_said(exc.msg)}"


def _place(before: str) -> str:
    """Where the text after `before` starts: its line and column, from 1."""
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return f"line {line}, column {column}"


def _constant_place(text: str) -> str:
    """Where the first NaN or Infinity outside a string is: the one the parser met first,
    since everything before it outside strings was parsed."""
    found = next((m.start(1) for m in _CONSTANT.finditer(text) if m.group(1)), len(text))
    return _place(text[:found])


def _number_place(text: str, number: str) -> str:
    """Where `number` first stands outside a string: the one the parser met first."""
    found = next((m.start(1) for m in _FLOAT.finditer(text) if m.group(1) == number), len(text))
    return _place(text[:found])


def _shown(number: str, most: int = 40) -> str:
    return number if len(number) <= most else number[:most] + "…"


# The JSON parser's messages, said for a client (any other: as it is, lower-cased).
_SAID = {
    "Expecting value": "expecting a value",
    "Expecting property name enclosed in double quotes": "expecting a property name in double quotes",
    "Expecting ':' delimiter": "expecting ':' after a property name",
    "Expecting ',' delimiter": "expecting ',' or the end of the array or object",
    "Extra data": "more after the JSON value, which ended before here",
    "Unterminated string starting at": "a string starts here and is never closed",
    "Invalid control character at": "a control character in a string: write it as an escape such as \\n",
    "Invalid \\escape": "an escape (\\) that JSON does not have",
    "Invalid \\uXXXX escape": "a \\u escape without four hexadecimal digits",
}


def _said(message: str) -> str:
    return _SAID.get(message) or message[:1].lower() + message[1:]


class _Constant(ValueError):
    """NaN, Infinity or -Infinity, which `json.loads` would take as a float."""


def _no_constant(name: str) -> Any:
    raise _Constant(name)


class _Overflow(ValueError):
    """A JSON number too large for a float, which `json.loads` would take as infinity."""


def _finite(number: str) -> float:
    value = float(number)
    if math.isinf(value):
        raise _Overflow(number)
    return value
