"""PostgreSQL: an endpoint deleted while a batch's event goes into the outbox waits for that
transaction (the endpoint rows it read are locked FOR KEY SHARE); the new delivery then
refuses the delete once, by its foreign key, and the delete is done again with it. Without
the lock the delete went through first, and the event's delivery, refused by its foreign
key, failed the transaction that moved the batch: the chunk that completed it."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.webhooks import Webhooks
from loadbay.db import repository as repo
from loadbay.db import webhooks as hooks
from loadbay.db.tables import webhook_deliveries, webhook_endpoints
from loadbay.domain.models import NewBatch
from tests.integration.test_pg_sessions import pg_url, runtime  # noqa: F401 (fixtures)

EVENT = "batch.completed"


def test_an_endpoint_deleted_while_an_event_is_announced_waits_then_goes(runtime: Runtime) -> None:  # noqa: F811
    service, webhooks = BatchService(runtime), Webhooks(runtime)
    account, _ = service.create_account("race")
    endpoint = webhooks.create(account, "https://hooks.example.com/loadbay", [EVENT])
    batch, _ = service.create(account, NewBatch("billing.customer"))
    deleted: list[BaseException | None] = []

    def delete() -> None:
        try:
            webhooks.delete(account, endpoint.id)
            deleted.append(None)
        except BaseException as exc:
            deleted.append(exc)

    deleting = threading.Thread(target=delete)
    with runtime.db.write() as announcing:
        targets = hooks.subscribed(announcing, account.id, EVENT)
        assert targets == [endpoint.id]
        deleting.start()
        time.sleep(0.5)
        assert deleting.is_alive() and not deleted, "the delete waits for the announce"
        hooks.insert_event(announcing, account.id, batch.id, EVENT, "{}", targets, repo.now())
    deleting.join(10)
    assert deleted == [None]
    with runtime.db.read() as conn:
        left = select(webhook_deliveries.c.id).where(webhook_deliveries.c.endpoint_id == endpoint.id)
        assert conn.execute(left).all() == []
        gone = select(webhook_endpoints.c.id).where(webhook_endpoints.c.id == endpoint.id)
        assert conn.execute(gone).all() == []
