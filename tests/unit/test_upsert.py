"""The one bulk upsert (`types/upsert.py`) on SQLite and PostgreSQL: what becomes of each
row, the spec's options, and a chunk's statements (a few, never one per row)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    select,
)

from loadbay.core.types import ApplyContext
from loadbay.db.tables import UTCDateTime
from loadbay.domain.records import Action
from loadbay.types.billing import CustomerType
from loadbay.types.upsert import Stored, Upsert, UpsertSpec, find

metadata = MetaData()
things = Table(
    "test_upsert_things",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", Integer, nullable=False),
    Column("name", String(20), nullable=False),
    Column("colour", String(20)),
    Column("amount", Numeric(14, 2)),
    Column("seen_at", UTCDateTime),
    Column("status", String(20)),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("scope", "name"),
)
PLAIN = UpsertSpec(things, ("scope", "name"), ("colour", "amount", "seen_at"))
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def conn(database_url: str) -> Iterator[Connection]:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    metadata.create_all(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def thing(name: str, scope: int = 1, **values: Any) -> dict[str, Any]:
    defaults = {"colour": "red", "amount": Decimal("1.50"), "seen_at": T0, "status": "new"}
    return {"scope": scope, "name": name} | defaults | values


def run(conn: Connection, spec: UpsertSpec, *rows: dict[str, Any]) -> list[Stored]:
    return Upsert(spec, rows).run(conn, datetime.now(UTC))


def actions(results: list[Stored]) -> list[Action]:
    return [r.action for r in results]


def stored(conn: Connection, name: str, scope: int = 1) -> Any:
    query = select(things).where(things.c.scope == scope, things.c.name == name)
    return conn.execute(query).mappings().one()


def test_rows_are_created_updated_or_left_unchanged_in_order(conn: Connection) -> None:
    first = run(conn, PLAIN, thing("a"), thing("b"))
    assert actions(first) == [Action.CREATED, Action.CREATED]
    again = run(conn, PLAIN, thing("c"), thing("b", amount="1.5"), thing("a", colour="blue"))
    assert actions(again) == [Action.CREATED, Action.UNCHANGED, Action.UPDATED]
    assert [again[2].id, again[1].id] == [first[0].id, first[1].id]
    assert (stored(conn, "a")["colour"], stored(conn, "a")["revision"]) == ("blue", 2)
    assert stored(conn, "b")["revision"] == 1, "an unchanged row is not written"


def plain(conn: Connection, *rows: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    spec = replace(PLAIN, on_create=("status",))
    names = spec.columns
    upsert = Upsert.of_columns(spec, [[row[name] for row in rows] for name in names])
    return list(zip(*upsert.run_plain(conn, datetime.now(UTC)), strict=True))


def test_run_plain_tells_each_row_by_its_action_and_id_as_text(conn: Connection) -> None:
    """The column path's `run_plain`: all created, all changed (no lookup on PostgreSQL), and
    a mix with an unchanged row (looked up), in the rows' order."""
    created = plain(conn, thing("a"), thing("b"))
    a, b = (str(stored(conn, name)["id"]) for name in "ab")
    assert created == [("created", a), ("created", b)]
    assert plain(conn, thing("b", colour="blue"), thing("a", colour="green")) == [
        ("updated", b),
        ("updated", a),
    ]
    mixed = plain(conn, thing("c"), thing("a", colour="green"), thing("b", colour="pink"))
    assert mixed == [("created", str(stored(conn, "c")["id"])), ("unchanged", a), ("updated", b)]


