"""Screenshots of the dashboard's main pages and of the API docs (Swagger UI, ReDoc), for
docs/screenshots/ (so they stay current).

Starts a throwaway `loadbay serve` (SQLite in a temporary directory), makes an account and a
few realistic batches through the API, and photographs the pages with Debian's Chromium
(sign-in, batches, new import, uploading, live progress, an open batch taking files, a
batch with refused records, two-phase, unreadable, cancelled, the phone's width, the API
docs):

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.browser import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tests.support.servers import Server, start_server, wait_final  # noqa: E402

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

CUSTOMERS = """customer_number,name,email,phone,country,currency,balance,status
CUS-1001,Ada Lovelace,ada@analytical.example,+44 20 7946 0001,GB,GBP,120.00,Active
CUS-1002,Grace Hopper,grace@cobol.example,+1 202 555 0102,US,USD,0,Active
CUS-1003,Alan Turing,alan(at)bletchley.example,+44 20 7946 0003,GB,GBP,15.50,Active
CUS-1004,Katherine Johnson,katherine@nasa.example,+1 757 555 0104,US,USD,1250.125,Active
CUS-1005,,edsger@dijkstra.example,+31 20 555 0105,NL,EUR,0,Active
CUS-1006,Barbara Liskov,barbara@clu.example,+1 617 555 0106,US,USD,99.99,Active
CUS-1007,Donald Knuth,don@taocp.example,+1 650 555 0107,XX,USD,42,Active
CUS-1008,Frances Allen,fran@ibm.example,+1 914 555 0108,US,USD,0,Dormant
CUS-1002,Grace B. Hopper,grace@navy.example,+1 202 555 0199,US,USD,0,Active
CUS-1009,Tim Berners-Lee,tim@w3.example,+44 20 7946 0009,GB,GBP,7.25,Active
CUS-1010,Margaret Hamilton,margaret@apollo.example,+1 617 555 0110,US,USD,300,Active
CUS-1011,John Backus,john@fortran,+1 408 555 0111,US,USD,0,Active
"""
PAYMENTS = """customer_number,amount,payment_date,reference,method
CUS-1001,50.00,2026-03-02,PAY-77001,card
CUS-1002,20.00,2026-03-02,PAY-77002,card
CUS-9999,75.00,2026-03-03,PAY-77003,transfer
CUS-1006,-5,2026-03-03,PAY-77004,card
CUS-1009,7.25,2026-03-04,PAY-77005,cash
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    executable = chromium_path()
    if executable is None:
        sys.exit("Chromium is not installed (apt-get install chromium)")
    with _server() as server, sync_playwright() as playwright:
        key = server.account("Acme billing")
        batches = _seed(server, key)
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            _shoot(browser, server, key, batches, out)
        finally:
            browser.close()
    for made in sorted(out.glob("*.png")):
        print(made.relative_to(ROOT) if made.is_relative_to(ROOT) else made)


@contextmanager
def _server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="loadbay-screenshots-") as folder:
        data = Path(folder)
        server = start_server(f"sqlite:///{data / 'loadbay.db'}", data, env={"LOADBAY_CHUNK_SIZE": "1000"})
        try:
            yield server
        finally:
            server.stop()


def _seed(server: Server, key: str) -> dict[str, int]:
    """Batches of each kind a person meets; their ids by name."""
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": key}, timeout=60) as client:
        made = {
            "cancelled": _batch(client, CUSTOMERS, job_id="2026-02 customers (old export)", process="manual"),
            "error": _batch(
                client, "name,email\nNo Number,x@example.com\n", description="contacts.csv from the CRM"
            ),
            "completed": _batch(
                client, CUSTOMERS, job_id="2026-03 customers", description="CRM export, March"
            ),
            "validated": _batch(
                client, PAYMENTS, type="billing.payment", job_id="2026-03 payments", process="manual"
            ),
        }
        client.post(f"/v1/batches/{made['cancelled']}/cancel")
        made["open"] = _open_batch(client)
    return made


def _open_batch(client: httpx.Client) -> int:
    """A batch made through the API and left open: a file received, another expected at the
    upload URL handed out for it."""
    spec = {"type": "billing.customer", "job_id": "2026-04 customers by region"}
    batch_id: int = client.post("/v1/batches", json=spec).json()["id"]
    client.put(
        f"/v1/batches/{batch_id}/data",
        params={"name": "customers-north.csv"},
        content=CUSTOMERS,
        headers={"Content-Type": "text/csv"},
    )
    client.post(f"/v1/batches/{batch_id}/upload-url", json={"name": "customers-south.csv"})
    return batch_id


def _batch(client: httpx.Client, body: str, *, type: str = "billing.customer", **spec: Any) -> int:
    batch_id: int = client.post("/v1/batches", json={"type": type} | spec).json()["id"]
    client.put(f"/v1/batches/{batch_id}/data", content=body, headers={"Content-Type": "text/csv"})
    client.post(f"/v1/batches/{batch_id}/submit")
    wait_final(client, batch_id)
    return batch_id


