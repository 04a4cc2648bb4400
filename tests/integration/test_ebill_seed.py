# ruff: noqa: E501  (the seed's XML is copied as it is, long lines and all)
"""What an eBill client written from seed 000 trips over, fixed: the seed's spelling of the
kinds (`CreditMemo`, `DebitMemo`), a downloadUrl for every final status (a batch whose file
could not be read too), and an uploadUrl that takes the file as S3's presigned URL does
(any Content-Type, 200 with an empty body). The seed's own XML bodies are sent as the seed
shows them (the ids it shows are replaced by the ones this server gives); a real
`loadbay serve` on each backend."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from xml.etree.ElementTree import Element

import httpx
import pytest

from loadbay.xmlsafe import parse_xml
from tests.support.accounts import make_keys
from tests.support.servers import Server

pytestmark = pytest.mark.stores("file", "s3")

API = "/compat/ebill/rest/batchProcess"
NATIVE = "/v1/batches"
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

# Seed 000's XML, as the seed shows it: its indentation is no-break spaces (U+00A0, written
# \xa0 here) and spaces, and its answers hold a bare `&` in their URLs (seed_xml escapes it).
# The ids it shows (1, 3, 4) are replaced by the ones this server gives.

SEED_INIT = """<batchProcess>
\xa0 \xa0 <jobId>AUGUST_2020_INIT</jobId>
\xa0 \xa0 <carryForwardInvoices>true</carryForwardInvoices>
\xa0 \xa0 <carryForwardCreditMemos>true</carryForwardCreditMemos>
\xa0 \xa0 <carryForwardDebitMemos>true</carryForwardDebitMemos>
\xa0\xa0 \xa0<zeroOutCustomerBalance>true</zeroOutCustomerBalance>
</batchProcess>"""

SEED_INIT_ANSWER = """<batchProcess>
\xa0 \xa0 <id>1</id>
\xa0 \xa0 <jobId>AUGUST_2020_INIT</jobId>
\xa0 \xa0 <child>
\xa0 \xa0 \xa0 \xa0 <carryForwardInvoice>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <id>2</id>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <jobId></jobId>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <status>Success</status>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <operation>CarryForward</operation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <subOperation>Invoice</subOperation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successCount>20375</successCount>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successMessage>Success, 20375 records successfully processed,0failed</successMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <failCount>0</failCount>
\xa0 \xa0 \xa0 \xa0 </carryForwardInvoice>
\xa0 \xa0 \xa0 \xa0 <carryForwardCreditMemo>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <id></id>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <jobId></jobId>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <status></status>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <operation></operation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <subOperation></subOperation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successCount></successCount>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successMessage></successMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <failCount></failCount>
\xa0 \xa0 \xa0 \xa0 </carryForwardCreditMemo>
\xa0 \xa0 \xa0 \xa0 <carryForwardDebitMemo>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <id></id>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <jobId></jobId>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <status></status>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <operation></operation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <subOperation></subOperation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successCount></successCount>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successMessage></successMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <failCount></failCount>
\xa0 \xa0 \xa0 \xa0 </carryForwardDebitMemo>
\xa0 \xa0 </child>
</batchProcess>"""

SEED_CUSTOMERS = """<batchProcess>
\xa0 \xa0 <jobId>AUGUST_2020_CUS</jobId>
\xa0 \xa0 <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Customer</subOperation>
<inputFilename>CUS_AUG_2020_100RECORDS.csv</inputFilename>
</batchProcess>"""

SEED_CUSTOMERS_ANSWER = """<batchProcess>
\xa0 \xa0 <id>3</id>
\xa0 \xa0 <jobId>AUGUST_2020_CUS</jobId>
\xa0 \xa0 <status>Draft</status>
\xa0 \xa0 <operation>eBill-Import</operation>
\xa0 \xa0 <subOperation>Customer</subOperation>
\xa0 \xa0 <successCount>0</successCount>
\xa0 \xa0 <successMessage>BatchProcess is created</successMessage>
\xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 <failCount>0</failCount>
<uploadUrl>https://batch-upload-dev.s3.us-east-2.amazonaws.com/acme/in/CUS_21ST_SEPT_1PM.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20210921T071553Z&X-Amz-SignedHeaders=host&X-Amz-Expires=3599&X-Amz-Credential=AKIA57LHJLIXGV5ECL6Z%2F20210921%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Signature=b7077f85ca23c44b8e49dee7766a1b751960a900f687f86aaeca5e6df9c41cd1</uploadUrl>
</batchProcess>"""

SEED_FINALIZE_CUSTOMERS = """<batchProcess>
\xa0 \xa0 <id>3</id>
\xa0 \xa0 <jobId>AUGUST_2020_CUS</jobId>
</batchProcess>"""

SEED_QUEUED_ANSWER = """<batchProcess>
<id>3</id>
<jobId>AUGUST_2020_CUS</jobId>
<status>Queued</status>
<operation>eBill-Import</operation>
<subOperation>Customer</subOperation>
<successCount>0</successCount>
<successMessage>BatchProcess is in Queue</successMessage>
<errorMessage></errorMessage>
<failCount>0</failCount>
<downloadUrl></downloadUrl>
</batchProcess>"""

SEED_STATUS_ANSWER = """<batchProcess>
\xa0 \xa0 <id>3</id>
\xa0 \xa0 <jobId>AUGUST_2020_CUS</jobId>
\xa0 \xa0 <status>Success</status>
\xa0 \xa0 <operation>eBill-Import</operation>
\xa0 \xa0 <subOperation>Customer</subOperation>
\xa0 \xa0 <successCount>100</successCount>
\xa0 \xa0 <successMessage>Success, 100 records successfully processed, 0 failed</successMessage>
\xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 <failCount>0</failCount>
<downloadUrl>https://batch-upload-stag.s3.amazonaws.com/ashishtest/archive/out/CUS_21ST_SEPT_930AM_Batch_64236_1632200289161_output.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20210921T045810Z&X-Amz-SignedHeaders=host&X-Amz-Expires=25140&X-Amz-Credential=AKIASGPKJ3MBB6IE3RLS%2F20210921%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=a45d883b5e930a85aca832e8f73bc1cd8fdac3a56b5653ecce15aa1ea5b735fe</downloadUrl>
</batchProcess>"""

SEED_INVOICES = """<batchProcess>
\xa0 \xa0 <jobId>AUG_2020_INV</jobId>
\xa0 \xa0 <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Invoice</subOperation>
<inputFilename>INV_AUG_2020_100RECORDS.csv</inputFilename>
</batchProcess>"""

SEED_LINE_ITEMS = """<batchProcess>
<parentBatchProcess>4</parentBatchProcess>
<parentBatchProcessJobId>AUG_2020_INV</parentBatchProcessJobId>
\xa0 \xa0 <jobId>AUG_2020_ITM_1</jobId>
\xa0 \xa0 <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Invoice Line Item</subOperation>
<inputFilename>ITM_AUG_2020_200RECORDS_1.csv</inputFilename>
</batchProcess>"""

SEED_FINALIZE_INVOICES = """<batchProcess>
\xa0 \xa0 <id>4</id>
\xa0 \xa0 <jobId>AUG_2020_INV</jobId>
</batchProcess>"""

SEED_INVOICES_ANSWER = """<batchProcess>
\xa0 \xa0 <id>4</id>
\xa0 \xa0 <jobId>AUG_2020_INV</jobId>
\xa0 \xa0 <status>Success</status>
\xa0 \xa0 <operation>eBill-Import</operation>
\xa0 \xa0 <subOperation>Invoice</subOperation>
\xa0 \xa0 <successCount>100</successCount>
\xa0 \xa0 <successMessage>Success, 100 records successfully processed, 0 failed</successMessage>
\xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 <failCount>0</failCount>
<downloadUrl>https://batch-upload-stag.s3.amazonaws.com/ashishtest/archive/out/INV_21TH_SEPT_930AM_1_Batch_64238_1632201579742_output.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20210921T051940Z&X-Amz-SignedHeaders=host&X-Amz-Expires=25140&X-Amz-Credential=AKIASGPKJ3MBB6IE3RLS%2F20210921%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=32479d1e9dbdee4e43e9940818d16dbe393614becbbb906f207dcf336e560982</downloadUrl>
\xa0 \xa0 <child>
\xa0 \xa0 \xa0 \xa0 <batchProcess>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <id>5</id>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <jobId>AUG_2020_ITM_1</jobId>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <status>Success</status>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <operation>eBill-Import</operation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <subOperation>Invoice Line Item</subOperation>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successCount>200</successCount>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <successMessage>Success, 200 records successfully processed, 0 failed</successMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <errorMessage></errorMessage>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <failCount>0</failCount>
\xa0 \xa0 \xa0 \xa0 \xa0 \xa0 <downloadUrl>https://batch-upload-stag.s3.amazonaws.com/ashishtest/archive/out/ITM_21TH_SEPT_930AM_1_Batch_64239_1632201582981_output.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20210921T051943Z&X-Amz-SignedHeaders=host&X-Amz-Expires=25140&X-Amz-Credential=AKIASGPKJ3MBB6IE3RLS%2F20210921%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=5aaeaebef9469c5eb23ee5c1d00c916d5256a36d22ddb104a233971375a9004f</downloadUrl>
\xa0 \xa0 \xa0 \xa0 </batchProcess>
\xa0 \xa0 </child>
</batchProcess>"""

# the seed's spellings of the kinds ("All Invoice, CreditMemo and DebitMemo", "based on the
# type (Invoice, CreditMemo, DebitMemo)"), and the ones a reader of the seed (or of a guide
# that writes `Credit Memo`) may write: each answered as it was written
SEED_SPELLINGS = {
    "CreditMemo": "billing.credit_memo",
    "DebitMemo": "billing.debit_memo",
    "Credit Memo": "billing.credit_memo",
    "Debit Memo": "billing.debit_memo",
    "creditmemo": "billing.credit_memo",
    "Invoice Line Item": "billing.invoice_line",
    "InvoiceLineItem": "billing.invoice_line",
    "Customer": "billing.customer",
    "Invoice": "billing.invoice",
}
# curl's default for -d/--data-binary, JSON, none, and types that are not CSV at all
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/csv",
    "text/plain",
    "application/xml",
    "image/png",
    "text/csv; charset=latin-1",
    None,
]
FORM = "application/x-www-form-urlencoded"


def sent_as(server: Server, content_type: str | None) -> str | None:
    """The Content-Type a test sends to the uploadUrl: moto's S3 server (not real S3, which
    keeps the bytes as sent) reads a form-encoded PUT's body as a form and stores nothing, so
    on S3 curl's default is left out."""
    return None if server.s3 is not None and content_type == FORM else content_type


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    return iter(make_keys(server, "ebill-seed", 40))


