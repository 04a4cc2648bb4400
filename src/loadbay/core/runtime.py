"""The parts a running loadbay is made of, built once from the settings."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass

from loadbay.blobs import BlobStore, UrlSigner, open_store
from loadbay.config import Settings
from loadbay.core.types import TypeRegistry
from loadbay.db.engine import WORKER_PING_AFTER, Database, database_trouble, is_unavailable, migrate
from loadbay.fetcher import AllowList

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    types: TypeRegistry
    fetch_allow: AllowList

    @classmethod
    def build(
        cls,
        settings: Settings,
        types: TypeRegistry,
        *,
        base_url: str,
        readers: int = 0,
        ping_after: float = 0.0,
        copies_log: bool = False,
        wait: bool = False,
    ) -> Runtime:
        """Connect, migrate, and open the blob store (creating the data dir if needed);
        `readers`, `ping_after`, `copies_log`: see `Database`; `wait`: while the database
        cannot be reached, try again (see `_migrate_when_up`) instead of failing."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url()
        if wait:
            _migrate_when_up(url)
        else:
            migrate(url)
        signer = UrlSigner(_secret(settings), settings.public_url or base_url)
        blobs = open_store(settings, signer)
        db = Database(
            url,
            lock_timeout=settings.lock_timeout,
            readers=readers,
            ping_after=ping_after,
            copies_log=copies_log,
        )
        return cls(settings, db, blobs, types, AllowList.parse(settings.fetch_allow))

    @classmethod
    def for_workers(cls, settings: Settings, types: TypeRegistry, *, base_url: str) -> Runtime:
        """`build` for a process that only runs workers (`loadbay worker`, the worker
        processes of `loadbay serve`): it waits for a database that cannot be reached yet
        (started together with it, or down), a pooled PostgreSQL connection is tested by a
        round trip only once idle WORKER_PING_AFTER seconds, and on SQLite the process copies
        the write-ahead log after its writes (see `Database`)."""
        return cls.build(
            settings, types, base_url=base_url, ping_after=WORKER_PING_AFTER, copies_log=True, wait=True
        )

    def close(self) -> None:
        self.db.dispose()


# How long a process that waits for its database waits between attempts: the first wait,
# doubled after each attempt up to the longest.
WAIT_FIRST, WAIT_LONGEST = 0.5, 30.0


def _migrate_when_up(url: str) -> None:
    """`migrate`, tried again while the database cannot be reached (`is_unavailable`), with
    one WARNING line per attempt and a wait doubled each time (WAIT_FIRST to WAIT_LONGEST);
    any other error is raised."""
    wait, attempt = WAIT_FIRST, 1
    while True:
        try:
            migrate(url)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning(
                "the database does not answer (%s); trying again in %g s (attempt %d)",
                database_trouble(exc),
                wait,
                attempt,
            )
        else:
            if attempt > 1:
                log.info("the database answers (attempt %d)", attempt)
            return
        time.sleep(wait)
        wait, attempt = min(wait * 2, WAIT_LONGEST), attempt + 1


def _secret(settings: Settings) -> bytes:
    """LOADBAY_SECRET_KEY, or a random one kept in the data dir (single machine only)."""
    if settings.secret_key:
        return hashlib.sha256(settings.secret_key.encode()).digest()
    path = settings.data_dir / "secret.key"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()
