"""A batch's page beyond its errors: how fast a moving batch goes and how long it has left,
its child batches and its parent, and which API created it (as far as anything tells)."""

from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import Locator, Page, Route, expect

from tests.browser.pages import sign_in
from tests.support.pdfs import pdf
from tests.support.servers import Server, wait_final

CSV = {"Content-Type": "text/csv"}


def imported(dashboard: Server, key: str, rows: str) -> int:
    """The id of a billing.customer batch of `rows` (customer_number,name,email), final."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=30) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer"}).json()
        client.put(
            f"/v1/batches/{made['id']}/data", content="customer_number,name,email\n" + rows, headers=CSV
        )
        client.post(f"/v1/batches/{made['id']}/submit")
        wait_final(client, made["id"])
    return int(made["id"])


def detail(page: Page, term: str) -> Locator:
    """The value of the batch's detail `term`."""
    return page.locator("#details > div", has=page.get_by_text(term, exact=True)).locator("dd")


# What the page showed, sampled every 50 ms from its first paint (set before any script runs).
RECORDER = """
window.seen = [];
setInterval(() => {
  const badge = document.querySelector("#status-badge");
  const speed = document.querySelector("#progress-speed");
  if (badge && speed) window.seen.push([badge.textContent, speed.textContent]);
}, 50);
"""


def test_a_moving_batch_shows_records_per_second_and_time_left(
    page: Page, dashboard: Server, key: str
) -> None:
    rows = 60_000
    body = "customer_number,name\n" + "".join(f"R{i},Name {i}\n" for i in range(rows))
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=30) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer"}).json()
        client.put(f"/v1/batches/{made['id']}/data", content=body, headers=CSV)
        client.post(f"/v1/batches/{made['id']}/submit")
    page.add_init_script(RECORDER)
    sign_in(page, dashboard, key, f"/batches/{made['id']}")
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=60_000)
    seen: list[list[str]] = page.evaluate("window.seen")
    moving = [speed for badge, speed in seen if badge in ("Queued", "Validating", "Importing")]
    speeds = [s for s in moving if s]
    print(f"{len(moving)} samples while it moved; speeds shown: {sorted(set(speeds))[:3]}…")
    if len(moving) > 40:  # followed it for 2 s or more (a fast machine may finish sooner)
        assert speeds, "a moving batch shows how fast it goes"
    assert all(re.fullmatch(r"[\d,]+ records/s( · about .+ left)?", s) for s in speeds), speeds
    assert any(" left" in s for s in speeds) or not speeds
    expect(page.locator("#progress-speed")).to_have_text("")  # a finished batch has no speed
    expect(page.locator("#progress-label")).to_have_text("60,000 of 60,000 records")


def test_child_batches_link_to_their_parent_and_back(page: Page, dashboard: Server, key: str) -> None:
    invoices = "invoice_number,customer_number,invoice_date,amount\nI1,K1,2026-08-01,30.00\n"
    lines = "invoice_number,line_number,description,quantity,unit_price\nI1,1,Widget,2,10\nI1,2,Gadget,1,10\n"
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        customers = client.post(
            "/v1/batches",
            json={
                "type": "billing.customer",
                "items": [{"customer_number": "K1", "name": "Kay"}],
                "submit": True,
            },
        ).json()
        wait_final(client, customers["id"])
        parent = client.post("/v1/batches", json={"type": "billing.invoice", "job_id": "aug-invoices"}).json()
        child = client.post(
            "/v1/batches", json={"type": "billing.invoice_line", "parent_id": parent["id"]}
        ).json()
        client.put(f"/v1/batches/{parent['id']}/data", content=invoices, headers=CSV)
        client.put(f"/v1/batches/{child['id']}/data", content=lines, headers=CSV)
        client.post(f"/v1/batches/{parent['id']}/submit")
        assert wait_final(client, parent["id"])["outcome"] == "succeeded"

    sign_in(page, dashboard, key, f"/batches/{parent['id']}")
    children = page.locator("#children")
    expect(children.get_by_role("row")).to_have_count(2)  # the header and the one child
    expect(children).to_contain_text("billing.invoice_line")
    expect(children).to_contain_text("Completed, all imported")
    children.get_by_role("link", name=f"Batch {child['id']}").click()
    expect(page.locator("#count-succeeded")).to_have_text("2")
    expect(detail(page, "Parent batch")).to_have_text(f"Batch {parent['id']}")
    page.locator(".crumbs").get_by_role("link", name=f"Batch {parent['id']}").click()
    expect(page).to_have_url(re.compile(rf"/batches/{parent['id']}$"))
    expect(page.locator("#batch-subtitle")).to_contain_text("aug-invoices")


