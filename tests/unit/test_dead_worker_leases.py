"""A dead worker process's leases end at once (queue.expire_leases_of): its validations and
chunks go to the next claim; other processes' leases run on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import TypeRegistry
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.tables import batches, chunks
from tests.integration.test_attempts import FlakyType, create, drain

LEASE = timedelta(seconds=60)
DEAD = "h_st%:12:"  # (a host name with LIKE's wildcards in it)
# a longer pid, a shorter one, LIKE's wildcards matched, another case
OTHERS = ("h_st%:123:w0", "h_st%:1:w0", "hXstX:12:w0", "H_ST%:12:w0")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[BatchService]:
    url = f"sqlite:///{tmp_path / 'loadbay.db'}"
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key="test", chunk_size=10)
    rt = Runtime.build(settings, TypeRegistry([FlakyType()]), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def leases(service: BatchService) -> dict[tuple[str, int], str]:
    """(table, id) -> owner of every lease still running now."""
    now = repo.now()
    found: dict[tuple[str, int], str] = {}
    with service.rt.db.read() as conn:
        for table in (batches, chunks):
            query = select(table.c.id, table.c.lease_owner).where(table.c.lease_expires_at > now)
            found |= {(table.name, id_): owner for id_, owner in conn.execute(query)}
    return found


def test_only_the_dead_process_leases_end_and_the_next_claim_takes_them(service: BatchService) -> None:
    validated = [create(service) for _ in range(2)]
    drain(service)
    for account, batch_id in validated:
        service.process(account, batch_id)  # three pending chunks each
    for _ in range(5):
        create(service)  # five batches to validate
    at = repo.now()
    with service.rt.db.write() as conn:
        for owner in (DEAD + "w0", DEAD + "w1", *OTHERS):
            assert queue.claim_chunk(conn, owner, at, LEASE)
        assert queue.claim_validation(conn, DEAD + "w0", at, LEASE)
        for owner in OTHERS:
            assert queue.claim_validation(conn, owner, at, LEASE)
    before = leases(service)

    with service.rt.db.write() as conn:
        assert queue.expire_leases_of(conn, DEAD, at) == (1, 2)

    left = leases(service)
    assert sorted(left.values()) == sorted(OTHERS * 2)
    assert {key: owner for key, owner in before.items() if not owner.startswith(DEAD)} == left
    with service.rt.db.write() as conn:  # (at the release's own time: no clock need move on)
        taken = [queue.claim_chunk(conn, "next:1:w0", at, LEASE) for _ in range(3)]
        validation = queue.claim_validation(conn, "next:1:w0", at, LEASE, takeovers_only=True)
        assert validation is not None
        assert queue.claim_validation(conn, "next:1:w0", at, LEASE, takeovers_only=True) is None
    dead = {key for key, owner in before.items() if owner.startswith(DEAD)}
    assert {("chunks", claim.id) for claim in taken if claim} | {("batches", validation.batch_id)} == dead
    assert taken[2] is None
    assert all(claim.attempt == 2 for claim in taken if claim), "each a second attempt"
    assert validation.takeover and validation.attempt == 2
    with service.rt.db.write() as conn:
        assert taken[0] and not queue.finish_chunk(conn, taken[0].id, 1, "done", None, ""), "a late commit"


def test_a_process_with_no_lease_releases_nothing(service: BatchService) -> None:
    with service.rt.db.write() as conn:
        assert queue.expire_leases_of(conn, "host:1:", repo.now()) == (0, 0)
