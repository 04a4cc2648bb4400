"""The eBill profile (seed 000) as an eBill client uses it: XML over HTTP against a real
`loadbay serve` on each backend, files sent to the signed uploadUrl with a plain PUT."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import httpx
import pytest

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.types import default_registry
from loadbay.xmlsafe import parse_xml
from tests.support.servers import Server

pytestmark = pytest.mark.stores("file", "s3")

API = "/compat/ebill/rest/batchProcess"
SUMMARY = [
    "id",
    "jobId",
    "status",
    "operation",
    "subOperation",
    "successCount",
    "successMessage",
    "errorMessage",
    "failCount",
]
WORKING = {"Draft", "Queued", "Processing"}

# the seed's own payloads (ids the seed shows are replaced by the ones this server gives)
SEED_INIT = """<batchProcess>
    <jobId>AUGUST_2020_INIT</jobId>
    <carryForwardInvoices>true</carryForwardInvoices>
    <carryForwardCreditMemos>true</carryForwardCreditMemos>
    <carryForwardDebitMemos>true</carryForwardDebitMemos>
    <zeroOutCustomerBalance>true</zeroOutCustomerBalance>
</batchProcess>"""
SEED_CUSTOMERS = """<batchProcess>
    <jobId>AUGUST_2020_CUS</jobId>
    <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Customer</subOperation>
<inputFilename>CUS_AUG_2020_100RECORDS.csv</inputFilename>
</batchProcess>"""
SEED_FINALIZE_CUSTOMERS = """<batchProcess>
    <id>{id}</id>
    <jobId>AUGUST_2020_CUS</jobId>
</batchProcess>"""
SEED_INVOICES = """<batchProcess>
    <jobId>AUG_2020_INV</jobId>
    <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Invoice</subOperation>
<inputFilename>INV_AUG_2020_100RECORDS.csv</inputFilename>
</batchProcess>"""
SEED_LINE_ITEMS = """<batchProcess>
<parentBatchProcess>{id}</parentBatchProcess>
<parentBatchProcessJobId>AUG_2020_INV</parentBatchProcessJobId>
    <jobId>AUG_2020_ITM_1</jobId>
    <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Invoice Line Item</subOperation>
<inputFilename>ITM_AUG_2020_200RECORDS_1.csv</inputFilename>
</batchProcess>"""
SEED_FINALIZE_INVOICES = """<batchProcess>
    <id>{id}</id>
    <jobId>AUG_2020_INV</jobId>
</batchProcess>"""


# accounts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    """API keys of new accounts on the module's server, each handed out once (made here, with
    the service call `loadbay accounts create` makes: a CLI process per account is slow)."""
    settings = Settings(
        database_url=server.env["LOADBAY_DATABASE_URL"],
        data_dir=Path(server.env["LOADBAY_DATA_DIR"]),
        secret_key=server.env["LOADBAY_SECRET_KEY"],
    )
    rt = Runtime.build(settings, default_registry(), base_url=server.url)
    try:
        service = BatchService(rt)
        made = [service.create_account(f"ebill-{uuid.uuid4().hex[:8]}")[1] for _ in range(24)]
    finally:
        rt.close()
    return iter(made)


@pytest.fixture
def client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    """A client of a new account."""
    with server.client(next(keys)) as made:
        yield made


@pytest.fixture(scope="module")
def shared(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    """One account's client for the tests that make no batch."""
    with server.client(next(keys)) as made:
        yield made


# the wire ----------------------------------------------------------------------------------


def call(client: httpx.Client, method: str, body: str, mode: str, status: int = 200) -> Element:
    answer = client.request(method, API, params={"mode": mode}, content=body.encode())
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    return parse_xml(answer.content)


def fields(node: Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in node if len(child) == 0}


def upload_request(job_id: str, sub_operation: str, filename: str, parent: str = "") -> str:
    return (
        f"<batchProcess>{parent}<jobId>{job_id}</jobId><inputType>API</inputType>"
        f"<operation>eBill-Import</operation><subOperation>{sub_operation}</subOperation>"
        f"<inputFilename>{filename}</inputFilename></batchProcess>"
    )


def draft(client: httpx.Client, body: str, content: str, content_type: str | None = None) -> dict[str, str]:
    """S3FileUpload, then the file PUT to the uploadUrl: plain HTTP, no API key."""
    created = fields(call(client, "POST", body, "S3FileUpload"))
    headers = {"Content-Type": content_type} if content_type else {}
    put = httpx.put(created["uploadUrl"], content=content.encode(), headers=headers)
    assert put.status_code == 200, put.text
    return created


def finalize(client: httpx.Client, batch_id: str, job_id: str = "") -> Element:
    return call(
        client,
        "PUT",
        f"<batchProcess><id>{batch_id}</id><jobId>{job_id}</jobId></batchProcess>",
        "BatchFinalize",
    )


def get(client: httpx.Client, **params: str) -> Element:
    answer = client.get(API, params=params)
    assert answer.status_code == 200, answer.text
    return parse_xml(answer.content)


def poll(client: httpx.Client, timeout: float = 60.0, **params: str) -> Element:
    """GET the batch process until it and its children are final."""
    deadline = time.monotonic() + timeout
    while True:
        node = get(client, **params)
        statuses = [n.findtext("status") for n in node.iter() if n.find("status") is not None]
        if not WORKING & set(statuses):
            return node
        assert time.monotonic() < deadline, f"not final after {timeout}s: {statuses}"
        time.sleep(0.05)


