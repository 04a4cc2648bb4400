"""Smoke test for tests/support/postgres.py: start/locate a server, create, use, drop a db."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.support.postgres import create_database, drop_database, postgres_server_url


@pytest.fixture(scope="module")
def server_url() -> str:
    url = postgres_server_url()
    if url is None:
        pytest.skip(
            "no PostgreSQL available: set LOADBAY_TEST_POSTGRES_URL or install "
            "PostgreSQL server binaries (/usr/lib/postgresql/*/bin)"
        )
    return url


def test_create_connect_drop(server_url: str) -> None:
    assert postgres_server_url() == server_url  # cached: one server per process
    name = f"loadbay_support_{uuid.uuid4().hex[:12]}"
    db_url = create_database(server_url, name)
    try:
        assert db_url.rsplit("/", 1)[1] == name
        conn = psycopg.connect(db_url, autocommit=True)
        try:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            # drop must succeed while a connection is still open (WITH (FORCE))
            drop_database(server_url, name)
        finally:
            conn.close()
    finally:
        drop_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert row.fetchone() == (0,)


def test_create_from_template(server_url: str) -> None:
    suffix = uuid.uuid4().hex[:12]
    template, copy = f"loadbay_tpl_{suffix}", f"loadbay_copy_{suffix}"
    template_url = create_database(server_url, template)
    try:
        with psycopg.connect(template_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (id int)")
        copy_url = create_database(server_url, copy, template=template)
        with psycopg.connect(copy_url) as conn:
            assert conn.execute("SELECT count(*) FROM marker").fetchone() == (0,)
    finally:
        drop_database(server_url, copy)
        drop_database(server_url, template)
