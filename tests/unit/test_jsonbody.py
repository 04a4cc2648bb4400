"""The one reader of JSON request bodies (`http/jsonbody.py`), which the native API and every
profile use: UTF-8 only, errors that say what and where."""

from __future__ import annotations

import codecs
import json

import pytest

from loadbay.http.jsonbody import MAX_DEPTH, parse_json


def refusal(body: bytes | str) -> str:
    with pytest.raises(ValueError) as refused:
        parse_json(body)
    return str(refused.value)


def test_utf8_is_read_with_or_without_a_byte_order_mark() -> None:
    text = json.dumps({"name": "café ☕"}, ensure_ascii=False)
    assert parse_json(text.encode()) == parse_json(codecs.BOM_UTF8 + text.encode()) == {"name": "café ☕"}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_are_refused_by_name(encoding: str) -> None:
    """json.loads would read them; RFC 8259 says JSON between systems is UTF-8."""
    said = refusal('{"name": "café"}'.encode(encoding))
    assert said == f"not UTF-8: it reads as {encoding.upper()} text; send JSON in UTF-8"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"a":\n "caf\xe9"}', "not UTF-8 at line 2, column 6: byte 0xe9 (invalid continuation byte)"),
        (b'["\xed\xa0\x80"]', "not UTF-8 at line 1, column 3: byte 0xed (invalid continuation byte)"),
    ],
)
def test_bytes_that_are_not_utf8_are_placed(body: bytes, said: str) -> None:
    assert refusal(body) == said


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            '{"type": "billing.customer",',
            "not valid JSON at line 1, column 29: the body ends there, "
            "expecting a property name in double quotes",
        ),
        ('{\n  "a": 1\n  "b": 2\n}', "not valid JSON at line 3, column 3: expecting ',' or the end"),
        ("[1] [2]", "not valid JSON at line 1, column 5: more after the JSON value"),
    ],
)
def test_malformed_json_says_where(body: str, said: str) -> None:
    assert refusal(body).startswith(said)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_where_they_are(constant: str) -> None:
    """Not where the same word is in a string before it."""
    body = '{"note": "NaN or Infinity",\n "n": @}'.replace("@", constant).encode()
    assert refusal(body) == f"not valid JSON at line 2, column 7: {constant} is not a JSON number"


def test_nesting_is_bounded() -> None:
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    deeper = MAX_DEPTH + 1
    said = refusal("[" * deeper + "]" * deeper)
    assert said == f"not read: it nests {deeper} levels deep, and at most {MAX_DEPTH} are taken"


def test_a_number_past_the_digit_limit_is_refused() -> None:
    assert refusal("[" + "1" * 5000 + "]").startswith("not read: a number has more than 4,300 digits")


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1.5E+400", "-0.1e310"])
def test_a_number_too_large_for_a_float_is_refused_where_it_is(number: str) -> None:
    """json.loads reads it as infinity, which no JSON encoder writes back; a body holding one
    is refused as NaN and Infinity are (not where the same text is in a string before it)."""
    body = '{"note": "@ as text",\n "n": [1, @]}'.replace("@", number)
    largest = "±1.8e308, the largest number this server reads"
    assert refusal(body) == f"not read at line 2, column 11: {number} is beyond {largest}"


def test_large_and_tiny_floats_within_range_are_read() -> None:
    assert parse_json("[1.7e308, -1.7e308, 1e-400, 12345678901234567890123]") == [
        1.7e308,
        -1.7e308,
        0.0,
        12345678901234567890123,
    ]
