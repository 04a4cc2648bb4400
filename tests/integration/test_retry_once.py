"""A batch's records are sent again once, on each backend: a retry asked for twice at the same
time (a client whose answer was lost asks again) makes one batch, and its payments are paid
once; a retry of outcomes an earlier one took is refused, naming it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.servers import Server, wait_final


def created(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/batches", json=body)
    assert answer.status_code == 201, answer.text
    return wait_final(client, answer.json()["id"])


def test_a_retry_asked_for_twice_at_once_pays_each_payment_once(server: Server) -> None:
    """Both answers name one batch (201 and 200): before, each made a batch of its own, and
    processing both paid REF-1 and REF-2 twice."""
    p = uuid.uuid4().hex[:6]
    key = server.account(f"retry-once-{p}")
    with server.client(key) as client:
        created(
            client,
            {"type": "billing.customer", "submit": True, "items": [{"customer_number": p, "name": "Pay"}]},
        )
        payments = [
            {"customer_number": p, "amount": a, "reference": f"{p}-{n}"}
            for n, a in ((1, "10.00"), (2, "20.00"))
        ]
        batch = created(
            client, {"type": "billing.payment", "process": "manual", "submit": True, "items": payments}
        )
        assert client.post(f"/v1/batches/{batch['id']}/cancel").json()["counts"]["unprocessed"] == 2

        def ask() -> httpx.Response:
            with server.client(key) as own:
                return own.post(f"/v1/batches/{batch['id']}/retry")

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: ask(), range(4)))
        assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], [a.text for a in answers]
        [retry_id] = {a.json()["id"] for a in answers}
        retries = client.get("/v1/batches", params={"type": "billing.payment"}).json()["data"]
        assert [b["id"] for b in retries if b["retry_of"] == batch["id"]] == [retry_id]

        wait_final(client, retry_id)
        client.post(f"/v1/batches/{retry_id}/process")
        assert wait_final(client, retry_id)["counts"]["succeeded"] == 2
        account = client.get("/v1/account").json()["id"]
        paid = server.query(
            "SELECT reference FROM billing_payments WHERE account_id = :a ORDER BY id", a=account
        )
        assert [row[0] for row in paid] == [f"{p}-1", f"{p}-2"]

        again = client.post(f"/v1/batches/{batch['id']}/retry", json={"outcomes": ["unprocessed"]})
        assert (again.status_code, again.json()["code"]) == (409, "ALREADY_RETRIED"), again.text
        assert (
            f"were sent again in batch {retry_id}; retry batch {retry_id} instead" in again.json()["detail"]
        )
        other = client.post(f"/v1/batches/{batch['id']}/retry", json={"outcomes": ["invalid"]})
        assert (other.status_code, other.json()["code"]) == (409, "NOTHING_TO_RETRY"), other.text
