"""The API docs pages in a real browser with no network but loopback: every request that
leaves 127.0.0.1 is refused (and counted), and the pages still render every operation;
Swagger UI's Authorize takes a real key, and "Try it out" lists batches and uploads a file."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page, Route, expect

from tests.support.accounts import make_keys
from tests.support.servers import Server

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
PROFILES = ["alliant", "centrapay", "click2mail", "ebill", "fusebill"]


# What the pages' Content-Security-Policy stops before it is requested: ReDoc's sidebar
# shows Redocly's logo from Redocly's CDN (without it, the link's text stays).
KEPT_OUT = ["https://cdn.redoc.ly/redoc/logo-mini.svg"]


@pytest.fixture
def elsewhere(context: BrowserContext) -> Iterator[list[str]]:
    """Requests the pages try to make off loopback: each is refused, and none may be tried;
    nor may the pages' policy have to stop any but the known ones."""
    tried: list[str] = []
    stopped: list[str] = []
    context.on(
        "console",
        lambda message: stopped.append(message.text) if "Content Security Policy" in message.text else None,
    )

    def refuse_off_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            tried.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", refuse_off_loopback)
    yield tried
    assert tried == [], f"the page tried to load from elsewhere: {tried}"
    assert [text for text in stopped if not any(url in text for url in KEPT_OUT)] == []


@pytest.fixture(scope="module")
def api_key(dashboard: Server) -> str:
    return make_keys(dashboard, f"apidocs-{uuid.uuid4().hex[:6]}", 1)[0]


def _operations(dashboard: Server) -> int:
    """The operations the pages show: each under each of its tags."""
    with dashboard.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    return sum(len(operation["tags"]) for operations in paths.values() for operation in operations.values())


def test_swagger_ui_renders_every_operation_offline(
    page: Page, dashboard: Server, elsewhere: list[str]
) -> None:
    page.goto(dashboard.url + "/docs")
    expect(page.locator(".opblock")).to_have_count(_operations(dashboard))
    expect(page.locator(".info .title")).to_contain_text("loadbay")
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    for name in PROFILES:  # the description links each profile's own docs page
        expect(page.locator(f'.info a[href="/compat/{name}/docs"]')).to_have_count(1)


def test_redoc_renders_every_operation_offline(page: Page, dashboard: Server, elsewhere: list[str]) -> None:
    page.goto(dashboard.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("loadbay")
    operations = page.locator("[data-section-id^='tag/'][data-section-id*='/operation/']")
    expect(operations).to_have_count(_operations(dashboard))
    expect(page.get_by_role("heading", name="Create Batch")).to_be_visible()


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profiles_docs_render_offline(
    page: Page, dashboard: Server, elsewhere: list[str], profile: str
) -> None:
    page.goto(f"{dashboard.url}/compat/{profile}/docs")
    expect(page.locator(".info .title")).to_contain_text("profile")
    expect(page.locator(".opblock").first).to_be_visible()


def _authorize(page: Page, key: str) -> None:
    """Swagger UI's Authorize: the key as X-Api-Key (the other scheme, Bearer, left empty)."""
    page.get_by_role("button", name="Authorize").first.click()
    scheme = page.locator(".auth-container").filter(has_text="X-Api-Key")
    scheme.locator("input").fill(key)
    scheme.get_by_role("button", name="Apply credentials").click()  # (its "Authorize")
    expect(scheme.locator("button", has_text="Logout")).to_be_visible()
    scheme.locator("button", has_text="Close").click()


def _execute(page: Page, operation: str) -> None:
    block = page.locator(f"#operations-{operation}")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Execute").click()


def test_authorize_with_a_key_then_try_it_out(
    page: Page, dashboard: Server, elsewhere: list[str], api_key: str
) -> None:
    page.goto(dashboard.url + "/docs")
    _authorize(page, api_key)
    _execute(page, "batches-list_batches_v1_batches_get")
    listing = page.locator("#operations-batches-list_batches_v1_batches_get .live-responses-table")
    expect(listing.locator("tr.response .response-col_status").first).to_have_text("200")
    expect(listing).to_contain_text('"data"')

    create = page.locator("#operations-batches-create_batch_v1_batches_post")
    create.locator(".opblock-summary").click()
    create.locator("textarea.body-param__text").fill(json.dumps({"type": "billing.customer"}))
    create.get_by_role("button", name="Execute").click()
    expect(create.locator(".live-responses-table tr.response .response-col_status").first).to_have_text("201")
    batch = json.loads(create.locator(".live-responses-table .microlight").first.inner_text())

    upload = page.locator("#operations-batches-put_data_v1_batches__batch_id__data_put")
    upload.locator(".opblock-summary").click()
    upload.locator("input[placeholder='batch_id']").fill(str(batch["id"]))
    upload.locator("input[type=file]").set_input_files(
        files=[
            FilePayload(name="customers.csv", mimeType="text/csv", buffer=b"customer_number,name\nC1,Ada\n")
        ]
    )
    upload.get_by_role("button", name="Execute").click()
    expect(upload.locator(".live-responses-table tr.response .response-col_status").first).to_have_text("200")
    with dashboard.client(api_key) as client:
        events = client.get(f"/v1/batches/{batch['id']}/events").json()["data"]
    assert [e["event"] for e in events][-1] == "file_received", events
