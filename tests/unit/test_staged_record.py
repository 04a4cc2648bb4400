"""A staged record survives its trip through a chunk payload unchanged, in the compact form
(validated values that are the values read, written once) and in the full one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from loadbay.core import settle
from loadbay.domain.records import FieldError, StagedRecord

RAW = {"customer_number": "C1", "name": "Ann", "balance": "1.50"}


def trip(record: StagedRecord) -> StagedRecord:
    return settle.decode_chunk(settle.encode_chunk([record]))[0]


def test_data_equal_to_the_text_read_is_written_once_and_read_back_whole() -> None:
    record = StagedRecord(3, "C1", RAW, dict(RAW))
    payload = settle.encode_chunk([record])
    assert payload.count('"Ann"') == 1
    back = trip(record)
    assert back == record
    assert back.data is not back.raw  # a type that changes its data does not change the echo


@pytest.mark.parametrize(
    "data",
    [
        {"customer_number": "C1", "name": "Ann", "balance": "1.5"},  # a value the validation changed
        {"customer_number": "C1", "name": "Ann"},  # a value dropped
        {"name": "Ann", "customer_number": "C1", "balance": "1.50"},  # another order
    ],
)
def test_data_that_differs_from_the_text_read_is_kept_as_it_is(data: dict[str, Any]) -> None:
    back = trip(StagedRecord(0, "C1", RAW, data))
    assert back.data == data and list(back.data) == list(data)


def test_numbers_read_from_json_items_are_not_taken_for_text() -> None:
    raw = {"id": 1, "count": 2}
    data = trip(StagedRecord(0, "1", raw, {"id": 1, "count": 2.0})).data
    assert data == {"id": 1, "count": 2.0} and type(data["count"]) is float


def test_invalid_records_keep_no_data_and_their_errors() -> None:
    record = StagedRecord(7, None, RAW, None, (FieldError("INVALID_EMAIL", "not an email", "email"),))
    assert trip(record) == record


def test_payloads_written_before_the_compact_form_still_read() -> None:
    old = '[[0,"C1",{"customer_number":"C1"},{"customer_number":"C1"},[]]]'
    assert settle.decode_chunk(old) == [
        StagedRecord(0, "C1", {"customer_number": "C1"}, {"customer_number": "C1"})
    ]


# numbers with a fraction (read from JSON as Decimal) --------------------------------------

JSON_RAW = {"id": "I1", "price": Decimal("12.50"), "tiny": Decimal("1E-7"), "deep": [{"x": Decimal("-0.5")}]}


def test_a_number_read_with_a_fraction_comes_back_the_number_it_was() -> None:
    """Not the text "12.50": the result file, the record views and a retry show and send
    the value read."""
    payload = settle.encode_chunk([StagedRecord(0, "I1", JSON_RAW, None)])
    assert '"price":12.50,"tiny":1E-7,"deep":[{"x":-0.5}]' in payload
    raw = settle.decode_chunk(payload)[0].raw
    assert raw == JSON_RAW and type(raw["price"]) is Decimal and str(raw["price"]) == "12.50"
    assert str(raw["tiny"]) == "1E-7" and type(raw["deep"][0]["x"]) is Decimal


def test_the_validated_values_of_such_a_record_are_kept_as_they_were() -> None:
    """What is applied is what was validated: an amount as text stays text, a float a float."""
    data = {"id": "I1", "price": "12.50", "ratio": 0.1, "deep": [{"x": -0.5}], "n": 3}
    back = trip(StagedRecord(0, "I1", JSON_RAW, data))
    assert back.data == data
    assert type(back.data["price"]) is str and type(back.data["ratio"]) is float
    assert type(back.data["deep"][0]["x"]) is float and type(back.data["n"]) is int


def test_text_that_looks_like_a_number_stays_text() -> None:
    raw = {"id": "I1", "price": "12.50", "n": 3, "big": 12345678901234567890123}
    assert trip(StagedRecord(0, "I1", raw, None)).raw == raw
    assert type(trip(StagedRecord(0, "I1", raw, None)).raw["price"]) is str


def test_payloads_that_hold_such_numbers_as_text_still_read() -> None:
    """Written before (decimal_format="string"): the value reads as the text it was kept as."""
    old = '[[0,"I1",{"id":"I1","price":"12.50"},{"id":"I1","price":"12.50"},[]]]'
    assert settle.decode_chunk(old) == [
        StagedRecord(0, "I1", {"id": "I1", "price": "12.50"}, {"id": "I1", "price": "12.50"})
    ]


def test_payloads_written_by_the_json_module_still_read() -> None:
    old = '[[0,"I1",{"id":"I1","p":1.50,"q":NaN},{"id":"I1","p":1.5},[]]]'
    (record,) = settle.decode_chunk(old)
    assert str(record.raw["p"]) == "1.50" and type(record.data["p"]) is float  # type: ignore[index]


def test_a_decimal_no_number_holds_is_kept_as_text() -> None:
    (record,) = settle.decode_chunk(settle.encode_chunk([StagedRecord(0, "I1", {"p": Decimal("NaN")}, None)]))
    assert record.raw == {"p": "NaN"}


def test_a_payload_that_is_no_chunk_is_refused() -> None:
    for payload in ("", "5", "[1]", '{"a": 1}', "[[0,1,2]]"):
        with pytest.raises(ValueError):
            settle.decode_chunk(payload)
