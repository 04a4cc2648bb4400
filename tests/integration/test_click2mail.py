"""The Click2Mail profile (seed 004) as a client uses it, against a real `loadbay serve`
on each backend: the seed's calls in the seed's order, the bad inputs, FIFO, tracking."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, fromstring

import httpx
import pytest

from tests.support.pdfs import pdf
from tests.support.servers import Server, start_server, start_worker

BASE = "/compat/click2mail"
PROLOG = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
NO_TRACKING = "Tracking data not available for this batch."
PDF = {"Content-Type": "application/pdf"}
XML = {"Content-Type": "application/xml"}


# accounts: made in one process per module ----------------------------------

_MAKE_ACCOUNTS = """
import json, sys
from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.types import default_registry

settings = Settings()
rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
service = BatchService(rt)
name, count = sys.argv[1], int(sys.argv[2])
keys = {
    mode: [service.create_account(f"{name}-{mode}-{i}", test=mode == "test")[1] for i in range(count)]
    for mode in ("live", "test")
}
rt.close()
print(json.dumps(keys))
"""


@pytest.fixture(scope="module")
def accounts(server: Server) -> dict[str, Iterator[str]]:
    """API keys of new live and test accounts on the module's server, each handed out once."""
    args = [sys.executable, "-c", _MAKE_ACCOUNTS, f"c2m-{uuid.uuid4().hex[:8]}", "60"]
    out = subprocess.run(args, env=server.env, check=True, capture_output=True)
    return {mode: iter(keys) for mode, keys in json.loads(out.stdout).items()}


@pytest.fixture
def key(accounts: dict[str, Iterator[str]]) -> str:
    return next(accounts["live"])


@pytest.fixture
def other_key(accounts: dict[str, Iterator[str]]) -> str:
    return next(accounts["live"])


@pytest.fixture
def test_key(accounts: dict[str, Iterator[str]]) -> str:
    return next(accounts["test"])


@pytest.fixture
def c2m(server: Server, key: str) -> Iterator[httpx.Client]:
    """A client as Click2Mail's own: HTTP Basic, the loadbay key as the password."""
    with _client(server, key) as client:
        yield client


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url + BASE, auth=("c2m-user", key), timeout=30.0)


# documents -----------------------------------------------------------------


RECIPIENT = (
    "<address><name>{name}</name><organization></organization><address1>1 Main St</address1>"
    "<address2></address2><city>Arlington</city><state>VA</state><postalCode>22201</postalCode>"
    "<country>US</country></address>"
)


def job_xml(start: int, end: int, recipients: str | None = None) -> str:
    recipients = RECIPIENT.format(name="Ann Lee") if recipients is None else recipients
    return f"""<job>
    <startingPage>{start}</startingPage>
    <endingPage>{end}</endingPage>
    <printProductionOptions>
      <documentClass>Letter 8.5 x 11</documentClass>
      <layout>Address on Separate Page</layout>
      <productionTime>Next Day</productionTime>
      <envelope>#10 Double Window</envelope>
      <color>Black and White</color>
      <paperType>White 24#</paperType>
      <printOption>Printing One side</printOption>
      <mailClass>First Class</mailClass>
    </printProductionOptions>
    <returnAddress><name>Click2Mail Tests</name><address1>9 Side St</address1><city>Vienna</city>
      <state>VA</state><postalCode>22180</postalCode></returnAddress>
    <recipients>{recipients}</recipients>
  </job>"""


def batch_xml(*jobs: str) -> str:
    """The seed's batch document around `jobs`."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<batch xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        "  <filename>batchTest.pdf</filename>\n"
        "  <appSignature>PostmanC2MTests</appSignature>\n  " + "\n  ".join(jobs) + "\n</batch>\n"
    )


TWO_JOBS = batch_xml(job_xml(1, 2), job_xml(3, 3, RECIPIENT.format(name="Bob Roe") * 2))

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<batch><filename>&lol4;</filename><job><startingPage>1</startingPage></job></batch>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE batch [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<batch><filename>&xxe;</filename><job><startingPage>1</startingPage></job></batch>"""


# helpers -------------------------------------------------------------------


def fields(text: str) -> dict[str, str]:
    """The child elements of a flat XML document, as text."""
    return {child.tag: child.text or "" for child in fromstring(text)}


