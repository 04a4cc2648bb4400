"""An open batch's page takes files: a batch made through the API (or the CLI) gets its files
and is submitted from the dashboard, and a file the API refuses says why, with the API's code."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, Route, expect

from loadbay.domain.text import byte_size
from tests.browser.conftest import MAX_UPLOAD_BYTES
from tests.browser.pages import sign_in
from tests.support.servers import Server

HEADER = "customer_number,name,email\n"


def open_batch(dashboard: Server, key: str, **spec: object) -> int:
    """A billing.customer batch made through the API and left open, with no data."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = client.post("/v1/batches", json={"type": "billing.customer", "submit": False} | spec)
        assert made.status_code == 201, made.text
        assert made.json()["status"] == "open"
        batch_id: int = made.json()["id"]
        return batch_id


def add_file(page: Page, file: Path, check: str = "") -> None:
    """Choose `file` in the batch's Files card and upload it; `check`, what the picker says of
    the file before it is sent (the picker is emptied once the file is in the batch)."""
    page.locator("#file").set_input_files(file)
    expect(page.locator("#file-chosen")).to_contain_text(file.name)
    expect(page.locator("#file-check")).to_contain_text(check)
    page.get_by_role("button", name="Upload the file").click()


def test_files_added_to_an_open_batch_then_submitted(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    batch = open_batch(dashboard, key, job_id="made-by-the-cli")
    first = files / "first.csv"
    first.write_text(HEADER + "F1,Ada,ada@example.com\nF2,Bob,not-an-email\n")
    second = files / "second.csv"
    second.write_text(HEADER + "S1,Cy,cy@example.com\nS2,Di,di@example.com\nS3,Ed,ed@example.com\n")

    sign_in(page, dashboard, key, f"/batches/{batch}")
    expect(page.locator("#status-badge")).to_have_text("Waiting for data")
    expect(page.locator("#callout")).to_have_text(
        "This batch has no data yet. Add a file below, then submit the batch."
    )
    card = page.get_by_role("region", name="Files")
    expect(card.get_by_text("No file yet.")).to_be_visible()
    inputs = page.get_by_role("list", name="Files in this batch").get_by_role("listitem")

    add_file(page, first, check="every required one is there")
    expect(page.locator("#upload-text")).to_have_text(
        f"first.csv ({first.stat().st_size} B) is in the batch. Add another file, or submit the batch."
    )
    expect(inputs).to_have_count(1)
    expect(inputs.first).to_contain_text("first.csv")
    expect(inputs.first).to_contain_text(f"{first.stat().st_size} B · received")
    expect(page.locator("#file-chosen")).to_be_hidden()  # the picker is empty again, for the next file
    expect(page.locator("#callout")).to_contain_text(
        "The data is here. Add more files below, or submit the batch"
    )

    add_file(page, second)
    expect(inputs).to_have_count(2)
    expect(inputs.nth(1)).to_contain_text("second.csv")

    page.get_by_role("button", name="Submit for import").click()
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused", timeout=30_000)
    expect(card).to_be_hidden()  # a batch that has left open takes no more files
    counts = {"total": "5", "valid": "4", "invalid": "1", "succeeded": "4", "failed": "0", "unprocessed": "0"}
    for name, value in counts.items():
        expect(page.locator(f"#count-{name}")).to_have_text(value)
    expect(page.locator("#errors tbody tr")).to_have_count(1)
    expect(page.locator("#errors tbody tr")).to_contain_text("#2")  # F2, the second record of the first file
    expect(page.locator("#errors tbody tr")).to_contain_text("INVALID_EMAIL")
    expect(page.locator("#timeline .event-file_received")).to_have_count(2)


def test_a_file_sent_again_under_its_name_replaces_the_first(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    batch = open_batch(dashboard, key)
    upload = files / "customers.csv"
    upload.write_text(HEADER + "R1,Ada,not-an-email\n")
    sign_in(page, dashboard, key, f"/batches/{batch}")
    add_file(page, upload)
    inputs = page.get_by_role("list", name="Files in this batch").get_by_role("listitem")
    expect(inputs).to_have_count(1)

    upload.write_text(HEADER + "R1,Ada,ada@example.com\nR2,Bo,bo@example.com\n")
    page.locator("#file").set_input_files(upload)
    expect(page.locator("#file-check")).to_contain_text(
        "The batch has a file named customers.csv already: this one replaces it."
    )
    page.get_by_role("button", name="Upload the file").click()
    expect(inputs.first).to_contain_text("(sent again: it replaced the first one)")
    expect(inputs).to_have_count(1)
    page.get_by_role("button", name="Submit for import").click()
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=30_000)
    expect(page.locator("#count-total")).to_have_text("2")


def test_a_file_the_api_refuses_says_why_with_its_code(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    batch = open_batch(dashboard, key)
    big = files / "big.csv"
    rows = MAX_UPLOAD_BYTES // 30 + 1000
    big.write_text(HEADER + "".join(f"B{i:07d},Name {i},b{i}@example.com\n" for i in range(rows)))
    size = big.stat().st_size
    assert size > MAX_UPLOAD_BYTES
    sign_in(page, dashboard, key, f"/batches/{batch}")
    add_file(page, big)

    error = page.locator("#upload-error")
    expect(error).to_have_text(
        f"big.csv was not added: the upload is {byte_size(size)}; this server takes at most "
        f"{byte_size(MAX_UPLOAD_BYTES)} (PAYLOAD_TOO_LARGE). Split it into smaller files: the batch "
        "takes several."
    )
    expect(error).to_have_attribute("role", "alert")
    expect(page.get_by_text("No file yet.")).to_be_visible()  # nothing was added
    expect(page.locator("#status-badge")).to_have_text("Waiting for data")

    small = files / "small.csv"
    small.write_text(HEADER + "M1,Mo,mo@example.com\n")
    add_file(page, small)  # the batch still takes a file
    expect(page.get_by_role("list", name="Files in this batch").get_by_role("listitem")).to_have_count(1)
    expect(error).to_be_hidden()


def test_nothing_to_add_to_a_batch_that_is_not_open_or_takes_pages(
    page: Page, dashboard: Server, key: str
) -> None:
    submitted = open_batch(dashboard, key)
    pages = open_batch(dashboard, key)
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        client.put(
            f"/v1/batches/{submitted}/data",
            content=HEADER + "N1,Ned,ned@example.com\n",
            headers={"Content-Type": "text/csv"},
        )
        client.post(f"/v1/batches/{submitted}/submit")
        client.put(f"/v1/batches/{pages}/pages/1", json={"items": [{"customer_number": "P1", "name": "Pam"}]})
    sign_in(page, dashboard, key, f"/batches/{submitted}")
    expect(page.locator("#status-badge")).to_have_text("Completed, all imported", timeout=30_000)
    expect(page.locator("#add-file")).to_be_hidden()
    page.goto(f"{dashboard.url}/batches/{pages}")
    expect(page.locator("#callout")).to_contain_text("The data is here. Submit the batch")
    expect(page.locator("#add-file")).to_be_hidden()  # a batch of pages takes no file (MIXED_INPUT)
    expect(page.get_by_role("button", name="Submit for import")).to_be_visible()


def test_a_long_name_in_another_script_is_cut_to_one_the_server_keeps(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    """A file's name is at most 240 bytes URL-encoded on the server (INVALID_NAME): 60
    Cyrillic letters are 360. The dashboard cuts a name to fit, a whole character at a time."""
    batch = open_batch(dashboard, key)
    upload = files / ("Клиенты" * 9 + "ЮЖ.csv")  # 65 letters, 69 characters
    upload.write_text(HEADER + "L1,Lev,lev@example.com\n")
    sign_in(page, dashboard, key, f"/batches/{batch}")
    add_file(page, upload)
    inputs = page.get_by_role("list", name="Files in this batch").get_by_role("listitem")
    expect(inputs).to_have_count(1)
    expect(page.locator("#upload-error")).to_be_hidden()
    name = inputs.first.locator(".input-name").inner_text()
    assert upload.name.startswith(name) and len(name) == 40, name  # 40 letters: 240 bytes encoded


def test_a_file_expected_at_its_upload_url_waits_for_its_upload(
    page: Page, dashboard: Server, key: str
) -> None:
    """A file whose upload URL was handed out is listed as waiting for its upload, and the page
    says to submit once it is there (on S3 loadbay sees it only then); once it is uploaded to a
    local store it is listed as received, with its size."""
    batch = open_batch(dashboard, key)
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        signed = client.post(f"/v1/batches/{batch}/upload-url", json={"name": "expected.csv"})
        assert signed.status_code == 200, signed.text
    sign_in(page, dashboard, key, f"/batches/{batch}")
    inputs = page.get_by_role("list", name="Files in this batch").get_by_role("listitem")
    expect(inputs).to_have_count(1)
    expect(inputs.first).to_have_text("expected.csvwaiting for upload (an upload URL was handed out for it)")
    expect(page.locator("#callout")).to_have_text(
        "This batch waits for expected.csv at its upload URL: once uploaded there, submit the batch."
    )

    body = HEADER + "W1,Wyn,wyn@example.com\n"
    put = httpx.put(signed.json()["url"], content=body, headers={"Content-Type": "text/csv"})
    assert put.status_code == 200, put.text
    page.reload()
    expect(inputs.first).to_contain_text(f"expected.csv{len(body)} B · received")
    expect(inputs).to_have_count(1)
    expect(page.locator("#callout")).to_contain_text("The data is here.")


def test_a_batch_with_a_file_and_one_still_expected_waits_for_it(
    page: Page, dashboard: Server, key: str
) -> None:
    """A batch that has a file and waits for another at its upload URL does not say its data
    is here: submitting it before that file is uploaded is refused (FILE_NOT_UPLOADED)."""
    batch = open_batch(dashboard, key)
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        put = client.put(
            f"/v1/batches/{batch}/data",
            params={"name": "north.csv"},
            content=HEADER + "N1,Ned,ned@example.com\n",
            headers={"Content-Type": "text/csv"},
        )
        assert put.status_code == 200, put.text
        signed = client.post(f"/v1/batches/{batch}/upload-url", json={"name": "south.csv"})
        assert signed.status_code == 200, signed.text
    sign_in(page, dashboard, key, f"/batches/{batch}")
    expect(page.get_by_role("list", name="Files in this batch").get_by_role("listitem")).to_have_count(2)
    expect(page.locator("#callout")).to_have_text(
        "This batch waits for south.csv at its upload URL: once uploaded there, submit the batch."
    )
    page.get_by_role("button", name="Submit for import").click()
    expect(page.locator("#action-error code")).to_have_text("FILE_NOT_UPLOADED")


def test_submitting_a_batch_with_no_file_says_why_with_the_apis_code(
    page: Page, dashboard: Server, key: str
) -> None:
    batch = open_batch(dashboard, key)
    sign_in(page, dashboard, key, f"/batches/{batch}")
    page.get_by_role("button", name="Submit for import").click()
    error = page.locator("#action-error")
    expect(error).to_contain_text("Could not submit the batch: ")
    expect(error.locator("code")).to_have_text("NO_DATA")
    expect(page.locator("#status-badge")).to_have_text("Waiting for data")


def test_a_batch_cancelled_while_a_file_is_on_its_way_waits_for_no_file(
    page: Page, dashboard: Server, key: str, files: Path
) -> None:
    """The Files card stays while an upload is on its way; once the batch is cancelled it says
    the batch takes no more files, not that it waits for the file at its upload URL, and the
    upload that arrives then is refused."""
    batch = open_batch(dashboard, key)
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        signed = client.post(f"/v1/batches/{batch}/upload-url", json={"name": "expected.csv"})
        assert signed.status_code == 200, signed.text
    held: list[Route] = []

    def hold(route: Route) -> None:  # the upload waits here
        held.append(route)

    page.route(f"**/v1/batches/{batch}/data?*", hold)
    sign_in(page, dashboard, key, f"/batches/{batch}")
    card = page.get_by_role("region", name="Files")
    expect(card).to_contain_text("expected.csvwaiting for upload")
    upload = files / "on-its-way.csv"
    upload.write_text(HEADER + "O1,Oz,oz@example.com\n")
    add_file(page, upload)
    expect(page.locator("#stop")).to_be_visible()

    page.get_by_role("button", name="Cancel batch").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel the batch").click()
    expect(page.locator("#status-badge")).to_have_text("Cancelled")
    expect(card).to_be_visible()  # the upload is still on its way
    expect(card).to_contain_text("This batch is no longer open: it takes no more files.")
    expect(card).not_to_contain_text("waiting for upload")
    expect(card).not_to_contain_text("expected.csv")

    held[0].continue_()
    expect(card).to_be_hidden()
    expect(page.locator("#action-error")).to_contain_text("on-its-way.csv was not added: ")
    expect(page.locator("#action-error code")).to_have_text("BATCH_NOT_OPEN")
