"""Every statement about accounts, batches, their inputs, events and errors.

Functions take an open connection, so the caller decides what commits together.
The chunk queue's statements live in `loadbay.db.queue`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    RowMapping,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from loadbay.db.tables import (
    accounts,
    api_keys,
    batch_events,
    batch_inputs,
    batch_keys,
    batches,
    child_shares,
    chunk_payloads,
    chunks,
    record_errors,
)
from loadbay.domain.lifecycle import Event, Milestone, Status
from loadbay.domain.models import Account, Batch, BatchEvent, Counts, ErrorExample, ErrorGroup, ErrorRow

__all__ = [
    "COUNT_FIELDS",
    "account_by_key_hash",
    "add_counts",
    "add_event",
    "batch_by_job_id",
    "children",
    "claim_results",
    "confirm_input",
    "delete_inputs",
    "delete_shares",
    "delete_some_keys",
    "delete_some_shares",
    "error_count",
    "error_examples",
    "error_groups",
    "errors_page",
    "events",
    "expect_input",
    "expired_batches",
    "files_removed",
    "get_batch",
    "input_items",
    "input_totals",
    "insert_account",
    "insert_batch",
    "insert_errors",
    "insert_key",
    "insert_shares",
    "keep_version",
    "latest_events",
    "list_batches",
    "list_inputs",
    "payloads_holding",
    "pending_inputs",
    "received_files",
    "release_keys",
    "results_due",
    "results_stored",
    "results_wanted",
    "seen_keys",
    "staging_left",
    "set_item_counts",
    "set_status",
    "shares_of",
    "update_batch",
    "upsert_input",
]

COUNT_FIELDS = ("total", "valid", "invalid", "succeeded", "failed", "unprocessed")


def now() -> datetime:
    return datetime.now(UTC)


# accounts ------------------------------------------------------------------


def insert_account(conn: Connection, name: str, test: bool) -> Account:
    values = {"name": name, "test": test, "created_at": now()}
    account_id = conn.execute(insert(accounts).values(values).returning(accounts.c.id)).scalar_one()
    return Account(id=account_id, name=name, test=test)


def insert_key(conn: Connection, account_id: int, key_hash: str, prefix: str) -> None:
    values = {"account_id": account_id, "key_hash": key_hash, "prefix": prefix, "created_at": now()}
    conn.execute(insert(api_keys).values(values))


# The statements of a status request (GET /v1/batches/{id}, which clients poll) are built
# once, with bound parameters: building one per call, then its cache key and its result's
# columns, cost more than running it on SQLite.

_ACCOUNT_OF_KEY = (
    select(accounts.c.id, accounts.c.name, accounts.c.test)
    .join(api_keys, api_keys.c.account_id == accounts.c.id)
    .where(api_keys.c.key_hash == bindparam("key_hash"))
)


def account_by_key_hash(conn: Connection, key_hash: str) -> Account | None:
    row = conn.execute(_ACCOUNT_OF_KEY, {"key_hash": key_hash}).first()
    return None if row is None else Account(id=row.id, name=row.name, test=row.test)


def lock_account(conn: Connection, account_id: int) -> None:
    """Hold the account's row until the transaction ends, so that account-wide rules checked
    in it (one active batch of some types) see every other such transaction's batches.
    PostgreSQL: FOR UPDATE; SQLite's write transactions are serialised already."""
    conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())


def account_by_name(conn: Connection, name: str) -> Account | None:
    row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
    return None if row is None else Account(id=row.id, name=row.name, test=row.test)


# batches -------------------------------------------------------------------


def insert_batch(conn: Connection, values: Mapping[str, Any]) -> int:
    stamp = now()
    row = {"created_at": stamp, "updated_at": stamp, "warnings": "[]", "status": Status.OPEN}
    row |= {name: 0 for name in COUNT_FIELDS} | dict(values)
    row["options"] = json.dumps(row.get("options") or {}, sort_keys=True)
    row.setdefault("ref", new_ref())
    return int(conn.execute(insert(batches).values(row).returning(batches.c.id)).scalar_one())


def get_batch(conn: Connection, account_id: int | None, batch_id: int, *, lock: bool = False) -> Batch | None:
    """The batch (of this account, unless None); `lock` holds its row until commit (PostgreSQL)."""
    if account_id is None:
        query, params = _BATCH[lock], {"batch_id": batch_id}
    else:
        query, params = _ACCOUNT_BATCH[lock], {"batch_id": batch_id, "account_id": account_id}
    row = conn.execute(query, params).mappings().first()
    return None if row is None else _batch(row)


