"""Data in: streamed uploads, signed upload URLs and pages of JSON items."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import quote, unquote

from sqlalchemy import Connection, RowMapping

from loadbay.blobs import BlobWriter
from loadbay.core.runtime import Runtime
from loadbay.core.types import BatchType
from loadbay.db import repository as repo
from loadbay.domain.lifecycle import Milestone, Status
from loadbay.domain.models import Batch, BatchInput
from loadbay.domain.text import byte_size, many
from loadbay.errors import (
    Conflict,
    InvalidInput,
    NoData,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from loadbay.readers import format_for_content_type, unstorable

__all__ = [
    "ATTACHMENTS",
    "Attachment",
    "Incoming",
    "SignedUpload",
    "Upload",
    "attachment_key",
    "attachments_of",
    "check_received",
    "check_uploads",
    "confirm_uploads",
    "described",
    "expect_upload",
    "fetched_folder",
    "input_key",
    "keep_received",
    "parse_input_key",
    "require_attachments",
    "require_takes_data",
    "require_open",
    "sign_upload",
    "store_page",
]

# The key of the batch options under which loadbay keeps what it knows of each attachment.
ATTACHMENTS = "attachments"
_SPOOL_IN_MEMORY = 1 << 20


class Incoming(Protocol):
    """A file arriving as a stream (an Upload or an Attachment)."""

    def check_declared_size(self, size: int | None) -> None: ...
    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def finish(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SignedUpload:
    url: str
    method: str
    expires_at: datetime


_MAX_QUOTED_NAME = 240  # a file name on the local store is at most 255 bytes
FETCHED_NAME = "source"  # the input name of the copy of a batch's source_url


def require_free_name(batch: Batch, name: str) -> None:
    """InvalidInput (INVALID_NAME) for a file sent under the name of the copy of the batch's
    source_url, which would replace it, or be replaced by it."""
    if batch.source_url and name == FETCHED_NAME:
        raise InvalidInput(
            f"file name {FETCHED_NAME!r} is taken by the copy of this batch's source_url; "
            "send the file under another name",
            code="INVALID_NAME",
        )


def input_key(batch_id: int, name: str) -> str:
    """The object key of one of the batch's input files; InvalidInput for an unusable name."""
    quoted = "" if unstorable(name) else quote(name, safe="")
    if name in ("", ".", "..") or not quoted or len(quoted) > _MAX_QUOTED_NAME:
        raise InvalidInput(
            f"file name {name[:50]!r} cannot be used: a name is not empty, '.' or '..', holds no "
            f"U+0000 or unpaired surrogate, and is at most {_MAX_QUOTED_NAME} bytes once URL-encoded",
            code="INVALID_NAME",
        )
    return f"batches/{batch_id}/inputs/{quoted}"


_FETCHED = "fetched-"


def fetched_folder(batch_id: int, attempt: int | str = "") -> str:
    """The folder of the copy of the batch's source_url that validation attempt `attempt`
    fetched (`{folder}/source`); without `attempt`, the prefix every such folder starts with."""
    return f"batches/{batch_id}/inputs/{_FETCHED}{attempt}"


