"""The assets types' rules (TYPES.md, assets) and their bulk apply on a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, insert, select

from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.tables import accounts, assets_external_assets, assets_terminal_statuses, metadata
from loadbay.domain.records import Action, Applied, StagedRecord
from loadbay.types import default_registry
from loadbay.types.assets import ExternalAssetType, TerminalStatusType

asset = ExternalAssetType()
terminal = TerminalStatusType()
BARCODE = "1234567890123456"


def codes(batch_type: BatchType, raw: dict[str, Any]) -> dict[str | None, str]:
    data, errors = batch_type.validate(raw)
    assert (data is None) == bool(errors)
    return {e.field: e.code for e in errors}


def test_both_types_are_registered() -> None:
    registry = default_registry()
    assert registry.get("assets.external_asset").key == "external_id"
    assert registry.get("assets.terminal_status").key == "terminal_id"


# external assets ----------------------------------------------------------


def test_asset_is_normalised() -> None:
    raw = {"external_id": " a-1 ", "barcode": BARCODE, "balance": "12.5", "currency": "nzd"}
    data, errors = asset.validate(raw | {"expires_on": "2027-01-31"})
    assert errors == ()
    assert data == {
        "external_id": "a-1",
        "barcode": BARCODE,
        "balance": "12.5",
        "currency": "NZD",
        "expires_on": "2027-01-31",
    }


def test_a_numeric_json_barcode_is_read_as_its_digits() -> None:
    assert codes(asset, {"external_id": "a", "barcode": 1234567890123456}) == {}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"barcode": "12345678901234AB"}, {"barcode": "INVALID_BARCODE"}),
        ({"barcode": "1234-5678-9012-3456"}, {"barcode": "INVALID_BARCODE"}),
        ({"barcode": "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦"}, {"barcode": "INVALID_BARCODE"}),  # digits, but not ASCII
        ({"barcode": "123456789012345"}, {"barcode": "INVALID_BARCODE_LENGTH"}),
        ({"barcode": "12345678901234567"}, {"barcode": "INVALID_BARCODE_LENGTH"}),
        ({"barcode": None}, {"barcode": "INVALID_VALUE"}),
        ({"external_id": "x" * 101}, {"external_id": "TOO_LONG"}),
        ({"balance": "-0.01"}, {"balance": "NEGATIVE_BALANCE"}),
        ({"balance": "1.234"}, {"balance": "INVALID_DECIMAL"}),
        ({"balance": "lots"}, {"balance": "INVALID_DECIMAL"}),
        ({"currency": "XYZ"}, {"currency": "INVALID_CURRENCY"}),
        ({"expires_on": "31/01/2027"}, {"expires_on": "INVALID_DATE"}),
        ({"description": "d" * 501}, {"description": "TOO_LONG"}),
    ],
)
def test_each_asset_rule_has_its_code(fields: dict[str, Any], expected: dict[str, str]) -> None:
    assert codes(asset, {"external_id": "a", "barcode": BARCODE} | fields) == expected


def test_required_asset_fields() -> None:
    assert codes(asset, {}) == {"external_id": "REQUIRED", "barcode": "REQUIRED"}
    assert asset.columns().required == ("external_id", "barcode")


def test_zero_balance_is_fine() -> None:
    assert codes(asset, {"external_id": "a", "barcode": BARCODE, "balance": "0.00"}) == {}


# terminal status ------------------------------------------------------------


def test_status_is_normalised_and_the_offset_kept() -> None:
    raw = {"terminal_id": "T1", "status": " Online ", "reported_at": "2026-03-01T10:00:00+13:00"}
    data, errors = terminal.validate(raw)
    assert errors == ()
    assert data == {"terminal_id": "T1", "status": "online", "reported_at": "2026-03-01T10:00:00+13:00"}


@pytest.mark.parametrize("stamp", ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123456-05:30"])
def test_timestamps_with_an_offset(stamp: str) -> None:
    assert codes(terminal, {"terminal_id": "T", "status": "faulty", "reported_at": stamp}) == {}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "broken"}, {"status": "INVALID_STATUS"}),
        ({"status": ""}, {"status": "INVALID_STATUS"}),
        ({"reported_at": "2026-03-01T10:00:00"}, {"reported_at": "INVALID_TIMESTAMP"}),
        ({"reported_at": "2026-03-01"}, {"reported_at": "INVALID_TIMESTAMP"}),
        ({"reported_at": "yesterday"}, {"reported_at": "INVALID_TIMESTAMP"}),
        ({"reported_at": "1772319600"}, {"reported_at": "INVALID_TIMESTAMP"}),
        ({"reported_at": 1772319600}, {"reported_at": "INVALID_TIMESTAMP"}),
        ({"location": "l" * 501}, {"location": "TOO_LONG"}),
    ],
)
def test_each_terminal_rule_has_its_code(fields: dict[str, Any], expected: dict[str, str]) -> None:
    raw = {"terminal_id": "T", "status": "online", "reported_at": "2026-03-01T10:00:00Z"}
    assert codes(terminal, raw | fields) == expected


def test_required_terminal_fields() -> None:
    assert terminal.columns().required == ("terminal_id", "status", "reported_at")


# applying -------------------------------------------------------------------


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        for name in ("a", "b"):
            connection.execute(insert(accounts).values(name=name, test=False, created_at=datetime.now(UTC)))
        yield connection
    engine.dispose()


def ctx(account_id: int = 1) -> ApplyContext:
    return ApplyContext(account_id=account_id, batch_id=1, test=False, options={})


def apply(
    conn: Connection, batch_type: BatchType, raws: list[dict[str, Any]], account_id: int = 1
) -> list[Applied]:
    records = []
    for index, raw in enumerate(raws):
        data, errors = batch_type.validate(raw)
        assert errors == ()
        records.append(StagedRecord(index, batch_type.external_id(raw), raw, data))
    return batch_type.apply(conn, ctx(account_id), records)


def actions(applied: list[Applied]) -> list[str | None]:
    return [a.action for a in applied]


def card(external_id: str, **fields: str) -> dict[str, Any]:
    return {"external_id": external_id, "barcode": BARCODE} | fields


def test_assets_are_created_updated_and_unchanged(conn: Connection) -> None:
    first = apply(conn, asset, [card("a", balance="10"), card("b")])
    assert actions(first) == [Action.CREATED, Action.CREATED]
    second = apply(conn, asset, [card("a", balance="10.00"), card("b", balance="1"), card("c")])
    assert actions(second) == [Action.UNCHANGED, Action.UPDATED, Action.CREATED]
    assert [a.entity_id for a in second[:2]] == [a.entity_id for a in first]
    rows = conn.execute(select(assets_external_assets).order_by("external_id")).mappings().all()
    assert [(r["external_id"], r["revision"], str(r["balance"])) for r in rows] == [
        ("a", 1, "10.00"),
        ("b", 2, "1.00"),
        ("c", 1, "None"),
    ]


def test_assets_are_kept_per_account(conn: Connection) -> None:
    mine = apply(conn, asset, [card("a")], account_id=1)
    theirs = apply(conn, asset, [card("a")], account_id=2)
    assert actions(theirs) == [Action.CREATED] and theirs[0].entity_id != mine[0].entity_id


def report(terminal_id: str, status: str, at: str, **fields: str) -> dict[str, Any]:
    return {"terminal_id": terminal_id, "status": status, "reported_at": at} | fields


def test_an_older_report_is_skipped_not_failed(conn: Connection) -> None:
    apply(conn, terminal, [report("T1", "online", "2026-03-01T10:00:00Z")])
    applied = apply(conn, terminal, [report("T1", "offline", "2026-03-01T22:59:59+13:00")])
    assert applied[0].ok and applied[0].action is Action.SKIPPED
    assert applied[0].note is not None and applied[0].note.code == "STALE_STATUS"
    assert applied[0].note.field == "reported_at"
    stored = conn.execute(select(assets_terminal_statuses)).mappings().one()
    assert (stored["status"], stored["revision"]) == ("online", 1)


def test_newer_and_same_reports(conn: Connection) -> None:
    first = apply(conn, terminal, [report("T1", "online", "2026-03-01T10:00:00Z")])
    same_instant = apply(conn, terminal, [report("T1", "online", "2026-03-01T23:00:00+13:00")])
    newer = apply(conn, terminal, [report("T1", "faulty", "2026-03-01T10:00:01Z", location="shop")])
    assert actions(first + same_instant + newer) == [Action.CREATED, Action.UNCHANGED, Action.UPDATED]
    assert {a.entity_id for a in first + same_instant + newer} == {first[0].entity_id}
    stored = conn.execute(select(assets_terminal_statuses)).mappings().one()
    assert (stored["status"], stored["location"], stored["revision"]) == ("faulty", "shop", 2)
    assert stored["reported_at"] == datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC)


def test_a_chunk_mixes_every_action(conn: Connection) -> None:
    apply(conn, terminal, [report(t, "online", "2026-03-01T10:00:00Z") for t in ("A", "B", "C")])
    applied = apply(
        conn,
        terminal,
        [
            report("A", "online", "2026-03-01T10:00:00Z"),
            report("B", "offline", "2026-03-01T11:00:00Z"),
            report("C", "offline", "2026-03-01T09:00:00Z"),
            report("D", "decommissioned", "2026-03-01T09:00:00Z"),
        ],
    )
    assert [a.index for a in applied] == [0, 1, 2, 3]
    assert actions(applied) == [Action.UNCHANGED, Action.UPDATED, Action.SKIPPED, Action.CREATED]
