"""The Fusebill BulkApi profile (seed 001), replayed against a real server."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx

from tests.support.servers import Server, wait_final

API = "/compat/fusebill/v1/BulkApi"
JOB_FIELDS = {
    "accountId",
    "type",
    "status",
    "createdTimestamp",
    "completedTimestamp",
    "totalRecords",
    "successfulRecords",
    "failedRecords",
    "totalProcessedRecords",
    "processedRecords",
    "failedProcessedRecords",
    "importingTimestamp",
    "processedTimestamp",
    "fileName",
    "reference",
    "relatedId",
    "internalAutomatedFlag",
    "modifiedTimestamp",
    "id",
    "uri",
}


def fusebill(server: Server, key: str) -> httpx.Client:
    """A client as the seed's examples set one up: `Authorization: Basic {APIKey}`."""
    headers = {"Authorization": f"Basic {key}", "Content-Type": "application/json"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def seed_ledger(server: Server, key: str, prefix: str) -> dict[str, int]:
    """Customers (one Suspended) and invoices through the native API; invoice ids by number."""
    with server.client(key) as client:
        for type_, body in (
            (
                "billing.customer",
                f"customer_number,name,status\n{prefix}A,Ann,Active\n{prefix}S,Sam,Suspended\n",
            ),
            (
                "billing.invoice",
                "invoice_number,customer_number,invoice_date,amount\n"
                f"{prefix}1,{prefix}A,2026-01-01,100.00\n{prefix}2,{prefix}A,2026-02-01,40.00\n"
                f"{prefix}3,{prefix}S,2026-02-01,10.00\n{prefix}4,{prefix}A,2026-03-01,5.00\n",
            ),
        ):
            batch = client.post("/v1/batches", json={"type": type_}).json()
            client.put(f"/v1/batches/{batch['id']}/data", content=body, headers={"Content-Type": "text/csv"})
            client.post(f"/v1/batches/{batch['id']}/submit")
            assert wait_final(client, batch["id"])["status"] == "completed"
    rows = query(
        server, f"SELECT invoice_number, id FROM billing_invoices WHERE invoice_number LIKE '{prefix}%'"
    )
    return {number: int(id_) for number, id_ in rows}


def query(server: Server, sql: str, **params: Any) -> list[Any]:
    return server.query(sql, **params)


def poll(client: httpx.Client, job_id: int, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"{API}/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def test_write_off_job_validates_then_processes_with_errors(server: Server, key: str) -> None:
    ids = seed_ledger(server, key, "W")
    bad_id = max(ids.values()) + 1000
    with fusebill(server, key) as client:
        created = client.post(
            API, json={"accountUploadType": "BulkWriteOff", "data": [ids["W1"], ids["W2"], bad_id, ids["W3"]]}
        )
        assert created.status_code == 200, created.text
        job = created.json()
        assert set(job) == JOB_FIELDS and job["type"] == "BulkWriteOff"
        validated = poll(client, job["id"], "ValidatedWithErrors", "Validated")
        assert validated["status"] == "ValidatedWithErrors"
        assert (validated["totalRecords"], validated["successfulRecords"], validated["failedRecords"]) == (
            4,
            2,
            2,
        )
        assert validated["completedTimestamp"] is not None and validated["processedTimestamp"] is None

        busy = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [ids["W4"]]})
        assert busy.status_code == 400 and f"Upload {job['id']}" in busy.json()["Errors"][0]["Value"]

        # the seed's curl, byte for byte: -d "{id:123456}" (a bare key, not strict JSON)
        processing = client.post(f"{API}/Process", content=f"{{id:{job['id']}}}".encode())
        assert processing.status_code == 200, processing.text
        assert processing.json()["status"] in ("Processing", "ProcessedWithErrors")
        done = poll(client, job["id"], "ProcessedWithErrors", "Processed")
        full = client.get(f"{API}/{job['id']}", params={"view": "Full"}).json()
        again = client.post(f"{API}/Process", json={"id": job["id"]})

    assert done["status"] == "ProcessedWithErrors"
    assert {k: done[k] for k in ("totalProcessedRecords", "processedRecords", "failedProcessedRecords")} == {
        "totalProcessedRecords": 2,
        "processedRecords": 2,
        "failedProcessedRecords": 0,
    }
    assert done["importingTimestamp"] is not None and done["processedTimestamp"] is not None
    records = full["records"]
    assert [r["status"] for r in records] == [
        "Processed",
        "Processed",
        "FailedValidation",
        "FailedValidation",
    ]
    assert all(isinstance(r["createdEntityId"], int) for r in records[:2])
    assert "no invoice" in records[2]["details"] and "Suspended" in records[3]["details"]
    assert {r["accountUploadId"] for r in records} == {job["id"]}
    assert again.status_code == 400
    assert again.json() == {
        "ErrorId": 0,
        "HttpStatusCode": 400,
        "Errors": [
            {
                "Key": "Api Error",
                "Value": f"Cannot process Upload {job['id']} that is not in status "
                "Validated or ValidatedWIthErrors",
            }
        ],
    }
    stored = query(
        server, "SELECT invoice_number, status, balance FROM billing_invoices WHERE invoice_number LIKE 'W%'"
    )
    invoices = {n: (s, Decimal(str(b))) for n, s, b in stored}
    assert invoices == {
        "W1": ("WrittenOff", Decimal("0.00")),
        "W2": ("WrittenOff", Decimal("0.00")),
        "W3": ("Open", Decimal("10.00")),
        "W4": ("Open", Decimal("5.00")),
    }


