"""Keyboard focus stays where a person put it: the batches list, the webhook endpoints and the
deliveries are refreshed in place (a focused link or button is not thrown away every few
seconds), and after an action whose button hides or goes away focus moves on to the status,
the heading or the control that goes the other way, never to the page's body."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.browser.pages import sign_in
from tests.support.receiver import Answer, receiving
from tests.support.servers import Server, wait_final

CSV = {"Content-Type": "text/csv"}


def focused(page: Page) -> str:
    """What has focus, in a word: its id, or its text, or its tag."""
    script = "() => { const e = document.activeElement; return e.id || e.textContent.trim() || e.tagName; }"
    return str(page.evaluate(script))


def press(target: Locator) -> None:
    """Press a button or link from the keyboard."""
    target.focus()
    target.press("Enter")


def test_a_focused_batch_link_stays_focused_while_the_list_refreshes(
    page: Page, dashboard: Server, key: str
) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        parent = client.post("/v1/batches", json={"type": "billing.invoice"}).json()
        child = client.post(
            "/v1/batches", json={"type": "billing.invoice_line", "parent_id": parent["id"]}
        ).json()
        lines = "invoice_number,line_number,description,quantity,unit_price\nI1,1,Widget,2,10\n"
        client.put(f"/v1/batches/{child['id']}/data", content=lines, headers=CSV)
        child = client.post(f"/v1/batches/{child['id']}/submit").json()
    assert child["status"] == "queued"  # and stays so, waiting for its parent: the list refreshes every 2 s
    sign_in(page, dashboard, key)
    link = page.get_by_role("link", name=f"Batch {parent['id']}", exact=True)
    link.focus()
    for _ in range(2):
        with page.expect_response(lambda r: "/v1/batches?" in r.url):
            pass
    page.wait_for_timeout(200)
    expect(link).to_be_focused()
    assert focused(page) == f"Batch {parent['id']}"


def test_focus_after_the_batch_actions_and_the_pages_of_errors(
    page: Page, dashboard: Server, key: str
) -> None:
    rows = "".join(f"E{i},Name {i},not-an-email-{i}\n" for i in range(45)) + "E45,Ok,ok@example.com\n"
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer", "process": "manual"}).json()
        client.put(
            f"/v1/batches/{made['id']}/data", content="customer_number,name,email\n" + rows, headers=CSV
        )
        client.post(f"/v1/batches/{made['id']}/submit")
        other = client.post("/v1/batches", json={"type": "billing.customer"}).json()
    sign_in(page, dashboard, key, f"/batches/{made['id']}")
    expect(page.locator("#errors-range")).to_have_text("Errors 1–20 of 45")
    next_, previous = page.locator("#errors-next"), page.locator("#errors-previous")
    press(next_)
    expect(page.locator("#errors-range")).to_have_text("Errors 21–40 of 45")
    expect(next_).to_be_focused()
    press(next_)  # the last page: Next hides
    expect(page.locator("#errors-range")).to_have_text("Errors 41–45 of 45")
    expect(previous).to_be_focused()
    press(previous)
    press(previous)  # the first page: Previous hides
    expect(page.locator("#errors-range")).to_have_text("Errors 1–20 of 45")
    expect(next_).to_be_focused()

    press(page.get_by_role("button", name="Process 1 valid record"))  # it hides itself
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused")
    expect(page.locator("#status-line")).to_be_focused()

    page.goto(f"{dashboard.url}/batches/{other['id']}")
    press(page.get_by_role("button", name="Cancel batch"))
    page.get_by_role("dialog").get_by_role("button", name="Cancel the batch").press("Enter")
    expect(page.locator("#status-badge")).to_have_text("Cancelled")
    expect(page.locator("#status-line")).to_be_focused()


def test_focus_on_the_webhooks_page_survives_refreshes_and_actions(
    page: Page, dashboard: Server, key: str
) -> None:
    with receiving() as receiver:
        url = receiver.plan("/focus", Answer(200))
        with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
            client.post("/v1/webhooks", json={"url": url, "events": ["batch.cancelled"]}).raise_for_status()
            batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
            client.post(f"/v1/batches/{batch['id']}/cancel")
            wait_final(client, batch["id"])
        sign_in(page, dashboard, key, "/webhooks")
        press(page.get_by_role("button", name=f"Deliveries: {url}"))
        again = page.get_by_role("button", name=re.compile(r"^Send delivery \d+ again$"))
        expect(again).to_have_count(1)
        press(again)  # the hooks and deliveries are read again
        expect(page.locator("#delivery-list .attempts li")).to_have_count(2)
        expect(again).to_be_focused()

        disable = page.get_by_role("button", name=f"Disable: {url}")
        press(disable)
        enable = page.get_by_role("button", name=f"Enable: {url}")
        expect(enable).to_be_visible()
        expect(enable).to_be_focused()  # the same button, now saying Enable
        for _ in range(2):  # (every 10 s)
            with page.expect_response(lambda r: r.url.endswith("/v1/webhooks"), timeout=15_000):
                pass
        page.wait_for_timeout(200)
        expect(enable).to_be_focused()

        press(page.get_by_role("button", name=f"Delete: {url}"))
        page.get_by_role("dialog").get_by_role("button", name="Delete the endpoint").press("Enter")
        expect(page.get_by_text("No endpoints yet")).to_be_visible()
        expect(page.locator("#hooks-title")).to_be_focused()