@pytest.fixture
def client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    """A client of a new account (the seed's jobIds are unique per account)."""
    with server.client(next(keys)) as made:
        yield made


def call(client: httpx.Client, method: str, body: str, mode: str, status: int = 200) -> Element:
    answer = client.request(method, API, params={"mode": mode}, content=body.encode())
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    return parse_xml(answer.content)


def fields(node: Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in node if len(child) == 0}


def seed_xml(text: str) -> Element:
    """One of the seed's answers, parsed (its URLs' `&` escaped first)."""
    return parse_xml(text.replace("&", "&amp;").encode())


def seed_fields(text: str, *leave_out: str) -> dict[str, str]:
    return {k: v for k, v in fields(seed_xml(text)).items() if k not in leave_out}


def poll(client: httpx.Client, timeout: float = 60.0, **params: str) -> Element:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(API, params=params)
        assert answer.status_code == 200, answer.text
        node = parse_xml(answer.content)
        statuses = {n.findtext("status") for n in node.iter() if n.find("status") is not None}
        if not WORKING & statuses:
            return node
        assert time.monotonic() < deadline, f"not final after {timeout}s: {statuses}"
        time.sleep(0.05)


def poll_status(client: httpx.Client, timeout: float = 60.0, **params: str) -> Element:
    """GET the batch process until its own status is final, as a seed client polls (what
    its children then show is the test's to check)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(API, params=params)
        assert answer.status_code == 200, answer.text
        node = parse_xml(answer.content)
        if node.findtext("status") not in WORKING:
            return node
        assert time.monotonic() < deadline, f"not final after {timeout}s: {answer.text}"
        time.sleep(0.02)


def download(url: str) -> list[dict[str, str]]:
    answer = httpx.get(url)  # no key: the URL is signed, as S3's is
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def ebill_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    node = parse_xml(answer.content)
    assert node.tag == "batchProcess" and node.findtext("errorMessage"), answer.text
    assert node.findtext("errorCode") == code, answer.text


def customers_csv(count: int) -> bytes:
    rows = "".join(f"CUS{i:03d},Customer {i},cus{i:03d}@example.com\n" for i in range(1, count + 1))
    return ("customer_number,name,email\n" + rows).encode()


# the seed's sequence, with its bodies -------------------------------------------------------


def tags(node: Element) -> list[str]:
    return [child.tag for child in node]


def with_id(body: str, seed_id: int, batch_id: str) -> str:
    """A seed body with the batch process id it shows (as <id> or <parentBatchProcess>)
    replaced by this server's (which may be the same number: a test run alone on a fresh
    server gets the seed's ids)."""
    shown = [f"<{tag}>{seed_id}</{tag}>" for tag in ("id", "parentBatchProcess")]
    assert any(element in body for element in shown), body
    replaced = body
    for element in shown:
        replaced = replaced.replace(element, element.replace(f">{seed_id}<", f">{batch_id}<"))
    return replaced