def create(client: httpx.Client) -> int:
    r = client.post("/batches")
    assert r.status_code == 201, r.text
    return int(fields(r.text)["id"])


def put(client: httpx.Client, batch_id: int, body: bytes | str, headers: dict[str, str]) -> httpx.Response:
    return client.put(f"/batches/{batch_id}", content=body, headers=headers)


def ready(client: httpx.Client, xml: str = TWO_JOBS, pages: int = 3) -> int:
    """A batch with its PDF and XML, not yet submitted."""
    batch_id = create(client)
    assert put(client, batch_id, pdf(pages), PDF).status_code == 200
    r = put(client, batch_id, xml, XML)
    assert r.status_code == 200, r.text
    return batch_id


def submitted(client: httpx.Client, xml: str = TWO_JOBS, pages: int = 3) -> int:
    batch_id = ready(client, xml, pages)
    r = client.post(f"/batches/{batch_id}")
    assert r.status_code == 200, r.text
    return batch_id


def wait_done(client: httpx.Client, batch_id: int, jobs: int, timeout: float = 120.0) -> Element:
    """Poll the status until received and submitted, then details until `jobs` are listed
    and every refused job is in the errors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = fields(client.get(f"/batches/{batch_id}").text)
        details = fromstring(client.get(f"/batches/{batch_id}/details").text)
        settled = len(details.findall("jobs/job")) + len(details.findall("errors/error"))
        if status["received"] == "true" and settled >= jobs:
            return details
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish: {status}")


def error(r: httpx.Response, status: int, code: str) -> str:
    """The description of an XML error response, after checking its status and code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/xml")
    body = fields(r.text)
    assert (body["status"], body["code"]) == (str(status), code), r.text
    return body["description"]


def load_tracking(server: Server, path: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "loadbay", "tracking", "load", str(path)]
    return subprocess.run(args, env=server.env, capture_output=True, text=True, timeout=120)


# the seed, step by step ----------------------------------------------------


