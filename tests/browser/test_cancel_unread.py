"""A batch cancelled while it is being validated: the records not read yet are never read, and
get no outcome. The cancel dialog and the cancelled batch's callout say so, with the numbers
the API gives (records read: counts.total; the file's records: its inputs' item_count, known
once the file was read through), and say nothing of 'not processed' for records never read."""

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


def test_cancelling_while_validating_says_the_rest_is_never_read(
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
    expect(text).to_contain_text("are never read: they get no outcome, are not in the result file")
    thaw()  # the batch as it is, from the cancel on
    page.get_by_role("dialog").get_by_role("button", name="Cancel the batch").click()
    expect(page.locator("#status-badge")).to_have_text("Cancelled")

    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        counts = client.get(f"/v1/batches/{batch['id']}").json()["counts"]
    read = counts["total"]
    assert 0 < read < ROWS
    callout = page.locator("#callout")
    expect(callout).to_contain_text(
        f"Cancelled while it was being validated: {read:,} of the {ROWS:,} records in its data had been read"
    )
    expect(callout).to_contain_text(
        f"The other {ROWS - read:,} records were never read: they have no outcome, are not in the"
        " result file, and Send again does not send them."
    )
    expect(page.locator("#count-total")).to_have_text(f"{read:,} read")


def test_a_cancel_before_the_file_was_counted_says_the_rest_was_never_read(
    page: Page, dashboard: Server, key: str
) -> None:
    """A two-phase batch is validated without counting its file first: how many records were
    never read is not known, and the callout says so instead of a number."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=60) as client:
        batch = _validating(client, "manual", MANUAL_ROWS)
        assert batch["progress"]["total"] is None
        thaw = _seen_as(page, batch)
        sign_in(page, dashboard, key, f"/batches/{batch['id']}")
        page.get_by_role("button", name="Cancel batch").click()
        text = page.locator("#confirm-text")
        expect(text).to_contain_text(
            f"Validation has read {batch['counts']['total']:,} records of its data so far"
        )
        expect(text).to_contain_text("the rest is never read")
        page.get_by_role("dialog").get_by_role("button", name="Keep the batch").click()
        thaw()
        cancelled = client.post(f"/v1/batches/{batch['id']}/cancel").json()
    read = cancelled["counts"]["total"]
    if read == MANUAL_ROWS:  # (validation finished first, on a fast machine: nothing to check)
        return
    callout = page.locator("#callout")
    expect(callout).to_contain_text(f"Cancelled while it was being validated: {read:,} records had been read")
    expect(callout).to_contain_text(
        "The rest of its data was never read (how many records it holds is not known:"
    )
    expect(callout).not_to_contain_text(f"of {read:,} records had been imported")
