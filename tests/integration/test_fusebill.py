"""The Fusebill BulkApi profile (seed 001), replayed against a real server."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from loadbay.config import Settings
from loadbay.core.service import BatchService, hash_key
from loadbay.domain.lifecycle import Status
from loadbay.domain.models import Account, Batch
from loadbay.profiles import fusebill as profile
from tests.support.servers import Server, start_server, wait_final

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
PROCESS_WAIT = 30  # LOADBAY_FUSEBILL_PROCESS_WAIT here: Process answers the job applied

# The seed's own examples of POST /v1/BulkApi/Process, as they are in the seed. Its curl's
# `-d "{id:123456}"` (and the C# example's jsonData) is a bare key, not strict JSON.
SEED_CURL_BODY = "{id:123456}"
SEED_PYTHON_PAYLOAD = {'id':123456}  # fmt: skip
SEED_REQUEST = """\
{
"id": 373321
}
"""
SEED_RESPONSE = """\
{
"accountId": 9923946,
"type": "BulkWriteOff",
"status": "ProcessedWithErrors",
"createdTimestamp": "2020-12-07T14:26:21",
"completedTimestamp": "2020-12-07T14:26:21.323",
"totalRecords": 3,
"successfulRecords": 3,
"failedRecords": 0,
"totalProcessedRecords": 3,
"processedRecords": 0,
"failedProcessedRecords": 3,
"importingTimestamp": "2020-12-07T14:51:04.02",
"processedTimestamp": "2020-12-07T14:51:05.097",
"fileName": "BulkWriteOff-20201207.csv",
"reference": "Bulk write off",
"relatedId": null,
"internalAutomatedFlag": false,
"modifiedTimestamp": "0001-01-01T00:00:00",
"id": 373334,
"uri": null
}
"""
SEED_ERROR = """\
{
"ErrorId": 0,
"HttpStatusCode": 400,
"Errors": [
{
"Key": "Api Error",
"Value": "Cannot process Upload 373321 that is not in status Validated or ValidatedWIthErrors"
}
]
}
"""
# .NET's DateTime as the seed writes it: no offset, a fraction only when it is not zero,
# and then without trailing zeros ("…21", "…04.02", "…05.097")
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,2}[1-9])?")


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"LOADBAY_FUSEBILL_PROCESS_WAIT": str(PROCESS_WAIT)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


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
        processed = client.post(f"{API}/Process", content=SEED_CURL_BODY.replace("123456", str(job["id"])))
        assert processed.status_code == 200, processed.text
        done = processed.json()  # the job applied, as the seed's example answer is
        assert client.get(f"{API}/{job['id']}").json() == done
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


def test_the_seeds_process_example_answers_the_job_processed(server: Server, key: str) -> None:
    """The seed's example: Process answers the job as it ends, `ProcessedWithErrors` with
    the seed's very counts (3 records passed validation, all 3 failed processing: their
    invoices were paid in between) and `processedTimestamp` set; its fields in the seed's
    order, each of the seed's JSON type, timestamps in the seed's form. Processing it again
    is the seed's error body. Each of the seed's three request bodies is sent as it is."""
    ids = seed_ledger(server, key, "E")
    body = {
        "accountUploadType": "BulkWriteOff",
        "data": [ids["E1"], ids["E2"], ids["E4"]],
        "reference": "Bulk write off",
        "fileName": "BulkWriteOff-20201207.csv",
    }
    with fusebill(server, key) as client:
        job_id = client.post(API, json=body).json()["id"]
        validated = poll(client, job_id, "Validated", "ValidatedWithErrors")
        with server.client(key) as native:  # the customer pays the three invoices meanwhile
            paid = native.post(
                "/v1/batches",
                json={
                    "type": "billing.payment",
                    "items": [{"customer_number": "EA", "amount": "145.00", "reference": "E-pay"}],
                    "submit": True,
                },
            ).json()
            assert wait_final(native, paid["id"])["outcome"] == "succeeded"
        request = SEED_REQUEST.replace("373321", str(job_id))
        started = time.monotonic()
        answer = client.post(f"{API}/Process", content=request.encode())
        took = time.monotonic() - started
        again = [
            client.post(f"{API}/Process", content=text.encode())
            for text in (
                request,
                SEED_CURL_BODY.replace("123456", str(job_id)),
                json.dumps(SEED_PYTHON_PAYLOAD | {"id": job_id}),
            )
        ]

    seed = json.loads(SEED_RESPONSE)
    assert validated["status"] == "Validated"
    assert answer.status_code == 200 and took < PROCESS_WAIT, answer.text
    job = answer.json()
    assert list(job) == list(seed)
    assert {k: type(v) for k, v in job.items()} == {k: type(v) for k, v in seed.items()}
    counts = [
        "totalRecords",
        "successfulRecords",
        "failedRecords",
        "totalProcessedRecords",
        "processedRecords",
        "failedProcessedRecords",
    ]
    assert [job[k] for k in counts] == [seed[k] for k in counts] == [3, 3, 0, 3, 0, 3]
    same = ["type", "status", "fileName", "reference", "relatedId", "internalAutomatedFlag", "uri"]
    assert {k: job[k] for k in same} == {k: seed[k] for k in same}
    assert job["id"] == job_id and isinstance(job["accountId"], int)
    stamps = [k for k, v in seed.items() if k.endswith("Timestamp")]
    assert all(STAMP.fullmatch(seed[k]) for k in stamps)  # the form, read off the seed
    assert all(STAMP.fullmatch(job[k]) for k in stamps), job
    order = ["createdTimestamp", "completedTimestamp", "importingTimestamp", "processedTimestamp"]
    moments = [datetime.fromisoformat(job[k]) for k in order]
    assert moments == sorted(moments)

    error = SEED_ERROR.replace("373321", str(job_id))
    for refused in again:
        assert refused.status_code == 400
        assert refused.json() == json.loads(error)


def test_process_waits_without_blocking_the_event_loop_and_no_longer_than_its_bound() -> None:
    """While a job applies, Process polls it (each read in a thread) and answers it as it
    stands once the wait is over: `Processing` if it has not finished, as Fusebill does
    for a job still applying. Meanwhile the event loop keeps serving."""
    applying = cast(Batch, SimpleNamespace(id=7, status=Status.PROCESSING))
    applied = cast(Batch, SimpleNamespace(id=7, status=Status.COMPLETED))

    class Service:
        """A job that has applied by its `applied_at`-th read (never when None)."""

        def __init__(self, applied_at: int | None) -> None:
            self.applied_at, self.reads = applied_at, 0

        def get(self, _account: Account, _batch_id: int, *, types: Any = None) -> Batch:
            self.reads += 1
            return applied if self.applied_at is not None and self.reads >= self.applied_at else applying

    async def waiting(service: Service, wait: float) -> tuple[Batch, int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        account = cast(Account, SimpleNamespace(id=1))
        batch = await profile._applied(cast(BatchService, service), account, applying, wait)
        took = time.monotonic() - started
        tick.cancel()
        return batch, ticks, took

    soon = Service(applied_at=3)
    finished, _ticks, took = asyncio.run(waiting(soon, 10))
    assert finished.status == Status.COMPLETED and soon.reads == 3 and took < 1

    never = Service(applied_at=None)
    still, ticks, took = asyncio.run(waiting(never, 0.4))
    assert still.status == Status.PROCESSING and 0.4 <= took < 1
    assert ticks > 20 and never.reads >= 3  # the loop ran while it waited; it read more than once
    at_once = Service(applied_at=None)
    assert asyncio.run(waiting(at_once, 0))[0].status == Status.PROCESSING and at_once.reads == 0
    assert Settings.model_fields["fusebill_process_wait"].default == 5  # LOADBAY_FUSEBILL_PROCESS_WAIT


@pytest.mark.parametrize(
    "seed_stamp",
    [
        "2020-12-07T14:26:21",
        "2020-12-07T14:26:21.323",
        "2020-12-07T14:51:04.02",
        "2020-12-07T14:51:05.097",
        "0001-01-01T00:00:00",
    ],
)
def test_timestamps_are_written_as_the_seed_writes_them(seed_stamp: str) -> None:
    moment = datetime.fromisoformat(seed_stamp).replace(tzinfo=UTC)
    assert profile._stamp(moment) == seed_stamp
    assert profile._stamp(moment.astimezone(timezone(timedelta(hours=5)))) == seed_stamp  # in UTC


def test_timestamps_drop_trailing_zeros_and_keep_milliseconds() -> None:
    at = datetime(2024, 1, 5, 10, 20, 30, tzinfo=UTC)
    assert [profile._stamp(at.replace(microsecond=us)) for us in (120000, 100000, 999999, 1000, 900)] == [
        "2024-01-05T10:20:30.12",
        "2024-01-05T10:20:30.1",
        "2024-01-05T10:20:30.999",
        "2024-01-05T10:20:30.001",
        "2024-01-05T10:20:30",
    ]
    assert profile._stamp(None) is None


def test_paths_query_and_property_names_match_in_any_letter_case(server: Server, key: str) -> None:
    """Fusebill's ASP.NET server matches routes, query names and JSON property names in any
    letter case: `/v1/bulkapi/process`, `/V1/BULKAPI/123`, `?VIEW=full`, `{"Id": …}`. The
    native API keeps its own spelling."""
    ids = seed_ledger(server, key, "K")
    with fusebill(server, key) as client:
        created = client.post(
            "/compat/fusebill/V1/BULKAPI", json={"AccountUploadType": "BulkWriteOff", "DATA": [ids["K1"]]}
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        assert poll(client, job_id, "Validated")["type"] == "BulkWriteOff"
        read = client.get(f"/compat/fusebill/V1/BULKAPI/{job_id}", params={"VIEW": "full"})
        processed = client.post("/compat/fusebill/v1/bulkapi/process", json={"Id": job_id})
        again = client.post("/compat/fusebill/v1/BulkApi/process/", content=f"{{ID:{job_id}}}")
        next_job = client.post(API.lower(), json={"accountUploadType": "BulkWriteOff", "data": [ids["K2"]]})
        cancelled = client.post(f"/compat/fusebill/v1/bulkapi/{next_job.json()['id']}/CANCEL")
    with server.client(key) as native:
        native_upper = native.get("/V1/BATCHES")

    assert read.status_code == 200 and [r["status"] for r in read.json()["records"]] == ["PassedValidation"]
    assert processed.status_code == 200 and processed.json()["status"] == "Processed", processed.text
    assert again.status_code == 400 and "not in status Validated" in again.json()["Errors"][0]["Value"]
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Failed"
    assert native_upper.status_code == 404


def test_process_takes_the_id_as_a_string_of_digits(server: Server, key: str) -> None:
    """ASP.NET's model binding reads `{"id": "6"}` into the long id as it reads `{"id": 6}`;
    other text is still no id."""
    ids = seed_ledger(server, key, "D")
    with fusebill(server, key) as client:
        job = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [ids["D1"]]}).json()
        poll(client, job["id"], "Validated")
        refused = client.post(f"{API}/Process", json={"id": f"{job['id']}x"})
        processed = client.post(f"{API}/Process", json={"id": str(job["id"])})

    assert refused.status_code == 400, refused.text
    assert refused.json()["Errors"][0]["Value"] == "id is required and must be a whole number."
    assert processed.status_code == 200, processed.text
    assert (processed.json()["id"], processed.json()["status"]) == (job["id"], "Processed")


def test_process_takes_an_id_with_a_zero_fraction(server: Server, key: str) -> None:
    """Json.NET reads `3.0` and `3e0` into the long id as it reads `3`: `{"id": 3.0}` was
    refused, saying the id "must be a number". A fraction is still refused, saying it must be
    a whole number (Json.NET would round it)."""
    ids = seed_ledger(server, key, "Z")
    with fusebill(server, key) as client:
        job = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [ids["Z1"]]}).json()
        poll(client, job["id"], "Validated")
        fraction = client.post(f"{API}/Process", content=f'{{"id": {job["id"]}.5}}')
        processed = client.post(f"{API}/Process", content=f'{{"id": {job["id"]}.0}}')
        again = client.post(f"{API}/Process", content=f'{{"id": {job["id"]}e0}}')

    assert fraction.status_code == 400
    assert fraction.json()["Errors"][0]["Value"] == "id is required and must be a whole number."
    assert processed.status_code == 200, processed.text
    assert (processed.json()["id"], processed.json()["status"]) == (job["id"], "Processed")
    assert again.status_code == 400  # read as the job's id: the seed's refusal names it
    assert again.json()["Errors"][0]["Value"].startswith(f"Cannot process Upload {job['id']} that is not")


def test_a_wrong_method_is_405_with_every_method_of_the_path(server: Server, key: str) -> None:
    """`/v1/BulkApi/Process` is the Process call's path, in any letter case, not a job named
    Process: its literal segment outranks the job id, as in ASP.NET's routing."""
    requests = [("GET", ""), ("DELETE", "/1"), ("GET", "/1/Cancel")]
    requests += [("GET", "/Process"), ("GET", "/process"), ("DELETE", "/Process"), ("PUT", "/PROCESS")]
    with fusebill(server, key) as client:
        answers = {(method, path): client.request(method, API + path) for method, path in requests}
    assert {k: (a.status_code, a.headers.get("allow")) for k, a in answers.items()} == {
        ("GET", ""): (405, "POST"),
        ("DELETE", "/1"): (405, "GET"),
        ("GET", "/1/Cancel"): (405, "POST"),
        ("GET", "/Process"): (405, "POST"),
        ("GET", "/process"): (405, "POST"),
        ("DELETE", "/Process"): (405, "POST"),
        ("PUT", "/PROCESS"): (405, "POST"),
    }
    assert all(a.json()["HttpStatusCode"] == 405 for a in answers.values())


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


