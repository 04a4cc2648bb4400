"""The database schema: every table loadbay stores, in one SQLAlchemy MetaData.

Alembic migrations (loadbay/migrations) create exactly this schema; a test
compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "accounts",
    "assets_external_assets",
    "assets_terminal_statuses",
    "catalog_userx",
    "mail_jobs",
    "mail_tracking",
    "api_keys",
    "batch_events",
    "batch_inputs",
    "batch_keys",
    "child_shares",
    "batches",
    "billing_allocations",
    "billing_customers",
    "billing_invoice_lines",
    "billing_invoices",
    "billing_memos",
    "billing_payments",
    "billing_write_offs",
    "chunk_payloads",
    "chunks",
    "metadata",
    "record_errors",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
    "workers",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite stores naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")
# A record's key in the staging tables: compared for equality only, so on PostgreSQL by its
# bytes ("C"), not by the database's collation (an ICU or libc locale made each chunk's
# 2,000 key inserts ~40-60% slower on the unique index).
StagingKey = String(300).with_variant(String(300, collation="C"), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("test", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("ref", String(32), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("job_id", String(200)),
    Column("fingerprint", String(64), nullable=False),
    Column("description", Text),
    Column("test", Boolean, nullable=False),
    Column("parent_id", Id, ForeignKey("batches.id")),
    Column("process_mode", String(10), nullable=False),
    Column("options", Text, nullable=False),
    Column("source_url", Text),
    Column("page_size", Integer),
    Column("total_items", BigInteger),
    Column("status", String(20), nullable=False),
    Column("outcome", String(20)),
    Column("error_code", String(60)),
    Column("error_message", Text),
    Column("warnings", Text, nullable=False),
    Column("total", BigInteger, nullable=False, default=0),
    Column("valid", BigInteger, nullable=False, default=0),
    Column("invalid", BigInteger, nullable=False, default=0),
    Column("succeeded", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("unprocessed", BigInteger, nullable=False, default=0),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("attempt", Integer, nullable=False, default=0),
    # Chunks are applied while the batch is still validated (see core.processing).
    Column("apply_early", Boolean, nullable=False, server_default=false()),
    Column("staged_attempt", Integer, nullable=False, server_default="0"),  # the last that staged a chunk
    # Validation attempts that raised (not those interrupted: see core.processing).
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("origin", String(20)),  # the API that created it: "api" or a profile's name
    Column("retry_of", Id, ForeignKey("batches.id")),  # the batch whose refused records it retries
    Column("retry_outcomes", String(100)),  # the outcomes it took of them, comma-separated, sorted
    # cancelled before its validation read all its data: a worker reads the rest (core.unread)
    Column("unread_pending", Boolean, nullable=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    # its result files are in the blob store (written once it is final: see core.files)
    Column("results_at", UTCDateTime),
    Column("results_claimed_until", UTCDateTime),  # a worker writes them until then
    Column("files_removed_at", UTCDateTime),  # its files were removed (LOADBAY_RETENTION_DAYS)
    UniqueConstraint("account_id", "job_id"),
    Index(None, "account_id", "id"),
    Index(None, "status", "submitted_at"),
    Index(None, "parent_id"),
    Index(None, "retry_of"),
    Index(None, "results_at", "finished_at"),
    Index(None, "files_removed_at", "finished_at"),
    # the few batches whose unread records wait (queue.claim_unread looks for them when idle)
    Index(
        "ix_batches_unread_pending",
        "finished_at",
        postgresql_where=text("unread_pending"),
        sqlite_where=text("unread_pending = 1"),  # (as the claim's WHERE reads there, or it is not used)
    ),
)

batch_events = Table(
    "batch_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("detail", Text),
    Index(None, "batch_id", "id"),
)

batch_inputs = Table(
    "batch_inputs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("name", String(300), nullable=False),
    Column("format", String(10), nullable=False),
    Column("blob_key", Text),
    Column("items", Text),
    Column("item_count", BigInteger),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),  # when last received (sent again: again)
    # an upload URL was handed out for it: the file is looked for when the batch is submitted
    Column("pending", Boolean, nullable=False, server_default=false()),
    Column("etag", String(200)),  # the version submitted, when the store has versions (S3)
    UniqueConstraint("batch_id", "kind", "name"),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("first_index", BigInteger, nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("valid_count", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),  # applies that raised
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("last_error", Text),
    Column("outcomes", Text),
    Column("result", Text),
    # when it could first be applied: staged, or its two-phase batch processed (queue lag)
    Column("ready_at", UTCDateTime),
    UniqueConstraint("batch_id", "seq"),
    Index(None, "status", "batch_id", "seq"),
)

# A chunk's staged records (encoded), apart from its row: a claim or a finish changes the
# chunk's row, and SQLite rewrites the whole row (payload included) on every change.
chunk_payloads = Table(
    "chunk_payloads",
    metadata,
    Column("chunk_id", Id, ForeignKey("chunks.id"), primary_key=True),
    Column("payload", Text, nullable=False),
)

# The staging tables (the keys a batch's records have, to find duplicates; the shares below)
# have no foreign key to batches: only the worker validating a batch writes its rows, and
# batches are never deleted. On PostgreSQL the key's check of each row (a locking read of
# the batch) cost as much as the insert: 2,000 keys, 13-14 -> 7-8 ms.
batch_keys = Table(
    "batch_keys",
    metadata,
    Column("batch_id", Id, primary_key=True),
    Column("key", StagingKey, primary_key=True),
    sqlite_with_rowid=False,  # one B-tree, its primary key (migration 0012)
)

# What each valid record of a batch's children adds to one of the batch's records (see
# BatchType.share): kept while the parent batch is validated, then deleted.
child_shares = Table(
    "child_shares",
    metadata,
    Column("batch_id", Id, primary_key=True),
    Column("parent_key", StagingKey, primary_key=True),
    Column("child_key", StagingKey, primary_key=True),
    Column("child_batch_id", Id, nullable=False),
    Column("amount", String(60), nullable=False),
)

record_errors = Table(
    "record_errors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False),
    Column("record_index", BigInteger, nullable=False),
    Column("external_id", String(300)),
    Column("field", String(200)),
    Column("code", String(60), nullable=False),
    Column("message", Text, nullable=False),
    Index(None, "batch_id", "id"),
)

billing_customers = Table(
    "billing_customers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("customer_number", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("phone", String(40)),
    Column("address_line1", String(200)),
    Column("address_line2", String(200)),
    Column("city", String(100)),
    Column("state", String(100)),
    Column("postal_code", String(20)),
    Column("country", String(2)),
    Column("currency", String(3), nullable=False),
    Column("balance", Numeric(14, 2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "customer_number"),
)

billing_invoices = Table(
    "billing_invoices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("invoice_number", String(40), nullable=False),
    Column("customer_id", Id, ForeignKey("billing_customers.id"), nullable=False),
    Column("invoice_date", Date, nullable=False),
    Column("due_date", Date),
    Column("currency", String(3), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("balance", Numeric(14, 2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "invoice_number"),
    Index(None, "customer_id", "status"),
)

billing_invoice_lines = Table(
    "billing_invoice_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("invoice_id", Id, ForeignKey("billing_invoices.id"), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("description", String(500)),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("unit_price", Numeric(18, 4), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("invoice_id", "line_number"),
)

billing_memos = Table(
    "billing_memos",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("memo_number", String(40), nullable=False),
    Column("customer_id", Id, ForeignKey("billing_customers.id"), nullable=False),
    Column("memo_date", Date, nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(500)),
    Column("status", String(20), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "kind", "memo_number"),
)

billing_payments = Table(
    "billing_payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("customer_id", Id, ForeignKey("billing_customers.id"), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("unapplied", Numeric(14, 2), nullable=False),
    Column("payment_date", Date, nullable=False),
    Column("reference", String(100)),
    Column("method", String(40)),
    Column("created_at", UTCDateTime, nullable=False),
)

billing_allocations = Table(
    "billing_allocations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("payment_id", Id, ForeignKey("billing_payments.id"), nullable=False),
    Column("invoice_id", Id, ForeignKey("billing_invoices.id"), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
)

billing_write_offs = Table(
    "billing_write_offs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("invoice_id", Id, ForeignKey("billing_invoices.id"), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("reason", String(500)),
    Column("created_at", UTCDateTime, nullable=False),
)

# assets (Centrapay) ---------------------------------------------------------

assets_external_assets = Table(
    "assets_external_assets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("external_id", String(100), nullable=False),
    Column("barcode", String(16), nullable=False),
    Column("description", String(500)),
    Column("balance", Numeric(14, 2)),
    Column("currency", String(3)),
    Column("expires_on", Date),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "external_id"),
)

assets_terminal_statuses = Table(
    "assets_terminal_statuses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("terminal_id", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reported_at", UTCDateTime, nullable=False),
    Column("merchant_id", String(100)),
    Column("location", String(500)),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "terminal_id"),
)

# catalog (Alliant) ----------------------------------------------------------

catalog_userx = Table(
    "catalog_userx",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("item_id", String(50), nullable=False),
    Column("parent_item_id", String(50)),
    Column("description", String(500)),
    Column("data", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("account_id", "dimension", "item_id"),
)

# mail (Click2Mail) ----------------------------------------------------------

mail_jobs = Table(
    "mail_jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False),
    Column("record_index", Integer, nullable=False),
    Column("status", String(40), nullable=False),
    Column("starting_page", Integer, nullable=False),
    Column("ending_page", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("batch_id", "record_index"),
)

mail_tracking = Table(
    "mail_tracking",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("mail_jobs.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", String(60), nullable=False),
    Column("location", String(200)),
    Column("detail", Text),
    Index(None, "job_id", "at"),
)


# Processes that run workers, each as its last heartbeat left it (`loadbay serve` with
# worker threads, `loadbay worker`): how /healthz, /readyz and the metrics count live ones.
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),  # host:pid
    Column("kind", String(20), nullable=False),  # "serve" or "worker"
    Column("threads", Integer, nullable=False),
    Column("version", String(40), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)


# webhooks -------------------------------------------------------------------

# An account's webhook endpoints: where its batches' events are sent, signed with `secret`.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text),
    Column("events", Text, nullable=False),  # JSON list of event types
    Column("enabled", Boolean, nullable=False),
    Column("secret", String(100), nullable=False),  # whsec_…
    Column("disabled_reason", Text),  # why loadbay disabled it (None: enabled, or by its account)
    Column("failing_since", UTCDateTime),  # the first failed attempt since the last success
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "account_id", "id"),
)

# The outbox: one row per batch event, written in the transaction of the move that causes
# it, with its payload rendered then (the batch as it was at the event).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, unique=True),  # the webhook-id header
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("batch_id", Id, ForeignKey("batches.id"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One event to one endpoint: pending until delivered, or failed once its retries (since
# `retrying_since`: the event, or the last redeliver) ran out. A claim bumps `attempts` and
# moves `next_attempt_at` past the attempt's timeout, so a worker killed mid-attempt leaves
# it claimable again.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("webhook_events.id"), nullable=False),
    Column("endpoint_id", Id, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("status", String(12), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("retrying_since", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index(None, "status", "next_attempt_at"),
    Index(None, "endpoint_id", "id"),
)

# The delivery log: each attempt once, written when it is claimed (`result` "sending") and
# completed with its answer ("delivered" or "failed"); one whose worker stopped first is
# "interrupted" when the next attempt is claimed.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("result", String(12), nullable=False),  # sending, delivered, failed, interrupted
    Column("status_code", Integer),  # None: no answer (refused, timed out, …)
    Column("error", Text),  # why the attempt failed, when it did
    Column("latency_ms", Integer),
    Column("response", Text),  # the answer's first bytes
    UniqueConstraint("delivery_id", "attempt"),
)
