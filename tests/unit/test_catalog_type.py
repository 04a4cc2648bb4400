from __future__ import annotations

import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, insert, select

from loadbay.core.staging import Stager
from loadbay.core.types import ApplyContext
from loadbay.db.tables import batch_keys, catalog_userx, metadata
from loadbay.domain.records import Action, StagedRecord
from loadbay.readers import RawRecord, open_reader
from loadbay.types import default_registry
from loadbay.types.catalog import UserXType, catalog_types
from tests.support.alliant_seed import SEED_ITEM, seed_item

user1, user2 = catalog_types()[:2]
CTX = ApplyContext(account_id=1, batch_id=7, test=False, options={})


def codes(batch_type: UserXType, raw: dict[str, Any]) -> dict[str | None, str]:
    data, errors = batch_type.validate(raw)
    assert (data is None) == bool(errors)
    return {e.field: e.code for e in errors}


def lookup(**fields: Any) -> dict[str, Any]:
    return {"udfLookupItems": [fields]}


def header(percents: list[Any], start: str = "2021-01-01T00:00:00", end: str = "2022-01-01T00:00:00") -> Any:
    details = [{"allocationPercent": p} for p in percents]
    return [{"effectiveFromDate": start, "effectiveToDate": end, "user1BOMDetails": details}]


# types and layout -----------------------------------------------------------------


def test_one_type_per_dimension_is_registered() -> None:
    names = {t.name for t in default_registry()}
    assert {f"catalog.user{x}" for x in range(1, 10)} <= names
    assert [t.dimension for t in catalog_types()] == list(range(1, 10))


def test_columns_are_the_items_top_level_fields_of_the_dimension_and_user_defined() -> None:
    assert user1.columns().names == (
        "adminClassReference",
        "comment",
        "description",
        "id",
        "ipRightsBearingFlag",
        "parentReference",
        "royaltyBearingFlag",
        "user1BOMHeaders",
        "userDefined",  # the item's ud… and udLookup_… values, as JSON (test_catalog_result_file)
    )
    assert user1.columns().required == ("id",)
    assert user2.columns().names[-2] == "user2BOMHeaders"


def test_json_schema_names_the_dimensions_fields() -> None:
    schema = json.dumps(user2.json_schema())
    assert "user2BOMHeaders" in schema and "user2BOMDetails" in schema and "udKey2Reference" in schema
    assert '"ud*"' not in schema and "udLookup_*" not in schema


# validation ------------------------------------------------------------------------


def test_the_seed_item_is_valid_and_kept_as_given() -> None:
    data, errors = user1.validate(SEED_ITEM)
    assert errors == ()
    assert data == SEED_ITEM


def test_ud_values_are_free_and_numbers_stay_numbers() -> None:
    raw = {"id": "A", "ud_n": Decimal("1.5"), "ud_deep": {"x": [Decimal("2"), None, "s"]}, "udKey7": 1}
    data, errors = user1.validate(raw)
    assert errors == ()
    assert data == {"id": "A", "ud_n": 1.5, "ud_deep": {"x": [2, None, "s"]}, "udKey7": 1}


def test_empty_and_null_ud_values_read_from_json_lines_are_kept_as_given() -> None:
    line = b'{"id": "A", "udNote": "", "udGone": null}\n'
    (record,) = open_reader(io.BytesIO(line), "jsonl", user1.columns())
    data, errors = user1.validate(record.values)
    assert errors == ()
    assert data == {"id": "A", "udNote": "", "udGone": None}


