"""The batches list: what its Refused column counts, the Created column on one line, and an
address edited by hand (a page or a search the API refuses) told in words, with the way back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.pages import sign_in
from tests.support.servers import Server, wait_final


def test_refused_counts_no_record_the_person_cancelled(page: Page, dashboard: Server, key: str) -> None:
    items = [{"customer_number": "R1", "name": "Rae"}, {"customer_number": "R2", "name": "Rex"}]
    items.append({"customer_number": "R3", "name": ""})  # invalid
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = client.post(
            "/v1/batches",
            json={"type": "billing.customer", "process": "manual", "submit": True, "items": items},
        ).json()
        wait_final(client, made["id"])  # (a two-phase batch: validated)
        counts = client.post(f"/v1/batches/{made['id']}/cancel").json()["counts"]
    assert (counts["invalid"], counts["unprocessed"]) == (1, 2)
    sign_in(page, dashboard, key)
    row = page.locator(f"#batches tr[data-id='{made['id']}']")
    expect(row.locator(".c-refused")).to_have_text("1")


def test_a_batch_waiting_for_process_shows_nothing_imported(page: Page, dashboard: Server, key: str) -> None:
    """Before, its bar was two fifths full, "2 of 5 records": the refused records counted as done."""
    items = [{"customer_number": f"W{n}", "name": "" if n < 2 else "Wyn"} for n in range(5)]
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = client.post(
            "/v1/batches",
            json={"type": "billing.customer", "process": "manual", "submit": True, "items": items},
        ).json()
        assert wait_final(client, made["id"])["counts"]["invalid"] == 2
    sign_in(page, dashboard, key)
    row = page.locator(f"#batches tr[data-id='{made['id']}']")
    expect(row.locator(".cell-progress")).to_have_text("5 records checked, none imported yet")
    expect(row.locator("progress")).to_have_js_property("value", 0)


def test_created_reads_on_one_line(page: Page, dashboard: Server, key: str) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        client.post("/v1/batches", json={"type": "billing.customer", "description": "x" * 300})

    def earlier(route: Route) -> None:  # made 16 minutes ago
        response = route.fetch()
        page_ = response.json()
        when = (datetime.now(UTC) - timedelta(minutes=16)).isoformat()
        for batch in page_["data"]:
            batch["created_at"] = when
        route.fulfill(response=response, body=json.dumps(page_))

    page.route("**/v1/batches?*", earlier)
    sign_in(page, dashboard, key)
    created = page.locator("#batches tbody .c-created time")
    expect(created).to_have_text("16 minutes ago")
    height = created.evaluate("e => e.getBoundingClientRect().height")
    line = created.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
    assert height < 1.5 * line, f"{height} px: on more than one line"


def test_an_address_edited_by_hand_is_told_in_words(page: Page, dashboard: Server, key: str) -> None:
    sign_in(page, dashboard, key)
    alert = page.locator("#list-error")
    page.goto(f"{dashboard.url}/?cursor=garbage")
    expect(alert).to_have_text(
        "This address asks for something the list cannot show: its page (cursor) is not one this list made."
        " Show the newest batches."
    )
    expect(alert).not_to_contain_text("Input should be")
    page.goto(f"{dashboard.url}/?q={'a' * 201}")
    expect(alert).to_contain_text("its search is 201 characters long; a search is 200 characters at most.")
    alert.get_by_role("link", name="Show the newest batches").click()
    expect(page).to_have_url(f"{dashboard.url}/")
    expect(alert).to_be_hidden()
