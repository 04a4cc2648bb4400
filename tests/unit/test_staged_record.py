"""A staged record survives its trip through a chunk payload unchanged, in the compact form
(validated values that are the values read, written once) and in the full one."""

from __future__ import annotations

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
