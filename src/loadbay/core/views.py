"""A batch as the native API shows it, as plain JSON-ready values, for what the core sends
by itself: a webhook event's payload is rendered here, in the transaction of the move that
causes it, so it shows the batch as it was then (a unit test keeps it equal to the API's
`BatchOut`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic_core import to_jsonable_python

from loadbay.core.progress import Progress
from loadbay.domain.models import Batch

__all__ = ["batch_view"]


def batch_view(batch: Batch, progress: Progress) -> dict[str, Any]:
    """What GET /v1/batches/{id} answers for the batch, with this progress."""
    error = {"code": batch.error_code, "message": batch.error_message or ""} if batch.error_code else None
    fraction = progress.fraction
    view = {
        "id": batch.id,
        "ref": batch.ref,
        "type": batch.type,
        "status": batch.status.value,
        "outcome": batch.outcome,
        "job_id": batch.job_id,
        "description": batch.description,
        "test": batch.test,
        "parent_id": batch.parent_id,
        "origin": batch.origin,
        "retry_of": batch.retry_of,
        "unread_pending": batch.unread_pending,
        "process": batch.process_mode,
        "options": batch.options,
        "source_url": batch.source_url,
        "page_size": batch.page_size,
        "total_items": batch.total_items,
        "counts": asdict(batch.counts),
        "progress": {
            "done": progress.done,
            "total": progress.total,
            "fraction": None if fraction is None else round(fraction, 4),
            "rate": progress.rate,
            "eta_seconds": progress.eta_seconds,
        },
        "warnings": batch.warnings,
        "error": error,
        "created_at": batch.created_at,
        "submitted_at": batch.submitted_at,
        "updated_at": batch.updated_at,
        "finished_at": batch.finished_at,
        "upload_url": None,
        "upload_url_expires_at": None,
    }
    result: dict[str, Any] = to_jsonable_python(view)
    return result