def test_numbers_read_as_decimal_are_json_numbers() -> None:
    item = {"id": "A", "user1BOMHeaders": header([Decimal("33.33"), Decimal("33.33"), Decimal("33.34")])}
    data, errors = user1.validate(item)
    assert errors == ()
    assert data is not None
    assert [d["allocationPercent"] for d in data["user1BOMHeaders"][0]["user1BOMDetails"]] == [
        33.33,
        33.33,
        33.34,
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"id": None}, {"id": "REQUIRED"}),
        ({"id": "x" * 51}, {"id": "TOO_LONG"}),
        ({"description": "d" * 501}, {"description": "TOO_LONG"}),
        ({"ipRightsBearingFlag": "maybe"}, {"ipRightsBearingFlag": "INVALID_VALUE"}),
        (
            {"udLookup_L": lookup(amount1Range="3:1")},
            {"udLookup_L.udfLookupItems.0.amount1Range": "INVALID_RANGE"},
        ),
        (
            {"udLookup_L": lookup(price2Range="1-3")},
            {"udLookup_L.udfLookupItems.0.price2Range": "INVALID_RANGE"},
        ),
        (
            {"udLookup_L": lookup(rate1Range="a:b")},
            {"udLookup_L.udfLookupItems.0.rate1Range": "INVALID_RANGE"},
        ),
        (
            {"udLookup_L": lookup(unit1Range="1:2:3")},
            {"udLookup_L.udfLookupItems.0.unit1Range": "INVALID_RANGE"},
        ),
        (
            {"udLookup_L": lookup(unit2Range="NaN:1")},
            {"udLookup_L.udfLookupItems.0.unit2Range": "INVALID_RANGE"},
        ),
        (
            {"udLookup_L": lookup(fromDate="2020-01-02T00:00:00Z", toDate="2020-01-01T00:00:00Z")},
            {"udLookup_L.udfLookupItems.0.toDate": "INVALID_DATE_RANGE"},
        ),
        (
            {"udLookup_L": lookup(fromDate="2020-01-01T23:00:00", toDate="2020-01-01T20:00:00-05:00")},
            {},  # a time without offset counts as UTC: 23:00Z is before 01:00Z the next day
        ),
        (
            {"user1BOMHeaders": header([100], start="2022-01-01T00:00:00", end="2021-01-01T00:00:00")},
            {"user1BOMHeaders.0.effectiveToDate": "INVALID_DATE_RANGE"},
        ),
        ({"user1BOMHeaders": header([60, 30])}, {"user1BOMHeaders.0.user1BOMDetails": "ALLOCATION_NOT_100"}),
        ({"user1BOMHeaders": header([60, 50])}, {"user1BOMHeaders.0.user1BOMDetails": "ALLOCATION_NOT_100"}),
        ({"user1BOMHeaders": header(["33.33", "33.33", "33.34"])}, {}),
        ({"user1BOMHeaders": header([])}, {}),
        ({"udLookup_L": lookup(bogus=1)}, {"udLookup_L.udfLookupItems.0.bogus": "UNKNOWN_FIELD"}),
        ({"user2BOMHeaders": []}, {"user2BOMHeaders": "UNKNOWN_FIELD"}),
        ({"parentReference": {"id": "P", "name": "x"}}, {"parentReference.name": "UNKNOWN_FIELD"}),
        ({"udLookup_L": "not an object"}, {"udLookup_L": "INVALID_VALUE"}),
    ],
)
def test_each_rule_has_its_code_and_nested_field(changes: dict[str, Any], expected: dict[str, str]) -> None:
    assert codes(user1, seed_item(**changes)) == expected


def test_errors_of_several_fields_are_all_reported() -> None:
    item = seed_item(
        udLookup_L=lookup(amount1Range="9:1", fromDate="2021-01-01", toDate="2020-01-01"),
        user1BOMHeaders=header([10]),
    )
    assert codes(user1, item) == {
        "udLookup_L.udfLookupItems.0.amount1Range": "INVALID_RANGE",
        "udLookup_L.udfLookupItems.0.toDate": "INVALID_DATE_RANGE",
        "user1BOMHeaders.0.user1BOMDetails": "ALLOCATION_NOT_100",
    }


def test_error_messages_name_the_field() -> None:
    _, errors = user1.validate(seed_item(udLookup_L=lookup(amount1Range="3:1")))
    assert errors[0].message == "udLookup_L.udfLookupItems.0.amount1Range: range '3:1': 3 is above 1"


def test_the_dimension_names_the_bom_fields() -> None:
    item = {
        "id": "A",
        "user2BOMHeaders": [
            {"user2BOMDetails": [{"allocationPercent": 100, "udKey2Reference": {"id": "k"}}]}
        ],
    }
    data, errors = user2.validate(item)
    assert errors == () and data == item
    assert codes(user1, item) == {"user2BOMHeaders": "UNKNOWN_FIELD"}


def test_numeric_ids_are_text() -> None:
    data, _ = user1.validate({"id": 42, "parentReference": {"id": 7}})
    assert data == {"id": "42", "parentReference": {"id": "7"}}


