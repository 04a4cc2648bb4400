from __future__ import annotations

from typing import Any

import pytest

from loadbay.core.staging import Stager, chunk_keys, mark_duplicates
from loadbay.readers import RawRecord
from loadbay.types.billing import CustomerType

customer = CustomerType()


def codes(raw: dict[str, Any]) -> dict[str | None, str]:
    data, errors = customer.validate(raw)
    assert (data is None) == bool(errors)
    return {e.field: e.code for e in errors}


def test_defaults_and_normalisation() -> None:
    data, errors = customer.validate(
        {"customer_number": " C1 ", "name": "Ann", "country": "nz", "status": "active"}
    )
    assert errors == ()
    assert data == {
        "customer_number": "C1",
        "name": "Ann",
        "country": "NZ",
        "currency": "USD",
        "balance": "0",
        "status": "Active",
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"name": "x"}, {"customer_number": "REQUIRED"}),
        ({"customer_number": "C" * 41, "name": "x"}, {"customer_number": "TOO_LONG"}),
        ({"customer_number": "C", "name": "x", "email": "nope"}, {"email": "INVALID_EMAIL"}),
        ({"customer_number": "C", "name": "x", "country": "XX"}, {"country": "INVALID_COUNTRY"}),
        ({"customer_number": "C", "name": "x", "currency": "ABC"}, {"currency": "INVALID_CURRENCY"}),
        ({"customer_number": "C", "name": "x", "balance": "1.234"}, {"balance": "INVALID_DECIMAL"}),
        ({"customer_number": "C", "name": "x", "balance": "ten"}, {"balance": "INVALID_DECIMAL"}),
        ({"customer_number": "C", "name": "x", "balance": "NaN"}, {"balance": "INVALID_DECIMAL"}),
        ({"customer_number": "C", "name": "x", "balance": "-Infinity"}, {"balance": "INVALID_DECIMAL"}),
        ({"customer_number": "C", "name": "x", "status": "Gone"}, {"status": "INVALID_VALUE"}),
    ],
)
def test_each_rule_has_its_code(raw: dict[str, Any], expected: dict[str, str]) -> None:
    assert codes(raw) == expected


def test_several_fields_give_several_errors() -> None:
    assert codes({"customer_number": "C", "name": "x", "email": "a", "country": "QQ"}) == {
        "email": "INVALID_EMAIL",
        "country": "INVALID_COUNTRY",
    }


def test_stager_cuts_chunks_and_keeps_unreadable_records() -> None:
    raws = [RawRecord({"customer_number": k, "name": "n"}) for k in ["A", "B", "A", "C", "D"]]
    raws.append(RawRecord({}, ("INVALID_JSON", "line 6: bad")))
    chunks = list(Stager(customer, chunk_size=2).chunks(raws))
    staged = [c.as_records() for c in chunks]
    assert [len(records) for records in staged] == [2, 2, 2]
    records = [r for rs in staged for r in rs]
    assert [r.index for r in records] == [0, 1, 2, 3, 4, 5]
    assert records[5].errors[0].code == "INVALID_JSON"
    assert [sum(r.data is not None for r in rs) for rs in staged] == [2, 2, 1]


def test_later_duplicates_are_marked_within_and_across_chunks() -> None:
    raws = [RawRecord({"customer_number": k, "name": "n"}) for k in [" A", "B", "A", "C"]]
    records = [Stager(customer, 10).stage(i, raw) for i, raw in enumerate(raws)]
    assert chunk_keys(customer, records) == ["A", "B", "C"]
    marked = mark_duplicates(customer, records, fresh={"A", "C"})  # B was seen in an earlier chunk
    assert [r.errors[0].code if r.errors else None for r in marked] == [
        None,
        "DUPLICATE_KEY",
        "DUPLICATE_KEY",
        None,
    ]
    assert marked[2].errors[0].field == "customer_number" and marked[2].data is None


def test_a_long_refused_value_is_shortened_in_its_message() -> None:
    """Before, the message repeated the whole value, in every error list and result row."""
    value = "@" + "a" * 299
    _data, (error,) = customer.validate({"customer_number": "C", "name": "x", "email": value})
    assert error.message == f"email: not an email address: {value[:60]}… (300 characters)"
    _data, (short,) = customer.validate({"customer_number": "C", "name": "x", "email": "nope"})
    assert short.message == "email: not an email address: nope"