def parse_input_key(key: str) -> tuple[int, str]:
    """(batch id, file name) of an input object key, or NotFound."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "batches" or parts[2] != "inputs" or not parts[1].isdigit():
        raise NotFound("no such upload target")
    return int(parts[1]), unquote(parts[3])


def described(row: RowMapping, batch: Batch) -> BatchInput:
    """What a client is told of one of `batch`'s inputs (a `repo.list_inputs` row): never its
    blob key, version or storage path. A file expected at its upload URL and not received has
    no size, format or time of receipt; it is `pending` while the batch is open (loadbay looks
    for it when the batch is submitted), and no longer once the batch has left open without
    it: it never will be received."""
    missing = bool(row["pending"])
    return BatchInput(
        name=row["name"],
        kind="fetched" if _fetched(row["blob_key"]) else row["kind"],
        format=None if missing or not row["format"] else row["format"],
        size=None if missing else row["size"],
        pending=missing and batch.status == Status.OPEN,
        received_at=None if missing else row["created_at"],
        item_count=None if missing else row["item_count"],
    )


def _fetched(key: str | None) -> bool:
    """Whether an input's key is that of a copy of the batch's source_url (in a folder of
    its own, `fetched_folder`, where an uploaded file's key has none: `input_key`)."""
    parts = (key or "").split("/")
    return len(parts) == 5 and parts[2] == "inputs" and parts[3].startswith(_FETCHED)


def require_open(batch: Batch) -> None:
    if batch.status != Status.OPEN:
        raise Conflict(
            f"batch {batch.id} is {batch.status}; data can only be added while it is open",
            code="BATCH_NOT_OPEN",
        )


def signed_upload(rt: Runtime, batch: Batch, name: str, *, format_by_name: bool = False) -> SignedUpload:
    """A signed URL that takes file `name`, and the batch's note that it expects that file
    (see `check_uploads`). On the local store loadbay receives the PUT itself (`Upload`); on
    S3 the client sends it to the store, and loadbay learns of it when the batch is submitted.
    A file the batch has received already stays as it is, received: a PUT to the URL replaces
    it, as a second PUT of any upload does (on S3 the submit takes its size and version from
    the store: `check_received`)."""
    require_open(batch)
    with rt.db.write() as conn:
        locked = repo.get_batch(conn, None, batch.id, lock=True)
        assert locked is not None
        key = expect_upload(rt, conn, locked, name, format_by_name=format_by_name)
    return sign_upload(rt, key)


def expect_upload(
    rt: Runtime,
    conn: Connection,
    batch: Batch,
    name: str,
    *,
    format_by_name: bool = False,
    created: bool = False,
) -> str:
    """Note that the batch (locked, in `conn`'s write transaction) expects file `name` at an
    upload URL, after every check an upload URL must pass; the file's object key, for
    `sign_upload` once the transaction is committed. The create that asks for a URL runs it
    in the transaction that creates the batch (`created`), so a refused URL leaves no batch behind."""
    require_open(batch)
    require_takes_data(batch, rt.types.get(batch.type), created=created)
    require_free_name(batch, name)
    key = input_key(batch.id, name)
    fmt = format_for_content_type(None, name) if format_by_name else ""
    _refuse_mixed(conn, batch, "file")
    if not _received(conn, batch.id, name):
        repo.expect_input(conn, batch.id, name, key, fmt)
    return key


def sign_upload(rt: Runtime, key: str) -> SignedUpload:
    """The signed URL that takes `PUT`s of the input file `key` (see `expect_upload`)."""
    ttl = rt.settings.signed_url_ttl
    url = rt.blobs.signed_url(key, "PUT", ttl)
    return SignedUpload(url=url, method="PUT", expires_at=datetime.now(UTC) + timedelta(seconds=ttl))


def _received(conn: Connection, batch_id: int, name: str) -> bool:
    """Whether the batch holds file `name`, received (not only expected at an upload URL)."""
    rows = repo.list_inputs(conn, batch_id)
    return any(r["kind"] == "file" and r["name"] == name and not r["pending"] for r in rows)


@dataclass(frozen=True, slots=True)
class Found:
    """An expected file, as the store has it."""

    size: int
    format: str
    etag: str | None


def check_uploads(rt: Runtime, expected: list[RowMapping], received: Mapping[int, int]) -> dict[int, Found]:
    """Look for each expected file (`repository.pending_inputs` rows) in the store, outside
    any transaction; what was found, by input id. Refused with what a client can act on:
    nothing there (409 NO_DATA when the batch has no other data, FILE_NOT_UPLOADED when it
    has: a file received besides, or another expected file found in the store), over
    LOADBAY_MAX_UPLOAD_BYTES (413; the object is deleted so that a smaller one can be sent),
    a Content-Type loadbay does not read (415). `received`: the inputs each batch has besides
    those expected."""
    found: dict[int, Found] = {}
    missing: list[RowMapping] = []
    for row in expected:
        try:
            found[row["id"]] = _stored(rt, row)
        except NotFound:
            missing.append(row)
    if missing:  # (every file looked for first: on S3 one sent to its URL is known only now)
        row = missing[0]
        name, batch_id = row["name"], row["batch_id"]
        others = received.get(batch_id) or any(
            r["batch_id"] == batch_id and r["id"] in found for r in expected
        )
        raise NoData(
            f"batch {batch_id} has no file {name!r} yet: nothing was uploaded to its upload URL; "
            "upload it (ask for a new URL if that one expired) and submit again",
            batch_id=batch_id,
            code="FILE_NOT_UPLOADED" if others else "NO_DATA",
        )
    return found


def check_received(rt: Runtime, held: list[RowMapping]) -> list[tuple[RowMapping, Found]]:
    """The received files (`repository.received_files` rows) as the store has them now,
    outside any transaction: on S3 a PUT to an upload URL asked for again under a received
    file's name replaced it in the store, unseen (see `signed_upload`). Refused as
    `check_uploads` refuses; a file missing from the store is left as it is (reading it says so)."""
    checked: list[tuple[RowMapping, Found]] = []
    for row in held:
        with suppress(NotFound):
            checked.append((row, _stored(rt, row, replaced=True)))
    return checked


def _stored(rt: Runtime, row: RowMapping, *, replaced: bool = False) -> Found:
    """The input's file as the store has it (NotFound: not there); PayloadTooLarge, and the
    file deleted, when it is over LOADBAY_MAX_UPLOAD_BYTES. Its format is the one noted for
    it, if any, else its Content-Type's; `replaced` (a received file): the Content-Type's when
    the store has one, which only a client's PUT to an upload URL gives (loadbay stores the
    files it receives itself with none), as receiving that PUT itself would have read it."""
    name, limit = row["name"], rt.settings.max_upload_bytes
    info = rt.blobs.head(row["blob_key"])
    if info.size > limit:
        rt.blobs.delete(row["blob_key"])
        raise PayloadTooLarge(
            f"the file {name!r} sent to batch {row['batch_id']}'s upload URL is {byte_size(info.size)}; "
            f"this server takes at most {byte_size(limit)}: it was deleted, send a smaller one and "
            "submit again"
        )
    noted = "" if replaced and info.content_type else row["format"]
    return Found(info.size, noted or _format_of(name, info.content_type), info.etag)


def _format_of(name: str, content_type: str | None) -> str:
    try:
        return format_for_content_type(content_type, name)
    except UnsupportedMediaType as exc:
        raise UnsupportedMediaType(f"the file {name!r} at the upload URL: {exc.message}") from None


def confirm_uploads(conn: Connection, batch_ids: list[int], found: Mapping[int, Found]) -> None:
    """Keep the expected files that were found as the batches' inputs (in the transaction that
    submits them); Conflict if one is expected that was not looked for (a URL handed out since)."""
    for row in repo.pending_inputs(conn, batch_ids):
        got = found.get(row["id"])
        if got is None:
            raise Conflict(
                f"an upload URL for {row['name']!r} was handed out while batch {row['batch_id']} was "
                "submitted; submit it again",
                code="FILE_NOT_UPLOADED",
            )
        repo.confirm_input(conn, row["id"], size=got.size, fmt=got.format, etag=got.etag)
        detail = f"{row['name']} ({got.size} bytes, at its upload URL)"
        repo.add_event(conn, row["batch_id"], Milestone.FILE_RECEIVED, Status.OPEN, detail)


def keep_received(conn: Connection, checked: list[tuple[RowMapping, Found]]) -> None:
    """Keep the size, format and version the store has of each received file
    (`check_received`), in the transaction that submits its batch, unless the file was
    received again since."""
    for row, got in checked:
        received_at = row["created_at"]
        repo.keep_version(
            conn, row["id"], received_at=received_at, size=got.size, fmt=got.format, etag=got.etag
        )


class Upload:
    """One file arriving as a stream; stored whole or not at all."""

    def __init__(self, rt: Runtime, batch: Batch, name: str, content_type: str | None) -> None:
        require_open(batch)
        require_attachments(batch, rt.types.get(batch.type), "its data")
        require_takes_data(batch, rt.types.get(batch.type))
        require_free_name(batch, name)
        self._rt = rt
        self._batch_id = batch.id
        self.name = name
        self.format = format_for_content_type(content_type, name)
        self._key = input_key(batch.id, name)
        self._limit = rt.settings.max_upload_bytes
        self._size = 0
        self._writer: BlobWriter = rt.blobs.writer(self._key)

    def check_declared_size(self, size: int | None) -> None:
        if size is not None and size > self._limit:
            self.abort()
            raise PayloadTooLarge(
                f"the upload is {byte_size(size)}; this server takes at most {byte_size(self._limit)}"
            )

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self.abort()
            raise PayloadTooLarge(f"the upload is over {byte_size(self._limit)}, this server's limit")
        self._writer.write(data)

    def abort(self) -> None:
        self._writer.abort()

    def finish(self) -> None:
        """Keep the file as one of the batch's inputs (if the batch is still open); the upload
        is dropped if it cannot be (refused, or the transaction failed: a lock not granted in
        time, the database away), leaving no part of it in the store."""
        try:
            self._keep()
        except BaseException:
            self.abort()  # (nothing to undo once the writer has committed)
            raise

    def _keep(self) -> None:
        with self._rt.db.write() as conn:
            batch = repo.get_batch(conn, None, self._batch_id, lock=True)
            if batch is None:
                raise NotFound(f"batch {self._batch_id} not found")
            require_open(batch)
            _refuse_mixed(conn, batch, "file")
            size = self._writer.commit()
            values = {"format": self.format, "blob_key": self._key, "size": size, "items": None}
            values |= {"pending": False, "etag": None}
            repo.upsert_input(conn, batch.id, "file", self.name, **values)
            repo.add_event(
                conn, batch.id, Milestone.FILE_RECEIVED, batch.status, f"{self.name} ({size} bytes)"
            )


# attachments: files a batch needs besides its records -----------------------


def attachment_key(batch_id: int, name: str) -> str:
    """The object key of the batch's attachment `name` in the blob store."""
    return f"batches/{batch_id}/attachments/{quote(name, safe='')}"


def attachments_of(batch: Batch) -> dict[str, Any]:
    """What loadbay learnt of each of the batch's attachments, by name."""
    found = batch.options.get(ATTACHMENTS)
    return dict(found) if isinstance(found, Mapping) else {}


def require_takes_data(batch: Batch, batch_type: BatchType, *, created: bool = False) -> None:
    """Conflict (NO_DATA_TAKEN) for a batch whose type makes its own records (BatchType.generates).
    `created`: the batch is being made, and the refusal undoes that (see `_unmade`)."""
    if batch_type.generates and created:
        raise Conflict(
            f"a {batch_type.name} batch makes its own records and takes no data: create it without "
            f"items or an upload URL{_UNMADE}",
            code="NO_DATA_TAKEN",
        )
    if batch_type.generates:
        raise Conflict(
            f"batch {batch.id} is a {batch_type.name} batch: it makes its own records and takes no data",
            code="NO_DATA_TAKEN",
        )


def require_attachments(batch: Batch, batch_type: BatchType, before: str, *, created: bool = False) -> None:
    """Conflict (ATTACHMENT_MISSING) unless the batch has every attachment its type needs.
    `created`: the batch is being made, and the refusal undoes that (see `_unmade`)."""
    have = attachments_of(batch)
    for name, what in batch_type.attachments.items():
        if name not in have and created:
            raise Conflict(
                f"a {batch_type.name} batch needs its {name} ({what}) before {before}: create it "
                f"and send its {name} first{_UNMADE}",
                code="ATTACHMENT_MISSING",
            )
        if name not in have:
            raise Conflict(
                f"batch {batch.id} needs its {name} ({what}) before {before}; send it first",
                code="ATTACHMENT_MISSING",
            )


# A refusal of what a create asks for (its items, its submit, an upload URL) undoes the
# create: it names no batch, since none was made (the next batch made may get the id).
_UNMADE = "; no batch was made"


class Attachment:
    """A file the batch needs besides its records (e.g. the PDF a mail batch prints), as a
    stream: spooled, inspected by the batch type, then stored whole or not at all.
    Attachments come before the batch's data, since the type's rules read them."""

    def __init__(self, rt: Runtime, batch: Batch, batch_type: BatchType, name: str) -> None:
        require_open(batch)
        if name not in batch_type.attachments:
            raise InvalidInput(
                f"a {batch_type.name} batch takes no attachment {name!r}", code="UNKNOWN_ATTACHMENT"
            )
        self._rt = rt
        self._batch_id = batch.id
        self._type = batch_type
        self.name = name
        self._limit = rt.settings.max_upload_bytes
        self._size = 0
        # Lives across the request's body chunks; finish() or abort() closes it.
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115

    def check_declared_size(self, size: int | None) -> None:
        if size is not None and size > self._limit:
            self.abort()
            raise PayloadTooLarge(
                f"the file is {byte_size(size)}; this server takes at most {byte_size(self._limit)}"
            )

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self.abort()
            raise PayloadTooLarge(f"the file is over {byte_size(self._limit)}, this server's limit")
        self._spool.write(data)

    def abort(self) -> None:
        self._spool.close()

    def finish(self) -> None:
        """Inspect the file (InvalidInput if the type refuses it), then keep it with the batch."""
        try:
            self._spool.seek(0)
            meta = self._type.inspect_attachment(self.name, cast(BinaryIO, self._spool))
            self._store(meta)
        finally:
            self._spool.close()

    def _store(self, meta: dict[str, Any]) -> None:
        key = attachment_key(self._batch_id, self.name)
        with self._rt.db.write() as conn:
            batch = repo.get_batch(conn, None, self._batch_id, lock=True)
            if batch is None:
                raise NotFound(f"batch {self._batch_id} not found")
            require_open(batch)
            _refuse_after_data(conn, batch.id)
            size = self._copy_to(key)
            attached = attachments_of(batch) | {self.name: meta | {"size": size}}
            options = json.dumps(batch.options | {ATTACHMENTS: attached}, sort_keys=True)
            repo.update_batch(conn, batch.id, options=options)
            repo.add_event(
                conn, batch.id, Milestone.ATTACHMENT_RECEIVED, batch.status, f"{self.name} ({size} bytes)"
            )

    def _copy_to(self, key: str) -> int:
        writer = self._rt.blobs.writer(key)
        self._spool.seek(0)
        while data := self._spool.read(1 << 20):
            writer.write(data)
        return writer.commit()


def _refuse_after_data(conn: Connection, batch_id: int) -> None:
    count, _items, _files = repo.input_summary(conn, batch_id)
    if count:
        raise Conflict(
            f"batch {batch_id} already has its data; send attachments before the data",
            code="ATTACHMENT_AFTER_DATA",
        )


# pages -----------------------------------------------------------------------


def page_name(number: int) -> str:
    return f"page-{number:09d}"


def store_page(conn: Connection, batch: Batch, number: int, items: list[Any]) -> None:
    """Store page `number` of JSON items, replacing an earlier copy of the same page."""
    require_open(batch)
    _check_page(batch, number, items)
    _refuse_mixed(conn, batch, "page")
    text = json.dumps(items, default=str)
    values = {"format": "json", "blob_key": None, "items": text, "item_count": len(items), "size": len(text)}
    repo.upsert_input(conn, batch.id, "page", page_name(number), **values)
    repo.add_event(
        conn, batch.id, Milestone.PAGE_RECEIVED, batch.status, f"page {number}: {many(len(items), 'item')}"
    )


MAX_PAGE = 999_999_999  # page names are zero-padded to 9 digits, so they sort by number


def _check_page(batch: Batch, number: int, items: list[Any]) -> None:
    if not 0 <= number <= MAX_PAGE:
        raise InvalidInput(f"page numbers run from 0 to {MAX_PAGE}", code="INVALID_PAGE")
    if batch.page_size is not None and len(items) > batch.page_size:
        raise InvalidInput(
            f"page {number} has {len(items)} items; the batch's page size is {batch.page_size}",
            code="PAGE_TOO_LARGE",
        )
    if batch.total_items is not None and batch.page_size:
        first = number * batch.page_size
        if first + len(items) > batch.total_items:
            raise Conflict(
                f"page {number} would hold items {first}..{first + len(items) - 1}, "
                f"beyond the batch's {batch.total_items} items",
                code="PAGE_BEYOND_TOTAL",
            )


def _refuse_mixed(conn: Connection, batch: Batch, kind: str) -> None:
    """Refuse a `kind` ("file" or "page") of input the batch cannot take: a batch reads files
    (uploaded, at upload URLs, or fetched from its source_url) or pages, not both."""
    if kind == "page" and batch.source_url:
        raise Conflict(
            "a batch takes pages or files, not both: this one reads its file from its source_url, "
            "so it takes no pages (items)",
            code="MIXED_INPUT",
        )
    if kind == "file" and batch.retry_of is not None:
        raise Conflict(
            f"a retry takes pages (items) after the records of batch {batch.retry_of}, not files",
            code="MIXED_INPUT",
        )
    count, _items, files = repo.input_summary(conn, batch.id)
    other = count - files if kind == "file" else files
    if other:
        raise Conflict("a batch takes pages or files, not both", code="MIXED_INPUT")
