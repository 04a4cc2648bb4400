"""The webhooks page: add an endpoint (its secret shown once), watch its deliveries arrive at
a real receiver on loopback with every attempt, send one again, rotate the secret, disable,
enable and delete it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import httpx
from playwright.sync_api import Page, expect

from tests.browser.pages import sign_in
from tests.support.receiver import Answer, receiving
from tests.support.servers import Server


def signed_with(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks' signature, computed here from the secret the page showed."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return expected in headers["webhook-signature"].split(" ")


def test_add_an_endpoint_and_follow_its_deliveries(page: Page, dashboard: Server, key: str) -> None:
    with receiving() as receiver:
        url = receiver.plan("/crm", Answer(500, body=b"not yet"), Answer(200, body=b"thanks"))
        sign_in(page, dashboard, key, "/webhooks")
        expect(page.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")
        expect(page.get_by_text("No endpoints yet")).to_be_visible()

        page.get_by_label("URL").fill(url)
        page.get_by_label("Description").fill("CRM sync")
        page.get_by_label("batch.validated").uncheck()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.locator("#secret")).to_be_visible()
        expect(page.locator("#secret-value")).to_contain_text("whsec_")
        secret = page.locator("#secret-value").inner_text()
        row = page.locator("#hooks tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text(url)
        expect(row).to_contain_text("CRM sync")
        expect(row).to_contain_text("Enabled")
        expect(row).not_to_contain_text("batch.validated")

        with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
            batch = client.post("/v1/batches", json={"type": "billing.customer"}).json()
            client.post(f"/v1/batches/{batch['id']}/cancel")
        page.get_by_role("button", name=f"Deliveries: {url}").click()
        delivery = page.locator("#delivery-list tbody tr")
        expect(delivery).to_have_count(1)
        expect(delivery).to_have_attribute("data-status", "delivered")
        expect(delivery).to_contain_text("batch.cancelled")
        expect(delivery.get_by_role("link", name=f"Batch {batch['id']}")).to_be_visible()
        attempts = delivery.locator(".attempts li")
        expect(attempts).to_have_count(2)
        expect(attempts.nth(0)).to_contain_text("#1 failed · HTTP 500")
        expect(attempts.nth(0)).to_contain_text("not yet")
        expect(attempts.nth(1)).to_contain_text("#2 delivered · HTTP 200")
        first = receiver.wait_for("/crm", 2)[1]
        assert signed_with(secret, first.headers, first.body)
        assert json.loads(first.body)["data"]["id"] == batch["id"]

        delivery.get_by_role("button", name=re.compile(r"^Send delivery \d+ again$")).click()
        expect(attempts).to_have_count(3)
        expect(attempts.nth(2)).to_contain_text("#3 delivered · HTTP 200")

        page.get_by_role("button", name=f"Rotate secret: {url}").click()
        dialog = page.get_by_role("dialog", name="Rotate the signing secret?")
        expect(dialog).to_contain_text(f"loadbay signs every delivery to {url} with a new secret")
        expect(dialog).to_contain_text("it rejects every delivery as wrongly signed")
        dialog.get_by_role("button", name="Keep the secret").click()
        expect(dialog).to_be_hidden()
        page.wait_for_timeout(500)
        expect(page.locator("#secret-value")).to_have_text(secret)  # nothing rotated
        page.get_by_role("button", name=f"Rotate secret: {url}").click()
        dialog.get_by_role("button", name="Rotate the secret").click()
        expect(page.locator("#secret-value")).not_to_have_text(secret)
        expect(page.locator("#secret")).to_be_focused()
        rotated = page.locator("#secret-value").inner_text()
        delivery.get_by_role("button", name=re.compile(r"^Send delivery \d+ again$")).click()
        expect(attempts).to_have_count(4)
        fourth = receiver.wait_for("/crm", 4)[3]
        assert signed_with(rotated, fourth.headers, fourth.body)
        page.get_by_role("button", name=f"Disable: {url}").click()
        expect(row).to_contain_text("Disabled")
        page.get_by_role("button", name=f"Enable: {url}").click()
        expect(row).to_contain_text("Enabled")

        page.get_by_role("button", name=f"Delete: {url}").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete the endpoint").click()
        expect(page.get_by_text("No endpoints yet")).to_be_visible()
        expect(page.locator("#deliveries")).to_be_hidden()


def test_a_refused_url_says_why(page: Page, dashboard: Server, key: str) -> None:
    sign_in(page, dashboard, key, "/webhooks")
    page.get_by_label("URL").fill("http://10.0.0.1/hook")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#hook-error")).to_contain_text("not a public address")
    expect(page.get_by_text("No endpoints yet")).to_be_visible()
