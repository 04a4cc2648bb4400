"""The dashboard as a person uses it: sign in, import a file with bad rows, understand every
refused record, download the result and the refused records, run a two-phase batch, cancel
one, and get told when the key is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.pages import CUSTOMERS, batch_id, rows_of, sign_in, start_import
from tests.support.servers import Server, wait_final


def test_a_wrong_key_is_refused_and_a_signed_in_tab_remembers_the_key(
    page: Page, dashboard: Server, key: str
) -> None:
    page.goto(dashboard.url + "/")
    page.get_by_label("API key").fill("lb_live_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That API key was not accepted (unknown API key)")
    expect(page.locator("#content")).to_be_hidden()

    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")  # the keyboard signs in as the button does
    expect(page.locator("#who-name")).to_contain_text("browser-")
    expect(page.locator("#who-mode")).to_have_text("live account")
    expect(page.get_by_text("No batches yet")).to_be_visible()
    page.reload()
    expect(page.locator("#who")).to_be_visible()  # the tab keeps the key
    expect(page.get_by_role("heading", name="Batches")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to loadbay")).to_be_visible()
    expect(page.locator("#signin-note")).to_contain_text("You are signed out")
    assert page.evaluate("sessionStorage.getItem('loadbay.apiKey')") is None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to loadbay")).to_be_visible()


def test_import_a_csv_with_bad_rows_and_download_what_was_refused(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    sign_in(page, dashboard, key, "/new")
    page.get_by_label("Kind of records").select_option("billing.customer")
    columns = page.locator(".type-info:visible table")
    expect(columns.locator("tr.required")).to_have_count(2)  # customer_number and name
    expect(columns).to_contain_text("one of Active, Cancelled, Suspended, Draft; default Active")
    with page.expect_download() as template:
        page.get_by_role("link", name="Download a CSV template for billing.customer").click()
    assert Path(template.value.path()).read_text().startswith("customer_number,name,email,phone,")

    upload = files / "customers.csv"
    upload.write_text(CUSTOMERS)
    page.locator("#file").set_input_files(upload)
    expect(page.locator("#file-check")).to_contain_text(
        "Columns found: customer_number, name, email, balance"
    )
    page.get_by_label("Job id").fill("march-customers")
    page.get_by_role("button", name="Upload and import").click()

    page.wait_for_url(re.compile(r"/batches/\d+$"))
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused", timeout=30_000)
    expect(page.locator("#callout")).to_contain_text("2 of 5 records imported; 3 refused")
    for name, value in {"total": "5", "valid": "2", "invalid": "3", "succeeded": "2", "failed": "0"}.items():
        expect(page.locator(f"#count-{name}")).to_have_text(value)
    expect(page.locator("#progress-label")).to_have_text("5 of 5 records")

    groups = page.locator("#groups tbody tr")
    expect(groups).to_have_count(3)
    expect(groups.filter(has_text="INVALID_EMAIL")).to_contain_text("Not an email address.")
    expect(groups.filter(has_text="INVALID_EMAIL")).to_contain_text("#2 C2 “not-an-email”")
    expect(groups.filter(has_text="INVALID_DECIMAL")).to_contain_text("“1.234”")
    expect(groups.filter(has_text="REQUIRED")).to_contain_text("name")
    expect(page.locator("#errors tbody tr")).to_have_count(3)

    with page.expect_download() as everything:
        page.get_by_role("button", name="Download result file (CSV)").click()
    assert everything.value.suggested_filename == f"batch-{batch_id(page)}-results.csv"
    statuses = [(r["customer_number"], r["loadbay_status"]) for r in rows_of(everything.value)]
    assert statuses == [
        ("C1", "succeeded"),
        ("C2", "invalid"),
        ("C3", "invalid"),
        ("C4", "invalid"),
        ("C5", "succeeded"),
    ]

    with page.expect_download() as refused:
        page.get_by_role("button", name="Download 3 refused records (CSV)").click()
    rows = rows_of(refused.value)
    assert [(r["customer_number"], r["loadbay_error_code"]) for r in rows] == [
        ("C2", "INVALID_EMAIL"),
        ("C3", "REQUIRED"),
        ("C4", "INVALID_DECIMAL"),
    ]
    assert rows[0]["email"] == "not-an-email"  # the record as it was sent, to fix and send again

    page.get_by_role("link", name="Batches", exact=True).first.click()
    row = page.locator("#batches tbody tr").first
    expect(row).to_contain_text("march-customers")
    expect(row).to_contain_text("Completed, some refused")
    expect(row.locator("td[data-label=Refused]")).to_have_text("3")


def test_a_two_phase_batch_dropped_as_json_lines_is_checked_then_processed(
    page: Page, dashboard: Server, key: str
) -> None:
    sign_in(page, dashboard, key, "/new")
    page.get_by_label("Kind of records").select_option("billing.customer")
    lines = (
        '{"customer_number": "J1", "name": "One"}\n{"customer_number": "J2", "name": "Two", "email": "x"}\n'
    )
    page.evaluate(
        """([name, text]) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([text], name, { type: "application/x-ndjson" }));
          const zone = document.querySelector("#dropzone");
          const event = { dataTransfer: transfer, bubbles: true, cancelable: true };
          zone.dispatchEvent(new DragEvent("dragenter", event));
          zone.dispatchEvent(new DragEvent("drop", event));
        }""",
        ["dropped.jsonl", lines],
    )
    expect(page.locator("#file-chosen")).to_contain_text("dropped.jsonl")
    expect(page.get_by_label("Read it as")).to_have_value("jsonl")
    page.get_by_label("Check first, import after I look (two-phase)").check()
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(r"/batches/\d+$"))

    expect(page.locator("#status-badge")).to_have_text("Validated – waiting for you", timeout=30_000)
    expect(page.locator("#callout")).to_contain_text("1 record will be imported when you press Process")
    expect(page.locator("#groups")).to_contain_text("INVALID_EMAIL")
    expect(page.locator("#downloads")).to_be_hidden()  # nothing to download before it is final
    page.get_by_role("button", name="Process 1 valid record").click()
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused", timeout=30_000)
    expect(page.locator("#timeline")).to_contain_text("Process requested")
    expect(page.locator("#count-succeeded")).to_have_text("1")
    expect(page.get_by_role("button", name="Process 1 valid record")).to_be_hidden()


def test_cancel_a_batch_waiting_at_validated(page: Page, dashboard: Server, key: str, files: Path) -> None:
    upload = files / "cancel-me.csv"
    upload.write_text(CUSTOMERS)
    sign_in(page, dashboard, key, "/new")
    start_import(page, upload, two_phase=True)
    expect(page.locator("#status-badge")).to_have_text("Validated – waiting for you", timeout=30_000)

    page.get_by_role("button", name="Cancel batch").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Records not imported yet will not be imported")
    dialog.get_by_role("button", name="Keep the batch").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#status-badge")).to_have_text("Validated – waiting for you")

    page.get_by_role("button", name="Cancel batch").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel the batch").click()
    expect(page.locator("#status-badge")).to_have_text("Cancelled")
    expect(page.locator("#count-unprocessed")).to_have_text("2")
    expect(page.locator("#progress-label")).to_have_text("0 of 5 records imported")  # not "5 of 5"
    expect(page.get_by_role("button", name="Cancel batch")).to_be_hidden()
    with page.expect_download() as refused:
        page.get_by_role("button", name="Download 5 refused records (CSV)").click()
    assert [r["loadbay_status"] for r in rows_of(refused.value)] == ["unprocessed"] + ["invalid"] * 3 + [
        "unprocessed"
    ]


def test_a_batch_submitted_later_and_a_tsv_file(page: Page, dashboard: Server, key: str, files: Path) -> None:
    upload = files / "spreadsheet.tsv"
    upload.write_text('customer_number\tname\temail\nT1\t"Tab\tand, comma"\tt1@example.com\nT2\tTwo\t\n')
    sign_in(page, dashboard, key, "/new")
    start_import(page, upload, submit_now=False)
    expect(page.locator("#status-badge")).to_have_text("Waiting for data")
    expect(page.locator("#callout")).to_contain_text(
        "The data is here. Add more files below, or submit the batch"
    )
    expect(page.get_by_role("list", name="Files in this batch")).to_contain_text("spreadsheet.tsv")
    page.get_by_role("button", name="Submit for import").click()
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=30_000)
    with page.expect_download() as results:
        page.get_by_role("button", name="Download result file (CSV)").click()
    assert [(r["customer_number"], r["name"]) for r in rows_of(results.value)] == [
        ("T1", "Tab\tand, comma"),
        ("T2", "Two"),
    ]


def test_a_semicolon_separated_csv_as_excel_saves_it(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    upload = files / "excel.csv"
    upload.write_bytes("\ufeffcustomer_number;name;email\r\nE1;Smith, Ann;e1@example.com\r\n".encode())
    sign_in(page, dashboard, key, "/new")
    page.get_by_label("Kind of records").select_option("billing.customer")
    page.locator("#file").set_input_files(upload)
    expect(page.locator("#file-check")).to_contain_text("Read as semicolon-separated values")
    expect(page.locator("#file-check")).to_contain_text("every required one is there")
    page.get_by_role("button", name="Upload and import").click()
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=30_000)
    with page.expect_download() as results:
        page.get_by_role("button", name="Download result file (CSV)").click()
    assert [(r["customer_number"], r["name"]) for r in rows_of(results.value)] == [("E1", "Smith, Ann")]


def test_a_file_without_a_required_column_is_caught_before_it_is_sent(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    upload = files / "no-name.csv"
    upload.write_text("customer_number,mail\nX1,x@example.com\n")
    sign_in(page, dashboard, key, "/new")
    page.get_by_label("Kind of records").select_option("billing.customer")
    page.locator("#file").set_input_files(upload)
    expect(page.locator("#file-check")).to_contain_text("lacks the required column name")
    expect(page.locator("#file-check")).to_contain_text("ignored: mail")
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_role("alert")).to_contain_text("lacks the required column name")
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        assert client.get("/v1/batches").json()["data"] == []  # nothing was created


def test_a_workbook_or_a_file_that_is_not_utf8_is_caught_before_it_is_sent(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    workbook = files / "customers.xlsx"
    workbook.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(200))
    latin1 = files / "latin1.csv"
    latin1.write_bytes("customer_number,name\nL1,Zoë Müller\n".encode("latin-1"))
    sign_in(page, dashboard, key, "/new")
    page.get_by_label("Kind of records").select_option("billing.customer")
    check = page.locator("#file-check")
    page.locator("#file").set_input_files(workbook)
    expect(check).to_contain_text("loadbay does not read spreadsheet workbooks")
    page.locator("#file").set_input_files(latin1)
    expect(check).to_contain_text("The file is not UTF-8 text")
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_role("alert")).to_contain_text("Save it as “CSV UTF-8”")
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        assert client.get("/v1/batches").json()["data"] == []  # nothing was created


def test_an_unreadable_file_says_why_and_shows_no_progress(dashboard: Server, page: Page, key: str) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer"}).json()
        client.put(
            f"/v1/batches/{made['id']}/data",
            content=b"[{broken",
            headers={"Content-Type": "application/json"},
        )
        client.post(f"/v1/batches/{made['id']}/submit")
        assert wait_final(client, made["id"])["status"] == "error"
    sign_in(page, dashboard, key, f"/batches/{made['id']}")
    expect(page.locator("#status-badge")).to_have_text("Could not be read")
    expect(page.locator("#callout")).to_contain_text("nothing was imported")
    expect(page.locator("#callout")).to_contain_text("MALFORMED_FILE")
    expect(page.locator("#progress-block")).to_be_hidden()  # never "100%" for a file that could not be read


def test_pages_follow_batches_while_they_move(page: Page, dashboard: Server, key: str) -> None:
    """The list and the batch page update themselves (no reload) until the batch is done."""
    rows = 40_000
    body = "customer_number,name\n" + "".join(f"L{i},Name {i}\n" for i in range(rows))
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}, timeout=30) as client:
        made = client.post(
            "/v1/batches", json={"type": "billing.customer", "description": "the big one"}
        ).json()
        client.put(f"/v1/batches/{made['id']}/data", content=body, headers={"Content-Type": "text/csv"})
        client.post(f"/v1/batches/{made['id']}/submit")
    sign_in(page, dashboard, key)
    row = page.locator("#batches tbody tr").first
    seen = row.get_attribute("data-status")  # (waits for the row)
    expect(row).to_contain_text("Completed, all imported", timeout=60_000)
    expect(row.locator("td[data-label=Records]")).to_have_text("40,000")
    expect(page.locator("#live-note")).to_be_hidden()
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload
    print(f"the list first showed the batch {seen}")  # (a fast machine may finish it first)

    page.get_by_role("link", name=f"Batch {made['id']}").click()
    expect(page.locator("#progress-label")).to_have_text("40,000 of 40,000 records")
    expect(page.locator("#timeline")).to_contain_text("File read through")


def test_the_search_finds_a_batch_by_its_description(page: Page, dashboard: Server, key: str) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        for description in ("April invoices", "May customers", "april refunds"):
            client.post("/v1/batches", json={"type": "billing.customer", "description": description})
    sign_in(page, dashboard, key)
    expect(page.locator("#batches tbody tr")).to_have_count(3)
    page.get_by_label("Search").fill("APRIL")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?q=APRIL$"))
    expect(page.locator("#batches tbody tr")).to_have_count(2)
    page.get_by_label("Status").select_option("cancelled")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No batches match these filters.")).to_be_visible()
    page.get_by_role("link", name="Clear", exact=True).click()
    expect(page.locator("#batches tbody tr")).to_have_count(3)


LONG_ID = "s3://exports-prod/customers/2026/03/01/full-export-part-0001-of-0042.csv"
UUID_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
WORDS_ID = "2026-04 customers by region"
LONG_DESCRIPTION = "Nightly sync from the ERP, all regions, " * 6


def test_long_job_ids_and_descriptions_keep_a_row_short(page: Page, dashboard: Server, key: str) -> None:
    """A job id wraps only between its words, and a word too long for the column (a path, a
    UUID) keeps its start and end around "…", the whole id on hover and to a screen reader; a
    description takes at most two lines under it. The row is no taller than three lines, where
    a long id wrapped over four at its slashes and hyphens."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        for spec in (
            {"job_id": WORDS_ID},
            {"job_id": UUID_ID},
            {"job_id": LONG_ID, "description": LONG_DESCRIPTION},
        ):
            client.post("/v1/batches", json={"type": "billing.customer", **spec}).raise_for_status()
    sign_in(page, dashboard, key)
    rows = page.locator("#batches tbody tr")
    expect(rows.locator(".job-id")).to_have_count(3)
    long_row, uuid_row, words_row = rows.nth(0), rows.nth(1), rows.nth(2)  # newest first
    for row, whole, shown in (
        (long_row, LONG_ID, "s3://exports-…f-0042.csv"),
        (uuid_row, UUID_ID, "7c9e6679-7425…7fc1f90ae7"),
    ):
        expect(row.locator(".job-id")).to_have_attribute("title", whole)
        expect(row.locator('.job-id [aria-hidden="true"]')).to_have_text(shown)
        expect(row.locator(".job-id .sr-only")).to_have_text(whole)
    expect(words_row.locator(".job-id")).to_have_text(WORDS_ID)
    expect(words_row.locator(".job-id")).not_to_have_attribute("title", re.compile(".*"))
    expect(long_row.locator(".job-description")).to_have_attribute("title", LONG_DESCRIPTION)
    line = _height(uuid_row.locator(".job-id"))
    assert _height(long_row.locator(".job-id")) == line, "a shortened id is one line"
    assert _height(words_row.locator(".job-id")) <= 2 * line, "an id of words wraps between them"
    assert _height(long_row.locator(".job-description")) < 3 * line, "a description is at most two lines"
    assert _height(long_row) < 4.5 * line, "the row is no taller than about three lines and its padding"