def test_rows_made_ready_before_the_write_take_its_time_stamp(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ready` makes SQLite's driver rows before the write transaction (on SQLite it holds the
    one write lock): the write makes none, and each row takes the write's own time stamp, also
    when the same rows are written again after a rolled-back attempt."""
    spec = replace(PLAIN, on_create=("status",))
    rows = [thing("a"), thing("b", colour="blue")]
    upsert = Upsert.of_columns(spec, [[row[name] for row in rows] for name in spec.columns]).ready(
        conn.dialect
    )
    if conn.dialect.name == "sqlite":
        monkeypatch.setattr(Upsert, "_driver_rows", lambda *_: pytest.fail("driver rows made in the write"))
    with conn.begin_nested() as attempt:
        upsert.run_plain(conn, T0)
        attempt.rollback()
    later = T0 + timedelta(hours=1)
    assert [action for action in upsert.run_plain(conn, later)[0]] == ["created", "created"]
    for name in "ab":
        assert (stored(conn, name)["created_at"], stored(conn, name)["updated_at"]) == (later, later)
    assert stored(conn, "b")["colour"] == "blue"


def test_the_scope_is_part_of_the_key(conn: Connection) -> None:
    mine = run(conn, PLAIN, thing("a", scope=1))
    theirs = run(conn, PLAIN, thing("a", scope=2), thing("a", scope=3, colour="blue"))
    assert actions(theirs) == [Action.CREATED, Action.CREATED]
    assert len({mine[0].id, theirs[0].id, theirs[1].id}) == 3


def test_timestamps_compare_as_instants(conn: Connection) -> None:
    run(conn, PLAIN, thing("a"))
    plus13 = timezone(timedelta(hours=13))
    assert actions(run(conn, PLAIN, thing("a", seen_at=T0.astimezone(plus13)))) == [Action.UNCHANGED]
    assert stored(conn, "a")["seen_at"] == T0


def test_only_the_compared_fields_decide_unchanged(conn: Connection) -> None:
    spec = UpsertSpec(things, ("scope", "name"), ("colour", "amount"), compare=("colour",))
    run(conn, spec, thing("a"))
    assert actions(run(conn, spec, thing("a", amount=Decimal(9)))) == [Action.UNCHANGED]
    assert actions(run(conn, spec, thing("a", colour="blue", amount=Decimal(9)))) == [Action.UPDATED]
    assert stored(conn, "a")["amount"] == Decimal("9.00")


def test_on_create_columns_are_set_once(conn: Connection) -> None:
    spec = UpsertSpec(things, ("scope", "name"), ("colour",), on_create=("status",))
    run(conn, spec, thing("a", status="Open"))
    assert actions(run(conn, spec, thing("a", colour="blue", status="Closed"))) == [Action.UPDATED]
    assert actions(run(conn, spec, thing("a", colour="blue", status="Other"))) == [Action.UNCHANGED]
    assert stored(conn, "a")["status"] == "Open"


def test_newest_wins(conn: Connection) -> None:
    spec = UpsertSpec(things, ("scope", "name"), ("colour", "seen_at"), newest="seen_at")
    run(conn, spec, thing("a"), thing("b"), thing("c"))
    later, earlier = T0 + timedelta(seconds=1), T0 - timedelta(seconds=1)
    results = run(
        conn,
        spec,
        thing("a", colour="blue", seen_at=earlier),
        thing("b", colour="blue", seen_at=T0),
        thing("c", colour="blue", seen_at=later),
        thing("d", seen_at=earlier),
    )
    assert actions(results) == [Action.SKIPPED, Action.UPDATED, Action.UPDATED, Action.CREATED]
    assert results[0].before == {"id": results[0].id, "revision": 1, "scope": 1, "name": "a", "seen_at": T0}
    assert stored(conn, "a")["colour"] == "red", "an older row is not written"
    assert stored(conn, "c")["seen_at"] == later
    again = run(conn, spec, thing("b", colour="blue", seen_at=T0), thing("c", colour="blue", seen_at=T0))
    assert actions(again) == [Action.UNCHANGED, Action.SKIPPED]


def test_read_gives_the_stored_values_from_before_the_write(conn: Connection) -> None:
    spec = UpsertSpec(things, ("scope", "name"), ("amount",), read=("amount",))
    created = run(conn, spec, thing("a", amount=Decimal("2.50")), thing("b"))
    assert [r.before for r in created] == [None, None]
    results = run(conn, spec, thing("a", amount=Decimal("4.00")), thing("b"))
    assert actions(results) == [Action.UPDATED, Action.UNCHANGED]
    assert [r.before and r.before["amount"] for r in results] == [Decimal("2.50"), Decimal("1.50")]


def test_find_reads_the_stored_rows_by_key(conn: Connection) -> None:
    spec = UpsertSpec(things, ("scope", "name"), ("colour", "amount"), read=("amount", "colour"))
    created = run(conn, spec, thing("a"), thing("b", scope=2))
    found = find(conn, spec, [(1, "a"), (2, "b"), (1, "b")])
    assert set(found) == {(1, "a"), (2, "b")}
    assert found[(1, "a")] == {
        "id": created[0].id,
        "revision": 1,
        "scope": 1,
        "name": "a",
        "amount": Decimal("1.50"),
        "colour": "red",
    }


def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="the same key twice"):
        Upsert(PLAIN, [thing("a"), thing("a", colour="blue")])


def test_a_chunk_takes_a_few_statements_not_one_per_row(conn: Connection) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(conn, "before_cursor_execute", count)
    run(conn, PLAIN, *(thing(f"n{i}") for i in range(1000)))
    created = len(statements)
    statements.clear()
    run(conn, PLAIN, *(thing(f"n{i}", colour="blue" if i % 2 else "red") for i in range(1200)))
    assert created <= 5 and len(statements) <= 7, (created, len(statements))


# A type whose rows the default row() cannot make is refused when its class is defined,
# not when its first batch is applied.


def test_a_type_with_a_column_no_field_gives_must_define_row() -> None:
    with pytest.raises(TypeError, match="define row"):

        class _Nicknamed(CustomerType):  # (no column rules: the record path)
            column_rules = None
            target = replace(CustomerType.target, on_create=("nickname",))


def test_a_type_on_the_column_path_must_make_its_rows_from_its_fields() -> None:
    with pytest.raises(TypeError, match="declares column_rules"):

        class _Rewritten(CustomerType):
            def row(self, ctx: ApplyContext, data: Any) -> dict[str, Any]:
                return {**super().row(ctx, data), "name": "someone else"}
