"""What a batch's page says about a finished or stopping batch: which records were not
imported and why, what Send again sends, and what a cancel leaves unread."""

from __future__ import annotations

import json
from typing import Any

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.pages import Held, sign_in
from tests.support.servers import Server, wait_final

CSV = {"Content-Type": "text/csv"}


def _made(dashboard: Server, key: str, body: str, **spec: Any) -> dict[str, Any]:
    """A billing.customer batch of `body` (CSV), submitted, and as it ends."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=30) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer", **spec}).json()
        client.put(f"/v1/batches/{made['id']}/data", content=body, headers=CSV)
        client.post(f"/v1/batches/{made['id']}/submit")
        return wait_final(client, made["id"]) if spec.get("process") != "manual" else made


def _with_counts(page: Page, batch_id: int, **counts: int) -> None:
    """The batch as the server answers it, with `counts` in place of its own: a completed batch
    whose chunk failed on every attempt (unprocessed records) is not made on purpose here."""

    def answer(route: Route) -> None:
        response = route.fetch()
        batch = response.json()
        batch["counts"] |= counts
        route.fulfill(response=response, body=json.dumps(batch))

    page.route(f"**/v1/batches/{batch_id}", answer)


def test_a_completed_batch_with_records_not_processed_names_them(
    page: Page, dashboard: Server, key: str
) -> None:
    body = "customer_number,name\nU1,Ann\nU2,Bob\nU3,Cy\n"
    batch = _made(dashboard, key, body)
    _with_counts(page, batch["id"], total=8, valid=8, succeeded=3, failed=0, unprocessed=5)
    sign_in(page, dashboard, key, f"/batches/{batch['id']}")
    callout = page.locator("#callout")
    expect(callout).to_contain_text("3 of 8 records imported; 5 refused.")
    expect(callout).to_contain_text(
        "5 records were not processed (their chunk failed on every attempt):"
        " Send again makes a new batch of them."
    )
    expect(callout).not_to_contain_text("0 records failed")
    expect(page.get_by_role("button", name="Send 5 records again")).to_be_visible()
    page.unroute(f"**/v1/batches/{batch['id']}")

    _with_counts(page, batch["id"], total=8, valid=8, succeeded=5, failed=2, unprocessed=1)
    page.reload()
    expect(callout).to_contain_text(
        "2 records failed while being imported (the data was valid) and 1 record was not processed"
        " (its chunk failed on every attempt): Send again makes a new batch of them."
    )
    expect(page.get_by_role("button", name="Send 3 records again")).to_be_visible()


def test_a_cancel_says_cancelling_while_it_runs(page: Page, dashboard: Server, key: str) -> None:
    """The cancel is held on its way to the server (a cancel of 200,000 records takes 2-3 s)
    until the test has seen the button and the status say it is cancelling; released, the
    batch is cancelled and they say so no more."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer"}).json()

    cancel = Held(page, f"**/v1/batches/{made['id']}/cancel")
    sign_in(page, dashboard, key, f"/batches/{made['id']}")
    page.get_by_role("button", name="Cancel batch").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel the batch").click()
    cancel.wait()
    button = page.locator("#action-cancel")
    expect(button).to_have_text("Cancelling…")
    expect(button).to_be_disabled()
    expect(page.locator("#status-sentence")).to_contain_text("Cancelling: stopping the work on the batch")
    cancel.release()
    expect(page.locator("#status-badge")).to_have_text("Cancelled")
    expect(button).to_be_hidden()
    expect(page.locator("#status-sentence")).to_contain_text("Finished")


def test_a_validated_batch_with_no_valid_record_has_nothing_to_process(
    page: Page, dashboard: Server, key: str
) -> None:
    made = _made(dashboard, key, "customer_number,name\nZ1,\nZ2,\n", process="manual")
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        assert wait_final(client, made["id"])["counts"]["valid"] == 0  # (validated: two-phase)
    sign_in(page, dashboard, key, f"/batches/{made['id']}")
    expect(page.locator("#status-badge")).to_have_text("Validated – waiting for you")
    expect(page.locator("#callout")).to_contain_text("Nothing to process: all 2 records were refused.")
    expect(page.locator("#action-process")).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel batch")).to_be_visible()


def test_a_slow_server_shows_the_batch_loading(page: Page, dashboard: Server, key: str) -> None:
    """The batch is held on its way from the server until the test has seen the page say it
    is loading; released, the batch shows and the loading line goes."""
    made = _made(dashboard, key, "customer_number,name\nS1,Sue\n")
    batch = Held(page, f"**/v1/batches/{made['id']}")
    sign_in(page, dashboard, key, f"/batches/{made['id']}")
    batch.wait()  # the page has asked for the batch
    loading = page.get_by_role("status").filter(has_text=f"Loading batch {made['id']}…")
    expect(loading).to_be_visible()
    batch.release()
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported")
    expect(loading).to_be_hidden()
