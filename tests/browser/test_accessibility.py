"""The dashboard for everyone: labelled controls, text contrast, the keyboard alone, a
phone's width, and pages of batches."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import FileChooser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.pages import CUSTOMERS, sign_in
from tests.support.servers import Server, wait_final

# Every visible form control has a name a screen reader reads (its label, aria-label or
# aria-labelledby); every button has text.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button, progress")]
  .filter((el) => el.getClientRects().length && el.type !== "hidden")
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
  .filter((el) => !el.getAttribute("aria-labelledby"))
  .filter((el) => !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""

# Text whose contrast with what is behind it is under WCAG AA: 4.5:1, or 3:1 for large text.
LOW_CONTRAST = """() => {
  const rgb = (value) => value.match(/[\\d.]+/g).map(Number);
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const color = getComputedStyle(el).backgroundColor;
      const parts = rgb(color);
      if (parts.length === 3 || parts[3] > 0.5) return parts.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || getComputedStyle(el).visibility === "hidden") continue;
    const style = getComputedStyle(el);
    if (el.closest("button:disabled")) continue;  // disabled controls are exempt
    const a = luminance(rgb(style.color)), b = luminance(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < needed) low.push(`${el.tagName}.${el.className} "${text}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""


@pytest.fixture
def finished(dashboard: Server, key: str) -> Iterator[tuple[int, int]]:
    """(a completed batch with refused records, a two-phase batch waiting at validated)."""
    ids = []
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        for process in ("auto", "manual"):
            made = client.post("/v1/batches", json={"type": "billing.customer", "process": process}).json()
            client.put(
                f"/v1/batches/{made['id']}/data", content=CUSTOMERS, headers={"Content-Type": "text/csv"}
            )
            client.post(f"/v1/batches/{made['id']}/submit")
            wait_final(client, made["id"])
            ids.append(made["id"])
    yield ids[0], ids[1]


@pytest.fixture
def open_batch(dashboard: Server, key: str) -> int:
    """An open batch with one file, waiting for more."""
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made: int = client.post("/v1/batches", json={"type": "billing.customer"}).json()["id"]
        client.put(
            f"/v1/batches/{made}/data?name=first.csv", content=CUSTOMERS, headers={"Content-Type": "text/csv"}
        )
    return made


def pages(dashboard: Server, batches: tuple[int, int], open_batch: int) -> list[tuple[str, str]]:
    """(path, a selector that is there once the page has its data) of each page."""
    completed, validated = batches
    return [
        ("/", "#batches tbody tr"),
        ("/new", ".type-info:not([hidden])"),
        (f"/batches/{completed}", "#groups tbody tr"),
        (f"/batches/{validated}", "#action-process:not([hidden])"),
        (f"/batches/{open_batch}", "#inputs li"),
        ("/webhooks", "#hooks-empty:not([hidden])"),
    ]


def test_every_control_is_labelled_and_every_text_readable(
    page: Page, dashboard: Server, key: str, finished: tuple[int, int], open_batch: int
) -> None:
    page.goto(dashboard.url + "/")
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
    sign_in(page, dashboard, key)
    for path, ready in pages(dashboard, finished, open_batch):
        page.goto(dashboard.url + path)
        page.locator(ready).first.wait_for()
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(LOW_CONTRAST) == [], path


def test_a_phone_needs_no_sideways_scrolling(
    page: Page, dashboard: Server, key: str, finished: tuple[int, int], open_batch: int
) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    sign_in(page, dashboard, key)
    for path, ready in pages(dashboard, finished, open_batch):
        page.goto(dashboard.url + path)
        page.locator(ready).first.wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width} px wide"
    page.goto(dashboard.url + "/")
    cells = page.locator("#batches tbody tr").first.locator("td")
    # Rows are cards: each cell labelled, one under the other.
    assert cells.nth(0).bounding_box()["y"] < cells.nth(1).bounding_box()["y"]  # type: ignore[index]


def test_an_import_by_keyboard_alone(page: Page, dashboard: Server, key: str, tmp_path: Path) -> None:
    upload = tmp_path / "keyboard.csv"
    upload.write_text(CUSTOMERS)
    page.goto(dashboard.url + "/new")
    expect(page.get_by_label("API key")).to_be_focused()  # the form waits with the cursor in it
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_be_visible()

    page.get_by_label("Kind of records").focus()
    page.keyboard.press("End")  # (a focused select changes with the keys)
    page.get_by_label("Kind of records").select_option("billing.customer")
    for _ in range(10):  # the file input is a stop on the way
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file":
            break
    chooser_by_keyboard(page).set_files(upload)
    expect(page.locator("#file-check")).to_contain_text("every required one is there")
    page.get_by_label("Check first, import after I look (two-phase)").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Upload and import").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/batches/\d+$"))

    cancel = page.get_by_role("button", name="Cancel batch")
    expect(page.locator("#status-badge")).to_have_text("Validated – waiting for you", timeout=30_000)
    cancel.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Keep the batch")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(cancel).to_be_focused()
    page.get_by_role("button", name="Process 2 valid records").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused", timeout=30_000)


def test_files_added_to_an_open_batch_by_keyboard_alone(
    page: Page, dashboard: Server, key: str, open_batch: int, tmp_path: Path
) -> None:
    more = tmp_path / "more.csv"
    more.write_text("customer_number,name\nK1,Kim\n")
    sign_in(page, dashboard, key, f"/batches/{open_batch}")
    inputs = page.get_by_role("list", name="Files in this batch").get_by_role("listitem")
    expect(inputs).to_have_count(1)
    page.locator("#main").focus()
    for _ in range(15):  # the file input is a stop on the way
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file":
            break
    chooser_by_keyboard(page).set_files(more)
    expect(page.locator("#file-check")).to_contain_text("every required one is there")
    page.keyboard.press("Tab")  # the format, then the button
    expect(page.get_by_label("Read it as")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Upload the file")).to_be_focused()
    page.keyboard.press("Enter")
    expect(inputs).to_have_count(2)
    expect(page.get_by_role("status").filter(has_text="more.csv")).to_contain_text("is in the batch")
    expect(page.get_by_role("button", name="Upload the file")).to_be_focused()  # the place is kept
    page.keyboard.press("Shift+Tab")  # back to the (empty) file input, for another file
    expect(page.locator("#file")).to_be_focused()

    page.get_by_role("button", name="Submit for import").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status-badge")).to_have_text("Completed, some refused", timeout=30_000)
    expect(page.locator("#count-total")).to_have_text("6")


def chooser_by_keyboard(page: Page, tries: int = 3) -> FileChooser:
    """The file chooser the focused file input opens on Space. Headless Chromium now and then
    shows none for a key press (about one run in five here, never on a retry): the press is
    made again, with the input still focused, up to `tries` times."""
    for _ in range(tries):
        expect(page.locator("#file")).to_be_focused()
        try:
            with page.expect_file_chooser(timeout=5_000) as chooser:
                page.keyboard.press("Space")
        except PlaywrightTimeoutError:
            continue
        return chooser.value
    raise AssertionError(f"Space on the focused file input opened no file chooser in {tries} tries")


def test_the_skip_link_and_pages_of_batches(page: Page, dashboard: Server, key: str) -> None:
    with httpx.Client(base_url=dashboard.url, headers={"X-Api-Key": key}) as client:
        made = [client.post("/v1/batches", json={"type": "billing.customer"}).json()["id"] for _ in range(27)]
    sign_in(page, dashboard, key)
    expect(page.locator("#main")).to_be_focused()  # after signing in, reading starts at the page
    page.reload()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    rows = page.locator("#batches tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text(f"Batch {made[-1]}")  # newest first
    page.get_by_role("link", name="Older batches").click()
    expect(rows).to_have_count(2)
    expect(rows.last).to_contain_text(f"Batch {made[0]}")
    expect(page.get_by_role("link", name="Older batches")).to_be_hidden()
    page.get_by_role("link", name="Newest").click()
    expect(rows).to_have_count(25)


def test_focus_moved_on_as_the_cancel_dialog_closes_stays_there(
    page: Page, dashboard: Server, key: str, finished: tuple[int, int]
) -> None:
    """The dialog's close event comes a task after it closes. A keyboard user who has moved on
    by then (to Process, here) must keep their place: the handler took focus back to Cancel,
    and the Enter meant for Process opened the dialog again (CI saw this once)."""
    _, validated = finished
    sign_in(page, dashboard, key)
    page.goto(f"{dashboard.url}/batches/{validated}")
    page.get_by_role("button", name="Cancel batch").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.evaluate(
        """() => {
             document.querySelector("#confirm-cancel").close();
             document.querySelector("#action-process").focus();
           }"""
    )
    expect(page.get_by_role("dialog")).to_be_hidden()
    page.wait_for_timeout(200)  # the close event has come and gone
    expect(page.get_by_role("button", name="Process 2 valid records")).to_be_focused()