def test_the_api_that_created_a_batch(page: Page, dashboard: Server, key: str) -> None:
    alliant = dashboard.url + "/compat/alliant/api/Import/User1s/Batch?submit=true"
    item = {"id": "CC1", "description": "Operations"}
    body = {"description": "cost centres", "importFileName": "cc.json", "pageSize": 10, "totalItems": 1}
    with httpx.Client(headers={"X-Api-Key": key}) as client:
        created = client.post(alliant, json=body | {"items": [item]})
        assert created.status_code == 201, created.text
        via_alliant = created.json()["result"]["batchId"]
        native = client.post(dashboard.url + "/v1/batches", json={"type": "billing.customer"}).json()["id"]

    sign_in(page, dashboard, key, f"/batches/{via_alliant}")
    expect(detail(page, "Created through")).to_contain_text(f"The Alliant API, where its id is {via_alliant}")
    expect(detail(page, "In the vendor APIs")).to_contain_text(
        f"GET /compat/alliant/api/Import/User1s/Batch/{via_alliant}"
    )
    page.goto(f"{dashboard.url}/batches/{native}")
    expect(detail(page, "Created through")).to_have_text("The native API (or this dashboard, or the CLI)")


def test_one_group_of_errors_on_its_own(page: Page, dashboard: Server, key: str) -> None:
    rows = "".join(f"G{i},Name {i},bad-{i}\n" for i in range(6)) + "G6,,g6@example.com\n"
    sign_in(page, dashboard, key, f"/batches/{imported(dashboard, key, rows)}")
    expect(page.locator("#errors tbody tr")).to_have_count(7)
    expect(page.get_by_role("button", name="Show all 1 errors REQUIRED on name")).to_have_count(
        0
    )  # all shown

    page.get_by_role("button", name="Show all 6 errors INVALID_EMAIL on email").click()
    expect(page.locator("#errors-title")).to_have_text("Errors INVALID_EMAIL on email")
    expect(page.locator("#errors-title")).to_be_focused()
    expect(page.locator("#errors tbody tr")).to_have_count(6)
    expect(page.locator("#errors tbody tr").filter(has_text="INVALID_EMAIL")).to_have_count(6)
    expect(page.locator("#errors-range")).to_have_text("Errors 1–6 of 6")
    page.get_by_role("button", name="Show every error").click()
    expect(page.locator("#errors tbody tr")).to_have_count(7)
    expect(page.locator("#errors-range")).to_have_text("Errors 1–7 of 7")


def test_an_address_that_names_no_batch(page: Page, dashboard: Server, key: str) -> None:
    sign_in(page, dashboard, key)
    for path in ("/batches/abc", "/batches/0", "/batches/" + "9" * 5000):
        response = page.goto(dashboard.url + path)
        assert response is not None and response.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()  # a page, not JSON
    page.goto(dashboard.url + "/batches/9999999")
    expect(page.get_by_role("alert")).to_have_text("There is no batch 9999999 in this account.")


# Four Click2Mail jobs of a 3-page PDF: the first lacks a postal code, the second has no
# recipients, the third's pages are beyond the PDF, the fourth is mailed.
ADDRESS = (
    "<address><organization>Acme</organization><address1>9 Elm St</address1>"
    "<city>Reston</city><postalCode>20190</postalCode></address>"
)
JOBS = f"""<batch><filename>jobs.pdf</filename>
<job><startingPage>1</startingPage><endingPage>1</endingPage><recipients><address><name>Ann Lee</name>
  <address1>1 Main St</address1><city>Arlington</city><state>VA</state></address></recipients></job>
<job><startingPage>1</startingPage><endingPage>2</endingPage></job>
<job><startingPage>3</startingPage><endingPage>5</endingPage><recipients>{ADDRESS}</recipients></job>
<job><startingPage>1</startingPage><endingPage>1</endingPage><recipients>{ADDRESS}</recipients></job>
</batch>"""


