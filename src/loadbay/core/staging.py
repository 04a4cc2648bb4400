"""Validation: raw records in, chunks of staged records out, as a stream."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loadbay.arrow import pa
from loadbay.core.columns import ColumnChunk, records_to_columns, stage_columns
from loadbay.core.types import BatchType
from loadbay.domain.records import FieldError, StagedRecord
from loadbay.readers import RawRecord, RowBlock

__all__ = ["Chunk", "Stager", "chunk_keys", "mark_duplicates", "refuse", "skip_records"]


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
        self._first_column = next(iter(batch_type.columns().names), None)

    def chunks(
        self, records: Iterable[RawRecord | RowBlock], seq: int = 0, first: int = 0
    ) -> Iterator[Chunk]:
        """The records' chunks, numbered from `seq`, their records from `first`. The records
        may come a block at a time (`open_blocks`); on the column path, a chunk whose records
        are all text is staged in column form."""
        pending = _Pending()
        for item in records:
            pending.add(item)
            while pending.count >= self._chunk_size:
                yield self._chunk(seq, first, pending.take(self._chunk_size))
                seq, first = seq + 1, first + self._chunk_size
        if pending.count:
            yield self._chunk(seq, first, pending.take(pending.count))

    def _chunk(self, seq: int, first: int, parts: list[RawRecord | RowBlock]) -> Chunk:
        plans = self._type.column_plans
        if plans is not None and not _any_text(parts):
            names = [p.name for p in plans]
            found = _as_columns(names, parts)
            if found is not None:
                raw, problems = found
                columns = stage_columns(plans, self._type.key, self._type, first, raw, problems)
                if columns is not None:
                    return Chunk(seq, columns=columns)
        return Chunk(seq, self.stage_many(first, [r for part in parts for r in _as_records(part)]))

    def stage(self, index: int, raw: RawRecord) -> StagedRecord:
        external_id = self._type.external_id(raw.values)
        if raw.problem is not None:
            code, message = raw.problem
            return StagedRecord(index, external_id, self._shown(raw), None, (FieldError(code, message),))
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
                    StagedRecord(index, external_id, self._shown(raw), None, (FieldError(code, message),))
                )
        return staged

    def _shown(self, raw: RawRecord) -> dict[str, Any]:
        """What a record's result row shows of it: its values; for a record that could not be
        read as values, its text, in the type's first column (its external id stays unknown)."""
        if raw.text is None or self._first_column is None:
            return raw.values
        return {self._first_column: raw.text}


class _Pending:
    """Records read and not yet cut into chunks: RawRecords and blocks, in order."""

    def __init__(self) -> None:
        self.parts: deque[RawRecord | RowBlock] = deque()
        self.count = 0

    def add(self, item: RawRecord | RowBlock) -> None:
        self.parts.append(item)
        self.count += item.count if isinstance(item, RowBlock) else 1

    def take(self, size: int) -> list[RawRecord | RowBlock]:
        """The first `size` records (a block cut where the chunk ends)."""
        taken: list[RawRecord | RowBlock] = []
        while size:
            item = self.parts.popleft()
            if isinstance(item, RowBlock) and item.count > size:
                head = {n: a.slice(0, size) for n, a in item.columns.items()}
                rest = {n: a.slice(size) for n, a in item.columns.items()}
                self.parts.appendleft(RowBlock(item.count - size, rest))
                item = RowBlock(size, head)
            n = item.count if isinstance(item, RowBlock) else 1
            taken.append(item)
            size -= n
            self.count -= n
        return taken


def _as_columns(
    names: Sequence[str], parts: Sequence[RawRecord | RowBlock]
) -> tuple[dict[str, pa.Array], dict[int, tuple[str, str]]] | None:
    """A chunk's parts as one string array per field and the problems of the records that
    could not be read (by position); None when a record holds anything but text."""
    pieces: list[dict[str, pa.Array]] = []
    problems: dict[int, tuple[str, str]] = {}
    run: list[RawRecord] = []
    at = 0
    for part in [*parts, None]:
        if not isinstance(part, RawRecord) and run:
            arrays = records_to_columns(names, [r.values for r in run])
            if arrays is None:
                return None
            pieces.append(arrays)
            run = []
        if isinstance(part, RawRecord):
            if part.problem is not None:
                problems[at] = part.problem
            run.append(part)
            at += 1
        elif part is not None:
            blank = None
            for name in names:
                if name not in part.columns:
                    blank = blank if blank is not None else pa.nulls(part.count, pa.string())
            pieces.append({n: part.columns.get(n, blank) for n in names})
            at += part.count
    if len(pieces) == 1:
        return pieces[0], problems
    return {n: pa.concat_arrays([p[n] for p in pieces]) for n in names}, problems


def _any_text(parts: Sequence[RawRecord | RowBlock]) -> bool:
    """Whether a record of the parts is shown by its text (`Stager._shown`, on the record path)."""
    return any(isinstance(part, RawRecord) and part.text is not None for part in parts)


def _as_records(part: RawRecord | RowBlock) -> list[RawRecord]:
    if isinstance(part, RawRecord):
        return [part]
    table = pa.Table.from_arrays(list(part.columns.values()), names=list(part.columns))
    return [RawRecord({n: v for n, v in row.items() if v is not None}) for row in table.to_pylist()]


def skip_records(items: Iterable[RawRecord | RowBlock], count: int) -> Iterator[RawRecord | RowBlock]:
    """The records after the first `count` (a block cut where they end)."""
    it = iter(items)
    for item in it:
        size = item.count if isinstance(item, RowBlock) else 1
        if size <= count:
            count -= size
            continue
        if count:
            assert isinstance(item, RowBlock)
            item = RowBlock(size - count, {n: a.slice(count) for n, a in item.columns.items()})
        yield item
        yield from it
        return


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
