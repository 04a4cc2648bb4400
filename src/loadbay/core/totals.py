"""Child totals: what a batch's child records add up to, per parent record (ChildTotals).

The children are read before their parent is validated (they are validated themselves
only after it is final), each valid child record's share is kept in the database, and
each chunk of the parent is checked against the kept shares while it is staged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from sqlalchemy import Connection

from loadbay.core.staging import Stager, refuse
from loadbay.core.types import BatchType
from loadbay.db import repository as repo
from loadbay.domain.records import FieldError, StagedRecord
from loadbay.readers import RawRecord

__all__ = ["check", "shares"]

_CHUNK = 1000  # child records validated per pydantic call


def shares(child_type: BatchType, raws: Iterable[RawRecord]) -> Iterator[tuple[str, str, str]]:
    """(parent key, child key, amount) of each valid child record that adds to a parent,
    validated a chunk at a time as the child itself will be."""
    for chunk in Stager(child_type, _CHUNK).chunks(raws):
        for data in (r.data for r in chunk.as_records() if r.data is not None):
            share, child_key = child_type.share(data), child_type.record_key(data)
            if share is not None and child_key is not None:
                yield share[0], child_key, str(share[1])


def check(
    conn: Connection, batch_type: BatchType, batch_id: int, records: Sequence[StagedRecord]
) -> list[StagedRecord]:
    """The records, those whose total does not match their children's shares refused."""
    rule = batch_type.child_totals
    if rule is None:
        return list(records)
    keys = {r.index: batch_type.record_key(r.data) for r in records if r.data is not None}
    kept = repo.shares_of(conn, batch_id, list(dict.fromkeys(k for k in keys.values() if k is not None)))
    refusals: dict[int, FieldError] = {}
    for record in records:
        shares = kept.get(keys.get(record.index) or "")
        if record.data is None or shares is None:
            continue
        count, total = shares
        value = Decimal(str(record.data[rule.field]))
        if value != total:
            message = f"{rule.field} {value} is not the sum of its {count} {rule.children_are} ({total})"
            refusals[record.index] = FieldError(rule.code, message, rule.field)
    return refuse(records, refusals)