def test_batch_init_answers_as_the_seed_shows(client: httpx.Client) -> None:
    """The parent and its three child nodes, in the seed's order, each kind named as the
    seed names it ("based on the type (Invoice, CreditMemo, DebitMemo) response will be
    produced"); the seed shows the Invoice node filled in."""
    init = call(client, "POST", SEED_INIT, "BatchInit")
    seed = seed_xml(SEED_INIT_ANSWER)
    assert tags(init) == tags(seed) and init.findtext("jobId") == seed.findtext("jobId")
    assert [n.tag for n in init.findall("child/*")] == [n.tag for n in seed.findall("child/*")]
    for node, seed_node in zip(init.findall("child/*"), seed.findall("child/*"), strict=True):
        assert tags(node) == tags(seed_node)
    nodes = {n.tag: fields(n) for n in init.findall("child/*")}
    seed_invoice = fields(seed.findall("child/carryForwardInvoice")[0])
    assert {k: nodes["carryForwardInvoice"][k] for k in ("jobId", "status", "operation", "subOperation")} == {
        k: seed_invoice[k] for k in ("jobId", "status", "operation", "subOperation")
    }
    assert {tag: (f["operation"], f["subOperation"], f["status"]) for tag, f in nodes.items()} == {
        "carryForwardInvoice": ("CarryForward", "Invoice", "Success"),
        "carryForwardCreditMemo": ("CarryForward", "CreditMemo", "Success"),
        "carryForwardDebitMemo": ("CarryForward", "DebitMemo", "Success"),
    }