def test_a_batch_of_a_type_the_new_import_page_does_not_take(page: Page, dashboard: Server, key: str) -> None:
    """A Click2Mail batch (mail.job) with refused jobs: its page says how mail jobs are sent
    again (the Click2Mail API), and links to no new-import page, which would show another type;
    its errors name each job as Click2Mail does (job-1), and a refused list of recipients
    reads as its values, not as JSON."""
    c2m = dashboard.url + "/compat/click2mail/batches"
    with httpx.Client(auth=("me", key), timeout=30) as client:
        made = client.post(c2m)
        batch_id = int(re.findall(r"<id>(\d+)</id>", made.text)[0])
        client.put(f"{c2m}/{batch_id}", content=pdf(3), headers={"Content-Type": "application/pdf"})
        client.put(f"{c2m}/{batch_id}", content=JOBS, headers={"Content-Type": "application/xml"})
        client.post(f"{c2m}/{batch_id}").raise_for_status()
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        assert wait_final(client, batch_id)["counts"]["invalid"] == 3

    sign_in(page, dashboard, key, f"/batches/{batch_id}")
    callout = page.locator("#callout")
    expect(callout).to_contain_text("1 of 4 records imported; 3 refused.")
    expect(callout).to_contain_text("sent through the Click2Mail API, not from this dashboard")
    expect(callout.locator("a")).to_have_count(1)  # none to /new?type=mail.job
    reference = callout.get_by_role("link", name="Click2Mail API reference")
    expect(reference).to_have_attribute("href", "/compat/click2mail/docs")
    expect(page.locator("#downloads-hint")).not_to_contain_text("import again")

    rows = page.locator("#errors tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator('td[data-label="Key"]')).to_have_text(["job-1", "job-2", "job-3"])
    addresses = page.locator("#groups tbody tr", has_text="INCOMPLETE_ADDRESS").locator(".examples li")
    expect(addresses).to_have_text(
        "#1 job-1 Ann Lee, 1 Main St, Arlington, VA recipients: recipient 1 lacks postalCode"
    )
    pages = page.locator("#groups tbody tr", has_text="PAGE_RANGE_OUT_OF_DOCUMENT").locator(".examples li")
    expect(pages).to_contain_text("#3 job-3 “5” pages 3-5 are outside the document")

    reference.click()
    expect(page).to_have_url(dashboard.url + "/compat/click2mail/docs")
    page.goto(dashboard.url + "/new?type=mail.job")  # (an address kept from before)
    expect(page.locator("#type-elsewhere")).to_contain_text(
        "mail.job records are not imported from this page."
    )
    expect(page.locator("#type-elsewhere").get_by_role("link")).to_have_attribute(
        "href", "/compat/click2mail/docs"
    )


def test_a_long_refused_value_shows_its_start_and_the_whole_on_request(
    page: Page, dashboard: Server, key: str
) -> None:
    """A 3,000-character name and two 400 KB emails: each example shows the value's first 79
    characters and '…', the whole of it on hover (title) and in a box that scrolls once
    expanded; the page stays as tall as a page of short values."""
    name, email = "N" * 3000, "e" * 400_000
    rows = f"H1,{name},a@example.com\nH2,Bob,{email}\nH3,Cy,{email}\n"
    sign_in(page, dashboard, key, f"/batches/{imported(dashboard, key, rows)}")
    groups = page.locator("#groups tbody tr")  # the largest first
    expect(groups).to_have_count(2)
    names = groups.nth(1).locator(".examples li")
    expect(names).to_contain_text(f"“{'N' * 79}…” (3,000 characters: show all)")
    expect(names.locator("summary")).to_have_attribute("title", name)
    emails = groups.nth(0).locator(".examples li")
    expect(emails).to_have_count(2)
    expect(emails.nth(0)).to_contain_text("(400,000 characters: show all)")
    assert page.evaluate("document.documentElement.scrollHeight") < 3000

    emails.nth(0).locator("summary").click()
    whole = emails.nth(0).locator(".value-whole")
    expect(whole).to_be_visible()
    assert whole.inner_text() == email
    expect(emails.nth(0)).to_contain_text("(400,000 characters: hide)")
    assert whole.evaluate("e => e.getBoundingClientRect().height") < 300  # it scrolls
    assert page.evaluate("document.documentElement.scrollHeight") < 3500


def test_errors_in_groups_not_listed_are_counted(page: Page, dashboard: Server, key: str) -> None:
    """The error summary lists the largest 50 groups; `not_listed` counts the errors of the
    others. It is added to the server's answer here (a server without it: the page works from
    the total, and says nothing when every group is listed)."""
    rows = "".join(f"L{i},Name {i},bad-{i}\n" for i in range(3))
    batch_id = imported(dashboard, key, rows)
    sign_in(page, dashboard, key, f"/batches/{batch_id}")
    expect(page.locator("#errors tbody tr")).to_have_count(3)
    expect(page.locator("#groups-more")).to_be_hidden()
    expect(page.locator("#problems-hint")).to_contain_text("3 errors in 1 group,")

    def with_more(route: Route) -> None:
        response = route.fetch()
        summary = response.json() | {"total": 10, "not_listed": 7}
        route.fulfill(response=response, body=json.dumps(summary))

    page.route(f"**/v1/batches/{batch_id}/errors/summary", with_more)
    page.reload()
    expect(page.locator("#groups-more")).to_have_text(
        "7 more errors in other groups, not listed here: every error is in the table below."
    )
    expect(page.locator("#problems-hint")).to_contain_text("10 errors in the 1 largest group and others,")
