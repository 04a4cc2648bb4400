"""What the browser tests do over and over: sign in, fill the new-import form, read a
downloaded CSV, hold a request on its way to the server."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route, expect

from tests.support.servers import Server

__all__ = ["CUSTOMERS", "Held", "batch_id", "rows_of", "sign_in", "start_import"]

CUSTOMERS = (
    "customer_number,name,email,balance\n"
    "C1,Ada,ada@example.com,10\n"
    "C2,Bob,not-an-email,20\n"
    "C3,,c3@example.com,30\n"
    "C4,Dee,dee@example.com,1.234\n"
    "C5,Eve,eve@example.com,5\n"
)


def sign_in(page: Page, server: Server, key: str, path: str = "/") -> None:
    page.goto(server.url + path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_be_visible()


def rows_of(download: Any) -> list[dict[str, str]]:
    text = Path(download.path()).read_text(encoding="utf-8")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    return [dict(zip(header, row, strict=True)) for row in rows]


def start_import(page: Page, file: Path, *, type_: str = "billing.customer", **options: Any) -> None:
    """Fill the new-import form with `file` and press Upload; options: job_id, two_phase, submit_now."""
    page.get_by_label("Kind of records").select_option(type_)
    page.locator("#file").set_input_files(file)
    expect(page.locator("#file-chosen")).to_contain_text(file.name)
    if "job_id" in options:
        page.get_by_label("Job id").fill(options["job_id"])
    page.get_by_label("Check first, import after I look (two-phase)").set_checked(
        options.get("two_phase", False)
    )
    page.get_by_label("Start as soon as the upload is done").set_checked(options.get("submit_now", True))
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_url(re.compile(r"/batches/\d+$"))


def batch_id(page: Page) -> int:
    return int(page.url.rsplit("/", 1)[1])


class Held:
    """The page's requests to `url`, held on their way to the server until `release()`: what
    the page shows while such a request is on its way (a "Cancelling…", a "Loading…") lasts
    until the test has looked at it. (A handler that waits a few seconds instead ends it on its
    own clock, which a loaded machine can pass before the test looks.)"""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.routes: list[Route] = []
        self.released = False
        page.route(url, self._hold)

    def _hold(self, route: Route) -> None:
        if self.released:
            route.continue_()
        else:
            self.routes.append(route)

    def wait(self, timeout: float = 30) -> None:
        """Until the page has sent a request to `url` (it is held now)."""
        deadline = time.monotonic() + timeout
        while not self.routes:
            assert time.monotonic() < deadline, f"the page sent no request to {self.url} in {timeout} s"
            self.page.wait_for_timeout(20)  # (the route's handler runs meanwhile)

    def release(self) -> None:
        """Send the held requests on to the server; later ones go straight there."""
        self.released = True
        for route in self.routes:
            route.continue_()