def test_the_seeds_files_answer_as_the_seed_shows(server: Server, client: httpx.Client) -> None:
    """4.9.2 and 4.9.3 with the seed's bodies: S3FileUpload, a PUT to the uploadUrl with
    curl's default Content-Type, BatchFinalize, then the status; each answer has the seed's
    elements, in its order, with its words and counts."""
    draft = call(client, "POST", SEED_CUSTOMERS, "S3FileUpload")
    assert tags(draft) == tags(seed_xml(SEED_CUSTOMERS_ANSWER))
    got = fields(draft)
    assert {k: v for k, v in got.items() if k not in ("id", "uploadUrl")} == seed_fields(
        SEED_CUSTOMERS_ANSWER, "id", "uploadUrl"
    )
    curl = sent_as(server, FORM)  # `curl -X PUT -d @file`
    put = httpx.put(
        got["uploadUrl"], content=customers_csv(100), headers={"Content-Type": curl} if curl else {}
    )
    assert (put.status_code, put.content) == (200, b"")

    queued = call(client, "PUT", with_id(SEED_FINALIZE_CUSTOMERS, 3, got["id"]), "BatchFinalize")
    assert tags(queued) == tags(seed_xml(SEED_QUEUED_ANSWER))
    assert {k: v for k, v in fields(queued).items() if k != "id"} == seed_fields(SEED_QUEUED_ANSWER, "id")

    done = poll(client, id=got["id"])
    assert tags(done) == tags(seed_xml(SEED_STATUS_ANSWER))
    final = fields(done)
    assert {k: v for k, v in final.items() if k not in ("id", "downloadUrl")} == seed_fields(
        SEED_STATUS_ANSWER, "id", "downloadUrl"
    )
    rows = download(final["downloadUrl"])
    assert [(r["customer_number"], r["loadbay_status"]) for r in rows] == [
        (f"CUS{i:03d}", "succeeded") for i in range(1, 101)
    ]

    _the_seeds_invoices(client)


