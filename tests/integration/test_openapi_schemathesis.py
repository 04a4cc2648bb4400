"""schemathesis against the native API of a real `loadbay serve` (SQLite), with a real API key:
every operation of /openapi.json under /v1 is called with the document's examples, with the
boundary and invalid values schemathesis derives from each schema (its coverage phase), with
generated requests, and in sequences that follow one answer's ids into the next request
(its stateful phase).

Every answer must be no server error (no 5xx), carry a status the document lists for that
operation, in a content type and with headers it lists, with a body its schema accepts; a
request the schema refuses must be refused; a 405 must name the methods the path takes.
(That each status the document lists is one the server really answers: test_openapi_statuses.)

Run as the `st` command-line tool does, in its own process: its pytest plugin's lazy loader
(needed for a server started by a fixture) does not run under pytest 9. Generation is
deterministic, so a run fails on a change to the API, never on a draw. On SQLite and on
PostgreSQL (about 15 s and 20 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import make_keys
from tests.support.servers import Server, start_server

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
]
EXAMPLES = 50  # per operation and phase: about 1,700 requests for each backend

# An NDJSON upload is a file like any other: its bytes go out as they are.
HOOKS = """\
import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")
"""


@pytest.fixture(scope="module")
def api(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data: Path = tmp_path_factory.mktemp("schemathesis")
    running = start_server(module_database_url, data, workers=1)
    yield running
    running.stop()


def test_every_answer_is_one_the_document_lists(api: Server, tmp_path: Path) -> None:
    key = make_keys(api, f"schemathesis-{uuid.uuid4().hex[:6]}", 1)[0]
    hooks = tmp_path / "hooks.py"
    hooks.write_text(HOOKS)
    args = [
        *("run", f"{api.url}/openapi.json", "--include-path-regex", "^/v1/"),
        *("--header", f"X-Api-Key: {key}", "--generation-with-security-parameters", "false"),
        *("--checks", ",".join(CHECKS), "--max-examples", str(EXAMPLES)),
        *("--generation-deterministic", "--no-color"),
    ]
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", *args],
        env=os.environ | {"SCHEMATHESIS_HOOKS": str(hooks)},
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    assert f"Tested: {_operations(api)}" in report, report[-5_000:]  # every /v1 operation, none skipped
    assert "Traceback" not in api.log.read_text()


def _operations(api: Server) -> int:
    """The operations of the native API (under /v1) that /openapi.json lists."""
    paths = httpx.get(api.url + "/openapi.json").json()["paths"]
    return sum(len(operations) for path, operations in paths.items() if path.startswith("/v1/"))
