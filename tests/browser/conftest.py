"""The dashboard in a real browser: Playwright drives Debian's Chromium against a real
`loadbay serve` on loopback (SQLite), one server and one browser for these tests.

Without Chromium (or Playwright) these tests are skipped, with the reason; in CI (CI=true)
they fail instead, so CI never passes without having run them.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.accounts import make_keys
from tests.support.browser import CHROMIUM_ARGS, chromium_path
from tests.support.servers import Server, start_server

VIEWPORT = {"width": 1280, "height": 900}
MAX_UPLOAD_BYTES = 4_000_000  # the dashboard server's limit: every test's files are smaller but one


def pytest_configure(config: pytest.Config) -> None:
    """Assertions wait up to 15 s (Playwright's default, 5 s, is short on a loaded machine)."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        return
    expect.set_options(timeout=15_000)


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)", pytrace=False)
    pytest.skip(reason)


# Package scope, not session: while Playwright's sync API is started, an asyncio loop runs in
# this thread, and the tests after these ones call asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        _missing("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="package")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real `loadbay serve` (SQLite) for every browser test; its webhooks may reach
    receivers on loopback, and it takes files up to MAX_UPLOAD_BYTES (a test sends a larger one)."""
    data = tmp_path_factory.mktemp("dashboard")
    env = {"LOADBAY_CHUNK_SIZE": "500", "LOADBAY_FETCH_ALLOW": "127.0.0.1", "LOADBAY_WEBHOOK_BACKOFF": "0.5"}
    env["LOADBAY_MAX_UPLOAD_BYTES"] = str(MAX_UPLOAD_BYTES)
    running = start_server(f"sqlite:///{data / 'loadbay.db'}", data, env=env)
    yield running
    running.stop()


@pytest.fixture(scope="package")
def _keys(dashboard: Server) -> Iterator[str]:
    """API keys of new accounts, made 30 at a time (a process start each) as tests take them."""
    prefix = f"browser-{uuid.uuid4().hex[:6]}"
    return (key for n in itertools.count() for key in make_keys(dashboard, f"{prefix}-{n}", 30))


@pytest.fixture
def key(_keys: Iterator[str]) -> str:
    """A fresh account's API key: each test sees only its own batches."""
    return next(_keys)


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    made = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield made
    made.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A tab; the test fails on any script error the pages raise."""
    opened = context.new_page()
    opened.set_default_timeout(30_000)  # (generous: a loaded CI machine slows Chromium down)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    assert errors == [], f"script errors on the page: {errors}"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return tmp_path