def _the_seeds_invoices(client: httpx.Client) -> None:
    invoices = "".join(f"INV{i:03d},CUS{i:03d},2020-08-01,2020-08-31,30.00\n" for i in range(1, 101))
    lines = "".join(
        f"INV{i:03d},1,Service,1,10.00,10.00\nINV{i:03d},2,Hours,2,10.00,20.00\n" for i in range(1, 101)
    )
    invoice = fields(call(client, "POST", SEED_INVOICES, "S3FileUpload"))
    assert (invoice["status"], invoice["subOperation"]) == ("Draft", "Invoice")
    invoice_file = "invoice_number,customer_number,invoice_date,due_date,amount\n" + invoices
    assert httpx.put(invoice["uploadUrl"], content=invoice_file.encode()).status_code == 200
    line_items = fields(call(client, "POST", with_id(SEED_LINE_ITEMS, 4, invoice["id"]), "S3FileUpload"))
    assert (line_items["status"], line_items["subOperation"]) == ("Draft", "Invoice Line Item")
    line_file = "invoice_number,line_number,description,quantity,unit_price,amount\n" + lines
    assert httpx.put(line_items["uploadUrl"], content=line_file.encode()).status_code == 200

    queued = call(client, "PUT", with_id(SEED_FINALIZE_INVOICES, 4, invoice["id"]), "BatchFinalize")
    assert fields(queued)["status"] == "Queued"

    done = poll_status(client, id=invoice["id"])  # final with its ITM file, as the seed shows it
    seed = seed_xml(SEED_INVOICES_ANSWER)
    assert tags(done) == tags(seed)
    leave_out = ("id", "downloadUrl")
    assert {k: v for k, v in fields(done).items() if k not in leave_out} == {
        k: v for k, v in fields(seed).items() if k not in leave_out
    }
    [child] = done.findall("child/batchProcess")
    [seed_child] = seed.findall("child/batchProcess")
    assert tags(child) == tags(seed_child)
    assert {k: v for k, v in fields(child).items() if k not in leave_out} == {
        k: v for k, v in fields(seed_child).items() if k not in leave_out
    }
    assert fields(child)["id"] == line_items["id"]
    assert {r["loadbay_status"] for r in download(fields(child)["downloadUrl"])} == {"succeeded"}


# the kinds as the seed spells them -------------------------------------------------------------


