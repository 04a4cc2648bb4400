"""PostgreSQL: an endpoint deleted while a batch's event goes into the outbox waits for that
transaction (the endpoint rows it read are locked FOR KEY SHARE), then takes the new
delivery with it. Without the lock the delete went through first, and the event's delivery,
refused by its foreign key, failed the transaction that moved the batch: the chunk that
completed it."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.webhooks import Webhooks
from loadbay.db import repository as repo
from loadbay.db import webhooks as hooks
from loadbay.db.engine import Database, is_interruption
from loadbay.db.tables import webhook_deliveries
from loadbay.domain.models import NewBatch
from tests.integration.test_pg_sessions import pg_url, runtime  # noqa: F401 (fixtures)

EVENT = "batch.completed"


def test_an_endpoint_deleted_while_an_event_is_announced_waits_for_it(runtime: Runtime, pg_url: str) -> None:  # noqa: F811
    service, webhooks = BatchService(runtime), Webhooks(runtime)
    account, _ = service.create_account("race")
    endpoint = webhooks.create(account, "https://hooks.example.com/loadbay", [EVENT])
    batch, _ = service.create(account, NewBatch("billing.customer"))
    other = Database(pg_url, lock_timeout=0.5)
    try:
        with runtime.db.write() as announcing:
            targets = hooks.subscribed(announcing, account.id, EVENT)
            assert targets == [endpoint.id]
            with pytest.raises(DBAPIError) as waited, other.write() as deleting:
                hooks.delete_endpoint(deleting, endpoint.id)
            assert is_interruption(waited.value), waited.value  # its lock wait timed out
            hooks.insert_event(announcing, account.id, batch.id, EVENT, "{}", targets, repo.now())
    finally:
        other.dispose()
    webhooks.delete(account, endpoint.id)
    with runtime.db.read() as conn:
        left = conn.execute(
            select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint.id)
        )
        assert left.all() == []
