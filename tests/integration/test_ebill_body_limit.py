"""eBill reads its XML bodies with the shared reader (loadbay.http.bodies), as the native
API and the other profiles do: the limit is LOADBAY_MAX_BODY_BYTES (no 1 MiB of its own),
and a body over it is 413 PAYLOAD_TOO_LARGE in eBill's XML error format. The files sent
to the uploadUrl are streamed and not held to it. A real `loadbay serve` on each backend,
with a 2 MiB limit (above the 1 MiB eBill used to stop at)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from loadbay.xmlsafe import parse_xml
from tests.support.accounts import make_keys
from tests.support.servers import Server, start_server

API = "/compat/ebill/rest/batchProcess"
LIMIT = 2 * 1024 * 1024

# seed 000, 4.9.2.1, as the seed shows it (its indentation is no-break spaces and spaces)
SEED_CUSTOMERS = """<batchProcess>
\xa0 \xa0 <jobId>AUGUST_2020_CUS</jobId>
\xa0 \xa0 <inputType>API</inputType>
<operation>eBill-Import</operation>
<subOperation>Customer</subOperation>
<inputFilename>CUS_AUG_2020_100RECORDS.csv</inputFilename>
</batchProcess>"""


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"LOADBAY_MAX_BODY_BYTES": str(LIMIT), "LOADBAY_MAX_UPLOAD_BYTES": str(16 * 1024 * 1024)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    return iter(make_keys(server, "ebill-limits", 8))


@pytest.fixture
def client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    """A client of a new account (each test sends the seed's jobId)."""
    with server.client(next(keys)) as made:
        yield made


def padded(body: str, size: int) -> bytes:
    """The body, `size` bytes long: spaces before its closing tag (still the same document)."""
    data = body.encode()
    closing = b"</batchProcess>"
    return data[: -len(closing)] + b" " * (size - len(data)) + closing


def too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    node = parse_xml(answer.content)
    assert node.tag == "batchProcess" and node.findtext("errorCode") == "PAYLOAD_TOO_LARGE", answer.text
    message = node.findtext("errorMessage") or ""
    assert "LOADBAY_MAX_BODY_BYTES" in message and str(LIMIT) in message, message


def test_a_body_under_the_limit_is_read(client: httpx.Client) -> None:
    """1.5 MiB: over the 1 MiB eBill had of its own, under the server's limit."""
    body = padded(SEED_CUSTOMERS, 3 * 1024 * 1024 // 2)
    answer = client.post(API, params={"mode": "S3FileUpload"}, content=body)
    assert answer.status_code == 200, answer.text
    node = parse_xml(answer.content)
    assert (node.findtext("status"), node.findtext("jobId")) == ("Draft", "AUGUST_2020_CUS")


def test_a_body_over_the_limit_is_413_in_ebills_format(client: httpx.Client) -> None:
    body = padded(SEED_CUSTOMERS, LIMIT + 1)
    too_large(client.post(API, params={"mode": "S3FileUpload"}, content=body))
    finalize = padded("<batchProcess><jobId>AUGUST_2020_CUS</jobId></batchProcess>", LIMIT + 1)
    too_large(client.put(API, params={"mode": "BatchFinalize"}, content=finalize))
    assert client.get(API, params={"jobId": "AUGUST_2020_CUS"}).status_code == 404  # nothing made


def test_a_body_streamed_without_a_length_is_cut_off_at_the_limit(client: httpx.Client) -> None:
    body = padded(SEED_CUSTOMERS, LIMIT + 64 * 1024)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    too_large(client.post(API, params={"mode": "S3FileUpload"}, content=chunks()))


def test_the_uploaded_file_is_not_held_to_the_body_limit(client: httpx.Client) -> None:
    draft = parse_xml(client.post(API, params={"mode": "S3FileUpload"}, content=SEED_CUSTOMERS).content)
    rows = "".join(f"CUS{i:06d},Customer {i} of a long enough name\n" for i in range(80_000))
    content = ("customer_number,name\n" + rows).encode()
    assert len(content) > LIMIT
    put = httpx.put(draft.findtext("uploadUrl") or "", content=content, timeout=60)
    assert put.status_code == 200, put.text