@pytest.mark.parametrize(("spelling", "batch_type"), list(SEED_SPELLINGS.items()))
def test_every_spelling_of_a_kind_is_taken(client: httpx.Client, spelling: str, batch_type: str) -> None:
    """Each spelling makes a batch of its kind, answered with the spelling sent (`Credit Memo`
    was answered `CreditMemo`, which a client checking the answer against its request refused)."""
    parent = ""
    if batch_type == "billing.invoice_line":
        invoices = SEED_CUSTOMERS.replace(
            "<subOperation>Customer</subOperation>", "<subOperation>Invoice</subOperation>"
        )
        invoice_id = fields(call(client, "POST", invoices.replace("AUGUST_2020_CUS", "INV"), "S3FileUpload"))[
            "id"
        ]
        parent = f"<parentBatchProcess>{invoice_id}</parentBatchProcess>"
    body = SEED_CUSTOMERS.replace(
        "<subOperation>Customer</subOperation>", f"{parent}<subOperation>{spelling}</subOperation>"
    )
    draft = fields(call(client, "POST", body, "S3FileUpload"))
    assert (draft["status"], draft["subOperation"]) == ("Draft", spelling)
    assert fields(by_id(client, draft["id"]))["subOperation"] == spelling
    assert client.get(f"{NATIVE}/{draft['id']}").json()["type"] == batch_type


def by_id(client: httpx.Client, batch_id: str) -> Element:
    answer = client.get(API, params={"id": batch_id})
    assert answer.status_code == 200, answer.text
    return parse_xml(answer.content)


def test_credit_and_debit_memos_load_under_the_seeds_spelling(client: httpx.Client) -> None:
    customers = fields(call(client, "POST", SEED_CUSTOMERS, "S3FileUpload"))
    assert httpx.put(customers["uploadUrl"], content=customers_csv(2)).status_code == 200
    call(client, "PUT", with_id(SEED_FINALIZE_CUSTOMERS, 3, customers["id"]), "BatchFinalize")
    assert fields(poll(client, id=customers["id"]))["status"] == "Success"

    for kind, number in (("CreditMemo", "CM-1"), ("DebitMemo", "DM-1")):
        body = (
            SEED_CUSTOMERS.replace("AUGUST_2020_CUS", f"AUGUST_2020_{kind}")
            .replace("<subOperation>Customer</subOperation>", f"<subOperation>{kind}</subOperation>")
            .replace("CUS_AUG_2020_100RECORDS.csv", f"{kind}.csv")
        )
        draft = fields(call(client, "POST", body, "S3FileUpload"))
        memo = f"memo_number,customer_number,memo_date,amount\n{number},CUS001,2020-08-05,12.50\n"
        assert httpx.put(draft["uploadUrl"], content=memo.encode()).status_code == 200
        call(
            client, "PUT", f"<batchProcess><jobId>AUGUST_2020_{kind}</jobId></batchProcess>", "BatchFinalize"
        )
        done = fields(poll(client, jobId=f"AUGUST_2020_{kind}"))
        assert (done["status"], done["subOperation"], done["successCount"]) == ("Success", kind, "1")


# the uploadUrl: as S3's presigned URL -----------------------------------------------------------


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_the_upload_url_takes_any_content_type_and_reads_csv(
    server: Server, client: httpx.Client, content_type: str | None
) -> None:
    draft = fields(call(client, "POST", SEED_CUSTOMERS, "S3FileUpload"))
    content_type = sent_as(server, content_type)
    headers = {"Content-Type": content_type} if content_type else {}
    put = httpx.put(draft["uploadUrl"], content=customers_csv(3), headers=headers)  # no API key
    assert (put.status_code, put.content) == (200, b""), put.text
    call(client, "PUT", with_id(SEED_FINALIZE_CUSTOMERS, 3, draft["id"]), "BatchFinalize")
    done = fields(poll(client, id=draft["id"]))
    assert (done["status"], done["successCount"], done["failCount"]) == ("Success", "3", "0"), done


def test_the_upload_url_refuses_in_ebills_format(server: Server, client: httpx.Client) -> None:
    if server.s3 is not None:
        pytest.skip("on S3 the uploadUrl is the store's: S3 refuses in its own format")
    draft = fields(call(client, "POST", SEED_CUSTOMERS, "S3FileUpload"))
    url = httpx.URL(draft["uploadUrl"])
    forged = url.copy_merge_params({"signature": "0" * 64})
    ebill_error(httpx.put(forged, content=customers_csv(1)), 403, "BAD_SIGNATURE")
    assert httpx.put(url, content=customers_csv(1)).status_code == 200
    call(client, "PUT", with_id(SEED_FINALIZE_CUSTOMERS, 3, draft["id"]), "BatchFinalize")
    ebill_error(httpx.put(url, content=customers_csv(1)), 409, "BATCH_NOT_OPEN")


