"""Shared fixtures: a database per backend (SQLite file, PostgreSQL from a migrated
template), a blob store per kind (a local directory, or a bucket of moto's S3 server on
loopback), and real `loadbay serve` processes on loopback.

A module runs over both stores with `pytestmark = pytest.mark.stores("file", "s3")` (S3
with PostgreSQL only); others use the local directory only."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadbay.db.engine import migrate
from tests.support.postgres import create_database, drop_database, postgres_server_url
from tests.support.s3 import MotoS3, S3Store
from tests.support.servers import Server, start_server

BACKENDS = ["sqlite", "postgres"]
STORES = ("file", "s3")
# one template a test process: with LOADBAY_TEST_POSTGRES_URL, pytest-xdist's workers (and any
# other test run) share a server
TEMPLATE = f"loadbay_template_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """The PostgreSQL server URL, with a migrated template database made once per session."""
    server = postgres_server_url()
    if server is None:
        if os.environ.get("LOADBAY_REQUIRE_POSTGRES") == "1":
            raise RuntimeError("LOADBAY_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started")
        yield None
        return
    migrate(_sqlalchemy(create_database(server, TEMPLATE)))
    yield server
    drop_database(server, TEMPLATE)


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _new_database(backend: str, directory: Path, postgres: str | None) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'loadbay.db'}"
        return
    if postgres is None:
        pytest.skip("no PostgreSQL server available (install Debian's postgresql)")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres, name, template=TEMPLATE)
    yield url
    drop_database(postgres, name)


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_template: str | None
) -> Iterator[str]:
    """A fresh, migrated database of each backend for one test."""
    yield from _new_database(request.param, tmp_path, postgres_template)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_template: str | None
) -> Iterator[str]:
    yield from _new_database(request.param, tmp_path_factory.mktemp("db"), postgres_template)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`store`: each kind the module's `stores` marker names (the local directory if none)."""
    if "store" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("stores")
        kinds = marker.args if marker else ("file",)
        metafunc.parametrize("store", kinds, indirect=True, scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The S3 store runs with PostgreSQL only, the pairing of a scaled-out deployment: over
    SQLite too it would add minutes to the suite and show nothing more."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        on_sqlite = params.get("module_database_url", params.get("database_url")) == "sqlite"
        (dropped if params.get("store") == "s3" and on_sqlite else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server, started once per session when a test needs it."""
    s3 = MotoS3()
    yield s3
    s3.stop()


@pytest.fixture(scope="module")
def store(request: pytest.FixtureRequest) -> S3Store | None:
    """The blob store of the module's server: None for a local directory, else a new bucket."""
    if getattr(request, "param", "file") == "file":
        return None
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    return moto.store()


@pytest.fixture(scope="module")
def server(
    module_database_url: str, store: S3Store | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real `loadbay serve` per module, backend and store; tests make their own accounts.

    It may fetch from loopback (LOADBAY_FETCH_ALLOW) and takes uploads up to 5 MB.
    """
    env = {"LOADBAY_FETCH_ALLOW": "127.0.0.1", "LOADBAY_MAX_UPLOAD_BYTES": str(5 * 1024 * 1024)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env, s3=store)
    yield running
    running.stop()


@pytest.fixture
def key(server: Server) -> str:
    """A fresh live account's API key on the module's server."""
    return server.account(f"acct-{uuid.uuid4().hex[:8]}")
