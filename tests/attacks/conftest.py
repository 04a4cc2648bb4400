"""The attack suite: hostile input of every kind, each case with the safe answer it expects.

Every module here runs against the real `loadbay serve` of `tests/conftest.py` (one per
module and backend). Besides each case's own assertions, the whole module fails if the
server answered any request with a 5xx or wrote a traceback to its log while it ran.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.servers import Server

_SERVER_ERROR = re.compile(r'HTTP/1\.[01]" 5\d\d')


def server_faults(log: str) -> list[str]:
    """The lines of a server log that show a 5xx answer or a traceback."""
    return [line for line in log.splitlines() if "Traceback" in line or _SERVER_ERROR.search(line)]


@pytest.fixture(scope="module", autouse=True)
def no_server_faults(server: Server) -> Iterator[None]:
    """After a module's cases: no 5xx and no traceback in the server's log."""
    start = server.log.stat().st_size
    yield
    with server.log.open("rb") as log:
        log.seek(start)
        written = log.read().decode("utf-8", "replace")
    faults = server_faults(written)
    assert not faults, "the server answered 5xx or logged a traceback:\n" + "\n".join(faults[:20])
