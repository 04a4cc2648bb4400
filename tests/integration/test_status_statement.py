"""A status request reads the batch, its input total and the times of its stage events in one
statement (`repository.status_of_key`, outside a transaction on PostgreSQL): the same as the
reads every other route makes (`input_totals`, `latest_events`), on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from loadbay.config import Settings
from loadbay.core.progress import STAGE_EVENTS
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService, hash_key
from loadbay.db import repository as repo
from loadbay.db.tables import batch_events, batch_inputs
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import NewBatch
from loadbay.types import default_registry

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key="test")
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def separately(service: BatchService, batch_id: int) -> tuple[int | None, dict[str, datetime]]:
    with service.rt.db.read() as conn:
        totals = repo.input_totals(conn, [batch_id])
        stages = repo.latest_events(conn, [batch_id], STAGE_EVENTS)
    return totals.get(batch_id), stages.get(batch_id, {})


def at_once(service: BatchService, key: str, batch_id: int) -> tuple[int | None, dict[str, datetime]] | None:
    with service.rt.db.single_read() as conn:
        found = repo.status_of_key(conn, hash_key(key), batch_id, STAGE_EVENTS)
    if found is None:
        return None
    batch, total, stages = found
    assert batch.id == batch_id
    return total, stages


def add_input(service: BatchService, batch_id: int, name: str, count: int | None) -> None:
    row = {"batch_id": batch_id, "kind": "page", "name": name, "format": "json", "size": 1}
    with service.rt.db.write() as conn:
        conn.execute(insert(batch_inputs).values(row | {"item_count": count, "created_at": T0}))


def add_event(service: BatchService, batch_id: int, event: str, minutes: int) -> None:
    row = {"batch_id": batch_id, "event": event, "status": Status.PROCESSING, "detail": None}
    with service.rt.db.write() as conn:
        conn.execute(insert(batch_events).values(row | {"at": T0 + timedelta(minutes=minutes)}))


def test_one_statement_reads_what_the_separate_reads_do(service: BatchService) -> None:
    account, key = service.create_account("acme")
    batch, _ = service.create(account, NewBatch("billing.customer"))
    assert at_once(service, key, batch.id) == separately(service, batch.id) == (None, {})

    add_input(service, batch.id, "1", 3)
    add_input(service, batch.id, "2", 4)
    assert at_once(service, key, batch.id) == separately(service, batch.id) == (7, {})

    add_input(service, batch.id, "3", None)  # not counted yet: no total
    assert at_once(service, key, batch.id) == separately(service, batch.id) == (None, {})
    with service.rt.db.write() as conn:
        conn.execute(update(batch_inputs).where(batch_inputs.c.name == "3").values(item_count=0))

    start, read, apply_ = STAGE_EVENTS[:3]
    for event, minutes in ((start, 1), (read, 2), (start, 5), ("submit", 9), (apply_, 3)):
        add_event(service, batch.id, event, minutes)
    expected = {
        start: T0 + timedelta(minutes=5),
        read: T0 + timedelta(minutes=2),
        apply_: T0 + timedelta(minutes=3),
    }
    assert at_once(service, key, batch.id) == separately(service, batch.id) == (7, expected)


def test_another_accounts_key_or_batch_reads_nothing(service: BatchService) -> None:
    account, key = service.create_account("acme")
    other, other_key = service.create_account("other")
    batch, _ = service.create(account, NewBatch("billing.customer"))
    theirs, _ = service.create(other, NewBatch("billing.customer"))
    assert at_once(service, other_key, batch.id) is None
    assert at_once(service, key, theirs.id) is None
    assert at_once(service, "not a key", batch.id) is None
    assert at_once(service, key, batch.id) == (None, {})


def test_on_postgresql_the_read_is_outside_a_transaction(service: BatchService, database_url: str) -> None:
    """No BEGIN and COMMIT around it (two round trips fewer), and the pooled connection is
    back in transactions for the next user."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite's BEGIN makes no round trip")
    from psycopg.pq import TransactionStatus

    service.rt.db.engine.dispose()  # one pooled connection, used by both in turn
    with service.rt.db.single_read() as conn:
        conn.exec_driver_sql("SELECT 1").scalar()
        assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.IDLE  # type: ignore[union-attr]
    with service.rt.db.read() as conn:
        conn.exec_driver_sql("SELECT 1").scalar()
        assert conn.connection.dbapi_connection.info.transaction_status == TransactionStatus.INTRANS  # type: ignore[union-attr]