def test_the_seed_walkthrough_from_create_to_tracking(
    server: Server, c2m: httpx.Client, tmp_path: Path
) -> None:
    # Step 1: create an empty batch: 201 and the seed's <batchjob>
    r = c2m.post("/batches")
    assert r.status_code == 201 and r.headers["content-type"].startswith("application/xml")
    assert r.text.startswith(PROLOG)
    created = fields(r.text)
    assert list(created) == ["createdAt", "errorMessage", "hasErrors", "id", "received", "submitted"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", created["createdAt"])
    assert "<errorMessage></errorMessage>" in r.text
    assert (created["hasErrors"], created["received"], created["submitted"]) == ("false", "false", "false")
    batch_id = int(created["id"])

    # Step 2: the PDF; Step 3: the batch XML; Step 4: submit. Each 200 without a body.
    for response in (
        put(c2m, batch_id, pdf(3), PDF),
        put(c2m, batch_id, TWO_JOBS, XML),
        c2m.post(f"/batches/{batch_id}"),
    ):
        assert (response.status_code, response.content) == (200, b"")

    # Checking: status, then the jobs created, then tracking
    details = wait_done(c2m, batch_id, jobs=2)
    status = fields(c2m.get(f"/batches/{batch_id}").text)
    assert status["received"] == "true" and status["submitted"] == "true"
    assert status["hasErrors"] == "false" and status["errorMessage"] == ""
    assert status["id"] == str(batch_id) and status["createdAt"] == created["createdAt"]
    jobs = [fields_of(job) for job in details.findall("jobs/job")]
    assert details.findtext("count") == "2"
    assert [
        (j["jobKey"], j["status"], j["startingPage"], j["endingPage"], j["recipients"]) for j in jobs
    ] == [
        ("job-1", "Queued", "1", "2", "1"),
        ("job-2", "Queued", "3", "3", "2"),
    ]
    assert all(j["id"].isdigit() for j in jobs) and jobs[0]["id"] != jobs[1]["id"]
    assert fields(c2m.get(f"/batches/{batch_id}/tracking").text)["description"] == NO_TRACKING

    # the daily tracking feed, loaded with the CLI, shows up as tracking XML
    feed = tmp_path / "tracking.csv"
    first, second = jobs[0]["id"], jobs[1]["id"]
    feed.write_text(
        "job_id,at,status,location,detail\n"
        f"{first},2024-05-01T09:00:00-04:00,Mailed,Merrifield VA,\n"
        f"{first},2024-05-03T11:20:00-04:00,Delivered,Arlington VA,front door\n"
        f"{second},2024-05-01T09:05:00-04:00,Mailed,Merrifield VA,\n"
        "999999999,2024-05-01T09:05:00-04:00,Mailed,,\n"
    )
    out = load_tracking(server, feed)
    assert out.returncode == 1, out.stderr  # one row refused
    assert "loaded 3 tracking events" in out.stdout and "UNKNOWN_JOB" in out.stderr

    r = c2m.get(f"/batches/{batch_id}/tracking")
    assert r.status_code == 200 and r.text.startswith(PROLOG)
    tracking = fromstring(r.text)
    assert (tracking.findtext("status"), tracking.findtext("description")) == ("0", "Success")
    items = [fields_of(item) for item in tracking.findall("items/item")]
    assert [(i["jobId"], i["status"], i["statusLocation"]) for i in items] == [
        (first, "Mailed", "Merrifield VA"),
        (first, "Delivered", "Arlington VA"),
        (second, "Mailed", "Merrifield VA"),
    ]
    assert items[1]["dateTime"] == "2024-05-03T15:20:00+00:00" and items[1]["detail"] == "front door"
    details = fromstring(c2m.get(f"/batches/{batch_id}/details").text)
    assert [job.findtext("status") for job in details.findall("jobs/job")] == ["Delivered", "Mailed"]

    again = load_tracking(server, feed)  # the same feed again: nothing new, the unknown job again
    assert "loaded 0 tracking events, skipped 3 already stored" in again.stdout
    assert len(fromstring(c2m.get(f"/batches/{batch_id}/tracking").text).findall("items/item")) == 3


def fields_of(element: Element) -> dict[str, str]:
    return {child.tag: child.text or "" for child in element}


@pytest.mark.parametrize("style", ["basic-user-password", "basic-key"])
def test_basic_auth_styles(server: Server, key: str, style: str) -> None:
    auth = ("anyone", key) if style == "basic-user-password" else None
    headers = {} if auth else {"Authorization": f"Basic {key}"}
    with httpx.Client(base_url=server.url + BASE, auth=auth, headers=headers) as client:
        assert client.post("/batches").status_code == 201


def test_no_or_unknown_credentials_are_401_with_a_basic_challenge(server: Server) -> None:
    with httpx.Client(base_url=server.url + BASE) as client:
        r = client.post("/batches")
        error(r, 401, "UNAUTHORIZED")
        assert r.headers["www-authenticate"].startswith("Basic")
        error(client.post("/batches", auth=("user", "lb_live_nope")), 401, "UNAUTHORIZED")


# call order ----------------------------------------------------------------


def test_the_xml_before_the_pdf_is_refused(c2m: httpx.Client) -> None:
    batch_id = create(c2m)
    description = error(put(c2m, batch_id, TWO_JOBS, XML), 400, "ATTACHMENT_MISSING")
    assert "PDF" in description and "application/pdf" in description


def test_submit_before_the_uploads_is_refused(c2m: httpx.Client) -> None:
    batch_id = create(c2m)
    error(c2m.post(f"/batches/{batch_id}"), 400, "ATTACHMENT_MISSING")
    assert put(c2m, batch_id, pdf(3), PDF).status_code == 200
    assert "batch XML" in error(c2m.post(f"/batches/{batch_id}"), 400, "NO_DATA")
    assert fields(c2m.get(f"/batches/{batch_id}").text)["submitted"] == "false"


def test_the_pdf_after_the_xml_or_after_submit_is_refused(c2m: httpx.Client) -> None:
    batch_id = ready(c2m)
    error(put(c2m, batch_id, pdf(3), PDF), 400, "ATTACHMENT_AFTER_DATA")
    assert c2m.post(f"/batches/{batch_id}").status_code == 200
    error(put(c2m, batch_id, pdf(3), PDF), 400, "BATCH_NOT_OPEN")
    error(put(c2m, batch_id, TWO_JOBS, XML), 400, "BATCH_NOT_OPEN")
    error(c2m.post(f"/batches/{batch_id}"), 400, "INVALID_STATE")


def test_the_xml_again_before_submit_replaces_the_jobs(c2m: httpx.Client) -> None:
    batch_id = ready(c2m)
    assert put(c2m, batch_id, batch_xml(job_xml(2, 3)), XML).status_code == 200
    assert c2m.post(f"/batches/{batch_id}").status_code == 200
    details = wait_done(c2m, batch_id, jobs=1)
    assert [j.findtext("startingPage") for j in details.findall("jobs/job")] == ["2"]


def test_refusals_name_click2mail_calls_not_native_ones(database_url: str, tmp_path: Path) -> None:
    """A batch XML over LOADBAY_MAX_BODY_BYTES said "send more items in more pages, or the data
    as a file", a submit without it "upload a file or send pages first", the PDF after it "send
    attachments before the data", a second submit "allowed now: cancel": calls Click2Mail has
    not. Each now says what a Click2Mail client can do."""
    env = {"LOADBAY_MAX_BODY_BYTES": "4096"}
    api = start_server(database_url, tmp_path / "data", workers=0, env=env)
    try:
        with _client(api, api.account("words")) as client:
            batch_id = create(client)
            assert put(client, batch_id, pdf(3), PDF).status_code == 200
            said = [error(client.post(f"/batches/{batch_id}"), 400, "NO_DATA")]
            big = batch_xml(*[job_xml(1, 1)] * 20).encode()
            for body in (big, iter([big])):  # its length declared; streamed without one
                refused = client.put(f"/batches/{batch_id}", content=body, headers=XML)
                said.append(error(refused, 413, "PAYLOAD_TOO_LARGE"))
            assert put(client, batch_id, TWO_JOBS, XML).status_code == 200
            said.append(error(put(client, batch_id, pdf(3), PDF), 400, "ATTACHMENT_AFTER_DATA"))
            assert client.post(f"/batches/{batch_id}").status_code == 200
            said.append(error(client.post(f"/batches/{batch_id}"), 400, "INVALID_STATE"))
            said.append(error(put(client, batch_id, TWO_JOBS, XML), 400, "BATCH_NOT_OPEN"))
    finally:
        api.stop()
    for description in said:
        assert not re.search(r"page|file|attachment|data\b|allowed now|open\b|queued", description), said
    assert "batch XML" in said[0] and "PUT the batch XML" in said[0]
    assert "several batches" in said[1] and "LOADBAY_MAX_BODY_BYTES" in said[1] and "4 KiB" in said[2]


# bad bodies ----------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/csv", "application/json", "application/octet-stream", None])
def test_other_content_types_are_415(c2m: httpx.Client, content_type: str | None) -> None:
    batch_id = create(c2m)
    headers = {"Content-Type": content_type} if content_type else {}
    description = error(put(c2m, batch_id, pdf(3), headers), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/pdf" in description


def test_a_body_that_is_not_a_pdf_is_refused_and_not_kept(
    c2m: httpx.Client, server: Server, key: str
) -> None:
    batch_id = create(c2m)
    assert "not a PDF" in error(
        put(c2m, batch_id, b"%!PS-Adobe-3.0 a postscript file", PDF), 400, "INVALID_PDF"
    )
    assert "cannot be read" in error(put(c2m, batch_id, pdf(3)[:300], PDF), 400, "INVALID_PDF")
    with server.client(key) as native:
        assert native.get(f"/v1/batches/{batch_id}").json()["options"] == {}
    error(put(c2m, batch_id, TWO_JOBS, XML), 400, "ATTACHMENT_MISSING")  # still no document
    assert put(c2m, batch_id, pdf(3), PDF).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (BILLION_LAUGHS, "INVALID_XML"),
        (EXTERNAL_ENTITY, "INVALID_XML"),
        (b"<batch><job><startingPage>1</job></batch>", "INVALID_XML"),
        (b"", "INVALID_XML"),
        (b"<batchjob><id>1</id></batchjob>", "NOT_A_BATCH"),
        (b"<batch><filename>a.pdf</filename></batch>", "NO_JOBS"),
    ],
)
def test_bad_xml_is_refused_and_nothing_stored(c2m: httpx.Client, body: bytes, code: str) -> None:
    batch_id = create(c2m)
    assert put(c2m, batch_id, pdf(3), PDF).status_code == 200
    error(put(c2m, batch_id, body, {"Content-Type": "text/xml"}), 400, code)
    error(c2m.post(f"/batches/{batch_id}"), 400, "NO_DATA")  # no jobs were stored


