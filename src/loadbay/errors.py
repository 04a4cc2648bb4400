"""Every error loadbay raises on purpose.

    LoadbayError                  root; `code` is a stable UPPER_SNAKE word
    ├── NotFound                  the batch (or other object) does not exist for this account
    ├── Gone                      a batch's files were removed after LOADBAY_RETENTION_DAYS
    ├── Unauthorized              no key, or an unknown key
    ├── Conflict                  the request is valid but the batch's state refuses it
    │   ├── InvalidTransition     a lifecycle move the transition table does not allow
    │   ├── NoData                a submit finds no data (or no file at an upload URL it handed out)
    │   ├── ParentNotOpen         a child batch created for a parent that is no longer open
    │   └── JobIdConflict         the same job_id was used with a different body
    ├── InvalidInput              a request parameter or body is wrong
    │   ├── UnknownType           the batch type is not registered
    │   └── BadSignature          a signed URL is expired, tampered or used for another object
    ├── TestModeMismatch          a test key asked for a live batch, or the other way round
    ├── PayloadTooLarge           an upload or fetched file is over the size limit
    ├── UnsupportedMediaType      the Content-Type is not one loadbay reads here
    ├── UnreadableData            the batch's data cannot be read as a whole (a batch `error`)
    │   ├── MissingColumn         a required CSV column is absent
    │   ├── BadEncoding           the file is not UTF-8
    │   ├── MalformedFile         the file's syntax is broken beyond one record
    │   └── FileChanged           an uploaded file was replaced after the batch was submitted
    ├── Busy                      the database or the object store cannot answer now; try again
    │   └── StoreUnavailable      the object store cannot be reached or refuses loadbay
    └── FetchError                the server could not fetch a `source_url`
        └── FetchRefused          the URL points at an address loadbay may not reach

Each class's docstring is its default message. The core raises these; the HTTP
edges translate them into each API's own error format.
"""

from __future__ import annotations

__all__ = [
    "BadEncoding",
    "BadSignature",
    "BatchInProgress",
    "Busy",
    "Conflict",
    "FetchError",
    "FetchRefused",
    "FileChanged",
    "Gone",
    "InvalidInput",
    "InvalidTransition",
    "JobIdConflict",
    "LoadbayError",
    "MalformedFile",
    "MissingColumn",
    "NoData",
    "NotFound",
    "ParentNotOpen",
    "PayloadTooLarge",
    "SchemaTooNew",
    "StoreUnavailable",
    "TestModeMismatch",
    "Unauthorized",
    "UnknownColumn",
    "UnknownType",
    "UnreadableData",
    "UnsupportedMediaType",
]


class LoadbayError(Exception):
    """Something went wrong in loadbay."""

    code = "LOADBAY_ERROR"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        if code is not None:
            self.code = code
        super().__init__(self.message)


class NotFound(LoadbayError):
    """No such object for this account. Check the id and the API key."""

    code = "NOT_FOUND"


class Gone(LoadbayError):
    """The batch's files were removed when its retention ended (LOADBAY_RETENTION_DAYS)."""

    code = "FILES_REMOVED"


class Unauthorized(LoadbayError):
    """Missing or unknown API key. Send it as `Authorization: Bearer KEY` or `X-Api-Key`."""

    code = "UNAUTHORIZED"


class Conflict(LoadbayError):
    """The batch's current state does not allow this request."""

    code = "CONFLICT"


class BatchInProgress(Conflict):
    """The account already has a submitted, unfinished batch that a new one must wait for."""

    code = "BATCH_IN_PROGRESS"

    def __init__(self, batch_id: int) -> None:
        super().__init__(f"batch {batch_id} is still in progress; a new one waits until it is finished")
        self.batch_id = batch_id


class NoData(Conflict):
    """The batch has no data to submit yet. Upload a file or send pages, then submit it."""

    code = "NO_DATA"

    def __init__(self, message: str, *, batch_id: int | None, code: str | None = None) -> None:
        """`batch_id`: the batch with nothing (one of the submitted batch's children, maybe);
        None when the batch was submitted on create, and so never made."""
        super().__init__(message, code=code)
        self.batch_id = batch_id


class ParentNotOpen(Conflict):
    """The parent batch is no longer open: children join open batches only."""

    code = "BATCH_NOT_OPEN"

    def __init__(self, parent_id: int, status: str) -> None:
        super().__init__(
            f"parent batch {parent_id} is {status}; children join open batches only: create this "
            "batch before its parent is submitted, or without parent_id"
        )
        self.parent_id = parent_id


class InvalidTransition(Conflict):
    """The batch cannot make this move from its current status."""

    code = "INVALID_STATE"


class JobIdConflict(Conflict):
    """This job_id already names a batch created with a different body. Use a new job_id."""

    code = "JOB_ID_CONFLICT"


class InvalidInput(LoadbayError):
    """The request is malformed. Fix the named parameter and send it again."""

    code = "INVALID_INPUT"


class UnknownType(InvalidInput):
    """Unknown batch type. `GET /v1/types` lists the registered types."""

    code = "UNKNOWN_TYPE"


class BadSignature(InvalidInput):
    """The signed URL is expired, tampered with, or not for this object. Ask for a new one."""

    code = "BAD_SIGNATURE"


class PayloadTooLarge(LoadbayError):
    """The data is larger than this server accepts (LOADBAY_MAX_UPLOAD_BYTES)."""

    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(LoadbayError):
    """Unsupported Content-Type. Send text/csv, application/x-ndjson or application/json."""

    code = "UNSUPPORTED_MEDIA_TYPE"


class UnreadableData(LoadbayError):
    """The batch's data cannot be read. Fix the file and upload it to a new batch."""

    code = "UNREADABLE_DATA"


class MissingColumn(UnreadableData):
    """A required column is missing from the CSV header."""

    code = "MISSING_COLUMN"


class BadEncoding(UnreadableData):
    """The file is not valid UTF-8. Save it as UTF-8 (with or without BOM)."""

    code = "BAD_ENCODING"


class UnknownColumn(UnreadableData):
    """The CSV header names a column the type does not have, and the batch refuses those."""

    code = "UNKNOWN_COLUMN"


class MalformedFile(UnreadableData):
    """The file's syntax is broken (for example an unterminated quote or invalid JSON)."""

    code = "MALFORMED_FILE"


class FileChanged(UnreadableData):
    """The file was replaced after the batch was submitted (a PUT to its upload URL)."""

    code = "FILE_CHANGED"


class Busy(LoadbayError):
    """The database is busy (a lock held too long by other work). Try again in a moment."""

    code = "BUSY"


class StoreUnavailable(Busy):
    """The object store does not answer (or refuses loadbay's credentials). Try again later."""

    code = "STORE_UNAVAILABLE"


class FetchError(LoadbayError):
    """The server could not fetch the file from source_url."""

    code = "FETCH_FAILED"


class FetchRefused(FetchError):
    """source_url points at an address loadbay may not reach (private, loopback or not allowed)."""

    code = "FETCH_REFUSED"


class TestModeMismatch(LoadbayError):
    """The batch's `test` flag differs from the API key's account (test keys make test batches)."""

    code = "TEST_MODE_MISMATCH"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer loadbay than this one (not a request's error:
    the process cannot start)."""