def download(url: str) -> list[dict[str, str]]:
    answer = httpx.get(url)
    assert answer.status_code == 200, answer.text
    return list(csv.DictReader(io.StringIO(answer.text)))


def query(server: Server, sql: str, **params: Any) -> list[Any]:
    return server.query(sql, **params)


def csv_text(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


# the seed, step by step ------------------------------------------------------------------------


def test_the_seed_step_by_step(client: httpx.Client) -> None:
    init = call(client, "POST", SEED_INIT, "BatchInit")
    assert [child.tag for child in init] == ["id", "jobId", "child"]
    assert init.findtext("id", "").isdigit() and init.findtext("jobId") == "AUGUST_2020_INIT"
    child = init.find("child")
    assert child is not None
    assert [n.tag for n in child] == [
        "carryForwardInvoice",
        "carryForwardCreditMemo",
        "carryForwardDebitMemo",
    ]
    for node, sub_operation in zip(child, ["Invoice", "CreditMemo", "DebitMemo"], strict=True):
        assert [n.tag for n in node] == SUMMARY
        assert fields(node) | {"id": ""} == {
            "id": "",
            "jobId": "",
            "status": "Success",
            "operation": "CarryForward",
            "subOperation": sub_operation,
            "successCount": "0",
            "successMessage": "Success, 0 records successfully processed, 0 failed",
            "errorMessage": "",
            "failCount": "0",
        }

    customers = _seed_customers(client)
    _seed_invoices(client, customers)


def _seed_customers(client: httpx.Client) -> list[str]:
    numbers = [f"CUS{i:03d}" for i in range(1, 101)]
    content = csv_text(
        "customer_number,name,email", [f"{n},Customer {n},{n.lower()}@example.com" for n in numbers]
    )
    created = call(client, "POST", SEED_CUSTOMERS, "S3FileUpload")
    assert [n.tag for n in created] == [*SUMMARY, "uploadUrl"]
    draft_fields = fields(created)
    assert draft_fields["id"].isdigit()
    assert {k: v for k, v in draft_fields.items() if k not in ("id", "uploadUrl")} == {
        "jobId": "AUGUST_2020_CUS",
        "status": "Draft",
        "operation": "eBill-Import",
        "subOperation": "Customer",
        "successCount": "0",
        "successMessage": "BatchProcess is created",
        "errorMessage": "",
        "failCount": "0",
    }
    put = httpx.put(draft_fields["uploadUrl"], content=content.encode())  # no key, no Content-Type
    assert put.status_code == 200, put.text

    queued = call(client, "PUT", SEED_FINALIZE_CUSTOMERS.format(id=draft_fields["id"]), "BatchFinalize")
    assert [n.tag for n in queued] == [*SUMMARY, "downloadUrl"]
    assert fields(queued) == {
        "id": draft_fields["id"],
        "jobId": "AUGUST_2020_CUS",
        "status": "Queued",
        "operation": "eBill-Import",
        "subOperation": "Customer",
        "successCount": "0",
        "successMessage": "BatchProcess is in Queue",
        "errorMessage": "",
        "failCount": "0",
        "downloadUrl": "",
    }

    done = fields(poll(client, id=draft_fields["id"]))
    by_job_id = fields(get(client, jobId="AUGUST_2020_CUS"))
    assert by_job_id.pop("downloadUrl").startswith("http") and by_job_id.items() <= done.items()
    assert {k: v for k, v in done.items() if k != "downloadUrl"} == {
        "id": draft_fields["id"],
        "jobId": "AUGUST_2020_CUS",
        "status": "Success",
        "operation": "eBill-Import",
        "subOperation": "Customer",
        "successCount": "100",
        "successMessage": "Success, 100 records successfully processed, 0 failed",
        "errorMessage": "",
        "failCount": "0",
    }
    rows = download(done["downloadUrl"])
    assert [(r["customer_number"], r["loadbay_status"], r["loadbay_action"]) for r in rows] == [
        (n, "succeeded", "created") for n in numbers
    ]
    return numbers


def _seed_invoices(client: httpx.Client, customers: list[str]) -> None:
    invoices = [(f"INV{i:03d}", customers[i - 1]) for i in range(1, 101)]
    invoice_file = csv_text(
        "invoice_number,customer_number,invoice_date,due_date,amount",
        [f"{n},{c},2020-08-01,2020-08-31,30.00" for n, c in invoices],
    )
    lines = [f"{n},1,Service,1,10.00,10.00" for n, _ in invoices] + [
        f"{n},2,Hours,2,10.00,20.00" for n, _ in invoices
    ]
    line_file = csv_text("invoice_number,line_number,description,quantity,unit_price,amount", lines)

    invoice = draft(client, SEED_INVOICES, invoice_file, "text/csv")
    assert (invoice["status"], invoice["subOperation"], invoice["jobId"]) == (
        "Draft",
        "Invoice",
        "AUG_2020_INV",
    )
    line_items = draft(
        client, SEED_LINE_ITEMS.format(id=invoice["id"]), line_file, "application/octet-stream"
    )
    assert (line_items["status"], line_items["subOperation"]) == ("Draft", "Invoice Line Item")

    queued = call(client, "PUT", SEED_FINALIZE_INVOICES.format(id=invoice["id"]), "BatchFinalize")
    assert (queued.findtext("status"), queued.findtext("successMessage")) == (
        "Queued",
        "BatchProcess is in Queue",
    )

    done = poll(client, id=invoice["id"])
    assert [n.tag for n in done] == [*SUMMARY, "downloadUrl", "child"]
    assert fields(done)["successMessage"] == "Success, 100 records successfully processed, 0 failed"
    children = done.findall("child/batchProcess")
    assert len(children) == 1
    child = fields(children[0])
    assert [n.tag for n in children[0]] == [*SUMMARY, "downloadUrl"]
    assert {k: v for k, v in child.items() if k != "downloadUrl"} == {
        "id": line_items["id"],
        "jobId": "AUG_2020_ITM_1",
        "status": "Success",
        "operation": "eBill-Import",
        "subOperation": "Invoice Line Item",
        "successCount": "200",
        "successMessage": "Success, 200 records successfully processed, 0 failed",
        "errorMessage": "",
        "failCount": "0",
    }
    assert {r["loadbay_status"] for r in download(child["downloadUrl"])} == {"succeeded"}
    assert len(download(fields(done)["downloadUrl"])) == 100


# an invoice batch process and its line-item files: one batch process ----------------------------


def native_final(client: httpx.Client, batch_id: str, status: str = "completed") -> dict[str, Any]:
    """The batch through the native API, once it has reached `status`."""
    deadline = time.monotonic() + 60
    batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
    while batch["status"] != status:
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
        batch = client.get(f"/v1/batches/{batch_id}").json()
    return batch


def test_an_invoice_batch_process_is_final_once_its_line_item_files_are(client: httpx.Client) -> None:
    """BatchFinalize "will pick up the Invoice file and all the ITM files ... and process
    them": the invoice batch process stays Processing, with no downloadUrl, until its
    line-item files are final too (it was Success, with its downloadUrl, while they were
    still Queued or Processing: the core validates children once their parent is final).
    A line-item batch made through the native API with process "manual" holds the family
    there, at validated, for as long as the test needs."""
    customers = client.post(
        "/v1/batches",
        json={
            "type": "billing.customer",
            "items": [{"customer_number": "F1", "name": "Fay"}],
            "submit": True,
        },
    )
    native_final(client, customers.json()["id"])
    invoices = draft(
        client,
        upload_request("FAM_INV", "Invoice", "FAM_INV.csv"),
        "invoice_number,customer_number,invoice_date,amount\nFAM-1,F1,2020-08-01,30.00\n",
    )
    items = [{"invoice_number": "FAM-1", "line_number": 1, "quantity": 3, "unit_price": "10.00"}]
    held = client.post(
        "/v1/batches",
        json={
            "type": "billing.invoice_line",
            "parent_id": int(invoices["id"]),
            "process": "manual",
            "items": items,
        },
    )
    assert held.status_code == 201, held.text
    child_id = str(held.json()["id"])
    assert fields(finalize(client, invoices["id"]))["status"] == "Queued"

    native_final(client, invoices["id"])  # the invoices are applied ...
    native_final(client, child_id, "validated")  # ... and the line items wait
    for answer in (get(client, id=invoices["id"]), get(client, jobId="FAM_INV")):
        parent = fields(answer)
        assert (parent["status"], parent["successMessage"], parent["downloadUrl"]) == (
            "Processing",
            "BatchProcess is Processing",
            "",
        )
        [child] = answer.findall("child/batchProcess")
        assert (fields(child)["id"], fields(child)["status"]) == (child_id, "Processing")

    assert client.post(f"/v1/batches/{child_id}/process").status_code == 200
    done = poll(client, id=invoices["id"])
    parent = fields(done)
    assert (parent["status"], parent["successCount"]) == ("Success", "1")
    assert [r["invoice_number"] for r in download(parent["downloadUrl"])] == ["FAM-1"]
    assert [fields(c)["status"] for c in done.findall("child/batchProcess")] == ["Success"]


# a whole month ----------------------------------------------------------------------------------

JULY = {
    "Customer": ("JUL_CUS", "customer_number,name,balance\nC1,Ann,0\nC2,Bob,0\nC3,Cy,0\n"),
    "Invoice": (
        "JUL_INV",
        "invoice_number,customer_number,invoice_date,amount\n"
        "JUL-1,C1,2020-07-01,100.00\nJUL-2,C2,2020-07-02,50.00\n",
    ),
    # "Credit Memo" and "Debit Memo" (the seed writes CreditMemo, DebitMemo) are taken too
    "Credit Memo": ("JUL_CM", "memo_number,customer_number,memo_date,amount\nJUL-CM1,C1,2020-07-10,10.00\n"),
    "Debit Memo": ("JUL_DM", "memo_number,customer_number,memo_date,amount\nJUL-DM1,C3,2020-07-11,5.00\n"),
}
AUG_CUSTOMERS = (
    "customer_number,name,email\nC1,Ann Again,ann@example.com\nC4,Dee,dee@example.com\nC5,Eve,not-an-email\n"
)
AUG_INVOICES = (
    "invoice_number,customer_number,invoice_date,amount\n"
    "AUG-1,C1,2020-08-01,30.00\n"
    "AUG-2,C4,2020-08-01,20.00\n"
    "AUG-3,C9,2020-08-01,5.00\n"  # unknown customer
    "AUG-4,C1,2020-08-01,25.00\n"  # its lines add up to 20.00
)
AUG_ITM_1 = (
    "invoice_number,line_number,quantity,unit_price,amount\n"
    "AUG-1,1,1,10.00,10.00\n"
    "AUG-2,1,2,5.00,10.00\n"
    "AUG-4,1,1,10.00,10.00\n"
)
AUG_ITM_2 = (
    "invoice_number,line_number,quantity,unit_price,amount\n"
    "AUG-1,2,2,10.00,20.00\n"
    "AUG-2,2,1,10.00,10.00\n"
    "AUG-3,1,1,5.00,5.00\n"  # its invoice was refused
    "AUG-2,3,3,3.00,9.99\n"  # 3 × 3.00 is 9.00
    "AUG-4,2,1,10.00,10.00\n"
)
PARENT = "<parentBatchProcessJobId>AUG_INV</parentBatchProcessJobId>"
AUG_INIT = """<batchProcess><jobId>AUG_INIT</jobId>
<carryForwardInvoices>true</carryForwardInvoices><carryForwardCreditMemos>true</carryForwardCreditMemos>
<carryForwardDebitMemos>true</carryForwardDebitMemos><zeroOutCustomerBalance>true</zeroOutCustomerBalance>
</batchProcess>"""


def load(client: httpx.Client, *files: tuple[str, str, str]) -> list[Element]:
    """Upload and finalize each (subOperation, jobId, content), then poll them all to final."""
    for sub_operation, job_id, content in files:
        created = draft(client, upload_request(job_id, sub_operation, f"{job_id}.csv"), content)
        finalize(client, created["id"])
    return [poll(client, jobId=job_id) for _sub_operation, job_id, _content in files]


def test_a_whole_month(server: Server, client: httpx.Client) -> None:
    july = [(sub_operation, *job) for sub_operation, job in JULY.items()]
    done = load(client, july[0]) + load(client, *july[1:])  # customers first: the rest need them
    assert [fields(node)["status"] for node in done] == ["Success"] * 4
    account = query(
        server,
        "SELECT account_id FROM batches WHERE id = :id",
        id=int(fields(get(client, jobId="JUL_CUS"))["id"]),
    )[0][0]

    _carry_forward(server, client, account)
    _load_august(client)
    _check_tables(server, account)
    _second_run_is_refused(server, client, account)


def _carry_forward(server: Server, client: httpx.Client, account: int) -> None:
    init = call(client, "POST", AUG_INIT, "BatchInit")
    nodes = {n.tag: fields(n) for n in init.findall("child/*")}
    assert {tag: (f["status"], f["successCount"], f["successMessage"]) for tag, f in nodes.items()} == {
        "carryForwardInvoice": ("Success", "2", "Success, 2 records successfully processed, 0 failed"),
        "carryForwardCreditMemo": ("Success", "1", "Success, 1 records successfully processed, 0 failed"),
        "carryForwardDebitMemo": ("Success", "1", "Success, 1 records successfully processed, 0 failed"),
    }
    carried = download(fields(get(client, id=nodes["carryForwardInvoice"]["id"]))["downloadUrl"])
    assert [(r["invoice_number"], r["loadbay_status"], r["loadbay_action"]) for r in carried] == [
        ("JUL-1", "succeeded", "updated"),
        ("JUL-2", "succeeded", "updated"),
    ]
    parent = get(client, jobId="AUG_INIT")
    assert (parent.findtext("status"), parent.findtext("operation")) == ("Success", "CarryForward")
    assert [n.tag for n in parent.findall("child/*")] == list(nodes)
    documents = query(
        server,
        "SELECT invoice_number, status FROM billing_invoices WHERE account_id = :a "
        "UNION ALL SELECT memo_number, status FROM billing_memos WHERE account_id = :a",
        a=account,
    )
    assert {status for _number, status in documents} == {"CarriedOver"}
    balances = query(server, "SELECT balance FROM billing_customers WHERE account_id = :a", a=account)
    assert {Decimal(str(b)) for (b,) in balances} == {Decimal("0")}


def _load_august(client: httpx.Client) -> None:
    [customers] = load(client, ("Customer", "AUG_CUS", AUG_CUSTOMERS))
    assert fields(customers)["status"] == "Partial Success"
    assert fields(customers)["successMessage"] == "Success, 2 records successfully processed, 1 failed"

    invoices = draft(client, upload_request("AUG_INV", "Invoice", "AUG_INV.csv"), AUG_INVOICES)
    draft(client, upload_request("AUG_ITM_1", "Invoice Line Item", "AUG_ITM_1.csv", PARENT), AUG_ITM_1)
    parent = f"<parentBatchProcess>{invoices['id']}</parentBatchProcess>"
    draft(
        client,
        upload_request("AUG_ITM_2", "Invoice Line Item", "AUG_ITM_2.csv", parent),
        AUG_ITM_2,
        "text/csv",
    )
    queued = finalize(client, invoices["id"], "AUG_INV")
    assert [c.findtext("status") for c in queued.findall("child/batchProcess")] == ["Queued", "Queued"]

    done = poll(client, jobId="AUG_INV")
    children = [fields(c) for c in done.findall("child/batchProcess")]
    assert [(fields(done)["status"], fields(done)["successCount"], fields(done)["failCount"])] + [
        (c["status"], c["successCount"], c["failCount"]) for c in children
    ] == [("Partial Success", "2", "2"), ("Partial Success", "2", "1"), ("Partial Success", "2", "3")]
    assert [c["jobId"] for c in children] == ["AUG_ITM_1", "AUG_ITM_2"]
    invoice_rows = download(fields(done)["downloadUrl"])
    assert [(r["invoice_number"], r["loadbay_status"], r["loadbay_error_code"]) for r in invoice_rows] == [
        ("AUG-1", "succeeded", ""),
        ("AUG-2", "succeeded", ""),
        ("AUG-3", "invalid", "UNKNOWN_CUSTOMER"),
        ("AUG-4", "invalid", "AMOUNT_MISMATCH"),
    ]
    line_rows = download(children[1]["downloadUrl"])
    assert [
        (r["invoice_number"], r["line_number"], r["loadbay_status"], r["loadbay_error_code"])
        for r in line_rows
    ] == [
        ("AUG-1", "2", "succeeded", ""),
        ("AUG-2", "2", "succeeded", ""),
        ("AUG-3", "1", "invalid", "UNKNOWN_INVOICE"),
        ("AUG-2", "3", "invalid", "AMOUNT_MISMATCH"),
        ("AUG-4", "2", "invalid", "UNKNOWN_INVOICE"),
    ]


def _check_tables(server: Server, account: int) -> None:
    customers = query(
        server,
        "SELECT customer_number, name, balance FROM billing_customers WHERE account_id = :a ORDER BY 1",
        a=account,
    )
    assert [(n, name, Decimal(str(b))) for n, name, b in customers] == [
        ("C1", "Ann Again", Decimal("30")),
        ("C2", "Bob", Decimal("0")),
        ("C3", "Cy", Decimal("0")),
        ("C4", "Dee", Decimal("20")),
    ]
    invoices = query(
        server,
        "SELECT invoice_number, status, amount FROM billing_invoices WHERE account_id = :a ORDER BY 1",
        a=account,
    )
    assert [(n, s, Decimal(str(a))) for n, s, a in invoices] == [
        ("AUG-1", "Open", Decimal("30")),
        ("AUG-2", "Open", Decimal("20")),
        ("JUL-1", "CarriedOver", Decimal("100")),
        ("JUL-2", "CarriedOver", Decimal("50")),
    ]
    lines = query(
        server,
        "SELECT i.invoice_number, l.line_number, l.amount FROM billing_invoice_lines l "
        "JOIN billing_invoices i ON i.id = l.invoice_id WHERE i.account_id = :a ORDER BY 1, 2",
        a=account,
    )
    assert [(n, line, Decimal(str(a))) for n, line, a in lines] == [
        ("AUG-1", 1, Decimal("10")),
        ("AUG-1", 2, Decimal("20")),
        ("AUG-2", 1, Decimal("10")),
        ("AUG-2", 2, Decimal("10")),
    ]


def _second_run_is_refused(server: Server, client: httpx.Client, account: int) -> None:
    before = query(server, "SELECT count(*) FROM batches WHERE account_id = :a", a=account)[0][0]
    again = [
        ("POST", AUG_INIT, "BatchInit"),
        ("POST", upload_request("AUG_CUS", "Customer", "AUG_CUS.csv"), "S3FileUpload"),
        ("POST", upload_request("AUG_INV", "Invoice", "AUG_INV.csv"), "S3FileUpload"),
        ("POST", upload_request("AUG_ITM_1", "Invoice Line Item", "AUG_ITM_1.csv", PARENT), "S3FileUpload"),
    ]
    for method, body, mode in again:
        refused = call(client, method, body, mode, status=409)
        assert refused.findtext("errorCode") == "JOB_ID_CONFLICT"
    assert query(server, "SELECT count(*) FROM batches WHERE account_id = :a", a=account)[0][0] == before


# errors ------------------------------------------------------------------------------------------------


def error(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    node = parse_xml(answer.content)
    assert node.tag == "batchProcess" and node.findtext("errorMessage")
    return node.findtext("errorCode") or ""


CUSTOMERS_FILE = "customer_number,name\nE1,Erin\n"


@pytest.mark.parametrize(
    ("mode", "body", "code"),
    [
        ("S3FileUpload", "<batchProcess><jobId>J</jobId>", "INVALID_XML"),
        ("S3FileUpload", "<upload><jobId>J</jobId></upload>", "INVALID_XML"),
        ("S3FileUpload", '<!DOCTYPE x [<!ENTITY a "b">]><batchProcess>&a;</batchProcess>', "INVALID_XML"),
        ("Upload", upload_request("J", "Customer", "c.csv"), "UNKNOWN_MODE"),
        ("", upload_request("J", "Customer", "c.csv"), "UNKNOWN_MODE"),
        (
            "S3FileUpload",
            upload_request("J", "Customer", "c.csv").replace("eBill-Import", "eBill-Export"),
            "UNKNOWN_OPERATION",
        ),
        ("S3FileUpload", upload_request("J", "Payment", "c.csv"), "UNKNOWN_SUB_OPERATION"),
        ("S3FileUpload", upload_request("J", "Customer", "c.xlsx"), "INVALID_FILENAME"),
        (
            "S3FileUpload",
            "<batchProcess><operation>eBill-Import</operation>"
            "<subOperation>Customer</subOperation></batchProcess>",
            "INVALID_REQUEST",
        ),
        ("S3FileUpload", upload_request("J", "Invoice Line Item", "l.csv"), "PARENT_REQUIRED"),
        (
            "S3FileUpload",
            upload_request("J", "Customer", "c.csv", "<parentBatchProcess>1</parentBatchProcess>"),
            "UNEXPECTED_PARENT",
        ),
        (
            "BatchInit",
            "<batchProcess><carryForwardInvoices>perhaps</carryForwardInvoices></batchProcess>",
            "INVALID_REQUEST",
        ),
    ],
)
def test_bad_requests_are_400(shared: httpx.Client, mode: str, body: str, code: str) -> None:
    assert error(shared.post(API, params={"mode": mode}, content=body.encode()), 400) == code


UPLOAD_FIELDS = (
    "<inputType>API</inputType><operation>eBill-Import</operation><inputFilename>c.csv</inputFilename>"
)


@pytest.mark.parametrize(
    ("mode", "body", "code", "named"),
    [
        (
            "S3FileUpload",
            f"<subOperation>Customer</subOperation><subOperation>Invoice</subOperation>{UPLOAD_FIELDS}",
            "INVALID_XML",
            "<subOperation>",
        ),
        (
            "S3FileUpload",
            f"<JobId>A</JobId><jobId>B</jobId><subOperation>Customer</subOperation>{UPLOAD_FIELDS}",
            "INVALID_XML",
            "<jobId>",
        ),
        (
            "S3FileUpload",
            f"<jobId><x>1</x></jobId><subOperation>Customer</subOperation>{UPLOAD_FIELDS}",
            "INVALID_REQUEST",
            "<jobId>",
        ),
        (
            "S3FileUpload",
            f"<subOperation>Customer</subOperation>{UPLOAD_FIELDS}<INPUTFILENAME>d.csv</INPUTFILENAME>",
            "INVALID_XML",
            "<inputFilename>",
        ),
        ("BatchInit", "<jobId>I1</jobId><jobId>I2</jobId>", "INVALID_XML", "<jobId>"),
        (
            "BatchInit",
            "<carryForwardInvoices>true</carryForwardInvoices><carryforwardinvoices>false</carryforwardinvoices>",
            "INVALID_XML",
            "<carryForwardInvoices>",
        ),
        ("BatchFinalize", "<id>1</id><id>2</id>", "INVALID_XML", "<id>"),
        ("BatchFinalize", "<jobId><jobId>J</jobId></jobId>", "INVALID_REQUEST", "<jobId>"),
    ],
)
def test_an_element_given_twice_or_holding_elements_is_refused(
    client: httpx.Client, mode: str, body: str, code: str, named: str
) -> None:
    """A value given twice made a batch process with the last one (a Customer file named
    Invoice, say), and an element where a value goes was read as empty (no jobId)."""
    method = "PUT" if mode == "BatchFinalize" else "POST"
    answer = client.request(
        method, API, params={"mode": mode}, content=f"<batchProcess>{body}</batchProcess>"
    )
    assert error(answer, 400) == code
    assert named in (parse_xml(answer.content).findtext("errorMessage") or "")
    assert client.get("/v1/batches").json()["data"] == []  # nothing was made


def test_the_content_types_charset_reads_the_request(client: httpx.Client) -> None:
    """A Latin-1 request without a declaration of its own, said to be Latin-1 by its
    Content-Type (RFC 7303), is read so (it was refused as malformed XML)."""
    body = upload_request("Zoë-1", "Customer", "c.csv").encode("latin-1")
    said_utf8 = client.post(
        API,
        params={"mode": "S3FileUpload"},
        content=body,
        headers={"Content-Type": "application/xml; charset=utf-8"},
    )
    assert error(said_utf8, 400) == "INVALID_XML"
    latin1 = {"Content-Type": "application/xml; charset=ISO-8859-1"}
    made = client.post(API, params={"mode": "S3FileUpload"}, content=body, headers=latin1)
    assert made.status_code == 200, made.text
    assert fields(parse_xml(made.content))["jobId"] == "Zoë-1"


def test_unknown_batch_processes_are_404_and_bad_names_400(shared: httpx.Client) -> None:
    client = shared
    assert error(client.get(API, params={"id": "999999"}), 404) == "NOT_FOUND"
    assert error(client.get(API, params={"jobId": "NOPE"}), 404) == "NOT_FOUND"
    assert error(client.get(API, params={"id": "three"}), 400) == "INVALID_REQUEST"
    assert error(client.get(API), 400) == "MISSING_ID"
    finalize_unknown = "<batchProcess><jobId>NOPE</jobId></batchProcess>"
    assert (
        error(client.put(API, params={"mode": "BatchFinalize"}, content=finalize_unknown), 404) == "NOT_FOUND"
    )
    orphan = upload_request(
        "ORPHAN", "Invoice Line Item", "l.csv", "<parentBatchProcessJobId>NOPE</parentBatchProcessJobId>"
    )
    assert error(client.post(API, params={"mode": "S3FileUpload"}, content=orphan), 404) == "NOT_FOUND"
    assert error(client.delete(API), 405) == "METHOD_NOT_ALLOWED"


def test_ids_are_plain_digits(client: httpx.Client) -> None:
    """An id is written in digits 0-9 only, in the query and in the XML: `1.0`, `+1`, `0_1`
    (Python's int() reads them) and a space in the query named a batch process (`1_0` was 10)."""
    invoices = fields(call(client, "POST", upload_request("IDS", "Invoice", "i.csv"), "S3FileUpload"))
    batch_id = invoices["id"]
    assert fields(get(client, id=f"00{batch_id}"))["jobId"] == "IDS"  # digits, leading zeros and all
    for spelling in (f"{batch_id}.0", f"+{batch_id}", f"0_{batch_id}", f" {batch_id}", f"{batch_id} "):
        assert error(client.get(API, params={"id": spelling}), 400) == "INVALID_REQUEST", spelling
    for spelling in (f"{batch_id}.0", f"+{batch_id}", f"0_{batch_id}"):
        finalize_it = f"<batchProcess><id>{spelling}</id></batchProcess>"
        answer = client.put(API, params={"mode": "BatchFinalize"}, content=finalize_it)
        assert error(answer, 400) == "INVALID_REQUEST", spelling
        line_items = upload_request(
            "IDS_ITM", "Invoice Line Item", "l.csv", f"<parentBatchProcess>{spelling}</parentBatchProcess>"
        )
        answer = client.post(API, params={"mode": "S3FileUpload"}, content=line_items)
        assert error(answer, 400) == "INVALID_REQUEST", spelling
    assert get(client, id=batch_id).find("child") is None  # no line-item file joined it


def test_a_refused_upload_url_leaves_no_batch_process(client: httpx.Client) -> None:
    """S3FileUpload makes its batch process and its uploadUrl in one transaction
    (BatchService.create_with_upload): an inputFilename the uploadUrl cannot take (100
    characters, 600 bytes URL-encoded) is refused, with no batch process left, a line-item
    file's no child of its invoice batch process either."""
    long_name = "é" * 100 + ".csv"
    refused = client.post(
        API, params={"mode": "S3FileUpload"}, content=upload_request("LONG", "Customer", long_name).encode()
    )
    assert error(refused, 400) == "INVALID_NAME"
    assert client.get("/v1/batches").json()["data"] == []
    invoices = fields(call(client, "POST", upload_request("LONG_INV", "Invoice", "i.csv"), "S3FileUpload"))
    line_items = upload_request(
        "LONG_ITM",
        "Invoice Line Item",
        long_name,
        f"<parentBatchProcess>{invoices['id']}</parentBatchProcess>",
    )
    assert (
        error(client.post(API, params={"mode": "S3FileUpload"}, content=line_items.encode()), 400)
        == "INVALID_NAME"
    )
    assert [b["id"] for b in client.get("/v1/batches").json()["data"]] == [int(invoices["id"])]
    assert get(client, id=invoices["id"]).find("child") is None
    assert fields(call(client, "POST", upload_request("LONG", "Customer", "short.csv"), "S3FileUpload"))[
        "uploadUrl"
    ]  # the refused jobId was never taken


def test_state_and_identity_conflicts(server: Server, client: httpx.Client) -> None:
    empty = fields(call(client, "POST", upload_request("EMPTY", "Customer", "e.csv"), "S3FileUpload"))
    assert error(_finalize(client, empty["id"]), 409) == "NO_DATA"

    customers = draft(client, upload_request("CUS", "Customer", "c.csv"), CUSTOMERS_FILE)
    wrong_pair = f"<batchProcess><id>{customers['id']}</id><jobId>EMPTY</jobId></batchProcess>"
    assert error(client.put(API, params={"mode": "BatchFinalize"}, content=wrong_pair), 400) == "ID_MISMATCH"
    not_invoices = upload_request(
        "ITM", "Invoice Line Item", "l.csv", f"<parentBatchProcess>{customers['id']}</parentBatchProcess>"
    )
    assert (
        error(client.post(API, params={"mode": "S3FileUpload"}, content=not_invoices), 400)
        == "NOT_AN_INVOICE_BATCH"
    )
    assert (
        error(
            client.post(
                API, params={"mode": "S3FileUpload"}, content=upload_request("CUS", "Customer", "x.csv")
            ),
            409,
        )
        == "JOB_ID_CONFLICT"
    )

    assert finalize(client, customers["id"]).findtext("status") == "Queued"
    assert error(_finalize(client, customers["id"]), 409) == "INVALID_STATE"
    if server.s3 is None:  # loadbay's own uploadUrl refuses a file once the batch is submitted
        assert httpx.put(customers["uploadUrl"], content=CUSTOMERS_FILE.encode()).status_code == 409

    invoices = draft(
        client,
        upload_request("INV", "Invoice", "i.csv"),
        "invoice_number,customer_number,invoice_date,amount\n",
    )
    items = upload_request(
        "ITM", "Invoice Line Item", "l.csv", f"<parentBatchProcess>{invoices['id']}</parentBatchProcess>"
    )
    child = draft(client, items, "invoice_number,line_number,quantity,unit_price\n")
    assert error(_finalize(client, child["id"]), 409) == "FINALIZE_PARENT"


def _finalize(client: httpx.Client, batch_id: str) -> httpx.Response:
    return client.put(
        API, params={"mode": "BatchFinalize"}, content=f"<batchProcess><id>{batch_id}</id></batchProcess>"
    )


def message(answer: httpx.Response, status: int, code: str) -> str:
    assert error(answer, status) == code
    return parse_xml(answer.content).findtext("errorMessage") or ""


def test_the_same_s3_file_upload_again_renews_the_upload_url(client: httpx.Client) -> None:
    """NO_DATA said to 'ask for a new URL if that one expired', which eBill had no call for:
    the same S3FileUpload again was 409 JOB_ID_CONFLICT. It now answers the same Draft batch
    process with a new uploadUrl; another body, or once it is finalized, is still refused,
    in eBill's words (the native 'job_id … already names batch 5' before)."""
    body = upload_request("AGAIN", "Customer", "again.csv")
    first = fields(call(client, "POST", body, "S3FileUpload"))
    again = fields(call(client, "POST", body, "S3FileUpload"))
    assert (again["id"], again["status"], again["jobId"]) == (first["id"], "Draft", "AGAIN")
    assert httpx.put(again["uploadUrl"], content=CUSTOMERS_FILE.encode()).status_code == 200
    assert len(client.get("/v1/batches").json()["data"]) == 1

    other = client.post(
        API, params={"mode": "S3FileUpload"}, content=upload_request("AGAIN", "Customer", "x.csv")
    )
    said = message(other, 409, "JOB_ID_CONFLICT")
    assert said.startswith(
        f"jobId 'AGAIN' already names batch process {first['id']} (jobId 'AGAIN'), made by"
    )
    assert "job_id" not in said and f"batch {first['id']}" not in said

    finalize(client, first["id"])
    assert fields(poll(client, id=first["id"]))["status"] == "Success"
    finalized = message(
        client.post(API, params={"mode": "S3FileUpload"}, content=body), 409, "JOB_ID_CONFLICT"
    )
    assert "finalized" in finalized and f"batch process {first['id']}" in finalized
    refused = message(
        client.post(
            API, params={"mode": "BatchInit"}, content="<batchProcess><jobId>AGAIN</jobId></batchProcess>"
        ),
        409,
        "JOB_ID_CONFLICT",
    )
    assert refused.startswith(
        f"jobId 'AGAIN' already names batch process {first['id']} (jobId 'AGAIN'), made by"
    )


def test_refusals_name_batch_processes_and_say_what_to_do(client: httpx.Client) -> None:
    """A line-item file never uploaded is named as the batch process it is (it was 'batch
    22'), with what an eBill client can do; one sent after its invoice was finalized is 409
    PARENT_NOT_DRAFT (it was CONFLICT: 'parent batch 3 is completed; children join open
    batches only')."""
    invoices = draft(
        client,
        upload_request("NAMES_INV", "Invoice", "i.csv"),
        "invoice_number,customer_number,invoice_date,amount\n",
    )
    parent = f"<parentBatchProcess>{invoices['id']}</parentBatchProcess>"
    body = upload_request("NAMES_ITM", "Invoice Line Item", "l.csv", parent)
    line_items = fields(call(client, "POST", body, "S3FileUpload"))
    said = message(_finalize(client, invoices["id"]), 409, "NO_DATA")
    assert said.startswith(f"batch process {line_items['id']} (jobId 'NAMES_ITM') has no file 'l.csv' yet"), (
        said
    )
    assert f"finalize batch process {invoices['id']} (jobId 'NAMES_INV') again" in said
    assert "S3FileUpload again (the same jobId and body)" in said
    assert "submit" not in said and "URL " not in said

    renewed = fields(call(client, "POST", body, "S3FileUpload"))  # as the message says
    assert renewed["id"] == line_items["id"]
    put = httpx.put(renewed["uploadUrl"], content=b"invoice_number,line_number,quantity,unit_price\n")
    assert put.status_code == 200
    assert fields(finalize(client, invoices["id"]))["status"] == "Queued"

    late = upload_request("NAMES_ITM_2", "Invoice Line Item", "l2.csv", parent)
    said = message(client.post(API, params={"mode": "S3FileUpload"}, content=late), 409, "PARENT_NOT_DRAFT")
    assert said.startswith(f"batch process {invoices['id']} (jobId 'NAMES_INV') is "), said
    assert "Draft" in said and "parent batch" not in said
    assert [c.findtext("jobId") for c in poll(client, id=invoices["id"]).findall("child/batchProcess")] == [
        "NAMES_ITM"
    ]


def test_a_key_is_needed(server: Server, client: httpx.Client) -> None:
    with server.client() as anonymous:
        assert error(anonymous.get(API, params={"id": "1"}), 401) == "UNAUTHORIZED"
        body = upload_request("J", "Customer", "c.csv").encode()
        assert (
            error(anonymous.post(API, params={"mode": "S3FileUpload"}, content=body), 401) == "UNAUTHORIZED"
        )
    with server.client("lb_live_not-a-key") as unknown:
        assert error(unknown.get(API, params={"id": "1"}), 401) == "UNAUTHORIZED"
    basic = {"Authorization": "Basic " + str(client.headers["x-api-key"])}
    assert error(httpx.get(server.url + API, params={"id": "999999"}, headers=basic), 404) == "NOT_FOUND"
