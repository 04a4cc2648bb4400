"""Validation: raw records in, chunks of staged records out, as a stream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from loadbay.core.columns import ColumnChunk, stage_columns
from loadbay.core.types import BatchType
from loadbay.domain.records import FieldError, StagedRecord
from loadbay.readers import RawRecord

__all__ = ["Chunk", "Stager", "chunk_keys", "mark_duplicates", "refuse"]


@dataclass(slots=True)
class Chunk:
    """A run of consecutive records, valid and invalid, ready for the queue: as records,
    or in column form (`columns`, and then `records` is empty)."""

    seq: int
    records: list[StagedRecord] = field(default_factory=list)
    columns: ColumnChunk | None = None

    @property
    def first_index(self) -> int:
        return self.columns.first if self.columns is not None else self.records[0].index

    def as_records(self) -> list[StagedRecord]:
        """The chunk's records, in either form."""
        return self.columns.to_records() if self.columns is not None else self.records


class Stager:
    """Validates records a chunk at a time and cuts them into chunks (duplicates are found
    later, per chunk, against the keys the batch has already seen: see `mark_duplicates`)."""

    def __init__(self, batch_type: BatchType, chunk_size: int) -> None:
        self._type = batch_type
        self._chunk_size = chunk_size

    def chunks(self, records: Iterable[RawRecord], seq: int = 0, first: int = 0) -> Iterator[Chunk]:
        """The records' chunks, numbered from `seq`, their records from `first`."""
        raws: list[RawRecord] = []
        for raw in records:
            raws.append(raw)
            if len(raws) >= self._chunk_size:
                yield self._chunk(seq, first, raws)
                seq, first, raws = seq + 1, first + len(raws), []
        if raws:
            yield self._chunk(seq, first, raws)

    def _chunk(self, seq: int, first: int, raws: Sequence[RawRecord]) -> Chunk:
        """The chunk in column form when the type takes the column path and its records are
        all text; else as records."""
        plans = self._type.column_plans
        if plans is not None:
            values, problems = [raw.values for raw in raws], [raw.problem for raw in raws]
            columns = stage_columns(plans, self._type.key, self._type, first, values, problems)
            if columns is not None:
                return Chunk(seq, columns=columns)
        return Chunk(seq, self.stage_many(first, raws))

    def stage(self, index: int, raw: RawRecord) -> StagedRecord:
        external_id = self._type.external_id(raw.values)
        if raw.problem is not None:
            code, message = raw.problem
            return StagedRecord(index, external_id, raw.values, None, (FieldError(code, message),))
        data, errors = self._type.validate(raw.values)
        return StagedRecord(index, external_id, raw.values, data, errors)

    def stage_many(self, first: int, raws: Sequence[RawRecord]) -> list[StagedRecord]:
        """`stage` of each record, numbered from `first`, validated in one call: the same
        outcomes. A record that could not be read keeps its problem and is not validated."""
        batch_type = self._type
        outcomes = iter(batch_type.validate_many([raw.values for raw in raws if raw.problem is None]))
        staged = []
        for index, raw in enumerate(raws, start=first):
            external_id = batch_type.external_id(raw.values)
            if raw.problem is None:
                data, errors = next(outcomes)
                staged.append(StagedRecord(index, external_id, raw.values, data, errors))
            else:
                code, message = raw.problem
                staged.append(
                    StagedRecord(index, external_id, raw.values, None, (FieldError(code, message),))
                )
        return staged


def chunk_keys(batch_type: BatchType, records: Sequence[StagedRecord]) -> list[str]:
    """The distinct keys of the chunk's valid records, in order."""
    keys = (batch_type.record_key(r.data) for r in records if r.data is not None)
    return list(dict.fromkeys(k for k in keys if k is not None))


def mark_duplicates(
    batch_type: BatchType, records: Sequence[StagedRecord], fresh: set[str]
) -> list[StagedRecord]:
    """A valid record whose key the batch saw before (`fresh` lacks it, or earlier in this
    chunk) becomes invalid with DUPLICATE_KEY: the later record fails."""
    seen: set[str] = set()
    marked = []
    for record in records:
        key = batch_type.record_key(record.data) if record.data is not None else None
        if key is not None and (key not in fresh or key in seen):
            message = f"{batch_type.key} {key!r} appears earlier in this batch"
            record = replace(
                record, data=None, errors=(FieldError("DUPLICATE_KEY", message, batch_type.key),)
            )
        elif key is not None:
            seen.add(key)
        marked.append(record)
    return marked


def refuse(records: Sequence[StagedRecord], refusals: dict[int, FieldError]) -> list[StagedRecord]:
    """The records, those named in `refusals` (by index) made invalid with that error."""
    return [replace(r, data=None, errors=(refusals[r.index],)) if r.index in refusals else r for r in records]