def _shoot(browser: Any, server: Server, key: str, batches: dict[str, int], out: Path) -> None:
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(server.url + "/")
    page.get_by_label("API key").wait_for()
    page.screenshot(path=out / "sign-in.png")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    _live_batch(page, server, key, out)
    _page(page, server.url + "/", "#batches tbody tr", out / "batches.png")
    _new_import(page, server, out)
    _uploading(page, server, out)
    _open(page, server, batches["open"], out)
    _page(
        page, f"{server.url}/batches/{batches['completed']}", "#groups tbody tr", out / "batch.png", full=True
    )
    _page(
        page,
        f"{server.url}/batches/{batches['validated']}",
        "#action-process:not([hidden])",
        out / "two-phase.png",
    )
    _page(page, f"{server.url}/batches/{batches['error']}", "#callout:not([hidden])", out / "unreadable.png")
    _page(
        page,
        f"{server.url}/batches/{batches['cancelled']}",
        "#action-retry:not([hidden])",
        out / "cancelled.png",
    )
    phone = browser.new_context(viewport=PHONE).new_page()
    phone.goto(server.url + "/")
    phone.evaluate("key => sessionStorage.setItem('loadbay.apiKey', key)", key)
    _page(phone, server.url + "/", "#batches tbody tr", out / "phone-batches.png", full=True)
    _page(phone, f"{server.url}/batches/{batches['completed']}", "#groups tbody tr", out / "phone-batch.png")
    _api_docs(browser.new_context(viewport=DESKTOP).new_page(), server, key, out)


def _api_docs(page: Page, server: Server, key: str, out: Path) -> None:
    """Swagger UI, signed in with Authorize; the answer of "Try it out" on GET /v1/batches;
    ReDoc on an operation."""
    page.goto(server.url + "/docs")
    page.get_by_role("button", name="Authorize").first.click()
    scheme = page.locator(".auth-container").filter(has_text="X-Api-Key")
    scheme.locator("input").fill(key)
    scheme.get_by_role("button", name="Apply credentials").click()
    scheme.locator("button", has_text="Close").click()
    page.locator(".opblock").first.wait_for()
    page.wait_for_timeout(300)
    page.screenshot(path=out / "api-docs.png")
    listing = page.locator("#operations-batches-list_batches_v1_batches_get")
    listing.locator(".opblock-summary").click()
    listing.locator("input[placeholder='limit']").fill("2")
    listing.get_by_role("button", name="Execute").click()
    answer = listing.locator(".responses-inner").first
    answer.locator(".live-responses-table tr.response").wait_for()
    answer.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=out / "api-try-it-out.png")
    page.goto(server.url + "/redoc#tag/batches/operation/create_batch_v1_batches_post")
    page.get_by_role("heading", name="Create Batch").wait_for()
    page.wait_for_timeout(800)
    page.screenshot(path=out / "api-redoc.png")


def _page(page: Page, url: str, ready: str, path: Path, *, full: bool = False) -> None:
    page.goto(url)
    page.locator(ready).first.wait_for()
    page.wait_for_timeout(300)  # (the last of the page's requests)
    page.screenshot(path=path, full_page=full)


def _new_import(page: Page, server: Server, out: Path) -> None:
    page.goto(server.url + "/new?type=billing.customer")
    page.locator("#file").set_input_files(
        files={"name": "customers-2026-04.csv", "mimeType": "text/csv", "buffer": CUSTOMERS.encode()}
    )
    page.locator("#file-check p").first.wait_for()
    page.get_by_label("Job id").fill("2026-04 customers")
    page.get_by_label("Check first, import after I look (two-phase)").check()
    page.screenshot(path=out / "new-import.png", full_page=True)


def _open(page: Page, server: Server, batch_id: int, out: Path) -> None:
    """An open batch's page: the files it has and waits for, and one more chosen to add."""
    page.goto(f"{server.url}/batches/{batch_id}")
    page.locator("#inputs li").first.wait_for()
    page.locator("#file").set_input_files(
        files={"name": "customers-east.csv", "mimeType": "text/csv", "buffer": CUSTOMERS.encode()}
    )
    page.locator("#file-check p").first.wait_for()
    page.wait_for_timeout(300)
    page.screenshot(path=out / "open-batch.png", full_page=True)


def _uploading(page: Page, server: Server, out: Path) -> None:
    """A file on its way up, on a connection slowed down to 300 kB/s; then let through."""
    page.goto(server.url + "/new?type=billing.customer")
    rows = "".join(f"U{i:06d},Customer {i},u{i}@example.com,US\n" for i in range(60_000))
    page.locator("#file").set_input_files(
        files={
            "name": "crm-export-2026-04.csv",
            "mimeType": "text/csv",
            "buffer": ("customer_number,name,email,country\n" + rows).encode(),
        }
    )
    page.get_by_label("Job id").fill("2026-04 CRM export")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 300_000}
    network.send("Network.emulateNetworkConditions", slow)
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_function("() => document.querySelector('#upload-bar').value > 0.35")
    page.screenshot(path=out / "uploading.png", full_page=True)
    network.send("Network.emulateNetworkConditions", slow | {"uploadThroughput": -1})
    page.wait_for_url("**/batches/*")
    network.detach()


def _live_batch(page: Page, server: Server, key: str, out: Path) -> None:
    """A big batch photographed while it is imported."""
    body = "customer_number,name,email\n" + "".join(
        f"L{i:07d},Name {i},l{i}@example.com\n" for i in range(400_000)
    )
    with httpx.Client(base_url=server.url, headers={"X-Api-Key": key}, timeout=120) as client:
        batch_id = client.post(
            "/v1/batches", json={"type": "billing.customer", "job_id": "nightly sync"}
        ).json()["id"]
        client.put(f"/v1/batches/{batch_id}/data", content=body, headers={"Content-Type": "text/csv"})
        client.post(f"/v1/batches/{batch_id}/submit")
        page.goto(f"{server.url}/batches/{batch_id}")
        page.locator("#progress-speed").filter(has_text="records/s").wait_for(timeout=60_000)
        time.sleep(1.5)
        page.screenshot(path=out / "live-progress.png")
        wait_final(client, batch_id, timeout=300)


if __name__ == "__main__":
    main()