ANN, BOB = RECIPIENT.format(name="Ann Lee"), RECIPIENT.format(name="Bob Roe")
DOUBLED = [
    pytest.param(job_xml(1, 1, ANN + f"</recipients><recipients>{BOB}"), "<recipients>", id="recipients"),
    pytest.param(job_xml(1, 1, ANN.replace("</name>", "</name><name>Bob Roe</name>")), "<name>", id="name"),
    pytest.param(
        job_xml(1, 1).replace("<endingPage>", "<endingPage>3</endingPage><endingPage>"),
        "<endingPage>",
        id="page",
    ),
    pytest.param(job_xml(1, 1).replace("<color>", "<color>Color</color><color>"), "<color>", id="option"),
    pytest.param(
        job_xml(1, 1).replace("Letter 8.5 x 11", "<x>1</x>"), "<documentClass>", id="nested-where-text-goes"
    ),
    pytest.param(job_xml(1, 1).replace("<city>Vienna", "<city><x/>Vienna"), "<city>", id="nested-in-address"),
    pytest.param(
        job_xml(1, 1, ANN + "<person><name>Bob Roe</name></person>"), "<person>", id="not-an-address"
    ),
]


@pytest.mark.parametrize(("job", "named"), DOUBLED)
def test_a_job_with_an_element_twice_or_elements_where_text_goes_is_refused(
    c2m: httpx.Client, job: str, named: str
) -> None:
    """They were read silently: the last of two won (two <recipients>: the first recipient
    was dropped), a nested value where text goes read as empty, another element in
    <recipients> was left out. Several <address> in one <recipients> is the normal form."""
    batch_id = create(c2m)
    assert put(c2m, batch_id, pdf(3), PDF).status_code == 200
    description = error(put(c2m, batch_id, batch_xml(job_xml(1, 1), job), XML), 400, "INVALID_XML")
    assert named in description and "job-2" in description, description
    error(c2m.post(f"/batches/{batch_id}"), 400, "NO_DATA")  # nothing was stored
    twice = batch_xml(job_xml(1, 1)).replace("<filename>", "<filename>a.pdf</filename><filename>")
    assert "<filename>" in error(put(c2m, batch_id, twice, XML), 400, "INVALID_XML")