def test_a_payment_that_is_not_an_object_says_so(server: Server, key: str) -> None:
    """A BulkPayment item that is not an object failed with only "amount: Field required"; its
    record now says the item is not an object."""
    seed_ledger(server, key, "O")
    customer = query(server, "SELECT id FROM billing_customers WHERE customer_number = 'OA'")[0][0]
    data = [5, {"customerId": customer, "amount": 1}, "P-1"]
    with fusebill(server, key) as client:
        job = client.post(API, json={"accountUploadType": "BulkPayment", "data": data}).json()
        poll(client, job["id"], "ValidatedWithErrors")
        full = client.get(f"{API}/{job['id']}", params={"view": "Full"}).json()
        client.post(f"{API}/{job['id']}/Cancel").raise_for_status()

    assert [(r["id"], r["status"], r["details"]) for r in full["records"]] == [
        (1, "FailedValidation", "item 1 is not an object"),
        (2, "PassedValidation", None),
        (3, "FailedValidation", "item 3 is not an object"),
    ]


def test_a_boolean_in_data_is_no_id(server: Server, key: str) -> None:
    """JSON `true` is not the number 1: as an invoice id (BulkWriteOff) or a customerId
    (BulkPayment) its record fails validation as no integer; it was read as id 1."""
    ids = seed_ledger(server, key, "T")
    jobs = {"BulkWriteOff": [True, ids["T1"]], "BulkPayment": [{"customerId": True, "amount": 1}]}
    records = {}
    with fusebill(server, key) as client:
        for upload_type, data in jobs.items():
            job = client.post(API, json={"accountUploadType": upload_type, "data": data}).json()
            poll(client, job["id"], "ValidatedWithErrors", "Validated")
            full = client.get(f"{API}/{job['id']}", params={"view": "Full"}).json()
            records[upload_type] = [(r["status"], r["data"], r["details"]) for r in full["records"]]
            client.post(f"{API}/{job['id']}/Cancel").raise_for_status()  # the account takes the next job

    assert records == {
        "BulkWriteOff": [
            ("FailedValidation", '{"invoice_id": true}', "invoice_id: Input should be a valid integer"),
            ("PassedValidation", json.dumps({"invoice_id": ids["T1"]}), None),
        ],
        "BulkPayment": [
            (
                "FailedValidation",
                '{"customer_id": true, "amount": 1}',
                "customer_id: Input should be a valid integer",
            )
        ],
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


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_a_number_too_large_for_a_float_is_400(server: Server, key: str, number: str) -> None:
    """JSON's `1e999` was read as infinity: `"reference": 1e999` made a job whose reference was
    the text "inf". It is refused as NaN and Infinity are, saying where; no job is made."""
    bodies = [
        f'{{"accountUploadType": "BulkWriteOff", "data": [1], "reference": {number}}}',
        f'{{"accountUploadType": "BulkWriteOff", "data": [{number}]}}',
    ]
    with fusebill(server, key) as client:
        answers = [client.post(API, content=body) for body in bodies]
        process = client.post(f"{API}/Process", content=f'{{"id": {number}}}')
    largest = "±1.8e308, the largest number this server reads"
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 400, answer.text
        at = f"line 1, column {body.index(number) + 1}"
        message = f"The request body is not read at {at}: {number} is beyond {largest}."
        assert answer.json() == {
            "ErrorId": 0,
            "HttpStatusCode": 400,
            "Errors": [{"Key": "Api Error", "Value": message}],
        }
    assert process.status_code == 400 and number in process.json()["Errors"][0]["Value"]
    jobs = query(
        server,
        "SELECT count(*) FROM batches b JOIN api_keys k ON k.account_id = b.account_id WHERE k.key_hash = :h",
        h=hash_key(key),
    )
    assert jobs[0][0] == 0


def test_reference_and_file_name_are_kept_as_sent(server: Server, key: str) -> None:
    """`"reference": 0` and `"fileName": ""` became the defaults (`str(value or default)`), and
    `"fileName": false` too: a number is kept as its text, as Json.NET reads it into a string,
    text as sent; a boolean is refused, naming the field."""
    ids = seed_ledger(server, key, "N")
    with fusebill(server, key) as client:
        refused = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [1], "fileName": False})
        body = {"accountUploadType": "BulkWriteOff", "data": [ids["N1"]], "reference": 0, "fileName": ""}
        job = client.post(API, json=body).json()
        client.post(f"{API}/{job['id']}/Cancel").raise_for_status()
    assert refused.status_code == 400
    assert refused.json()["Errors"] == [
        {"Key": "Api Error", "Value": "fileName must be text, not a boolean."}
    ]
    assert (job["reference"], job["fileName"]) == ("0", "")


def test_another_accounts_job_is_not_found(server: Server, key: str) -> None:
    ids = seed_ledger(server, key, "X")
    other = server.account("someone-else")
    with fusebill(server, key) as client:
        job = client.post(API, json={"accountUploadType": "BulkWriteOff", "data": [ids["X1"]]}).json()
        poll(client, job["id"], "Validated")
    with fusebill(server, other) as client:
        assert client.get(f"{API}/{job['id']}").status_code == 404
        assert client.post(f"{API}/Process", json={"id": job["id"]}).status_code == 404
