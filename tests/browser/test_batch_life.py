"""Around a batch's life, as a person meets it: records sent again after a cancel, a child
batch that waits for its parent, pages of errors back and forth and a timeline that reads
well, a job id already taken, the status filter in the list's words, and a batch with long
details on a phone."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser.pages import CUSTOMERS, sign_in
from tests.browser.test_batch_page import detail
from tests.support.servers import Server, wait_final

CSV = {"Content-Type": "text/csv"}


def _batch(client: httpx.Client, body: str, **spec: object) -> int:
    made: int = client.post("/v1/batches", json={"type": "billing.customer"} | spec).json()["id"]
    client.put(f"/v1/batches/{made}/data", content=body, headers=CSV)
    client.post(f"/v1/batches/{made}/submit")
    return made


def test_a_cancelled_batch_says_what_became_of_each_record_and_sends_the_rest_again(
    page: Page, dashboard: Server, key: str
) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        cancelled = _batch(client, CUSTOMERS, process="manual", description="second thoughts")
        assert wait_final(client, cancelled)["status"] == "validated"
        client.post(f"/v1/batches/{cancelled}/cancel")
    sign_in(page, dashboard, key, f"/batches/{cancelled}")
    expect(page.locator("#callout")).to_contain_text(
        "Cancelled. 0 of 5 records had been imported; 2 records were not processed; "
        "3 records were refused as invalid."
    )
    page.get_by_role("button", name="Send 2 records again").click()
    page.wait_for_url(re.compile(rf"/batches/(?!{cancelled}$)\d+$"))  # the new batch's page
    # A two-phase batch's records sent again stop at validated too: both were valid.
    expect(page.locator("#status-badge")).to_have_text("Validated – waiting for you", timeout=30_000)
    expect(page.locator("#count-total")).to_have_text("2")
    expect(detail(page, "Sent again from")).to_contain_text(f"Batch {cancelled}")
    expect(page.locator("#timeline")).to_contain_text(f"a retry of batch {cancelled}")
    expect(page.get_by_role("button", name=re.compile("again$"))).to_be_hidden()  # nothing to send yet


def test_a_child_batch_waits_for_its_parent_and_the_parent_tells_of_its_refused_lines(
    page: Page, dashboard: Server, key: str
) -> None:
    lines = "invoice_number,line_number,description,quantity,unit_price\nP1,1,Widget,2,10\nP1,2,Bad,x,1\n"
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        wait_final(client, _batch(client, "customer_number,name\nPK1,Kay\n"))
        parent = client.post("/v1/batches", json={"type": "billing.invoice"}).json()["id"]
        child = client.post("/v1/batches", json={"type": "billing.invoice_line", "parent_id": parent}).json()[
            "id"
        ]
        client.put(f"/v1/batches/{child}/data", content=lines, headers=CSV)

    sign_in(page, dashboard, key, f"/batches/{child}")
    expect(page.locator("#callout")).to_contain_text(
        f"The data is here. Submitting its parent, batch {parent}, submits this batch too"
    )
    page.get_by_role("button", name="Submit for import").click()  # the child alone: it waits
    expect(page.locator("#status-sentence")).to_have_text(
        f"Submitted; it waits for its parent, batch {parent}, to finish "
        "(a child batch is checked after its parent)."
    )

    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        invoice = "invoice_number,customer_number,invoice_date,amount\nP1,PK1,2026-08-01,20.00\n"
        client.put(f"/v1/batches/{parent}/data", content=invoice, headers=CSV)
        client.post(f"/v1/batches/{parent}/submit")
        wait_final(client, parent)
        wait_final(client, child)
    page.goto(f"{dashboard.url}/batches/{parent}")
    expect(page.locator("#callout")).to_contain_text("A child batch has refused records: batch")
    page.locator("#callout").get_by_role("link", name=f"batch {child}").click()
    expect(page.locator("#groups")).to_contain_text("INVALID_DECIMAL")


def test_pages_of_errors_go_back_one_at_a_time_and_the_timeline_reads_well(
    page: Page, dashboard: Server, key: str
) -> None:
    rows = "".join(f"E{i},Name {i},not-an-email-address-{i}\n" for i in range(45))
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = _batch(client, "customer_number,name,email\n" + rows)
        wait_final(client, made)
    sign_in(page, dashboard, key, f"/batches/{made}")
    range_ = page.locator("#errors-range")
    expect(range_).to_have_text("Errors 1–20 of 45")
    expect(page.get_by_role("button", name="Previous errors")).to_be_hidden()
    page.get_by_role("button", name="Next errors").click()
    page.get_by_role("button", name="Next errors").click()
    expect(range_).to_have_text("Errors 41–45 of 45")
    expect(page.get_by_role("button", name="Next errors")).to_be_hidden()
    page.get_by_role("button", name="Previous errors").click()
    expect(range_).to_have_text("Errors 21–40 of 45")
    expect(page.locator("#errors tbody tr").first).to_contain_text("#21")
    page.get_by_role("button", name="Previous errors").click()
    expect(range_).to_have_text("Errors 1–20 of 45")
    expect(page.get_by_role("button", name="First errors")).to_be_hidden()
    # The timeline writes the file's size for people: "1.6 KB", not "1623 bytes".
    expect(page.locator("#timeline .event-file_received")).to_contain_text(re.compile(r"\(1\.\d KB\)"))


def test_a_job_id_already_taken_names_its_batch(page: Page, dashboard: Server, key: str, files: Path) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        taken = client.post(
            "/v1/batches", json={"type": "billing.customer", "job_id": "may", "description": "May"}
        ).json()["id"]
    upload = files / "may.csv"
    upload.write_text(CUSTOMERS)
    sign_in(page, dashboard, key, "/new?type=billing.customer")
    page.locator("#file").set_input_files(upload)
    page.get_by_label("Job id").fill("may")
    page.get_by_role("button", name="Upload and import").click()
    alert = page.locator("#import-error")
    expect(alert).to_contain_text(f"The job id “may” is already used by batch {taken}")
    expect(alert).to_contain_text("Choose another job id, or open that batch.")
    alert.get_by_role("link", name=f"batch {taken}").click()
    expect(page).to_have_url(re.compile(rf"/batches/{taken}$"))


def test_the_status_filter_speaks_as_the_list_does(page: Page, dashboard: Server, key: str) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        wait_final(client, _batch(client, "name\nNo number\n"))  # missing a column: error
        client.post("/v1/batches", json={"type": "billing.customer"})
    sign_in(page, dashboard, key)
    page.get_by_label("Status").select_option(label="Could not be read")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?status=error$"))
    expect(page.locator("#batches tbody tr")).to_have_count(1)
    expect(page.locator("#batches tbody tr")).to_contain_text("Could not be read")
    page.get_by_label("Status").select_option(label="Cancelled")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#empty")).to_have_text("No batches match these filters. Clear the filters")
    page.locator("#empty").get_by_role("link", name="Clear the filters").click()
    expect(page.locator("#batches tbody tr")).to_have_count(2)


def test_long_details_need_no_sideways_scrolling_on_a_phone(page: Page, dashboard: Server, key: str) -> None:
    name = "an-export-from-the-billing-system-with-a-rather-long-name-2026-12.json"
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        # (a Fusebill job keeps its fileName among its options; the native API takes no such option)
        job = client.post(
            "/compat/fusebill/v1/BulkApi",
            json={"accountUploadType": "BulkPayment", "fileName": name, "data": [{"amount": 5}]},
            headers={"Authorization": f"Basic {key}"},
        )
        assert job.status_code == 200, job.text
        made = job.json()["id"]
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, dashboard, key, f"/batches/{made}")
    expect(detail(page, "Options")).to_contain_text(name)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the batch page is {width} px wide"