def test_native_signed_urls_keep_their_own_rules(server: Server, client: httpx.Client) -> None:
    """The native API's upload URL still decides the format by Content-Type and answers JSON."""
    if server.s3 is not None:
        pytest.skip("on S3 both upload URLs are the store's presigned URLs")
    created = client.post(NATIVE, json={"type": "billing.customer", "upload_url": True, "file_name": "c.csv"})
    assert created.status_code == 201, created.text
    url = created.json()["upload_url"]
    assert "/v1/blobs/" in url and "/compat/ebill/" not in url
    refused = httpx.put(url, content=customers_csv(1), headers={"Content-Type": "image/png"})
    assert refused.status_code == 415, refused.text
    taken = httpx.put(url, content=customers_csv(1), headers={"Content-Type": "text/csv"})
    assert taken.status_code == 200 and taken.json()["ok"] is True


# a downloadUrl for every final status -----------------------------------------------------------


def test_a_batch_whose_file_cannot_be_read_has_a_download_url_with_the_error(
    server: Server, client: httpx.Client
) -> None:
    """Status 5 (Failed) "will have the value": here the file has no `name` column."""
    draft = fields(call(client, "POST", SEED_CUSTOMERS, "S3FileUpload"))
    put = httpx.put(draft["uploadUrl"], content=b"customer_number,email\nCUS001,a@example.com\n")
    assert put.status_code == 200
    call(client, "PUT", with_id(SEED_FINALIZE_CUSTOMERS, 3, draft["id"]), "BatchFinalize")

    done = poll(client, id=draft["id"])
    assert [n.tag for n in done] == [*SUMMARY, "downloadUrl"]
    failed = fields(done)
    assert (failed["status"], failed["successCount"], failed["failCount"]) == ("Failed", "0", "0")
    assert failed["errorMessage"].startswith("MISSING_COLUMN: ") and "name" in failed["errorMessage"]
    assert failed["downloadUrl"].startswith("http")

    answer = httpx.get(failed["downloadUrl"])
    assert answer.status_code == 200, answer.text
    header = next(csv.reader(io.StringIO(answer.text)))
    assert header[-5:] == [
        "loadbay_status",
        "loadbay_action",
        "loadbay_entity_id",
        "loadbay_error_code",
        "loadbay_error_message",
    ]
    assert header[:2] == ["customer_number", "name"]
    [row] = download(failed["downloadUrl"])
    assert (row["loadbay_status"], row["loadbay_error_code"]) == ("error", "MISSING_COLUMN")
    assert failed["errorMessage"] == f"MISSING_COLUMN: {row['loadbay_error_message']}"
    assert not any(row[column] for column in header[:-5])

    if server.s3 is None:  # (S3 checks its presigned URLs itself; moto does not)
        tampered = httpx.URL(failed["downloadUrl"]).copy_merge_params({"signature": "0" * 64})
        ebill_error(httpx.get(tampered), 403, "BAD_SIGNATURE")
    else:
        assert (
            failed["downloadUrl"].startswith(server.s3.endpoint)
            and "X-Amz-Signature=" in failed["downloadUrl"]
        )


def test_a_cleared_batch_has_a_download_url_too(client: httpx.Client) -> None:
    draft = fields(call(client, "POST", SEED_CUSTOMERS, "S3FileUpload"))
    assert client.post(f"{NATIVE}/{draft['id']}/clear").status_code == 200  # through the native API
    failed = fields(poll(client, jobId="AUGUST_2020_CUS"))
    assert (failed["status"], failed["errorMessage"]) == ("Failed", "the batch process was cleared")
    [row] = download(failed["downloadUrl"])
    assert (row["loadbay_status"], row["loadbay_error_code"]) == ("cleared", "CLEARED")