def test_the_content_types_charset_reads_the_xml(c2m: httpx.Client, server: Server, key: str) -> None:
    """A Latin-1 batch XML with no declaration of its own, said to be Latin-1 by its header
    (RFC 7303): read so (it was refused as malformed XML); said to be UTF-8, refused saying so."""
    latin1 = batch_xml(job_xml(1, 2, RECIPIENT.format(name="Zoë Brontë"))).replace(
        '<?xml version="1.0" encoding="UTF-8"?>\n', ""
    )
    batch_id = create(c2m)
    assert put(c2m, batch_id, pdf(3), PDF).status_code == 200
    said_utf8 = put(c2m, batch_id, latin1.encode("latin-1"), {"Content-Type": "text/xml; charset=utf-8"})
    assert "the body is not utf-8 as its Content-Type says" in error(said_utf8, 400, "INVALID_XML")
    said_latin1 = {"Content-Type": "text/xml; charset=ISO-8859-1"}
    assert put(c2m, batch_id, latin1.encode("latin-1"), said_latin1).status_code == 200
    assert c2m.post(f"/batches/{batch_id}").status_code == 200
    wait_done(c2m, batch_id, jobs=1)
    with server.client(key) as native:
        [row] = csv.DictReader(io.StringIO(native.get(f"/v1/batches/{batch_id}/results").text))
    assert json.loads(row["recipients"])[0]["name"] == "Zoë Brontë", row


# invalid jobs --------------------------------------------------------------


