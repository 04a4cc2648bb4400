"""Validation: raw records in, chunks of staged records out, as a stream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from loadbay.core.records import FieldError, StagedRecord
from loadbay.core.types import BatchType
from loadbay.readers import RawRecord

__all__ = ["Chunk", "Stager"]


@dataclass(slots=True)
class Chunk:
    """A run of consecutive records, valid and invalid, ready for the queue."""

    seq: int
    records: list[StagedRecord] = field(default_factory=list)

    @property
    def first_index(self) -> int:
        return self.records[0].index

    @property
    def valid(self) -> int:
        return sum(1 for r in self.records if r.data is not None)


class Stager:
    """Validates records one by one and cuts them into chunks.

    A key seen earlier in the batch makes the later record `DUPLICATE_KEY`.
    """

    def __init__(self, batch_type: BatchType, chunk_size: int) -> None:
        self._type = batch_type
        self._chunk_size = chunk_size
        self._seen: set[str] = set()

    def chunks(self, records: Iterable[RawRecord]) -> Iterator[Chunk]:
        chunk = Chunk(seq=0)
        for index, raw in enumerate(records):
            chunk.records.append(self.stage(index, raw))
            if len(chunk.records) >= self._chunk_size:
                yield chunk
                chunk = Chunk(seq=chunk.seq + 1)
        if chunk.records:
            yield chunk

    def stage(self, index: int, raw: RawRecord) -> StagedRecord:
        external_id = self._type.external_id(raw.values)
        if raw.problem is not None:
            code, message = raw.problem
            return StagedRecord(index, external_id, raw.values, None, (FieldError(code, message),))
        data, errors = self._type.validate(raw.values)
        if data is not None and (duplicate := self._duplicate(external_id)):
            data, errors = None, (duplicate,)
        return StagedRecord(index, external_id, raw.values, data, errors)

    def _duplicate(self, key: str | None) -> FieldError | None:
        if key is None:
            return None
        if key in self._seen:
            return FieldError(
                "DUPLICATE_KEY", f"{self._type.key} {key!r} appears earlier in this batch", self._type.key
            )
        self._seen.add(key)
        return None