_KEY_BATCH = (
    select(batches)
    .join(api_keys, api_keys.c.account_id == batches.c.account_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), batches.c.id == bindparam("batch_id"))
)


def status_of_key(
    conn: Connection, key_hash: str, batch_id: int, stage_events: Sequence[str]
) -> tuple[Batch, int | None, dict[str, datetime]] | None:
    """What a status request reads, in one statement: the batch (if the account whose API key
    has this hash owns it), as `input_totals` the records its inputs hold, and as
    `latest_events` when each of `stage_events` last happened to it."""
    params = {"key_hash": key_hash, "batch_id": batch_id} | _stage_params(stage_events)
    row = conn.execute(_key_status(len(stage_events)), params).mappings().first()
    if row is None:
        return None
    total = row["input_total"]
    stages = {name: _aware(row[f"stage_{n}"]) for n, name in enumerate(stage_events) if row[f"stage_{n}"]}
    return _batch(row), None if total is None else int(total), stages


def _stage_params(names: Sequence[str]) -> dict[str, str]:
    return {f"stage_name_{n}": name for n, name in enumerate(names)}


_KEY_STATUS: dict[int, Any] = {}


def _key_status(stages: int) -> Any:
    """The batch of the account whose API key has a hash (`_KEY_BATCH`), with its input total
    and the time of its last event of each of `stages` names, as correlated subqueries
    (built once per number of names)."""
    if stages not in _KEY_STATUS:
        inputs = batch_inputs.c
        counted = func.count() == func.count(inputs.item_count)
        total = (
            select(case((and_(func.count() > 0, counted), func.sum(inputs.item_count))))
            .where(inputs.batch_id == batches.c.id)
            .scalar_subquery()
        )
        events = batch_events.c
        latest = [
            select(func.max(events.at))
            .where(events.batch_id == batches.c.id, events.event == bindparam(f"stage_name_{n}"))
            .scalar_subquery()
            .label(f"stage_{n}")
            for n in range(stages)
        ]
        _KEY_STATUS[stages] = _KEY_BATCH.add_columns(total.label("input_total"), *latest)
    return _KEY_STATUS[stages]


_ANY_BATCH = select(batches).where(batches.c.id == bindparam("batch_id"))
_BATCH = {False: _ANY_BATCH, True: _ANY_BATCH.with_for_update()}
_ANY_ACCOUNT_BATCH = _ANY_BATCH.where(batches.c.account_id == bindparam("account_id"))
_ACCOUNT_BATCH = {False: _ANY_ACCOUNT_BATCH, True: _ANY_ACCOUNT_BATCH.with_for_update()}


def new_ref() -> str:
    """An opaque, unguessable batch reference (22 characters of base 58)."""
    return "".join(secrets.choice(_BASE58) for _ in range(22))


_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def batch_by_ref(conn: Connection, account_id: int, ref: str) -> Batch | None:
    query = select(batches).where(batches.c.account_id == account_id, batches.c.ref == ref)
    row = conn.execute(query).mappings().first()
    return None if row is None else _batch(row)


def batch_by_job_id(conn: Connection, account_id: int, job_id: str) -> tuple[Batch, str] | None:
    """The batch with this job_id and the fingerprint of the body that created it."""
    query = select(batches).where(batches.c.account_id == account_id, batches.c.job_id == job_id)
    row = conn.execute(query).mappings().first()
    return None if row is None else (_batch(row), row["fingerprint"])


def list_batches(
    conn: Connection,
    account_id: int,
    *,
    filters: Mapping[str, Any],
    before_id: int | None,
    limit: int,
    search: str | None = None,
) -> list[Batch]:
    """Newest first; `before_id` is the cursor of the next page; `search` is text the job id
    or the description holds (in any letter case). A filter's value is one value, or a list
    of them (any of them)."""
    query = select(batches).where(batches.c.account_id == account_id)
    for name, value in filters.items():
        if isinstance(value, list | tuple | set | frozenset):
            query = query.where(batches.c[name].in_(list(value)))
        else:
            query = query.where(batches.c[name] == value)
    if search:
        query = query.where(_holds(batches.c.job_id, search) | _holds(batches.c.description, search))
    if before_id is not None:
        query = query.where(batches.c.id < before_id)
    query = query.order_by(batches.c.id.desc()).limit(limit)
    return [_batch(row) for row in conn.execute(query).mappings()]