def test_invalid_jobs_show_in_status_and_details(c2m: httpx.Client) -> None:
    xml = batch_xml(
        job_xml(1, 3),
        job_xml(2, 5),  # beyond the 3-page document
        job_xml(3, 2),  # reversed
        job_xml(1, 1, "<address><name>No Street</name><city>Arlington</city></address>"),
        job_xml(1, 1, ""),
    )
    batch_id = submitted(c2m, xml, pages=3)
    details = wait_done(c2m, batch_id, jobs=5)
    status = fields(c2m.get(f"/batches/{batch_id}").text)
    assert status["hasErrors"] == "true"
    assert status["errorMessage"].startswith("4 of 5 jobs have errors: job-2: ")
    assert "PAGE_RANGE_OUT_OF_DOCUMENT" in status["errorMessage"]
    assert [j.findtext("jobKey") for j in details.findall("jobs/job")] == ["job-1"]
    assert details.findtext("count") == "1"
    refused = [
        (e.findtext("jobKey"), e.findtext("field"), e.findtext("code"))
        for e in details.findall("errors/error")
    ]
    assert refused == [
        ("job-2", "endingPage", "PAGE_RANGE_OUT_OF_DOCUMENT"),
        ("job-3", "endingPage", "PAGE_RANGE_OUT_OF_DOCUMENT"),
        ("job-4", "recipients", "INCOMPLETE_ADDRESS"),
        ("job-5", "recipients", "NO_RECIPIENTS"),
    ]
    assert "outside the document, which has 3 page(s)" in details.findall("errors/error")[0].findtext(
        "description", ""
    )


def test_the_native_errors_api_names_jobs_as_click2mail_does(
    c2m: httpx.Client, server: Server, key: str
) -> None:
    """A job has no key of its own: the native API's errors (and the summary's examples) give
    each the name the dashboard and Click2Mail's details show, job-<n>, not null."""
    xml = batch_xml(job_xml(1, 1), job_xml(2, 5), job_xml(1, 1, ""), job_xml(3, 2))
    batch_id = submitted(c2m, xml, pages=3)
    wait_done(c2m, batch_id, jobs=4)
    with server.client(key) as native:
        errors = native.get(f"/v1/batches/{batch_id}/errors").json()["data"]
        one_code = native.get(f"/v1/batches/{batch_id}/errors", params={"code": "NO_RECIPIENTS"}).json()
        summary = native.get(f"/v1/batches/{batch_id}/errors/summary").json()
    assert [(e["index"], e["external_id"]) for e in errors] == [(1, "job-2"), (2, "job-3"), (3, "job-4")]
    assert [e["external_id"] for e in one_code["data"]] == ["job-3"]
    examples = {g["code"]: [e["external_id"] for e in g["examples"]] for g in summary["groups"]}
    assert examples == {"PAGE_RANGE_OUT_OF_DOCUMENT": ["job-2", "job-4"], "NO_RECIPIENTS": ["job-3"]}


# batches ended outside Click2Mail (the native API, the dashboard) ------------


def ended(status: dict[str, str], word: str) -> str:
    """The errorMessage of a batch that reads as finished with an error, after checking so."""
    assert (status["hasErrors"], status["received"], status["submitted"]) == ("true", "true", "true"), status
    assert f"the batch was {word}" in status["errorMessage"], status
    return status["errorMessage"]


@pytest.mark.parametrize(("call", "word"), [("cancel", "cancelled"), ("clear", "cleared")])
def test_a_batch_cancelled_or_cleared_before_submit_reads_as_finished_with_an_error(
    c2m: httpx.Client, server: Server, key: str, call: str, word: str
) -> None:
    """It read as a fresh batch (hasErrors false, nothing submitted) for ever."""
    batch_id = ready(c2m)
    with server.client(key) as native:
        assert native.post(f"/v1/batches/{batch_id}/{call}").status_code == 200
    message = ended(fields(c2m.get(f"/batches/{batch_id}").text), word)
    assert "before it was submitted" in message and "no job was created" in message
    error(c2m.post(f"/batches/{batch_id}"), 400, "INVALID_STATE")


def test_a_batch_cancelled_in_the_queue_reads_as_finished_with_an_error(
    database_url: str, tmp_path: Path
) -> None:
    """It read as waiting in the queue (submitted, not received) for ever: a client polled on."""
    api = start_server(database_url, tmp_path / "data", workers=0)
    try:
        key = api.account("cancelled")
        with _client(api, key) as client, api.client(key) as native:
            batch_id = submitted(client)
            assert native.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
            details = wait_done(client, batch_id, jobs=0, timeout=10)
            message = ended(fields(client.get(f"/batches/{batch_id}").text), "cancelled")
        assert "after it was submitted" in message and "0 jobs were created" in message
        assert details.findtext("count") == "0"
    finally:
        api.stop()


# tenancy and test accounts -------------------------------------------------