def _height(element: Any) -> float:
    box = element.bounding_box()
    assert box is not None
    return float(box["height"])


def test_fix_the_refused_records_and_import_them_again(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    upload = files / "customers.csv"
    upload.write_text(CUSTOMERS)
    sign_in(page, dashboard, key, "/new")
    start_import(page, upload)
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused", timeout=30_000)
    with page.expect_download() as refused:
        page.get_by_role("button", name="Download 3 refused records (CSV)").click()
    text = Path(refused.value.path()).read_text()
    fixed = files / "fixed.csv"
    fixed.write_text(
        text.replace("not-an-email", "bob@example.com").replace("C3,,", "C3,Cy,").replace("1.234", "1.23")
    )

    page.get_by_role("link", name="new billing.customer import").click()
    expect(page.get_by_label("Kind of records")).to_have_value("billing.customer")
    page.locator("#file").set_input_files(fixed)
    expect(page.locator("#file-check")).to_contain_text(
        "The loadbay_… columns of a result file are not imported"
    )
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(r"/batches/\d+$"))
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=30_000)
    expect(page.locator("#count-succeeded")).to_have_text("3")


def test_the_upload_shows_its_progress_and_can_be_stopped_and_sent_again(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    upload = files / "slow.csv"
    upload.write_text("customer_number,name\n" + "".join(f"S{i},Name {i}\n" for i in range(15_000)))
    sign_in(page, dashboard, key, "/new")
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 8_000}
    network.send("Network.emulateNetworkConditions", slow)
    page.get_by_label("Kind of records").select_option("billing.customer")
    page.locator("#file").set_input_files(upload)
    page.get_by_role("button", name="Upload and import").click()
    expect(page.locator("#upload-text")).to_contain_text("Uploading slow.csv:")
    page.wait_for_function("() => document.querySelector('#upload-bar').value > 0")
    page.get_by_role("button", name="Stop the upload").click()
    expect(page.locator("#upload-text")).to_contain_text("Upload stopped; nothing was imported.")
    stopped = int(re.findall(r"Batch (\d+) waits", page.locator("#upload-text").inner_text())[0])
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        batch = client.get(f"/v1/batches/{stopped}").json()
        assert (batch["status"], batch["progress"]["total"]) == ("open", None)

    network.send("Network.emulateNetworkConditions", slow | {"uploadThroughput": -1})
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(rf"/batches/{stopped}$"))  # the same batch, sent the file again
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=30_000)
    expect(page.locator("#count-total")).to_have_text("15,000")
    expect(page.locator("#timeline .event-file_received")).to_have_count(1)
