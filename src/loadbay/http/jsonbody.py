"""JSON request bodies parsed defensively: every failure is a ValueError that says why.

`json.loads` alone answers a body nested 100,000 deep with a RecursionError, and takes
`NaN` and `Infinity`, which no JSON encoder writes back. `parse_json` measures the nesting
first, without recursion and in time linear in the body, and refuses those constants.
Numbers past Python's integer digit limit are already a ValueError of `json.loads`.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

__all__ = ["MAX_DEPTH", "parse_json"]

MAX_DEPTH = 64  # arrays and objects inside each other; a record needs a handful of levels

# A string, or an unterminated one up to the end (so that a bad body costs one pass, not one
# pass per quote); what remains outside strings holds the brackets that nest.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def parse_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `body` (bytes in UTF-8, -16 or -32, as `json.loads` reads them), or
    ValueError: not JSON, not decodable, nested deeper than `max_depth`, NaN or Infinity."""
    text = body if isinstance(body, str) else body.decode(json.detect_encoding(body), "surrogatepass")
    depth = nesting(text)
    if depth > max_depth:
        raise ValueError(f"it nests {depth} levels deep; at most {max_depth} are taken")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # not after the check above; a guard all the same
        raise ValueError(f"it nests more than {max_depth} levels deep") from None


def nesting(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a bare value)."""
    steps = map(_STEP.__getitem__, _BRACKET.findall(_STRING.sub("", text)))
    return max(accumulate(steps), default=0)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