def _holds(column: Column[Any], part: str) -> Any:
    """`column` holds `part` as it is (no LIKE wildcards), in any letter case."""
    escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def active_batch(conn: Connection, account_id: int, types: Sequence[str]) -> Batch | None:
    """The account's oldest batch of these types that is submitted but not yet final."""
    active = [Status.QUEUED, Status.VALIDATING, Status.VALIDATED, Status.PROCESSING]
    query = (
        select(batches)
        .where(batches.c.account_id == account_id, batches.c.type.in_(types), batches.c.status.in_(active))
        .order_by(batches.c.id)
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else _batch(row)


def children(conn: Connection, parent_id: int) -> list[Batch]:
    query = select(batches).where(batches.c.parent_id == parent_id).order_by(batches.c.id)
    return [_batch(row) for row in conn.execute(query).mappings()]


def retries_of(conn: Connection, batch_id: int) -> list[tuple[int, str | None]]:
    """(id, outcomes taken: comma-separated, or None for a retry made before they were kept)
    of each retry of the batch, oldest first."""
    c = batches.c
    query = select(c.id, c.retry_outcomes).where(c.retry_of == batch_id).order_by(c.id)
    return [(row.id, row.retry_outcomes) for row in conn.execute(query)]


def update_batch(conn: Connection, batch_id: int, **values: Any) -> None:
    if "warnings" in values:
        values["warnings"] = json.dumps(values["warnings"])
    conn.execute(update(batches).where(batches.c.id == batch_id).values(updated_at=now(), **values))


def set_status(
    conn: Connection, batch_id: int, status: Status, event: Event, detail: str | None = None, **values: Any
) -> None:
    """Move the batch to `status` and record the event (the caller checked the move)."""
    update_batch(conn, batch_id, status=status, **values)
    add_event(conn, batch_id, event, status, detail)


def add_counts(conn: Connection, batch_id: int, **deltas: int) -> None:
    changes = {name: batches.c[name] + delta for name, delta in deltas.items() if delta}
    if changes:
        conn.execute(update(batches).where(batches.c.id == batch_id).values(updated_at=now(), **changes))


def reset_counts(conn: Connection, batch_id: int) -> None:
    update_batch(conn, batch_id, **{name: 0 for name in COUNT_FIELDS})


def _batch(row: RowMapping) -> Batch:
    counts = Counts(**{name: int(row[name]) for name in COUNT_FIELDS})
    return Batch(
        id=row["id"],
        account_id=row["account_id"],
        ref=row["ref"],
        type=row["type"],
        job_id=row["job_id"],
        description=row["description"],
        test=row["test"],
        parent_id=row["parent_id"],
        process_mode=row["process_mode"],
        options=json.loads(row["options"]),
        source_url=row["source_url"],
        page_size=row["page_size"],
        total_items=row["total_items"],
        status=Status(row["status"]),
        outcome=row["outcome"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        warnings=json.loads(row["warnings"]),
        counts=counts,
        created_at=row["created_at"],
        submitted_at=row["submitted_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        apply_early=row["apply_early"],
        staged_attempt=row["staged_attempt"],
        origin=row["origin"],
        results_at=row["results_at"],
        files_removed_at=row["files_removed_at"],
        retry_of=row["retry_of"],
        retry_outcomes=row["retry_outcomes"],
        unread_pending=row["unread_pending"],
    )


# events --------------------------------------------------------------------


def add_event(
    conn: Connection, batch_id: int, event: Event | Milestone, status: Status, detail: str | None = None
) -> None:
    values = {"batch_id": batch_id, "at": now(), "event": event, "status": status, "detail": detail}
    conn.execute(insert(batch_events).values(values))


def events(conn: Connection, batch_id: int) -> list[BatchEvent]:
    query = select(batch_events).where(batch_events.c.batch_id == batch_id).order_by(batch_events.c.id)
    return [
        BatchEvent(id=r.id, at=r.at, event=r.event, status=r.status, detail=r.detail)
        for r in conn.execute(query)
    ]


# inputs (files and pages) --------------------------------------------------


def upsert_input(conn: Connection, batch_id: int, kind: str, name: str, **values: Any) -> None:
    """Store a file or page; the same name again replaces it (keeping its place, received now).

    One atomic INSERT … ON CONFLICT, so two requests storing the same page at once
    both succeed (a select-then-insert lets the second hit the unique key).
    """
    values = {"created_at": now()} | values
    row = {"batch_id": batch_id, "kind": kind, "name": name} | values
    statement = _upsert_insert(conn, batch_inputs).values(row)
    keys = [batch_inputs.c.batch_id, batch_inputs.c.kind, batch_inputs.c.name]
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=values))


def list_inputs(conn: Connection, batch_id: int) -> list[RowMapping]:
    """The batch's inputs in data order: a retry's records, files by arrival, then pages by number."""
    columns = [c for c in batch_inputs.c if c.name != "items"]  # a page's items are read one page at a time
    query = select(*columns).where(batch_inputs.c.batch_id == batch_id).order_by(batch_inputs.c.id)
    rows = list(conn.execute(query).mappings())
    pages = sorted((r for r in rows if r["kind"] == "page"), key=lambda r: str(r["name"]))
    return [r for r in rows if r["kind"] == "retry"] + [r for r in rows if r["kind"] == "file"] + pages


def page_items(conn: Connection, input_id: int) -> str:
    """The JSON text of one stored page."""
    return str(
        conn.execute(select(batch_inputs.c["items"]).where(batch_inputs.c.id == input_id)).scalar_one()
    )


def input_summary(conn: Connection, batch_id: int) -> tuple[int, int, int]:
    """(number of inputs, items in pages, number of files)."""
    query = select(
        func.count(),
        func.coalesce(func.sum(batch_inputs.c.item_count), 0),
        func.count(batch_inputs.c.blob_key),
    ).where(batch_inputs.c.batch_id == batch_id)
    count, items, files = conn.execute(query).one()
    return int(count), int(items), int(files)


def set_item_counts(conn: Connection, counts: Mapping[int, int]) -> None:
    """Record how many records each input holds (by input id), once a file was read through."""
    for input_id, count in counts.items():
        conn.execute(update(batch_inputs).where(batch_inputs.c.id == input_id).values(item_count=count))


def input_totals(conn: Connection, batch_ids: Sequence[int]) -> dict[int, int]:
    """The records in each batch's inputs, for the batches whose every input was counted (a
    page when it is stored, a file when it is read through); a batch with no input is absent."""
    rows = conn.execute(_INPUT_TOTALS, {"batch_ids": list(batch_ids)})
    return {int(batch_id): int(total) for batch_id, total in rows}


_INPUT_TOTALS = (
    select(batch_inputs.c.batch_id, func.sum(batch_inputs.c.item_count))
    .where(batch_inputs.c.batch_id.in_(bindparam("batch_ids", expanding=True)))
    .group_by(batch_inputs.c.batch_id)
    .having(func.count() == func.count(batch_inputs.c.item_count))
)


def input_items(conn: Connection, batch_id: int, kind: str, name: str) -> str | None:
    """The stored JSON text of one input's items (a page), or None."""
    c = batch_inputs.c
    query = select(c["items"]).where(c.batch_id == batch_id, c.kind == kind, c.name == name)
    text: str | None = conn.execute(query).scalar()
    return text


def delete_inputs(conn: Connection, batch_id: int) -> None:
    conn.execute(delete(batch_inputs).where(batch_inputs.c.batch_id == batch_id))


def _upsert_insert(conn: Connection, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT, for the connection's dialect."""
    return (postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


# keys seen in a batch (for DUPLICATE_KEY) ----------------------------------


def claim_keys(conn: Connection, batch_id: int, keys: Sequence[str]) -> set[str]:
    """Record `keys` (distinct) as seen in the batch; answers those not seen before.

    One INSERT … ON CONFLICT DO NOTHING with the keys as one JSON parameter (faster than an
    array on PostgreSQL): the unique index decides, so no lookup depends on the planner's
    statistics, and the statement text is short enough to stay prepared. (SQLite's table has
    no rowids since 0012, which told the new rows apart without reading them back: the claim
    runs only after a key was met again in the batch, or on the record path.)
    """
    if not keys:
        return set()
    # (SQLite's parser needs a WHERE in an upsert's SELECT)
    source = "SELECT :batch_id, value FROM json_each(:keys) WHERE true"
    if conn.dialect.name == "postgresql":
        source = "SELECT :batch_id, k FROM jsonb_array_elements_text(CAST(:keys AS jsonb)) AS k"
    statement = text(f"INSERT INTO batch_keys (batch_id, key) {source} ON CONFLICT DO NOTHING RETURNING key")
    return set(
        conn.execute(statement, {"batch_id": batch_id, "keys": json.dumps(list(keys))}).scalars().all()
    )


class KeySeen(Exception):
    """`insert_new_keys` met a key the batch had seen: its transaction must be rolled back."""


def insert_new_keys(conn: Connection, batch_id: int, keys: Sequence[str]) -> None:
    """Record `keys` (distinct) as seen in the batch when none of them was: a plain INSERT,
    which costs PostgreSQL about half the CPU of `claim_keys`' INSERT … ON CONFLICT (its
    speculative insertion) and returns nothing. KeySeen when one was seen before; the
    statement failed then, and on PostgreSQL the whole transaction with it."""
    if not keys:
        return
    source = "SELECT :batch_id, value FROM json_each(:keys)"
    if conn.dialect.name == "postgresql":
        source = "SELECT :batch_id, k FROM jsonb_array_elements_text(CAST(:keys AS jsonb)) AS k"
    statement = text(f"INSERT INTO batch_keys (batch_id, key) {source}")
    try:
        conn.execute(statement, {"batch_id": batch_id, "keys": json.dumps(list(keys))})
    except IntegrityError as exc:
        raise KeySeen() from exc


def seen_keys(conn: Connection, batch_id: int, keys: Sequence[str]) -> set[str]:
    """Those of `keys` the batch has seen (one query per 500 keys)."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        query = select(batch_keys.c.key).where(batch_keys.c.batch_id == batch_id, batch_keys.c.key.in_(part))
        found.update(conn.execute(query).scalars())
    return found


def release_keys(conn: Connection, batch_id: int, keys: Sequence[str]) -> None:
    """Forget `keys` as seen in the batch (their records were refused after all)."""
    if keys:
        query = delete(batch_keys).where(batch_keys.c.batch_id == batch_id, batch_keys.c.key.in_(keys))
        conn.execute(query)


def delete_keys(conn: Connection, batch_id: int) -> None:
    _delete_batch_rows(conn, batch_keys, batch_id)


def delete_some_keys(conn: Connection, batch_id: int, after: Slice | None = None) -> Slice | None:
    """Delete the batch's next slice of keys (see `_delete_slice`); None when none is left."""
    return _delete_slice(conn, batch_keys, batch_id, after)


def staging_left(conn: Connection) -> list[int]:
    """The batches past validation that still have keys or shares kept (a worker stopped
    while it deleted them): one seek of each table's primary key per batch that has any."""
    found: set[int] = set()
    for table in (batch_keys, child_shares):
        after: int | None = 0
        while after is not None:
            query = select(table.c.batch_id).where(table.c.batch_id > after).order_by(table.c.batch_id)
            after = conn.execute(query.limit(1)).scalar()
            if after is not None:
                found.add(after)
    if not found:
        return []
    staging = [Status.OPEN, Status.QUEUED, Status.VALIDATING]
    query = select(batches.c.id).where(batches.c.id.in_(sorted(found)), batches.c.status.not_in(staging))
    return sorted(conn.execute(query).scalars())


Slice = tuple[Any, ...]  # where a sliced delete got to: the last deleted row's key after batch_id
_DELETE_SLICE = 50_000


def _delete_batch_rows(conn: Connection, table: Table, batch_id: int) -> None:
    """Delete a batch's rows of `table` 50,000 at a time (on SQLite; see `_delete_slice`).

    One SQLite DELETE held ~23 bytes per deleted row in memory until it ended (235 MB for a
    10M-record batch's keys, measured while the staging tables had a foreign key to batches);
    slices keep the memory flat either way, and each holds the write lock only briefly.
    """
    after = _delete_slice(conn, table, batch_id, None)
    while after is not None:
        after = _delete_slice(conn, table, batch_id, after)


def _delete_slice(conn: Connection, table: Table, batch_id: int, after: Slice | None) -> Slice | None:
    """Delete up to 50,000 of a batch's rows of `table`, the next in primary-key order after
    `after`; the key of the last one deleted, or None when no row is left after it.

    On PostgreSQL, all of them at once (None): one DELETE holds no memory per row there and
    locks only these rows, which nothing else writes, and it is far cheaper than finding
    where each slice ends. A million keys: 0.3 s of the server's time, where the slices'
    ends took 5-6 s (a fresh table's rows are read from the heap, to set their hint bits).

    Both statements are ranges of the primary key's index (batch_id, …), whatever the
    statistics say: the slice's last key, then a DELETE of the range up to it. (A
    `key IN (SELECT … LIMIT n)` was planned as a nested loop, the square of the keys, when
    the statistics predated them: 25,000 keys took 60 s.) Each slice starts after the last,
    so none walks over the index entries of rows deleted before it.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(delete(table).where(table.c.batch_id == batch_id))
        return None
    key = [column for column in table.primary_key.columns if column.name != "batch_id"]
    rows = [table.c.batch_id == batch_id]
    if after is not None:
        rows.append(tuple_(*key) > tuple_(*after))
    query = select(*key).where(*rows).order_by(*key).offset(_DELETE_SLICE - 1).limit(1)
    last = conn.execute(query).first()
    if last is not None:
        rows.append(tuple_(*key) <= tuple_(*last))
    conn.execute(delete(table).where(*rows))
    return None if last is None else tuple(last)


# what child records add to their parent batch's records ----------------------


def insert_shares(
    conn: Connection, batch_id: int, child_id: int, rows: Sequence[tuple[str, str, str]]
) -> None:
    """Keep child batch `child_id`'s (parent_key, child_key, amount) rows for the batch; a
    child key seen before keeps its first amount."""
    if rows:
        values = [
            {"batch_id": batch_id, "parent_key": p, "child_key": c, "child_batch_id": child_id, "amount": a}
            for p, c, a in rows
        ]
        conn.execute(_upsert_insert(conn, child_shares).on_conflict_do_nothing(), values)


def shares_of(conn: Connection, batch_id: int, parent_keys: Sequence[str]) -> dict[str, tuple[int, Decimal]]:
    """How many shares were kept for each of `parent_keys` that has any, and their sum (one
    query per 500 keys)."""
    found: dict[str, tuple[int, Decimal]] = {}
    for start in range(0, len(parent_keys), 500):
        part = parent_keys[start : start + 500]
        query = select(child_shares.c.parent_key, child_shares.c.amount).where(
            child_shares.c.batch_id == batch_id, child_shares.c.parent_key.in_(part)
        )
        for row in conn.execute(query):
            count, total = found.get(row.parent_key, (0, Decimal(0)))
            found[row.parent_key] = (count + 1, total + Decimal(row.amount))
    return found


def delete_shares(conn: Connection, batch_id: int) -> None:
    """Forget the batch's kept shares."""
    _delete_batch_rows(conn, child_shares, batch_id)


def delete_some_shares(conn: Connection, batch_id: int, after: Slice | None = None) -> Slice | None:
    """Forget the batch's next slice of kept shares (see `_delete_slice`); None when none is left."""
    return _delete_slice(conn, child_shares, batch_id, after)


# record errors -------------------------------------------------------------


def insert_errors(conn: Connection, batch_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(insert(record_errors), [{"batch_id": batch_id} | dict(r) for r in rows])


def delete_errors(conn: Connection, batch_id: int) -> None:
    conn.execute(delete(record_errors).where(record_errors.c.batch_id == batch_id))


def errors_page(conn: Connection, batch_id: int, after_id: int | None, limit: int) -> list[ErrorRow]:
    query = select(record_errors).where(record_errors.c.batch_id == batch_id)
    if after_id is not None:
        query = query.where(record_errors.c.id > after_id)
    query = query.order_by(record_errors.c.id).limit(limit)
    return [
        ErrorRow(
            id=r.id,
            record_index=r.record_index,
            external_id=r.external_id,
            field=r.field,
            code=r.code,
            message=r.message,
        )
        for r in conn.execute(query)
    ]


def error_groups(conn: Connection, batch_id: int, limit: int) -> list[ErrorGroup]:
    """The batch's record errors counted by code and field, the largest groups first (at most
    `limit` groups; no examples)."""
    c = record_errors.c
    count = func.count().label("n")
    query = (
        select(c.code, c.field, count)
        .where(c.batch_id == batch_id)
        .group_by(c.code, c.field)
        .order_by(count.desc(), c.code, c.field)
        .limit(limit)
    )
    return [ErrorGroup(code=r.code, field=r.field, count=int(r.n)) for r in conn.execute(query)]


def error_count(conn: Connection, batch_id: int) -> int:
    """How many record errors the batch has."""
    query = select(func.count()).where(record_errors.c.batch_id == batch_id)
    return int(conn.execute(query).scalar_one())


def error_examples(
    conn: Connection, batch_id: int, code: str, field: str | None, limit: int
) -> list[ErrorExample]:
    """The first `limit` errors of the batch with this code on this field (None: no field)."""
    c = record_errors.c
    same_field = c.field.is_(None) if field is None else c.field == field
    query = (
        select(c.record_index, c.external_id, c.message)
        .where(c.batch_id == batch_id, c.code == code, same_field)
        .order_by(c.id)
        .limit(limit)
    )
    return [ErrorExample(r.record_index, r.external_id, r.message) for r in conn.execute(query)]


def group_errors_page(
    conn: Connection, batch_id: int, code: str | None, field: str | None, after_id: int | None, limit: int
) -> list[ErrorRow]:
    """A page of the batch's record errors of one code (None: any) on one field ("": no field,
    None: any), in errors_page's order."""
    c = record_errors.c
    query = select(record_errors).where(c.batch_id == batch_id)
    if code is not None:
        query = query.where(c.code == code)
    if field is not None:
        query = query.where(c.field.is_(None) if field == "" else c.field == field)
    if after_id is not None:
        query = query.where(c.id > after_id)
    query = query.order_by(c.id).limit(limit)
    return [
        ErrorRow(r.id, r.record_index, r.external_id, r.field, r.code, r.message) for r in conn.execute(query)
    ]


def payloads_holding(conn: Connection, batch_id: int, indexes: Sequence[int], limit: int) -> list[str]:
    """The staged payloads of (at most `limit` of) the batch's chunks that hold these record
    indexes, in chunk order (for looking at a few records; the queue owns chunks otherwise)."""
    if not indexes:
        return []
    first, count = chunks.c.first_index, chunks.c.record_count
    holds = or_(*(and_(first <= index, first + count > index) for index in sorted(set(indexes))))
    query = (
        select(chunk_payloads.c.payload)
        .join(chunks, chunks.c.id == chunk_payloads.c.chunk_id)
        .where(chunks.c.batch_id == batch_id, holds)
        .order_by(chunks.c.seq)
        .limit(limit)
    )
    return [str(payload) for payload in conn.execute(query).scalars()]


def latest_events(
    conn: Connection, batch_ids: Sequence[int], names: Sequence[str]
) -> dict[int, dict[str, datetime]]:
    """When each of these events last happened to each of these batches."""
    params = {"batch_ids": list(batch_ids), "names": list(names)}
    found: dict[int, dict[str, datetime]] = {}
    for row in conn.execute(_LATEST_EVENTS, params):
        found.setdefault(int(row.batch_id), {})[row.event] = _aware(row.at)
    return found


_LATEST_EVENTS = (
    select(batch_events.c.batch_id, batch_events.c.event, func.max(batch_events.c.at).label("at"))
    .where(
        batch_events.c.batch_id.in_(bindparam("batch_ids", expanding=True)),
        batch_events.c.event.in_(bindparam("names", expanding=True)),
    )
    .group_by(batch_events.c.batch_id, batch_events.c.event)
)


def _aware(at: datetime) -> datetime:
    """max() over a UTC column answers a naive datetime on SQLite."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# stored files: uploads expected at a signed URL, result files, retention ---------------


def expect_input(conn: Connection, batch_id: int, name: str, blob_key: str, fmt: str) -> None:
    """An upload URL for file `name` was handed out: the file is looked for at `blob_key`
    when the batch is submitted (`fmt`: its format when its name says it, else "")."""
    row = {"batch_id": batch_id, "kind": "file", "name": name, "created_at": now(), "size": 0}
    changes = {"pending": True, "format": fmt, "blob_key": blob_key, "items": None}
    statement = _upsert_insert(conn, batch_inputs).values(row | changes)
    keys = [batch_inputs.c.batch_id, batch_inputs.c.kind, batch_inputs.c.name]
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))


def pending_inputs(conn: Connection, batch_ids: Sequence[int]) -> list[RowMapping]:
    """The files of these batches that are expected at an upload URL, not yet confirmed."""
    c = batch_inputs.c
    query = select(c.id, c.batch_id, c.name, c.format, c.blob_key).where(c.batch_id.in_(batch_ids), c.pending)
    return list(conn.execute(query.order_by(c.id)).mappings())


def received_files(conn: Connection, batch_ids: Sequence[int]) -> list[RowMapping]:
    """The files these batches hold, received (not only expected at an upload URL)."""
    c = batch_inputs.c
    wanted = (c.batch_id.in_(batch_ids), c.kind == "file", ~c.pending)
    query = select(c.id, c.batch_id, c.name, c.format, c.blob_key, c.created_at).where(*wanted)
    return list(conn.execute(query.order_by(c.id)).mappings())


def keep_version(
    conn: Connection, input_id: int, *, received_at: datetime, size: int, fmt: str, etag: str | None
) -> None:
    """The received file's size, format and version as the store has them, unless it was
    received again after `received_at`."""
    c = batch_inputs.c
    found = (c.id == input_id, ~c.pending, c.created_at == received_at)
    conn.execute(update(batch_inputs).where(*found).values(size=size, format=fmt, etag=etag))


def confirm_input(conn: Connection, input_id: int, *, size: int, fmt: str, etag: str | None) -> bool:
    """The expected file is there: keep its size, format and version, received now. False if
    it was not pending."""
    c = batch_inputs.c
    values = {"pending": False, "size": size, "format": fmt, "etag": etag, "created_at": now()}
    return conn.execute(update(batch_inputs).where(c.id == input_id, c.pending).values(values)).rowcount == 1


def results_wanted(conn: Connection, at: datetime, kept_since: datetime | None, limit: int) -> list[int]:
    """Final batches whose result files are not stored yet (and no worker writes them now),
    the first finished first; none whose files are removed, or are due to be (`kept_since`)."""
    c = batches.c
    query = select(c.id).where(
        c.results_at.is_(None),
        c.finished_at.is_not(None),
        c.files_removed_at.is_(None),
        or_(c.results_claimed_until.is_(None), c.results_claimed_until < at),
        ~c.unread_pending,  # (its file would lack the records not read yet)
    )
    if kept_since is not None:
        query = query.where(c.finished_at >= kept_since)
    return list(conn.execute(query.order_by(c.finished_at).limit(limit)).scalars())


def claim_results(conn: Connection, batch_id: int, at: datetime, until: datetime) -> bool:
    """Take the writing of a batch's result files until `until`; False if another worker has it."""
    c = batches.c
    claimed = (
        update(batches)
        .where(c.id == batch_id, c.results_at.is_(None))
        .where(or_(c.results_claimed_until.is_(None), c.results_claimed_until < at))
        .values(results_claimed_until=until)
    )
    return conn.execute(claimed).rowcount == 1


def results_due(conn: Connection, batch_id: int, at: datetime) -> None:
    """Let any worker write the batch's result files from `at` on (the claim on them ends)."""
    c = batches.c
    conn.execute(
        update(batches).where(c.id == batch_id, c.results_at.is_(None)).values(results_claimed_until=at)
    )


def results_stored(conn: Connection, batch_id: int, at: datetime) -> bool:
    """Mark the batch's result files written; False if its files were removed meanwhile."""
    c = batches.c
    stored = (
        update(batches)
        .where(c.id == batch_id, c.files_removed_at.is_(None))
        .values(results_at=at, results_claimed_until=None)
    )
    return conn.execute(stored).rowcount == 1


def expired_batches(conn: Connection, finished_before: datetime, limit: int) -> list[int]:
    """Batches final since before `finished_before` whose files are not removed yet, oldest first."""
    c = batches.c
    query = select(c.id).where(
        c.files_removed_at.is_(None),
        c.finished_at < finished_before,
        ~c.unread_pending,  # (its inputs are being read)
    )
    return list(conn.execute(query.order_by(c.finished_at).limit(limit)).scalars())


def files_removed(conn: Connection, batch_id: int, at: datetime) -> None:
    update_batch(conn, batch_id, files_removed_at=at, results_claimed_until=None)