def test_payment_job_applies_good_payments_only(server: Server, key: str) -> None:
    seed_ledger(server, key, "Q")
    customer = query(server, "SELECT id FROM billing_customers WHERE customer_number = 'QA'")[0][0]
    payments = [
        {
            "customerId": customer,
            "amount": 120.00,
            "reference": "P-1",
            "paymentDate": "2026-03-05",
            "method": "Cash",
        },
        {"customerId": 99999999, "amount": 5, "reference": "P-2"},
        {"customerId": customer, "amount": -3, "reference": "P-3"},
    ]
    with fusebill(server, key) as client:
        job = client.post(API, json={"accountUploadType": "BulkPayment", "data": payments}).json()
        validated = poll(client, job["id"], "ValidatedWithErrors", "Validated")
        client.post(f"{API}/Process", json={"id": job["id"]}).raise_for_status()
        done = poll(client, job["id"], "ProcessedWithErrors", "Processed")
        full = client.get(f"{API}/{job['id']}?view=Full").json()

    assert validated["status"] == "ValidatedWithErrors" and validated["failedRecords"] == 2
    assert done["processedRecords"] == 1
    assert [r["status"] for r in full["records"]] == ["Processed", "FailedValidation", "FailedValidation"]
    payment_id = full["records"][0]["createdEntityId"]
    stored = query(server, f"SELECT amount, unapplied FROM billing_payments WHERE id = {payment_id}")
    assert [tuple(Decimal(str(v)) for v in row) for row in stored] == [(Decimal("120.00"), Decimal("0.00"))]
    balances = query(
        server, "SELECT invoice_number, balance FROM billing_invoices WHERE invoice_number LIKE 'Q%'"
    )
    assert {n: Decimal(str(b)) for n, b in balances} == {
        "Q1": Decimal("0.00"),
        "Q2": Decimal("20.00"),
        "Q3": Decimal("10.00"),
        "Q4": Decimal("5.00"),
    }


def test_cancel_fails_every_incomplete_record_and_frees_the_account(server: Server, key: str) -> None:
    ids = seed_ledger(server, key, "C")
    with fusebill(server, key) as client:
        job = client.post(
            API, json={"accountUploadType": "BulkWriteOff", "data": [ids["C1"], 123456789]}
        ).json()
        poll(client, job["id"], "ValidatedWithErrors")
        cancelled = client.post(f"{API}/{job['id']}/Cancel")
        full = client.get(f"{API}/{job['id']}", params={"view": "Full"}).json()
        next_job = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [ids["C1"]]})

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Failed"
    assert [(r["status"], r["details"]) for r in full["records"]][0] == (
        "FailedProcessing",
        "Manually marked as Failed.",
    )
    assert full["records"][1]["status"] == "FailedValidation"
    assert next_job.status_code == 200
    assert query(server, "SELECT status FROM billing_invoices WHERE invoice_number = 'C1'")[0][0] == "Open"


def test_concurrent_creates_for_one_account_make_one_job(server: Server, key: str) -> None:
    """One active job per account holds under a race: eight creates sent at once (each on its
    own connection, released together) give one job; the others get the seed's 400."""
    ids = seed_ledger(server, key, "R")
    body = {"accountUploadType": "BulkWriteOff", "data": [ids["R1"]]}
    start = threading.Barrier(8)

    def create(_: int) -> httpx.Response:
        with fusebill(server, key) as client:
            client.get(f"{API}/0")  # connect (and authenticate) before the race
            start.wait()
            return client.post(API, json=body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(8)))

    made = [a.json() for a in answers if a.status_code == 200]
    refused = [a.json() for a in answers if a.status_code == 400]
    assert len(made) == 1 and len(refused) == 7, [a.text for a in answers]
    message = f"Cannot create a new Upload while Upload {made[0]['id']} is still in progress."
    assert all(r["Errors"][0]["Value"] == message for r in refused)
    account = query(server, "SELECT account_id FROM batches WHERE id = :id", id=made[0]["id"])[0][0]
    jobs = query(
        server, "SELECT count(*) FROM batches WHERE account_id = :a AND type = 'billing.write_off'", a=account
    )
    assert jobs[0][0] == 1


def test_errors_have_the_seed_body(server: Server, key: str) -> None:
    with fusebill(server, key) as client:
        unknown = client.get(f"{API}/987654321")
        wrong_type = client.post(API, json={"accountUploadType": "BulkNothing", "data": [1]})
        too_many = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": list(range(1001))})
        garbage = client.post(f"{API}/Process", content=b"{id:")
    with httpx.Client(base_url=server.url) as anonymous:
        no_key = anonymous.get(f"{API}/1")

    assert unknown.status_code == 404 and unknown.json()["Errors"][0]["Key"] == "Api Error"
    assert wrong_type.status_code == 400 and "accountUploadType" in wrong_type.json()["Errors"][0]["Value"]
    assert too_many.status_code == 400 and "at most 1000" in too_many.json()["Errors"][0]["Value"]
    assert garbage.status_code == 400 and garbage.json()["HttpStatusCode"] == 400
    assert no_key.status_code == 401 and no_key.json()["HttpStatusCode"] == 401


def test_another_accounts_job_is_not_found(server: Server, key: str) -> None:
    ids = seed_ledger(server, key, "X")
    other = server.account("someone-else")
    with fusebill(server, key) as client:
        job = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [ids["X1"]]}).json()
        poll(client, job["id"], "Validated")
    with fusebill(server, other) as client:
        assert client.get(f"{API}/{job['id']}").status_code == 404
        assert client.post(f"{API}/Process", json={"id": job["id"]}).status_code == 404
