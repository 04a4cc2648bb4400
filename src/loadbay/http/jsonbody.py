"""JSON request bodies parsed defensively: every failure is a ValueError that says why.

`json.loads` alone answers a body nested 100,000 deep with a RecursionError, and takes
`NaN` and `Infinity`, which no JSON encoder writes back. `parse_json` measures the nesting
first, without recursion and in time linear in the body, and refuses those constants.
Numbers past Python's integer digit limit are already a ValueError of `json.loads`. And
`json.loads` of bytes lets through bytes that are not UTF-8 when they encode a surrogate
(ED A0 80); `json_text` decodes strictly.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "json_text", "parse_json"]

MAX_DEPTH = 64  # arrays and objects inside each other; a record needs a handful of levels

# A string, or an unterminated one up to the end (so that a bad body costs one pass, not one
# pass per quote); what remains outside strings holds the brackets that nest.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def parse_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `body` (bytes: see `json_text`), or ValueError: not JSON, not text
    in its encoding, nested deeper than `max_depth`, NaN or Infinity."""
    text = body if isinstance(body, str) else json_text(body)
    depth = nesting(text)
    if depth > max_depth:
        raise ValueError(f"it nests {depth} levels deep; at most {max_depth} are taken")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # not after the check above; a guard all the same
        raise ValueError(f"it nests more than {max_depth} levels deep") from None


def json_text(body: bytes) -> str:
    """The text of a JSON body: UTF-8, or UTF-16 or UTF-32 where `json.loads` would read
    them so (a BOM, or the zero bytes of the first characters). Bytes not valid in that
    encoding, an encoded surrogate among them, are a ValueError that says where."""
    encoding = json.detect_encoding(body)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        name = encoding.upper().removesuffix("-SIG")
        raise ValueError(
            f"it is not {name} text: byte {exc.start} ({body[exc.start]:#04x}): {exc.reason}"
        ) from None


def nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a bare value)."""
    steps = map(_STEP.__getitem__, _BRACKET.findall(_STRING.sub("", text)))
    return max(accumulate(steps), default=0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
