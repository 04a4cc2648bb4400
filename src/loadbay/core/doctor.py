"""What `loadbay doctor` checks, and `/readyz` with it: the database, the blob store, the
signing key and the workers. Each check says what is wrong in words an operator can act on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from loadbay.blobs import BlobStore
from loadbay.config import Settings
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.engine import Database, known_revision, newer_schema, schema_revisions
from loadbay.domain.text import many
from loadbay.errors import LoadbayError

__all__ = ["Check", "check_database", "check_signing_key", "check_store", "check_workers"]

_PROBE = b"loadbay probe\n"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_database(db: Database) -> Check:
    """The database answers and has the newest schema."""
    try:
        current, head = schema_revisions(db)
    except Exception as exc:
        return Check("database", False, f"cannot be reached: {_reason(exc)}")
    if current is not None and current != head and not known_revision(db, current):
        return Check("database", False, f"schema at revision {current}: {newer_schema(head)}")
    if current != head:
        return Check(
            "database",
            False,
            f"schema at revision {current or 'none'}, this loadbay needs {head}: start `loadbay serve` "
            "or `loadbay worker` once (each migrates it)",
        )
    return Check("database", True, f"answers, schema at revision {current}")


def check_store(blobs: BlobStore) -> Check:
    """An object can be written, read back and deleted."""
    key = f"_loadbay/probe-{uuid.uuid4().hex}"
    step = "written"
    try:
        writer = blobs.writer(key)
        writer.write(_PROBE)
        writer.commit()
        step = "read back"
        with blobs.open(key) as stream:
            read = stream.read()
        step = "deleted"
        blobs.delete(key)
    except Exception as exc:
        return Check("store", False, f"{blobs.location}: a probe object cannot be {step}: {_reason(exc)}")
    if read != _PROBE:
        return Check("store", False, f"{blobs.location}: a probe object read back is not what was written")
    return Check("store", True, f"{blobs.location}: a probe object was written, read back and deleted")


def check_signing_key(settings: Settings) -> Check:
    """The key that signs the local store's URLs is one every server shares."""
    on_s3 = bool(settings.storage_url and settings.storage_url.startswith("s3://"))
    if on_s3:
        return Check("signing key", True, "upload and download URLs are presigned by S3 (its credentials)")
    if not settings.secret_key:
        return Check(
            "signing key",
            True,
            f"random, kept in {settings.data_dir / 'secret.key'}: fine for one server; set "
            "LOADBAY_SECRET_KEY to the same value on every server when several share the work",
        )
    if len(settings.secret_key) < 16:
        return Check("signing key", False, "LOADBAY_SECRET_KEY is under 16 characters: use a long random one")
    return Check("signing key", True, "LOADBAY_SECRET_KEY is set")


def check_workers(db: Database, heartbeat_seconds: float) -> Check:
    """At least one process that runs workers has beaten its heartbeat lately."""
    since = repo.now() - timedelta(seconds=3 * heartbeat_seconds)
    try:
        with db.read() as conn:
            live = queue.live_workers(conn, since)
    except Exception as exc:
        return Check("workers", False, f"cannot be counted: {_reason(exc)}")
    if not live:
        return Check("workers", False, "none is alive: batches wait until `loadbay worker` (or serve) runs")
    threads = sum(w.threads for w in live)
    processes = f"{len(live)} process" if len(live) == 1 else f"{len(live)} processes"
    return Check("workers", True, f"{processes} alive, {many(threads, 'worker thread')}")


def _reason(exc: Exception) -> str:
    if isinstance(exc, LoadbayError):
        return exc.message
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