# parents (check) and apply against a real SQLite database ---------------------------


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def staged(batch_type: UserXType, *items: dict[str, Any], first: int = 0) -> list[StagedRecord]:
    stager = Stager(batch_type, 100)
    return [stager.stage(first + i, RawRecord(item)) for i, item in enumerate(items)]


def claim(conn: Connection, records: list[StagedRecord]) -> None:
    """What the core does before `check`: the chunk's valid keys join the batch's."""
    keys = [{"batch_id": CTX.batch_id, "key": r.data["id"]} for r in records if r.data is not None]
    conn.execute(insert(batch_keys), keys)


def checked(conn: Connection, batch_type: UserXType, records: list[StagedRecord]) -> dict[str, str | None]:
    claim(conn, records)
    out = batch_type.check(conn, CTX, records)
    return {str(r.external_id): (r.errors[0].code if r.errors else None) for r in out}


def child(item_id: str, parent: str) -> dict[str, Any]:
    return {"id": item_id, "parentReference": {"id": parent}}


def test_a_parent_must_be_stored_or_earlier_in_the_batch(conn: Connection) -> None:
    user1.apply(conn, CTX, staged(user1, {"id": "STORED"}))
    records = staged(
        user1,
        child("A", "STORED"),
        child("B", "A"),  # earlier in this chunk
        child("C", "D"),  # later in this chunk
        {"id": "D"},
        child("E", "E"),  # itself
        child("F", "NOWHERE"),
        child("G", "F"),  # its parent was refused
    )
    assert checked(conn, user1, records) == {
        "A": None,
        "B": None,
        "C": "UNKNOWN_PARENT",
        "D": None,
        "E": "UNKNOWN_PARENT",
        "F": "UNKNOWN_PARENT",
        "G": "UNKNOWN_PARENT",
    }


def test_a_parent_from_an_earlier_chunk_is_known(conn: Connection) -> None:
    claim(conn, staged(user1, {"id": "P"}))
    assert checked(conn, user1, staged(user1, child("K", "P"), first=1)) == {"K": None}


def test_parents_are_per_account_and_dimension(conn: Connection) -> None:
    user2.apply(conn, CTX, staged(user2, {"id": "P2"}))
    other = ApplyContext(account_id=2, batch_id=8, test=False, options={})
    user1.apply(conn, other, staged(user1, {"id": "P1"}))
    assert checked(conn, user1, staged(user1, child("X", "P2"), child("Y", "P1"))) == {
        "X": "UNKNOWN_PARENT",
        "Y": "UNKNOWN_PARENT",
    }


def test_unknown_parent_names_the_field(conn: Connection) -> None:
    records = staged(user1, child("A", "NOPE"))
    claim(conn, records)
    error = user1.check(conn, CTX, records)[0].errors[0]
    assert error.field == "parentReference.id" and "'NOPE'" in error.message


def test_apply_upserts_by_account_dimension_and_id(conn: Connection) -> None:
    first = user1.apply(conn, CTX, staged(user1, {"id": "A"}, seed_item(parentReference=None)))
    assert [a.action for a in first] == [Action.CREATED, Action.CREATED]
    again = user1.apply(
        conn, CTX, staged(user1, {"id": "A", "comment": "new"}, seed_item(parentReference=None))
    )
    assert [a.action for a in again] == [Action.UPDATED, Action.UNCHANGED]
    assert [a.entity_id for a in again] == [a.entity_id for a in first]
    assert user2.apply(conn, CTX, staged(user2, {"id": "A"}))[0].action == Action.CREATED
    rows = conn.execute(select(catalog_userx).order_by(catalog_userx.c.id)).mappings().all()
    assert [(r["dimension"], r["item_id"], r["revision"]) for r in rows] == [
        (1, "A", 2),
        (1, "004 Product", 1),
        (2, "A", 1),
    ]
    assert json.loads(rows[0]["data"]) == {"id": "A", "comment": "new"}
    assert json.loads(rows[1]["data"]) == seed_item(parentReference=None)


def test_apply_keeps_parent_and_description_in_columns(conn: Connection) -> None:
    user1.apply(conn, CTX, staged(user1, {"id": "P"}, seed_item(parentReference={"id": "P"})))
    row = conn.execute(select(catalog_userx).where(catalog_userx.c.item_id == "004 Product")).mappings().one()
    assert row["parent_item_id"] == "P" and row["description"] == "Pebbles 2: Secret of the Ooze"