def test_another_accounts_batch_is_404_everywhere(c2m: httpx.Client, server: Server, other_key: str) -> None:
    batch_id = ready(c2m)
    with _client(server, other_key) as other:
        for r in (
            other.get(f"/batches/{batch_id}"),
            other.get(f"/batches/{batch_id}/details"),
            other.get(f"/batches/{batch_id}/tracking"),
            other.post(f"/batches/{batch_id}"),
            put(other, batch_id, pdf(1), PDF),
            put(other, batch_id, TWO_JOBS, XML),
            put(other, batch_id, b"x", {"Content-Type": "text/plain"}),
        ):
            error(r, 404, "NOT_FOUND")
    error(c2m.get("/batches/999999999"), 404, "NOT_FOUND")


@pytest.mark.parametrize("spelt", ["+{}", "0_{}", " {}", "{} ", "{}.0"])
def test_a_batch_id_that_is_not_plain_digits_is_400_everywhere(c2m: httpx.Client, spelt: str) -> None:
    """`/batches/1_0` was batch 10 and `/batches/+1` batch 1 (lax int); now only plain digits
    name a batch, and the batch is left as it is."""
    batch_id = ready(c2m)
    path = f"/batches/{spelt.format(batch_id)}"
    for r in (
        c2m.get(path),
        c2m.get(f"{path}/details"),
        c2m.get(f"{path}/tracking"),
        c2m.post(path),
        c2m.put(path, content=batch_xml(job_xml(2, 3)), headers=XML),
    ):
        assert "plain digits" in error(r, 400, "INVALID_INPUT")
    assert fields(c2m.get(f"/batches/{batch_id}").text)["submitted"] == "false"
    assert (c2m.get(f"/batches/0{batch_id}").status_code, c2m.get(f"/batches/{2**63}").status_code) == (
        200,
        404,
    )


def test_a_test_account_never_has_tracking(server: Server, test_key: str, tmp_path: Path) -> None:
    with _client(server, test_key) as client:
        batch_id = submitted(client)
        details = wait_done(client, batch_id, jobs=2)
        jobs = [job.findtext("id") for job in details.findall("jobs/job")]
        assert [job.findtext("status") for job in details.findall("jobs/job")] == ["Processed", "Processed"]
        feed = tmp_path / "tracking.csv"
        feed.write_text("job_id,at,status\n" + "".join(f"{j},2024-05-01T09:00:00Z,Mailed\n" for j in jobs))
        out = load_tracking(server, feed)
        assert out.returncode == 1 and out.stderr.count("TEST_ACCOUNT") == 2
        assert "loaded 0 tracking events" in out.stdout
        assert fields(client.get(f"/batches/{batch_id}/tracking").text)["description"] == NO_TRACKING


def test_an_unreadable_feed_exits_2(server: Server, tmp_path: Path) -> None:
    feed = tmp_path / "tracking.csv"
    feed.write_text("job,when\n1,2024-05-01T09:00:00Z\n")
    out = load_tracking(server, feed)
    assert out.returncode == 2 and "MISSING_COLUMN" in out.stderr


# first in, first out -------------------------------------------------------


def test_batches_are_processed_first_in_first_out(database_url: str, tmp_path: Path) -> None:
    """Queued with no worker running: submitted but not received; then one worker takes them
    in the order they were submitted (not the order they were created)."""
    data = tmp_path / "data"
    api = start_server(database_url, data, workers=0)
    worker = None
    try:
        key = api.account("fifo")
        with _client(api, key) as client, api.client(key) as native:
            a, b, c = (ready(client) for _ in range(3))
            for batch_id in (c, a, b):
                assert client.post(f"/batches/{batch_id}").status_code == 200
                status = fields(client.get(f"/batches/{batch_id}").text)
                assert (status["submitted"], status["received"]) == ("true", "false")
            worker = start_worker(database_url, data)
            for batch_id in (a, b, c):
                wait_done(client, batch_id, jobs=2)
            starts = {batch_id: _started_at(native, batch_id) for batch_id in (a, b, c)}
        assert sorted(starts, key=starts.__getitem__) == [c, a, b]
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        api.stop()


def _started_at(native: httpx.Client, batch_id: int) -> Any:
    events = native.get(f"/v1/batches/{batch_id}/events").json()["data"]
    return next(e["at"] for e in events if e["event"] == "start")
