"""A batch cancelled while it is being validated: the records not read yet are read afterwards,
unchecked, and end "not processed", as the cancel dialog says; while they are being read the
page says so and offers no result file; then the cancelled batch's callout counts them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.pages import sign_in
from tests.support.servers import Server

CSV = {"Content-Type": "text/csv"}
ROWS = 150_000  # (about 2 MB: validated and applied in 15 s or more here)
MANUAL_ROWS = 250_000  # (about 3.4 MB: validated, not applied, in about 7 s here)


def _validating(client: httpx.Client, process: str, rows: int = ROWS) -> dict[str, Any]:
    """A batch of `rows` customers, submitted, once its validation has read some of them."""
    body = "customer_number,name\n" + "".join(f"{i},{i}\n" for i in range(rows))
    made = client.post("/v1/batches", json={"type": "billing.customer", "process": process}).json()
    client.put(f"/v1/batches/{made['id']}/data", content=body, headers=CSV).raise_for_status()
    client.post(f"/v1/batches/{made['id']}/submit").raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{made['id']}").json()
        if batch["status"] == "validating" and batch["counts"]["total"] > 0:
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {made['id']} did not start validating")


def _seen_as(page: Page, batch: dict[str, Any]) -> Callable[[], None]:
    """The page sees the batch as `batch` (the API's answer while the batch was being validated)
    until the function answered is called: the dialog's numbers would otherwise move with every
    refresh, and the validation, read through in a few seconds here, can end before the dialog is
    looked at (the dialog then speaks of a batch read through)."""
    frozen = [True]

    def answer(route: Route) -> None:
        if frozen:
            route.fulfill(json=batch)
        else:
            route.continue_()

    page.route(f"**/v1/batches/{batch['id']}", answer)
    return frozen.clear


def _when_read(client: httpx.Client, batch_id: int, rows: int) -> dict[str, Any]:
    """The cancelled batch once every record of its data has its outcome."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if not batch["unread_pending"]:
            assert batch["counts"]["total"] == rows, batch
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id}'s unread records were not read")


def test_cancelling_while_validating_gives_the_records_not_read_their_outcome(
    page: Page, dashboard: Server, key: str
) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=60) as client:
        batch = _validating(client, "auto")  # applied as it is staged: the file's records are counted first
        assert batch["progress"]["total"] == ROWS
    thaw = _seen_as(page, batch)
    sign_in(page, dashboard, key, f"/batches/{batch['id']}")
    page.get_by_role("button", name="Cancel batch").click()
    text = page.locator("#confirm-text")
    expect(text).to_contain_text(
        f"Validation has read {batch['counts']['total']:,} of the {ROWS:,} records so far"
    )
    expect(text).to_contain_text(
        "every record not imported yet ends as “not processed”, those not read yet too (they are read"
        " without being checked). They are in the result file, and Send again sends them."
    )
    thaw()  # the batch as it is, from the cancel on
    page.get_by_role("dialog").get_by_role("button", name="Cancel the batch").click()
    expect(page.locator("#status-badge")).to_have_text("Cancelled")

    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        done = _when_read(client, batch["id"], ROWS)
    counts = done["counts"]
    assert counts["succeeded"] + counts["unprocessed"] == ROWS and counts["unprocessed"] > 0, counts
    callout = page.locator("#callout")
    expect(callout).to_contain_text(f"{counts['succeeded']:,} of {ROWS:,} records had been imported")
    expect(callout).to_contain_text(f"{counts['unprocessed']:,} records were not processed")
    expect(page.locator("#count-total")).to_have_text(f"{ROWS:,}")
    expect(page.locator("#downloads")).to_be_visible()


def test_a_batch_whose_records_not_read_are_being_read_says_so_and_offers_no_file_yet(
    page: Page, dashboard: Server, key: str
) -> None:
    """Between the cancel and the end of that reading (seconds here: the page is shown the batch
    as the API answers it meanwhile), the page says what is happening and has no download."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=60) as client:
        batch = _validating(client, "manual", MANUAL_ROWS)
        assert batch["progress"]["total"] is None  # (a two-phase batch's file is not counted first)
        cancelled = client.post(f"/v1/batches/{batch['id']}/cancel").json()
        reading = cancelled | {"unread_pending": True}
        thaw = _seen_as(page, reading)
        sign_in(page, dashboard, key, f"/batches/{batch['id']}")
        callout = page.locator("#callout")
        expect(callout).to_contain_text(
            f"Cancelled before its data was read through (its validation had read "
            f"{cancelled['counts']['total']:,} records): the rest is being read now"
        )
        expect(callout).to_contain_text("The result file is ready once every record has its outcome")
        expect(page.locator("#downloads")).to_be_hidden()
        expect(page.locator("#count-total")).to_have_text(f"{cancelled['counts']['total']:,} so far")
        thaw()
        _when_read(client, batch["id"], MANUAL_ROWS)
    expect(callout).to_contain_text(f"{MANUAL_ROWS:,} records were not processed")
    expect(page.locator("#downloads")).to_be_visible()
