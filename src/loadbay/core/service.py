"""BatchService: everything a client can ask of loadbay, independent of any wire format."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from loadbay.core import files, intake, retries, settle, unread
from loadbay.core.progress import STAGE_EVENTS, Progress, progress
from loadbay.core.results import header_row, rows_of_status
from loadbay.core.runtime import Runtime
from loadbay.core.timeline import timeline
from loadbay.core.types import BatchType
from loadbay.core.webhooks import Webhooks
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.domain.lifecycle import FINAL, Event, Milestone, Status, next_status
from loadbay.domain.models import (
    Account,
    Batch,
    BatchEvent,
    BatchInput,
    ErrorExample,
    ErrorGroup,
    ErrorRow,
    NewBatch,
    Timeline,
)
from loadbay.domain.records import OutcomeStatus, RecordView
from loadbay.errors import (
    BatchInProgress,
    Conflict,
    FetchRefused,
    InvalidInput,
    InvalidTransition,
    JobIdConflict,
    NoData,
    NotFound,
    ParentNotOpen,
    TestModeMismatch,
    Unauthorized,
    UnknownType,
)
from loadbay.fetcher import checked_url
from loadbay.readers import ReadOptions

__all__ = ["NATIVE", "BatchService", "hash_key"]

NATIVE = "api"  # the origin of the batches the native API (the dashboard, the CLI) creates

T = TypeVar("T")
Keyed = TypeVar("Keyed", ErrorRow, ErrorExample)  # a record's error, which names its record

_RESULT_PAGE = 20
_EXAMPLE_CHUNKS = 8  # chunks decoded at most to show error examples' values
_INVALID = frozenset({OutcomeStatus.INVALID.value})
# the statuses of a batch not final whose validation has ended: its invalid records are known
_VALIDATION_ENDED = frozenset({Status.VALIDATED, Status.PROCESSING})
_AVAILABLE = {  # what a batch not final yet has instead of its result file (in RESULTS_NOT_READY)
    **dict.fromkeys(
        (Status.OPEN, Status.QUEUED, Status.VALIDATING),
        "; its invalid records (outcome=invalid) once its validation has ended",
    ),
    **dict.fromkeys(_VALIDATION_ENDED, "; its invalid records are available now: outcome=invalid"),
}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class BatchService:
    """The core's front door: used by the native API, every profile and the CLI.

    `origin` names the API this service answers for ("api" for the native API, a profile's
    name for a profile's: see `for_origin`); every batch it creates records it."""

    def __init__(self, rt: Runtime, wake: Callable[[], None] = lambda: None, origin: str = NATIVE) -> None:
        self.rt = rt
        self._wake = wake
        self.origin = origin

    def for_origin(self, origin: str) -> BatchService:
        """This service, for another API: batches it creates record `origin`."""
        return BatchService(self.rt, self._wake, origin)

    @property
    def webhooks(self) -> Webhooks:
        """The accounts' webhook endpoints and their deliveries."""
        return Webhooks(self.rt)

    # accounts --------------------------------------------------------------

    def create_account(self, name: str, *, test: bool = False) -> tuple[Account, str]:
        """A new account and its API key (shown once; only its hash is kept)."""
        key = f"lb_{'test' if test else 'live'}_{secrets.token_urlsafe(24)}"
        with self.rt.db.write() as conn:
            account = repo.insert_account(conn, name, test)
            repo.insert_key(conn, account.id, hash_key(key), key[:12])
        return account, key

    def authenticate(self, key: str | None) -> Account:
        if not key:
            raise Unauthorized()
        with self.rt.db.read() as conn:
            return _keyed(conn, key)

    # batches ---------------------------------------------------------------

    def batch_type(self, name: str) -> BatchType:
        return self.rt.types.get(name)

    def batch_types(self) -> list[BatchType]:
        """Every record type this server loads, by name."""
        return sorted(self.rt.types, key=lambda t: t.name)

    def listed_types(self) -> list[BatchType]:
        """The record types a client asks for, by name: all but the internal ones (see
        BatchType.internal), which work as any other."""
        return [t for t in self.batch_types() if not t.internal]

    def read_applied(self, account: Account, batch_id: int, query: Callable[[Connection, Batch], T]) -> T:
        """What the account's batch became in its record type's own tables: `query` (a read
        function of the type's module) runs in one read transaction, on this batch only."""
        with self.rt.db.read() as conn:
            return query(conn, self._get(conn, account, batch_id))

    def create(
        self,
        account: Account,
        spec: NewBatch,
        *,
        items: list[Any] | None = None,
        page: int = 0,
        submit: bool | None = None,
    ) -> tuple[Batch, bool]:
        """Create a batch (or find the one this job_id made), with page `page` of `items` and
        submitted when asked, all or nothing. True when newly created."""
        batch, created, _key = self._create(account, spec, (items, page), submit, None)
        return batch, created

    def create_with_upload(
        self,
        account: Account,
        spec: NewBatch,
        name: str,
        *,
        items: list[Any] | None = None,
        submit: bool | None = None,
    ) -> tuple[Batch, bool, intake.SignedUpload]:
        """Create a batch as `create` does, with a signed URL that takes its file `name` (see
        `upload_url`), all or nothing: a URL refused (a name that cannot be a key, a type that
        takes no data, a batch submitted on create) leaves no batch behind. The batch this
        job_id made before is answered with a new URL of its own."""
        batch, created, key = self._create(account, spec, (items, 0), submit, name)
        if key is None:
            return batch, created, self.upload_url(account, batch.id, name)
        return batch, created, intake.sign_upload(self.rt, key)

    def _create(
        self,
        account: Account,
        spec: NewBatch,
        page: tuple[list[Any] | None, int],
        submit: bool | None,
        upload: str | None,
    ) -> tuple[Batch, bool, str | None]:
        """`create`, and with `upload` (a file name) the batch expects that file at an upload
        URL: the file's key, None for a batch found by its job_id (nothing is made then)."""
        self._check_new(account, spec)
        items, number = page
        if items is not None and upload is not None:
            raise Conflict(
                "a batch takes pages or files, not both: its items are its page 0, so it takes "
                "no file at an upload URL",
                code="MIXED_INPUT",
            )
        fingerprint = _fingerprint(spec, items, submit, number)
        if spec.job_id is not None and (found := self._by_job_id(account, spec.job_id, fingerprint)):
            return found, False, None
        submit = bool(submit or (submit is None and spec.source_url))
        if submit and upload is not None:
            raise Conflict(
                "a batch submitted on create takes no file at an upload URL: it is open no more "
                'when the file comes; create it with "submit": false (a batch with a source_url '
                "is submitted on create unless told not to), send the file, then submit it",
                code="BATCH_NOT_OPEN",
            )
        try:
            batch_id, key = self._insert(account, spec, fingerprint, page, submit, upload)
        except IntegrityError:  # another request created the same job_id just now
            if spec.job_id is None:
                raise
            found = self._by_job_id(account, spec.job_id, fingerprint)
            assert found is not None
            return found, False, None
        if submit:
            self._wake()
        return self.get(account, batch_id), True, key

    def _check_new(self, account: Account, spec: NewBatch) -> None:
        batch_type = self.rt.types.get(spec.type)
        if batch_type.internal:
            raise UnknownType(
                f"batch type {spec.type!r} is made by loadbay along with its parent batch, not asked for; "
                "GET /v1/types lists the types a batch can be created with"
            )
        if spec.test is not None and spec.test != account.test:
            mode = "test" if account.test else "live"
            said = "true" if spec.test else "false"  # as the request's JSON spells it
            raise TestModeMismatch(f"this key belongs to a {mode} account; the batch says test={said}")
        if spec.process not in ("auto", "manual"):
            raise InvalidInput("process must be 'auto' or 'manual'", code="INVALID_PROCESS")
        if intake.ATTACHMENTS in spec.options:
            raise InvalidInput(
                f"options.{intake.ATTACHMENTS} is kept by loadbay; send attachments as files",
                code="RESERVED_OPTION",
            )
        if self.origin == NATIVE:  # (a profile keeps entries of its own there: a vendor's file name)
            _refuse_unknown_options(batch_type, spec.options)
        ReadOptions.of(spec.options)  # InvalidInput for read options it does not understand
        if spec.page_size is not None and spec.page_size < 1:
            raise InvalidInput("page_size must be at least 1", code="INVALID_PAGE_SIZE")
        if spec.total_items is not None and spec.total_items < 0:
            raise InvalidInput("total_items cannot be negative", code="INVALID_TOTAL")
        if spec.source_url is not None:
            _check_source_url(spec.source_url)

    def _by_job_id(self, account: Account, job_id: str, fingerprint: str) -> Batch | None:
        with self.rt.db.read() as conn:
            found = repo.batch_by_job_id(conn, account.id, job_id)
        if found is None:
            return None
        batch, stored = found
        if stored != fingerprint:
            raise JobIdConflict(
                f"job_id {job_id!r} already names batch {batch.id}, created with another body"
            )
        return batch

    def _insert(
        self,
        account: Account,
        spec: NewBatch,
        fingerprint: str,
        page: tuple[list[Any] | None, int],
        submit: bool,
        upload: str | None = None,
    ) -> tuple[int, str | None]:
        """The new batch's id, and the key of the file `upload` it expects at an upload URL."""
        key = None
        with self.rt.db.write() as conn:
            if spec.exclusive_of:
                _check_exclusive(conn, account, spec.exclusive_of)
            if spec.parent_id is not None:
                self._check_parent(conn, account, spec)
            batch_id = repo.insert_batch(conn, self._batch_row(account, spec, fingerprint))
            repo.add_event(conn, batch_id, Milestone.CREATED, Status.OPEN)
            self._spawn(conn, account, batch_id, spec)
            if page[0] is not None or submit:
                self._fill(conn, self._get(conn, account, batch_id), page, submit)
            if upload is not None:  # the upload URL's checks, in this transaction
                batch = self._get(conn, account, batch_id)
                key = intake.expect_upload(self.rt, conn, batch, upload, created=True)
        return batch_id, key

    def _batch_row(self, account: Account, spec: NewBatch, fingerprint: str) -> dict[str, Any]:
        """The row of a new batch of this account, created through this service's API."""
        values = _spec_fields(spec) | {"account_id": account.id, "test": account.test}
        values |= {"fingerprint": fingerprint, "origin": self.origin}
        values["process_mode"] = values.pop("process")
        return values

    def _fill(self, conn: Connection, batch: Batch, page: tuple[list[Any] | None, int], submit: bool) -> None:
        """A new batch's first page and its submission, in the transaction that creates it
        (a refused page or submit leaves no batch behind)."""
        items, number = page
        if items is not None:
            intake.require_attachments(batch, self.rt.types.get(batch.type), "its data", created=True)
            intake.require_takes_data(batch, self.rt.types.get(batch.type), created=True)
            intake.store_page(conn, batch, number, items)
        if submit:
            self._submit_family(conn, batch, created=True)

    def _spawn(self, conn: Connection, account: Account, parent_id: int, spec: NewBatch) -> None:
        """Create the child batches a batch's type makes along with it (BatchType.spawn)."""
        for made in self.rt.types.get(spec.type).spawn(spec.options):
            child = replace(made, job_id=None, test=None, parent_id=parent_id, process=spec.process)
            child_id = repo.insert_batch(
                conn, self._batch_row(account, child, _fingerprint(child, None, None))
            )
            repo.add_event(conn, child_id, Milestone.CREATED, Status.OPEN)

    def _check_parent(self, conn: Connection, account: Account, spec: NewBatch) -> None:
        """The parent a new batch names: the account's, open, and no child itself. A family is
        one level deep (a child of a child was neither cancelled nor submitted with the family:
        cancelled, its grandchild stayed open and could still be submitted and applied), so a
        batch whose type makes children of its own cannot be a child either."""
        parent_id = spec.parent_id
        assert parent_id is not None
        parent = repo.get_batch(conn, account.id, parent_id) if _storable_id(parent_id) else None
        if parent is None:
            raise NotFound(f"parent batch {parent_id} not found")
        if parent.parent_id is not None:
            raise Conflict(
                f"parent batch {parent_id} is itself a child of batch {parent.parent_id}, and a child "
                f"batch has no children; name batch {parent.parent_id} as the parent, or none",
                code="INVALID_PARENT",
            )
        if made := self.rt.types.get(spec.type).spawn(spec.options):
            kinds = ", ".join(sorted({child.type for child in made}))
            raise Conflict(
                f"a {spec.type} batch is made with child batches of its own ({kinds}), so it cannot "
                f"be a child of batch {parent_id}; create it without parent_id",
                code="INVALID_PARENT",
            )
        if parent.status != Status.OPEN:
            raise ParentNotOpen(parent_id, parent.status)

    def get(self, account: Account, batch_id: int, *, types: Collection[str] | None = None) -> Batch:
        """The account's batch; with `types`, a batch of another type is NotFound too
        (how a profile sees only the batches it serves)."""
        with self.rt.db.read() as conn:
            return _of_types(self._get(conn, account, batch_id), types, batch_id)

    def _get(self, conn: Connection, account: Account, batch_id: int, *, lock: bool = False) -> Batch:
        found = _storable_id(batch_id)
        batch = repo.get_batch(conn, account.id, batch_id, lock=lock) if found else None
        if batch is None:
            raise NotFound(f"batch {batch_id} not found")
        return batch

    def get_by_ref(self, account: Account, ref: str, *, types: Collection[str] | None = None) -> Batch:
        """The batch with this opaque reference (what profiles with string ids expose)."""
        with self.rt.db.read() as conn:
            batch = repo.batch_by_ref(conn, account.id, ref)
        if batch is None:
            raise NotFound(f"batch {ref} not found")
        return _of_types(batch, types, ref)

    def list_batches(
        self,
        account: Account,
        filters: Mapping[str, Any],
        before_id: int | None,
        limit: int,
        search: str | None = None,
    ) -> list[Batch]:
        """Newest first; `search`: text the job id or description holds, in any letter case."""
        with self.rt.db.read() as conn:
            return repo.list_batches(
                conn, account.id, filters=filters, before_id=before_id, limit=limit, search=search
            )

    def progress(self, batches: Sequence[Batch]) -> dict[int, Progress]:
        """Each batch's progress, by id (see core.progress); one read for them all, none for
        final batches."""
        if not any(_moves(b) for b in batches):
            return _progress(None, batches)
        with self.rt.db.read() as conn:
            return _progress(conn, batches)

    def status(self, key: str | None, batch_id: int) -> tuple[Batch, Progress]:
        """The batch of the account whose API key this is, and its progress, in one read (the
        key and the batch in one statement): what a status poll asks for, the API's most
        frequent request. Unauthorized and NotFound as `authenticate`, then `get`."""
        if not key:
            raise Unauthorized()
        if _storable_id(batch_id):
            with self.rt.db.single_read() as conn:
                found = repo.status_of_key(conn, hash_key(key), batch_id, STAGE_EVENTS)
            if found is not None:
                batch, input_total, stages = found
                return batch, progress(batch, input_total, stages, repo.now())
        with self.rt.db.read() as conn:
            _keyed(conn, key)  # an unknown key is Unauthorized, whatever the batch
        raise NotFound(f"batch {batch_id} not found")

    def children(self, account: Account, batch_id: int) -> list[Batch]:
        with self.rt.db.read() as conn:
            self._get(conn, account, batch_id)
            return repo.children(conn, batch_id)

    def timeline(self, account: Account, batch: Batch) -> Timeline:
        """When the account's batch reached each step (see core.timeline)."""
        with self.rt.db.read() as conn:
            self._get(conn, account, batch.id)
            return timeline(batch, repo.events(conn, batch.id))

    def events(self, account: Account, batch_id: int) -> list[BatchEvent]:
        with self.rt.db.read() as conn:
            self._get(conn, account, batch_id)
            return repo.events(conn, batch_id)

    def inputs(self, account: Account, batch_id: int) -> list[BatchInput]:
        """The account's batch's inputs in the order they are read: its files by arrival (a
        file sent again under its name keeps its place), then its pages by number. A file
        whose upload URL was handed out is among them, `pending` until it is found there, or
        until the batch leaves open without it (then never received)."""
        with self.rt.db.read() as conn:
            batch = self._get(conn, account, batch_id)
            return [intake.described(row, batch) for row in repo.list_inputs(conn, batch_id)]

    def errors(
        self,
        account: Account,
        batch_id: int,
        after_id: int | None,
        limit: int,
        *,
        code: str | None = None,
        field: str | None = None,
    ) -> list[ErrorRow]:
        """A page of the batch's record errors; with `code` only those of that code, with
        `field` only those on that field ("": the errors of a whole record, with no field).
        Each names its record by the key its type shows (`BatchType.shown_key`)."""
        with self.rt.db.read() as conn:
            batch = self._get(conn, account, batch_id)
            if code is None and field is None:
                rows = repo.errors_page(conn, batch_id, after_id, limit)
            else:
                rows = repo.group_errors_page(conn, batch_id, code, field, after_id, limit)
        return [_shown(self.batch_type(batch.type), row) for row in rows]

    def error_summary(
        self, account: Account, batch_id: int, *, groups: int = 50, examples: int = 3
    ) -> tuple[int, list[ErrorGroup]]:
        """(record errors in all, the largest `groups` groups of them by code and field, each
        with its first `examples` errors, their records' keys as `errors` gives them, and the
        values they refused)."""
        with self.rt.db.read() as conn:
            batch = self._get(conn, account, batch_id)
            batch_type = self.batch_type(batch.type)
            total = repo.error_count(conn, batch_id)
            found = [
                replace(
                    g,
                    examples=tuple(
                        _shown(batch_type, e)
                        for e in repo.error_examples(conn, batch_id, g.code, g.field, examples)
                    ),
                )
                for g in repo.error_groups(conn, batch_id, groups)
            ]
            indexes = [e.record_index for g in found for e in g.examples]
            payloads = repo.payloads_holding(conn, batch_id, indexes, _EXAMPLE_CHUNKS)
        return total, _with_values(found, payloads)

    def records(
        self, account: Account, batch_id: int, offset: int = 0, limit: int = 1000
    ) -> list[RecordView]:
        """Records `offset`… of a staged batch, each with its outcome or validation state."""
        self.get(account, batch_id)
        views: list[RecordView] = []
        after = -1
        while len(views) < limit:
            with self.rt.db.read() as conn:
                parts = queue.chunk_records(conn, batch_id, after, _RESULT_PAGE)
            if not parts:
                break
            for seq, payload, outcomes in parts:
                after = seq
                if payload is not None:
                    views += [v for v in settle.record_views(payload, outcomes) if v.index >= offset]
        return views[:limit]

    # data in ---------------------------------------------------------------

    def put_page(self, account: Account, batch_id: int, number: int, items: list[Any]) -> Batch:
        with self.rt.db.write() as conn:
            batch = self._get(conn, account, batch_id, lock=True)
            intake.require_open(batch)
            intake.require_attachments(batch, self.rt.types.get(batch.type), "its data")
            intake.require_takes_data(batch, self.rt.types.get(batch.type))
            intake.store_page(conn, batch, number, items)
            return self._get(conn, account, batch_id)

    def read_page(self, account: Account, batch_id: int, number: int) -> tuple[list[Any], int]:
        """Page `number`'s items as stored (empty when not sent, or cleared), and the number
        of items all the batch's pages hold. One page in memory, never the whole batch."""
        with self.rt.db.read() as conn:
            self._get(conn, account, batch_id)
            text = repo.input_items(conn, batch_id, "page", intake.page_name(number))
            _count, received, _files = repo.input_summary(conn, batch_id)
        return ([] if text is None else json.loads(text)), received

    def attach(self, account: Account, batch_id: int, name: str) -> intake.Attachment:
        """Start receiving attachment `name`: a file the batch's type needs besides its records
        (see BatchType.attachments), sent before the data; what the type learns of it reaches
        its rules as ApplyContext.options["attachments"][name]."""
        batch = self.get(account, batch_id)
        return intake.Attachment(self.rt, batch, self.rt.types.get(batch.type), name)

    def start_upload(
        self, account: Account, batch_id: int, name: str, content_type: str | None
    ) -> intake.Upload:
        return intake.Upload(self.rt, self.get(account, batch_id), name, content_type)

    def upload_url(
        self, account: Account, batch_id: int, name: str, *, format_by_name: bool = False
    ) -> intake.SignedUpload:
        """A signed URL that takes file `name` (a presigned URL of the store itself on S3). The
        batch then expects the file: it is looked for when the batch is submitted. Its format
        is its Content-Type's (or its name's, when that says nothing); `format_by_name`: its
        name's whatever its Content-Type."""
        return intake.signed_upload(self.rt, self.get(account, batch_id), name, format_by_name=format_by_name)

    def start_signed_upload(
        self, key: str, expires: str, signature: str, content_type: str | None
    ) -> intake.Upload:
        """An upload through a signed URL: the signature is the only credential."""
        self.rt.blobs.verify(key, "PUT", expires, signature)
        batch_id, name = intake.parse_input_key(key)
        with self.rt.db.read() as conn:
            batch = repo.get_batch(conn, None, batch_id)
        if batch is None:
            raise NotFound("no such upload target")
        return intake.Upload(self.rt, batch, name, content_type)

    # lifecycle -------------------------------------------------------------

    def submit(self, account: Account, batch_id: int) -> Batch:
        """Data complete: queue the batch (and its open children) for processing. The files
        expected at upload URLs are looked for first (see intake.check_uploads), and the
        received ones are taken as the store has them (intake.check_received)."""
        with self.rt.db.read() as conn:
            family = [self._get(conn, account, batch_id), *repo.children(conn, batch_id)]
            open_ids = [b.id for b in family if b.status == Status.OPEN]
            expected = repo.pending_inputs(conn, open_ids)
            held = repo.received_files(conn, open_ids)
            inputs = {row["batch_id"]: repo.input_summary(conn, row["batch_id"])[0] for row in expected}
        received = {b: count - sum(r["batch_id"] == b for r in expected) for b, count in inputs.items()}
        found = intake.check_uploads(self.rt, expected, received)
        current = intake.check_received(self.rt, held)
        with self.rt.db.write() as conn:
            batch = self._get(conn, account, batch_id, lock=True)
            # only the batches this submit moves on, the open ones: the file a cancelled child
            # still expected at its upload URL will never be received, and was not looked for
            submitted = [b.id for b in (batch, *repo.children(conn, batch.id)) if b.status == Status.OPEN]
            intake.confirm_uploads(conn, submitted, found)
            intake.keep_received(conn, current)
            self._submit_family(conn, batch)
            batch = self._get(conn, account, batch_id)
        self._wake()
        return batch

    def _submit_family(self, conn: Connection, batch: Batch, *, created: bool = False) -> None:
        """Submit the batch and its open children (`created`: the batch, made in this
        transaction, is submitted on create)."""
        self._submit(conn, batch, created=created)
        for child in repo.children(conn, batch.id):
            if child.status == Status.OPEN:
                self._submit(conn, child)

    def _submit(self, conn: Connection, batch: Batch, *, created: bool = False) -> None:
        status = next_status(batch.status, Event.SUBMIT)
        batch_type = self.rt.types.get(batch.type)
        intake.require_attachments(batch, batch_type, "it is submitted", created=created)
        count, items, files = repo.input_summary(conn, batch.id)
        if files == 0 and items == 0 and batch.source_url is None and not batch_type.generates:
            raise NoData(_no_data(batch, count, created), batch_id=None if created else batch.id)
        if batch.total_items is not None and files == 0 and items != batch.total_items:
            made = "; no batch was made" if created else ""
            raise Conflict(
                f"{_named(batch, created)} has received {items} of its {batch.total_items} items{made}",
                code="INCOMPLETE_BATCH",
            )
        repo.set_status(conn, batch.id, status, Event.SUBMIT, submitted_at=repo.now())

    def process(self, account: Account, batch_id: int) -> Batch:
        """Apply a two-phase batch that waits at `validated`."""
        with self.rt.db.write() as conn:
            batch = self._get(conn, account, batch_id, lock=True)
            if batch.process_mode != "manual":  # an auto batch moves on by itself, never on request
                raise InvalidTransition(
                    f"batch {batch.id} is processed automatically; process is for manual batches"
                )
            repo.set_status(conn, batch.id, next_status(batch.status, Event.PROCESS), Event.PROCESS)
            queue.mark_ready(conn, batch.id, repo.now())
            settle.complete_if_done(conn, batch.id)
            batch = self._get(conn, account, batch_id)
        self._wake()
        return batch

    def cancel(self, account: Account, batch_id: int) -> Batch:
        """Stop the batch (and its unfinished children): records not yet applied become
        `unprocessed`. Those of a batch cancelled before its validation read them all become
        so once a worker has read them (`unread_pending` until then: see core.unread)."""
        with self.rt.db.write() as conn:
            batch = self._get(conn, account, batch_id, lock=True)
            done = [] if self._cancel(conn, batch) else [batch.id]
            for child in repo.children(conn, batch.id):
                if not child.final and not self._cancel(conn, child):
                    done.append(child.id)
            batch = self._get(conn, account, batch_id)
        self._wake()
        for finished in done:  # nothing reads them any more
            files.remove_inputs(self.rt, finished)
        return batch

    def _cancel(self, conn: Connection, batch: Batch) -> bool:
        """Cancel the batch; whether records of its data are left to read (core.unread)."""
        batch_type = self.rt.types.get(batch.type)
        if not unread.waits_for_reading(batch, batch_type):
            settle.cancel(conn, batch_type, batch)
            return False
        settle.cancel(
            conn,
            batch_type,
            batch,
            announce=False,
            unread_pending=True,
            lease_owner=None,
            lease_expires_at=None,
        )
        return True

    def retry(
        self, account: Account, batch_id: int, outcomes: Collection[str] | None = None, *, submit: bool = True
    ) -> tuple[Batch, bool]:
        """A new batch of the same type, process mode and options, linked by `retry_of`, of
        the records of the account's completed or cancelled batch that ended with one of
        `outcomes` (default: failed and unprocessed), as they were read; submitted unless
        `submit` is false; and True. Conflict (NOTHING_TO_RETRY) when no record ended so.
        The retry made already of the same outcomes, and False, when there is one; Conflict
        (ALREADY_RETRIED) when an earlier retry took some of them (see core.retries)."""
        wanted = _outcomes(outcomes) if outcomes else retries.RETRIED
        with self.rt.db.write() as conn:
            original = self._get(conn, account, batch_id, lock=True)  # (one retry at a time)
            family = len(repo.children(conn, batch_id))
            retries.check_retryable(original, self.rt.types.get(original.type), family)
            made = retries.earlier_retry(batch_id, repo.retries_of(conn, batch_id), wanted)
            if made is not None:
                return self._get(conn, account, made), False
            retries.check_records(conn, original, wanted)
            spec = NewBatch(
                type=original.type,
                description=original.description,
                process=original.process_mode,
                options=original.options,
            )
            row = self._batch_row(account, spec, _fingerprint(spec, None, submit))
            row |= {"retry_of": original.id, "retry_outcomes": retries.outcomes_text(wanted)}
            new_id = repo.insert_batch(conn, row)
            repo.add_event(conn, new_id, Milestone.CREATED, Status.OPEN, f"a retry of batch {original.id}")
            retries.add_input(conn, new_id, original, wanted)
            if submit:
                self._submit(conn, self._get(conn, account, new_id))
        if submit:
            self._wake()
        return self.get(account, new_id), True

    def clear(self, account: Account, batch_id: int) -> Batch:
        """Remove the batch's staged data; it takes no more data afterwards."""
        with self.rt.db.write() as conn:
            batch = self._get(conn, account, batch_id, lock=True)
            status = next_status(batch.status, Event.CLEAR)
            repo.delete_inputs(conn, batch.id)
            queue.delete_chunks(conn, batch.id)
            repo.delete_keys(conn, batch.id)
            repo.delete_shares(conn, batch.id)
            # (an `error` batch's result file says `error`: written again for `cleared`)
            repo.set_status(conn, batch.id, status, Event.CLEAR, finished_at=repo.now())
            repo.update_batch(conn, batch.id, results_at=None, results_claimed_until=None)
        files.remove_inputs(self.rt, batch_id)
        return self.get(account, batch_id)

    # data out --------------------------------------------------------------

    def results(
        self, account: Account, batch_id: int, outcomes: Collection[str] | None = None
    ) -> Iterator[str]:
        """The result CSV as a stream of text parts (header first); with `outcomes` (some of
        succeeded, invalid, failed, unprocessed) only the records that ended so. Read from the
        stored result file (or refused-records file) once it is written; Gone once removed.

        Only `invalid` is known before the batch is final, once its validation has ended
        (validated, processing): its invalid records' rows, as the final file will have them."""
        batch = self.get(account, batch_id)
        wanted = _outcomes(outcomes) if outcomes else frozenset()
        if wanted == _INVALID and batch.status in _VALIDATION_ENDED:
            return files.invalid_parts(self.rt, batch.id, self._columns(batch))
        _require_results(batch)
        files.require_kept(self.rt, batch)
        if batch.results_at is not None and wanted in (frozenset(), files.REFUSED):
            name = files.REFUSED_FILE if wanted else files.RESULTS_FILE
            try:
                return files.stored_text(self.rt, files.result_key(batch.id, name))
            except NotFound:  # removed from the store by other means: made again from the chunks
                pass
        columns = self._columns(batch)
        stream = files.result_parts(self.rt, batch.id, header_row(columns))
        return _only(stream, len(columns), wanted) if wanted else stream

    def _columns(self, batch: Batch) -> Sequence[str]:
        """The CSV columns of the batch's type."""
        return self.rt.types.get(batch.type).columns().names

    def result_url(self, account: Account, batch_id: int) -> str:
        """A signed URL that downloads the final batch's result file (one GET, no API key; a
        presigned URL of the store on S3). Every final status has one: a batch that ended
        without records (`error`, `cleared`) has a file of one row that says why."""
        batch = self.get(account, batch_id)
        _require_final(batch)
        files.require_kept(self.rt, batch)
        files.ensure_results(self.rt, batch)
        name = f"batch-{batch.id}-results.csv"
        ttl = self.rt.settings.signed_url_ttl
        return self.rt.blobs.signed_url(files.result_key(batch.id), "GET", ttl, download_name=name)

    def signed_results(self, key: str, expires: str, signature: str) -> tuple[int, Iterator[str]]:
        """(batch id, result CSV) behind a signed download URL (the local store's): the
        signature is the credential."""
        self.rt.blobs.verify(key, "GET", expires, signature)
        with self.rt.db.read() as conn:
            batch = repo.get_batch(conn, None, _batch_of_results_key(key))
        if batch is None:
            raise NotFound("no such result file")
        _require_final(batch)
        files.require_kept(self.rt, batch)
        files.ensure_results(self.rt, batch)
        return batch.id, files.stored_text(self.rt, key)


def _outcomes(names: Collection[str]) -> frozenset[str]:
    known = {o.value for o in OutcomeStatus}
    unknown = sorted(set(names) - known)
    if unknown:
        raise InvalidInput(
            f"unknown outcome {', '.join(unknown)}; outcomes are {', '.join(sorted(known))}",
            code="INVALID_OUTCOME",
        )
    return frozenset(names)


def _only(stream: Iterator[str], status_column: int, outcomes: frozenset[str]) -> Iterator[str]:
    """The result stream (header first) with only the rows of records that ended in `outcomes`."""
    yield next(stream)
    for part in stream:
        if kept := rows_of_status(part, status_column, outcomes):
            yield kept


def _shown(batch_type: BatchType, error: Keyed) -> Keyed:
    """The error with its record's key as the type shows it (a mail job's `job-3`)."""
    return replace(error, external_id=batch_type.shown_key(error.record_index, error.external_id))


def _with_values(groups: list[ErrorGroup], payloads: list[str]) -> list[ErrorGroup]:
    """The groups, each example with the value its record holds in the group's field (as
    read), when one of `payloads` holds the record."""
    wanted = {e.record_index for g in groups for e in g.examples}
    raws = {r.index: r.raw for p in payloads for r in settle.decode_chunk(p) if r.index in wanted}
    return [
        replace(g, examples=tuple(_valued(e, raws.get(e.record_index), g.field) for e in g.examples))
        for g in groups
    ]


def _valued(example: ErrorExample, raw: Mapping[str, Any] | None, field: str | None) -> ErrorExample:
    if raw is None or field is None or raw.get(field) is None:
        return example
    value = raw[field]
    if isinstance(value, Decimal):  # a number with a fraction read from JSON: 1.234, not "1.234"
        value = str(value)
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    return replace(example, value=shown)


def _no_data(batch: Batch, inputs: int, created: bool) -> str:
    """Why a batch with no file and no item in its pages (`inputs`: how many pages) cannot be
    submitted: it would complete with no record. (An empty file is read, and says so.) One
    submitted on create is not named: refused, it was never made."""
    if created:
        return (
            "the batch submitted on create has no records: send items with it, or create it, "
            "send its data, then submit it; no batch was made"
        )
    if inputs:
        return f"batch {batch.id} has no records: its pages hold no items; send a page with items first"
    return f"batch {batch.id} has no data yet; upload a file or send pages first"


def _named(batch: Batch, created: bool) -> str:
    """The batch as a refusal of its submit names it: not by its id when it is submitted on
    create, since the refusal undoes the create (the next batch made gets that id)."""
    return "the batch submitted on create" if created else f"batch {batch.id}"


def _require_results(batch: Batch) -> None:
    if batch.status not in FINAL or batch.status in (Status.ERROR, Status.CLEARED):
        raise Conflict(
            f"batch {batch.id} is {batch.status}; the result file exists once it is completed or cancelled"
            + _AVAILABLE.get(batch.status, ""),
            code="RESULTS_NOT_READY",
        )
    _require_read(batch)


def _require_final(batch: Batch) -> None:
    if not batch.final:
        raise Conflict(
            f"batch {batch.id} is {batch.status}; its result file exists once it is final",
            code="RESULTS_NOT_READY",
        )
    _require_read(batch)


def _require_read(batch: Batch) -> None:
    if batch.unread_pending:
        raise Conflict(
            f"batch {batch.id} was cancelled before all its data was read; its result file exists "
            "once the records not read yet have their outcome (unprocessed), in a moment",
            code="RESULTS_NOT_READY",
        )


def _batch_of_results_key(key: str) -> int:
    """The batch id in a result file's key, or NotFound."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "batches" or parts[2] != files.RESULTS_FILE or not parts[1].isdigit():
        raise NotFound("no such result file")
    return int(parts[1])


def _keyed(conn: Connection, key: str) -> Account:
    """The account whose API key this is (Unauthorized if none)."""
    account = repo.account_by_key_hash(conn, hash_key(key))
    if account is None:
        raise Unauthorized("unknown API key")
    return account


def _moves(batch: Batch) -> bool:
    """Whether the batch's progress needs a read (it is not final, nor merely validated)."""
    return batch.status in (Status.OPEN, Status.QUEUED, Status.VALIDATING, Status.PROCESSING)


def _progress(conn: Connection | None, batches: Sequence[Batch]) -> dict[int, Progress]:
    """`BatchService.progress`, read in `conn` (None: no batch needs a read)."""
    counting = [b.id for b in batches if b.status in (Status.OPEN, Status.QUEUED, Status.VALIDATING)]
    moving = [b.id for b in batches if b.status in (Status.VALIDATING, Status.PROCESSING)]
    totals: dict[int, int] = {}
    stages: dict[int, dict[str, Any]] = {}
    if conn is not None:
        totals = repo.input_totals(conn, counting) if counting else {}
        stages = repo.latest_events(conn, moving, STAGE_EVENTS) if moving else {}
    now = repo.now()
    return {b.id: progress(b, totals.get(b.id), stages.get(b.id, {}), now) for b in batches}


def _of_types(batch: Batch, types: Collection[str] | None, name: object) -> Batch:
    if types is not None and batch.type not in types:
        raise NotFound(f"batch {name} not found")
    return batch


def _storable_id(batch_id: int) -> bool:
    """False for an id no database row can have (the ids are 64-bit), so lookups never overflow."""
    return 0 < batch_id < 2**63


def _check_source_url(url: str) -> None:
    """InvalidInput unless `url` is an http(s) URL the fetcher would try: its form only (the
    addresses its host stands for are checked when it is fetched, and refused then)."""
    try:
        checked_url(url)
    except FetchRefused as exc:
        raise InvalidInput(f"source_url: {exc.message}", code="INVALID_SOURCE_URL") from exc


def _refuse_unknown_options(batch_type: BatchType, options: Mapping[str, Any]) -> None:
    """InvalidInput (UNKNOWN_OPTION) naming the options a client gave that the type does not
    take, and those it does."""
    unknown = sorted(set(options) - batch_type.option_names())
    if not unknown:
        return
    taken = ", ".join(sorted(batch_type.option_names())) or "none"
    named = ", ".join(f"options.{name}" for name in unknown)
    raise InvalidInput(
        f"{named}: not an option of {batch_type.name} batches; the options they take: {taken}",
        code="UNKNOWN_OPTION",
    )


def _check_exclusive(conn: Connection, account: Account, types: Collection[str]) -> None:
    """BatchInProgress while the account has a submitted, unfinished batch of these types.
    Checked with the account locked, in the transaction that creates the new batch: of two
    concurrent creates, the second sees the first's batch."""
    repo.lock_account(conn, account.id)
    busy = repo.active_batch(conn, account.id, sorted(types))
    if busy is not None:
        raise BatchInProgress(busy.id)


def _spec_fields(spec: NewBatch) -> dict[str, Any]:
    """What a batch stores of its spec (a rule checked at creation, exclusive_of, is not)."""
    fields = asdict(spec)
    del fields["exclusive_of"]
    return fields


def _fingerprint(spec: NewBatch, items: list[Any] | None, submit: bool | None, page: int = 0) -> str:
    body = {"spec": _spec_fields(spec), "items": items, "submit": submit} | ({"page": page} if page else {})
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
