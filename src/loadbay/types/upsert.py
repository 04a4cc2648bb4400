"""The one bulk upsert: a chunk's rows created, updated or left as they are, by a unique key.

Every record type that keeps one row per record writes it here (`Upsert`), described by
an `UpsertSpec`: the key (scope columns such as account_id first), the fields a record
sets, the ones that decide "unchanged", columns set only on create, an optional "newest
wins" guard and the stored values the caller needs from before the write. Every table
written this way has `id`, `revision` (1 when created, +1 per change), `created_at` and
`updated_at`. A chunk takes a few statements, never one per row:

- PostgreSQL: one `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE <changed> RETURNING`
  that takes the whole chunk as one JSON parameter (three times faster than one array per
  column); the rows it did not write (locked by it) are then looked up in one statement
  joined to the keys' JSON, which the unique index answers whatever the planner's
  statistics say. With `read`, the stored rows are looked up that way before the write.
- SQLite: the driver's executemany of the same `INSERT … ON CONFLICT`, between two lookups
  of the stored rows (500 keys a statement, answered from the unique index): which rows
  were there, what each became. On SQLite this runs while the one write lock is held, and
  the executemany costs ~4 µs per row against ~7 for `json_each`.

`UpsertType` is a batch type built on it: a record becomes one row (`row`), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, ClassVar

import msgspec
from sqlalchemy import Connection, String, Table, TextClause, bindparam, text
from sqlalchemy.engine import Dialect

from loadbay.arrow import pa
from loadbay.core.columns import ColumnApplied, ColumnChunk
from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.engine import SQLITE_LARGEST_ROWID
from loadbay.domain.records import Action, Applied, FieldError, StagedRecord

__all__ = ["Stored", "Upsert", "UpsertSpec", "UpsertType", "find"]

Key = tuple[Any, ...]
_SELECT_BATCH = 500  # keys per SQLite lookup


@dataclass(frozen=True, slots=True)
class UpsertSpec:
    """How the rows of one table are upserted."""

    table: Table
    # The columns of the table's unique key, scope first: ("account_id", "customer_number").
    key: tuple[str, ...]
    # The columns a record sets, when its row is created and when it is updated.
    fields: tuple[str, ...]
    # The fields whose change makes a row `updated` (written, revision + 1); when none of
    # them changed the row is `unchanged` and not written. Default: every field.
    compare: tuple[str, ...] = ()
    # Columns set when a row is created and never changed afterwards (an invoice's status).
    on_create: tuple[str, ...] = ()
    # "Newest wins": a row whose value of this field is older than the stored one's is not
    # written, and is `skipped` (a terminal's status report older than the stored one).
    newest: str | None = None
    # Stored columns the caller needs as they were before the write (`Stored.before`).
    read: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not set(self.compare) <= set(self.fields):
            raise ValueError(f"{self.table.name}: compare {self.compare} is not among the fields")
        if self.newest is not None and self.newest not in self.fields:
            raise ValueError(f"{self.table.name}: newest {self.newest!r} is not a field")

    @property
    def compared(self) -> tuple[str, ...]:
        return self.compare or self.fields

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a row gives, in the order the statements take them."""
        return self.key + self.fields + self.on_create

    @property
    def looked_up(self) -> tuple[str, ...]:
        """The stored columns a lookup reads: id, revision, the key, `read` and `newest`."""
        newest = () if self.newest is None else (self.newest,)
        return tuple(dict.fromkeys(("id", "revision", *self.key, *self.read, *newest)))


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one row."""

    id: int
    action: Action
    # The stored row as it was before the write (id, revision, the key, `read`, `newest`):
    # for a row left as it was (unchanged or skipped) when the spec has `read` or `newest`,
    # for an updated one when it has `read`; else None (always for a created row).
    before: Mapping[str, Any] | None = None


class Upsert:
    """A chunk's rows ready to write, their cells picked out before the write transaction
    opens (on SQLite it holds the one write lock).

    `rows`: each row's key columns, fields and `on_create` columns, as Python values of the
    columns' types (a decimal may be its text). The keys must be distinct.
    """

    __slots__ = ("_cell_rows", "_columns", "_newest_at", "_stampless", "keys", "rows", "spec")

    def __init__(self, spec: UpsertSpec, rows: Sequence[Mapping[str, Any]]) -> None:
        names = spec.columns
        cells = [[row[name] for name in names] for row in rows]
        self._setup(spec, rows, [tuple(row[: len(spec.key)]) for row in cells])
        self._cell_rows: list[list[Any]] | None = cells

    @classmethod
    def of_columns(cls, spec: UpsertSpec, columns: Sequence[list[Any]]) -> Upsert:
        """The rows given a column at a time, in `spec.columns` order (no `newest` guard)."""
        if spec.newest is not None:
            raise ValueError(f"{spec.table.name}: an upsert with a newest guard needs its rows")
        upsert = cls.__new__(cls)
        upsert._setup(spec, (), list(zip(*columns[: len(spec.key)], strict=True)))
        upsert._cell_rows, upsert._columns = None, columns
        return upsert

    def _setup(self, spec: UpsertSpec, rows: Sequence[Mapping[str, Any]], keys: list[Key]) -> None:
        self.spec = spec
        self.rows = rows
        self.keys = keys
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"{spec.table.name}: the same key twice in one upsert")
        self._columns: Sequence[list[Any]] | None = None
        self._newest_at = None if spec.newest is None else spec.looked_up.index(spec.newest)
        self._stampless: list[list[Any]] | None = None

    def ready(self, dialect: Dialect | None) -> Upsert:
        """Make the rows as SQLite's driver takes them now, before the write transaction (on
        SQLite it holds the one write lock), with a last cell left for the write's time stamp;
        nothing for another database (or None)."""
        if dialect is not None and dialect.name == "sqlite":
            self._stampless = list(map(list, self._driver_rows(dialect, (None,))))
        return self

    def _sqlite_rows(self, dialect: Dialect, stamp: Any) -> Sequence[Sequence[Any]]:
        """The driver rows, each ending with the write's time stamp (made `ready` or now)."""
        if self._stampless is None:
            return self._driver_rows(dialect, (stamp,))
        for row in self._stampless:
            row[-1] = stamp
        return self._stampless

    @property
    def _cells(self) -> list[list[Any]]:
        """The rows' cells, a row at a time."""
        if self._cell_rows is None:
            assert self._columns is not None
            self._cell_rows = [list(cells) for cells in zip(*self._columns, strict=True)]
        return self._cell_rows

    def _driver_rows(self, dialect: Dialect, tail: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """`_processed` rows (a column at a time when the rows were given so)."""
        if self._columns is not None:
            return _processed_columns(dialect, self.spec, self._columns, tail)
        return _processed(dialect, self.spec, self._cells, tail)

    def run(self, conn: Connection, now: datetime) -> list[Stored]:
        """Write the rows in the open transaction; what became of each, in order."""
        if not self.keys:
            return []
        if conn.dialect.name == "sqlite":
            return self._run_sqlite(conn, now)
        return self._run_postgresql(conn, now)

    def run_plain(self, conn: Connection, now: datetime) -> tuple[list[str | None], list[str | None]]:
        """`run` for a spec without `read` or `newest`: each row's action and id, as text."""
        if not self.keys:
            return [], []
        if conn.dialect.name == "sqlite":
            return self._plain_sqlite(conn, now)
        written = self._merge_postgresql(conn, now)
        if len(written) == len(self.keys):  # every row created or changed: no lookup, no outcomes
            pairs = [written[key] for key in self.keys]
            created, updated = Action.CREATED.value, Action.UPDATED.value
            return [created if revision == 1 else updated for _, revision in pairs], [
                str(row_id) for row_id, _ in pairs
            ]
        return _as_text(self._stored_postgresql(conn, written, {}))

    def _plain_sqlite(self, conn: Connection, now: datetime) -> tuple[list[str | None], list[str | None]]:
        spec = self.spec
        stamp = _processor(conn.dialect, spec.table, "updated_at")(now)
        rows = self._sqlite_rows(conn.dialect, stamp)
        created = _insert_new(conn, spec, rows)
        if isinstance(created, range):  # every row is new
            return ["created"] * len(self.keys), list(map(str, created))
        if created is not None and len(created) == len(self.keys):
            return ["created"] * len(self.keys), [str(created[key]) for key in self.keys]
        return _as_text(self._settled_sqlite(conn, rows, stamp, created))

    def _run_postgresql(self, conn: Connection, now: datetime) -> list[Stored]:
        before = _looked_up(conn, self.spec, self.keys) if self.spec.read else {}
        return self._stored_postgresql(conn, self._merge_postgresql(conn, now), before)

    def _merge_postgresql(self, conn: Connection, now: datetime) -> dict[Key, tuple[int, int]]:
        """The merge: the (id, revision) of each row it wrote, by key."""
        statement = _statement(conn.dialect, self.spec)
        params = {"now": now, "rows": _json(self._driver_rows(conn.dialect, ()))}
        return {tuple(r[1:-1]): (r[0], r[-1]) for r in conn.execute(statement, params).all()}

    def _stored_postgresql(
        self, conn: Connection, written: dict[Key, tuple[int, int]], before: dict[Key, _Row]
    ) -> list[Stored]:
        """What became of each row, given what the merge wrote and (with `read`) the stored
        rows before it."""
        spec = self.spec
        # The rows left as they were are locked by the merge: read now, they are what it compared.
        left = [k for k in self.keys if k not in written and (spec.newest or k not in before)]
        stored = before | _looked_up(conn, spec, left)
        return [
            self._outcome(i, written.get(k), stored.get(k), before.get(k)) for i, k in enumerate(self.keys)
        ]

    def _run_sqlite(self, conn: Connection, now: datetime) -> list[Stored]:
        """The new rows first, by one executemany of `INSERT … ON CONFLICT DO NOTHING` whose
        rows are then read back by their ids (the write lock is held: every id above the
        largest before is ours); the others as `_merge_sqlite` merges them."""
        spec = self.spec
        stamp = _processor(conn.dialect, spec.table, "updated_at")(now)
        rows = self._sqlite_rows(conn.dialect, stamp)
        if spec.read or spec.newest is not None:
            return self._merge_sqlite(conn, list(range(len(rows))), rows)
        return self._settled_sqlite(conn, rows, stamp, _insert_new(conn, spec, rows))

    def _settled_sqlite(
        self, conn: Connection, rows: Sequence[Sequence[Any]], stamp: Any, created: _Created
    ) -> list[Stored]:
        """What became of each row once `_insert_new` inserted the new ones (`created`: their
        ids, or None when it could not tell): the others merged."""
        if isinstance(created, range):
            created = dict(zip(self.keys, created, strict=True))
        if created is None:  # (ids past 2**63 - 1: SQLite picks them at random) told by the time stamp
            created = _created_at(conn, self.spec, self.keys, stamp)
        rest = [i for i, key in enumerate(self.keys) if key not in created]
        merged = dict(zip(rest, self._merge_sqlite(conn, rest, [rows[i] for i in rest]), strict=True))
        return [
            Stored(created[key], Action.CREATED) if key in created else merged[i]
            for i, key in enumerate(self.keys)
        ]

    def _merge_sqlite(
        self, conn: Connection, positions: list[int], rows: Sequence[Sequence[Any]]
    ) -> list[Stored]:
        """Rows `positions` (made `rows`) by the executemany of the merge, between two lookups
        of the stored rows: which were there, what each became."""
        if not rows:
            return []
        spec = self.spec
        keys = [self.keys[i] for i in positions]
        before = _looked_up(conn, spec, keys)
        conn.exec_driver_sql(_statement(conn.dialect, spec).text, [tuple(row) for row in rows])
        after = _looked_up(conn, spec, keys)
        outcomes = []
        for i, key in zip(positions, keys, strict=True):
            was, now_is = before.get(key), after[key]
            if was is None:
                outcomes.append(Stored(now_is[0], Action.CREATED))
                continue
            same = was[1] == now_is[1]  # the revision did not move
            outcomes.append(self._outcome(i, None if same else (now_is[0], now_is[1]), was, was))
        return outcomes

    def _outcome(
        self, i: int, written: tuple[int, int] | None, stored: _Row | None, before: _Row | None
    ) -> Stored:
        """Row i's outcome: from its (id, revision) when it was written, else from its
        stored row (as `_looked_up` reads it)."""
        spec = self.spec
        if written is not None:
            row_id, revision = written
            if revision == 1:
                return Stored(row_id, Action.CREATED)
            return Stored(row_id, Action.UPDATED, self._values(before) if spec.read else None)
        if stored is None:  # gone since the write: no outcome can be told
            raise RuntimeError(f"{spec.table.name}: row {self.keys[i]} vanished while upserted")
        values = self._values(stored) if spec.read or spec.newest else None
        at = self._newest_at
        if at is not None and self.rows[i][spec.looked_up[at]] < stored[at]:
            return Stored(stored[0], Action.SKIPPED, values)
        return Stored(stored[0], Action.UNCHANGED, values)

    def _values(self, row: _Row | None) -> dict[str, Any] | None:
        return None if row is None else dict(zip(self.spec.looked_up, row, strict=True))


def _as_text(stored: Sequence[Stored]) -> tuple[list[str | None], list[str | None]]:
    return [s.action.value for s in stored], [str(s.id) for s in stored]


_Row = Sequence[Any]  # a stored row's `UpsertSpec.looked_up` columns: id, revision, the key, …


def find(conn: Connection, spec: UpsertSpec, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
    """The stored rows among `keys` (id, revision, the key, `read` and `newest`), by key."""
    columns = spec.looked_up
    return {key: dict(zip(columns, row, strict=True)) for key, row in _looked_up(conn, spec, keys).items()}


def _looked_up(conn: Connection, spec: UpsertSpec, keys: Sequence[Key]) -> dict[Key, _Row]:
    """The stored rows among `keys`, by key, each as its `looked_up` columns."""
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        rows: Iterable[_Row] = conn.execute(_lookup(conn.dialect, spec), {"keys": _json(keys)}).all()
    else:
        rows = _sqlite_lookup(conn, spec, keys)
    end = 2 + len(spec.key)
    return {tuple(row[2:end]): row for row in rows}


def _sqlite_lookup(conn: Connection, spec: UpsertSpec, keys: Sequence[Key]) -> Iterator[Sequence[Any]]:
    """SQLite: the stored rows among `keys`, through the driver (SQLAlchemy's statement and
    row handling would cost more than the lookup), 500 keys a statement, as
    `scope = ? AND last IN (?, …)`: answered from the unique index. The values of columns
    whose type processes them (a decimal, a timestamp) are made Python values here."""
    columns, names = spec.looked_up, spec.key
    steps = _result_steps(conn.dialect, spec)
    groups: dict[Key, list[Any]] = {}
    for key in keys:
        groups.setdefault(key[:-1], []).append(key[-1])
    where = "".join(f"{name} = ? AND " for name in names[:-1])
    for prefix, lasts in groups.items():
        for start in range(0, len(lasts), _SELECT_BATCH):
            part = lasts[start : start + _SELECT_BATCH]
            sql = (
                f"SELECT {', '.join(columns)} FROM {spec.table.name} "
                f"WHERE {where}{names[-1]} IN ({', '.join('?' * len(part))})"
            )
            cursor = conn.connection.cursor()  # the transaction's own; SQLAlchemy's rows cost ~1 µs each
            try:
                cursor.execute(sql, (*prefix, *part))
                found = cursor.fetchall()
            finally:
                cursor.close()
            for row in found:
                if not steps:
                    yield row
                    continue
                values = list(row)
                for i, process in steps:
                    values[i] = process(values[i])
                yield values


# What `_insert_new` tells of the ids of the rows it inserted.
_Created = dict[Key, int] | range | None


def _insert_new(conn: Connection, spec: UpsertSpec, rows: Sequence[Sequence[Any]]) -> _Created:
    """SQLite: insert the rows whose key is not stored yet; their ids: a range when every row
    was new (each took the largest id so far plus one, in the rows' order: the write lock is
    held), else by key, or None when the rows above the largest id before are not just the
    ones inserted."""
    table, width = spec.table.name, len(spec.key)
    cursor = conn.connection.cursor()
    try:
        top = cursor.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0
        cursor.executemany(_insert_statement(spec), rows)
        inserted = cursor.rowcount
        if inserted == len(rows) and top + inserted < SQLITE_LARGEST_ROWID:
            found = cursor.execute(f"SELECT count(*), min(id), max(id) FROM {table} WHERE id > ?", (top,))
            if tuple(found.fetchone()) == (inserted, top + 1, top + inserted):
                return range(top + 1, top + inserted + 1)
        found = cursor.execute(
            f"SELECT id, {', '.join(spec.key)} FROM {table} WHERE id > ?", (top,)
        ).fetchall()
    finally:
        cursor.close()
    if len(found) != inserted:
        return None
    return {tuple(row[1 : 1 + width]): row[0] for row in found}


def _created_at(conn: Connection, spec: UpsertSpec, keys: Sequence[Key], stamp: Any) -> dict[Key, int]:
    """The ids of the rows among `keys` created by this transaction (their created_at is its
    time stamp, which no earlier row of these keys can have)."""
    where = " AND ".join(f"{name} = ?" for name in spec.key)
    sql = f"SELECT id, created_at FROM {spec.table.name} WHERE {where}"
    created = {}
    for key in keys:
        row = conn.exec_driver_sql(sql, key).first()
        if row is not None and row[1] == stamp:
            created[key] = row[0]
    return created


# statements -------------------------------------------------------------------------

_INSERTS: dict[UpsertSpec, str] = {}


def _insert_statement(spec: UpsertSpec) -> str:
    """SQLite: the rows of the merge, inserted only where the key is new."""
    statement = _INSERTS.get(spec)
    if statement is None:
        names = spec.columns
        stamp = f"?{len(names) + 1}"
        values = ", ".join(f"?{i}" for i in range(1, len(names) + 1))
        statement = _INSERTS[spec] = (
            f"INSERT INTO {spec.table.name} ({', '.join(names)}, revision, created_at, updated_at) "
            f"VALUES ({values}, 1, {stamp}, {stamp}) ON CONFLICT ({', '.join(spec.key)}) DO NOTHING"
        )
    return statement


_JSON = msgspec.json.Encoder(decimal_format="string")
_Processor = Callable[[Any], Any]
_STATEMENTS: dict[tuple[str, UpsertSpec], TextClause] = {}
_LOOKUPS: dict[UpsertSpec, Any] = {}
_PROCESSORS: dict[tuple[str, UpsertSpec], list[tuple[int, _Processor]]] = {}
_RESULTS: dict[tuple[str, UpsertSpec], list[tuple[int, _Processor]]] = {}


def _json(values: Any) -> str:
    return _JSON.encode(values).decode()


def _result_steps(dialect: Dialect, spec: UpsertSpec) -> list[tuple[int, _Processor]]:
    """The looked-up columns whose type makes the driver's value a Python one, by position."""
    steps = _RESULTS.get((dialect.name, spec))
    if steps is None:
        steps = _RESULTS[(dialect.name, spec)] = []
        for i, name in enumerate(spec.looked_up):
            column_type = spec.table.c[name].type.dialect_impl(dialect)
            process = column_type.result_processor(dialect, None)
            if process is not None:
                steps.append((i, process))
    return steps


def _steps(dialect: Dialect, spec: UpsertSpec) -> list[tuple[int, _Processor]]:
    """The columns (by position in `spec.columns`) whose type processes a value to bind."""
    steps = _PROCESSORS.get((dialect.name, spec))
    if steps is None:
        named = enumerate(spec.columns)
        steps = _PROCESSORS[(dialect.name, spec)] = [
            (i, process) for i, name in named if (process := _bind(dialect, spec.table, name)) is not None
        ]
    return steps


def _processed(
    dialect: Dialect, spec: UpsertSpec, cells: list[list[Any]], tail: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Each row's cells as the driver takes them, then `tail`: each column type's bind
    processing (a date as text on SQLite, a UTC timestamp naive), only for the columns that
    have one."""
    steps = _steps(dialect, spec)
    if not steps:
        return [(*row, *tail) for row in cells]
    out = []
    for row in cells:
        values = [*row, *tail]
        for i, process in steps:
            value = values[i]
            if value is not None:
                values[i] = process(value)
        out.append(tuple(values))
    return out


def _processed_columns(
    dialect: Dialect, spec: UpsertSpec, columns: Sequence[list[Any]], tail: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """`_processed` of rows given a column at a time: each processing column's values mapped."""
    processed = list(columns)
    for i, process in _steps(dialect, spec):
        processed[i] = [None if value is None else process(value) for value in columns[i]]
    count = len(columns[0]) if columns else 0
    return list(zip(*processed, *(repeat(value, count) for value in tail), strict=True))


def _bind(dialect: Dialect, table: Table, name: str) -> _Processor | None:
    processor: _Processor | None = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _processor(dialect: Dialect, table: Table, name: str) -> _Processor:
    return _bind(dialect, table, name) or (lambda value: value)


def _statement(dialect: Dialect, spec: UpsertSpec) -> TextClause:
    """The merge statement for `spec` on this database (built once)."""
    statement = _STATEMENTS.get((dialect.name, spec))
    if statement is None:
        statement = _STATEMENTS[(dialect.name, spec)] = _build_merge(dialect, spec)
    return statement


def _pg_type(table: Table, name: str, dialect: Dialect) -> str:
    """What a cell from JSON is cast to: text for strings (a CAST to VARCHAR(n) would cut an
    over-long value silently; the column itself refuses it), else the column's own type."""
    column_type = table.c[name].type
    return "text" if isinstance(column_type, String) else column_type.compile(dialect=dialect)


def _build_merge(dialect: Dialect, spec: UpsertSpec) -> TextClause:
    table, name = spec.table, spec.table.name
    names = spec.columns
    if dialect.name == "postgresql":
        cells = ", ".join(f"CAST(r ->> {i} AS {_pg_type(table, n, dialect)})" for i, n in enumerate(names))
        source = f"SELECT {cells}, 1, :now, :now FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r"
        stored = ", ".join(f"{name}.{n}" for n in spec.compared)
        given = ", ".join(f"excluded.{n}" for n in spec.compared)
        differs = f"({stored}) IS DISTINCT FROM ({given})"
        returning = f" RETURNING id, {', '.join(spec.key)}, revision"
    else:  # one row of the driver's executemany: its cells, then the time
        stamp = f"?{len(names) + 1}"
        source = f"VALUES ({', '.join(f'?{i}' for i in range(1, len(names) + 1))}, 1, {stamp}, {stamp})"
        differs = "(" + " OR ".join(f"{name}.{n} IS NOT excluded.{n}" for n in spec.compared) + ")"
        returning = ""
    if spec.newest is not None:
        differs += f" AND excluded.{spec.newest} >= {name}.{spec.newest}"
    sets = ", ".join(f"{n} = excluded.{n}" for n in spec.fields)
    sql = (
        f"INSERT INTO {name} ({', '.join(names)}, revision, created_at, updated_at) {source} "
        f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {sets}, "
        f"revision = {name}.revision + 1, updated_at = excluded.updated_at WHERE {differs}"
        f"{returning}"
    )
    if dialect.name != "postgresql":
        return text(sql)
    return text(sql).bindparams(bindparam("now", type_=table.c.updated_at.type))


def _lookup(dialect: Dialect, spec: UpsertSpec) -> Any:
    """PostgreSQL: the stored rows whose keys are in the JSON array `:keys`, joined on the
    unique key (so the index answers, not a plan from stale statistics)."""
    statement = _LOOKUPS.get(spec)
    if statement is None:
        table, name = spec.table, spec.table.name
        on = " AND ".join(
            f"{name}.{n} = CAST(k ->> {i} AS {_pg_type(table, n, dialect)})" for i, n in enumerate(spec.key)
        )
        columns = spec.looked_up
        sql = (
            f"SELECT {', '.join(f'{name}.{n}' for n in columns)} "
            f"FROM jsonb_array_elements(CAST(:keys AS jsonb)) AS k JOIN {name} ON {on}"
        )
        statement = _LOOKUPS[spec] = text(sql).columns(*(table.c[n] for n in columns))
    return statement


# the batch type ----------------------------------------------------------------------


class UpsertType(BatchType):
    """A batch type whose valid records each become one row of `target`'s table: created,
    updated or left unchanged by its key (or skipped, under a `newest` guard)."""

    target: ClassVar[UpsertSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a type whose rows the default `row` cannot make (a target column that is
        neither the account's id nor a field of the model) unless it defines `row`, and a
        type on the column path whose rows are not its model's fields or that has a
        `newest` guard."""
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "target") or not hasattr(cls, "model"):
            return  # (a base for other types)
        if cls.row is UpsertType.row and _row_columns(cls) is None:
            raise TypeError(f"{cls.__qualname__}: its rows are not its model's fields; define row()")
        if cls.column_rules is not None and (_row_columns(cls) is None or cls.target.newest is not None):
            raise TypeError(
                f"{cls.__qualname__} declares column_rules, but its rows are not its model's "
                "fields as the default row() makes them, or its target has a newest guard"
            )

    def row(self, ctx: ApplyContext, data: Mapping[str, Any]) -> dict[str, Any]:
        """The row a valid record's values become: key columns, fields, `on_create` columns.
        By default the account's id and the model's fields as they are (absent: None); a type
        that writes anything else overrides it, and cannot take the column path."""
        row: dict[str, Any] = {name: data.get(name) for name in self.model.model_fields}
        row["account_id"] = ctx.account_id
        return row

    @property
    def row_from_fields(self) -> tuple[str, ...] | None:
        """The target's columns when each is the account's id or a field of the model, as the
        default `row` makes them; else None."""
        return _row_columns(type(self))

    def prepare_columns(self, ctx: ApplyContext, chunk: ColumnChunk, valid: Sequence[int]) -> Upsert:
        """The valid records' rows, a column at a time (the default `row`, from the data
        columns: a type on the column path has such rows, see `__init_subclass__`)."""
        columns = self.row_from_fields
        assert columns is not None
        picked = None if len(valid) == len(chunk) else pa.array(valid, pa.int64())
        cells: list[list[Any]] = [
            [ctx.account_id] * len(valid)
            if name == "account_id"
            else (chunk.data[name] if picked is None else chunk.data[name].take(picked)).to_pylist()
            for name in columns
        ]
        return Upsert.of_columns(self.target, cells).ready(ctx.dialect)

    def apply_columns(
        self, conn: Connection, ctx: ApplyContext, chunk: ColumnChunk, valid: Sequence[int], prepared: Upsert
    ) -> ColumnApplied:
        actions, ids = prepared.run_plain(conn, datetime.now(UTC))
        return ColumnApplied(actions, ids)

    def skipped(self, row: Mapping[str, Any], stored: Mapping[str, Any]) -> FieldError | None:
        """Why a record whose `newest` value is older than the stored one's was skipped."""
        return None

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        return self.apply_prepared(conn, ctx, records, self.prepare(ctx, records))

    def prepare(self, ctx: ApplyContext, records: Sequence[StagedRecord]) -> tuple[list[int], Upsert]:
        """(the valid records' indexes, their rows ready to write)."""
        valid = [(r.index, r.data) for r in records if r.data is not None]
        upsert = Upsert(self.target, [self.row(ctx, data) for _, data in valid])
        return [i for i, _ in valid], upsert.ready(ctx.dialect)

    def apply_prepared(
        self,
        conn: Connection,
        ctx: ApplyContext,
        records: Sequence[StagedRecord],
        prepared: tuple[list[int], Upsert],
    ) -> list[Applied]:
        indexes, upsert = prepared
        results = upsert.run(conn, datetime.now(UTC))
        return [
            self._applied(index, row, stored)
            for index, row, stored in zip(indexes, upsert.rows, results, strict=True)
        ]

    def _applied(self, index: int, row: Mapping[str, Any], stored: Stored) -> Applied:
        note = None
        if stored.action is Action.SKIPPED and stored.before is not None:
            note = self.skipped(row, stored.before)
        return Applied(index, stored.action, str(stored.id), note=note)


def _row_columns(cls: type[UpsertType]) -> tuple[str, ...] | None:
    """The target's columns when the default `row` makes them (each is the account's id or
    a field of the model, and `row` is not overridden); else None."""
    fields = set(cls.model.model_fields)
    columns = cls.target.columns
    if cls.row is not UpsertType.row or not set(columns) <= fields | {"account_id"}:
        return None
    return columns
