"""Batch types: what a plugin declares (schema, key, bulk apply) and the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, BinaryIO, ClassVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import Connection, Dialect

from loadbay.core.columns import ColumnApplied, ColumnChunk, FieldPlan, Rule, rules_for
from loadbay.domain.models import NewBatch
from loadbay.domain.records import Applied, FieldError, StagedRecord
from loadbay.errors import UnknownType
from loadbay.readers import READ_OPTIONS, Columns

__all__ = [
    "API_REFERENCE",
    "ApplyContext",
    "BatchType",
    "ChildTotals",
    "DocsPage",
    "GeneratedPage",
    "TypeRegistry",
    "field_errors",
]

_CODES = {
    "missing": "REQUIRED",
    "string_too_long": "TOO_LONG",
    "decimal_parsing": "INVALID_DECIMAL",
    "decimal_max_places": "INVALID_DECIMAL",
    "decimal_max_digits": "INVALID_DECIMAL",
    "decimal_whole_digits": "INVALID_DECIMAL",
    "decimal_type": "INVALID_DECIMAL",
    "finite_number": "INVALID_DECIMAL",  # NaN, Infinity: every number of the types is a decimal
    "date_parsing": "INVALID_DATE",
    "date_from_datetime_parsing": "INVALID_DATE",
    "date_from_datetime_inexact": "INVALID_DATE",
    "date_type": "INVALID_DATE",
    "datetime_parsing": "INVALID_TIMESTAMP",
    "datetime_from_date_parsing": "INVALID_TIMESTAMP",
    "datetime_type": "INVALID_TIMESTAMP",
    "timezone_aware": "INVALID_TIMESTAMP",
}


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What a batch type knows about the batch whose chunk it applies. `dialect`: the
    database's, so `prepare` can make driver rows before the write transaction (None: not
    known, they are made inside it)."""

    account_id: int
    batch_id: int
    test: bool
    options: Mapping[str, Any]
    dialect: Dialect | None = None


@dataclass(frozen=True, slots=True)
class ChildTotals:
    """A rule joining a batch to its child batches: each valid record's `field` must equal
    the sum of what the children's valid records add to it (`BatchType.share` of
    `child_type`), or the record is refused with `code`. Records nothing adds to are not
    checked. The core sums the children before the batch is validated."""

    child_type: str
    field: str
    code: str
    children_are: str  # what the child records are, for messages: "line items"


@dataclass(frozen=True, slots=True)
class GeneratedPage:
    """One page of the records a generating type makes itself (see BatchType.generate)."""

    records: list[dict[str, Any]]
    after: str | None = None  # the cursor of the next page; None when this page is the last


@dataclass(frozen=True, slots=True)
class DocsPage:
    """The page of this server that describes how a type's batches are made and sent: its
    `path` and `title`, and `how_sent`, in a sentence or two, how its records are sent when
    not as a file a person picks (empty: said from what the type declares)."""

    path: str
    title: str
    how_sent: str = ""


API_REFERENCE = DocsPage("/docs", "API reference")  # the native API's, which every type has


class BatchType(ABC):
    """A kind of record loadbay can import: a pydantic schema, a key and a bulk apply."""

    name: ClassVar[str]
    key: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""
    # Files a batch of this type needs besides its records (name -> what it is), sent
    # before the data; what `inspect_attachment` learns of each is in ApplyContext.options.
    attachments: ClassVar[Mapping[str, str]] = {}
    # True for a type that makes its own records (`generate`) and takes no data.
    generates: ClassVar[bool] = False
    # A total each record must match over the batch's child batches (see ChildTotals).
    child_totals: ClassVar[ChildTotals | None] = None
    # True for a type whose batches loadbay makes itself (a carry-forward's children): it
    # works as any other, but GET /v1/types does not list it.
    internal: ClassVar[bool] = False
    # The page that describes this type's batches (an API profile's reference, say, for a
    # type whose batches are made through that vendor's API).
    docs: ClassVar[DocsPage] = API_REFERENCE
    # For a type whose records have no key of their own: what each is called by its position
    # in the batch, `{n}` from 1 ("job-{n}"), wherever a record's key is shown (`shown_key`).
    named_by_position: ClassVar[str | None] = None

    # Declared capabilities: what the pipeline may do with this type. A class that defines
    # the method named beside one must declare it in its own body (see __init_subclass__),
    # so overriding a method never changes the pipeline unseen.
    #
    # check: whether an automatic batch's chunks are applied while the batch is still being
    # validated, each as soon as it is staged. Only for a type whose staging reads nothing
    # that applying writes: a `check` that reads stored data (or the batch's other records)
    # could see some chunks applied and others not, so it declares False; so must a type
    # that `generates` its records or has `child_totals`. False: no chunk is applied before
    # the whole batch is validated.
    applies_while_validating: ClassVar[bool] = True
    # validate: whether `validate_many` validates a chunk with one pydantic call of `model`
    # (dumped with exclude_none: the outcomes of the default `validate`). A type whose
    # `validate` does anything else declares False: `validate_many` then calls it per record.
    validates_in_bulk: ClassVar[bool] = True
    # The column path (loadbay.core.columns): rules for the fields of `model` that have a
    # validator of their own, each passing only values that validator keeps as they are
    # (the other fields' rules are read off the model). None: every chunk takes the record
    # path. A type on the column path keeps the default `check`, `record_key` and
    # `external_id`, and its `apply_columns` writes a chunk from its columns.
    column_rules: ClassVar[Mapping[str, Rule] | None] = None
    _column_plans: ClassVar[tuple[FieldPlan, ...] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a class that overrides a method without declaring its capability, or that
        declares one its other attributes rule out."""
        super().__init_subclass__(**kwargs)
        for method, capability in _DECLARED_WITH.items():
            if method in cls.__dict__ and capability not in cls.__dict__:
                raise TypeError(
                    f"{cls.__qualname__} defines {method}() but not {capability}: "
                    f"declare it in the same class (see BatchType.{capability})"
                )
        cls._column_plans = _column_plans(cls) if cls.column_rules is not None else None
        if cls.applies_while_validating and (cls.generates or cls.child_totals is not None):
            raise TypeError(
                f"{cls.__qualname__} generates its records or has child_totals: "
                "its chunks cannot be applied while validating (applies_while_validating = False)"
            )

    @property
    def column_plans(self) -> tuple[FieldPlan, ...] | None:
        """How each field is checked on the column path; None: this type takes the record path."""
        return self._column_plans

    def apply_columns(
        self, conn: Connection, ctx: ApplyContext, chunk: ColumnChunk, valid: Sequence[int], prepared: Any
    ) -> ColumnApplied:
        """`apply_prepared` of a chunk in column form: its valid records (positions `valid`),
        given what `prepare_columns` made of them; what became of each, in order. By default
        the record way (`prepare`, then `apply_prepared`, of the valid records as
        StagedRecords): a type writes from the columns to be faster (`UpsertType`)."""
        records = chunk.to_records()
        staged = [records[i] for i in valid]
        applied = {a.index: a for a in self.apply_prepared(conn, ctx, staged, self.prepare(ctx, staged))}
        return ColumnApplied.of([applied[r.index] for r in staged])

    def prepare_columns(self, ctx: ApplyContext, chunk: ColumnChunk, valid: Sequence[int]) -> Any:
        """`prepare` of a chunk in column form (before the write transaction)."""
        return None

    def columns(self) -> Columns:
        fields = self.model.model_fields
        required = tuple(n for n, f in fields.items() if f.is_required())
        return Columns(names=tuple(fields), required=required)

    def validate(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, tuple[FieldError, ...]]:
        """The record's JSON-ready values, or the errors that refuse it."""
        try:
            parsed = self.model.model_validate(raw)
        except ValidationError as exc:
            return None, field_errors(exc.errors())
        return parsed.model_dump(mode="json", exclude_none=True), ()

    def validate_many(
        self, raws: Sequence[Mapping[str, Any]]
    ) -> list[tuple[dict[str, Any] | None, tuple[FieldError, ...]]]:
        """`validate` of each record, in order, with the same outcomes but one pydantic call
        for the lot, unless the type declares it does not `validates_in_bulk`."""
        if not self.validates_in_bulk:
            return [self.validate(raw) for raw in raws]
        bulk = _Bulk.of(self.model)
        parsed = bulk.validator.validate_python(list(raws))
        model = self.model
        good = [item for item in parsed if isinstance(item, model)]
        dumped = iter(bulk.dumper.dump_python(good, mode="json", exclude_none=True))
        # A refused record is validated again on its own: its errors are exactly validate's.
        return [
            (next(dumped), ()) if isinstance(item, model) else self.validate(raw)
            for item, raw in zip(parsed, raws, strict=True)
        ]

    def external_id(self, raw: Mapping[str, Any]) -> str | None:
        value = raw.get(self.key)
        return None if value is None else str(value)

    def shown_key(self, index: int, external_id: str | None) -> str | None:
        """The key the record at `index` (from 0) is shown by to a client: its external id,
        or the name its position gives it (`named_by_position`)."""
        if self.named_by_position is None:
            return external_id
        return self.named_by_position.format(n=index + 1)

    def key_name(self) -> str | None:
        """The record's key as GET /v1/types lists it (TYPES.md): the key field by default;
        the fields that make it ("invoice_number + line_number"); None when a record has no
        key of its own."""
        return self.key

    def record_key(self, data: Mapping[str, Any]) -> str | None:
        """The validated record's key, which must be unique within a batch."""
        value = data.get(self.key)
        return None if value is None else str(value)

    def share(self, data: Mapping[str, Any]) -> tuple[str, Decimal] | None:
        """What a valid record of a child batch adds to its parent batch's record, for the
        parent type's `child_totals`: that record's key and the amount; None for nothing."""
        return None

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()

    def inspect_attachment(self, name: str, stream: BinaryIO) -> dict[str, Any]:
        """What the rules need to know of attachment `name` (e.g. a PDF's page count), kept
        JSON-ready with the batch; raises InvalidInput when the file is not what it should be."""
        return {}

    def option_names(self) -> frozenset[str]:
        """The options a client may give a batch of this type: how its files are read
        (`READ_OPTIONS`), none for a type that makes its own records."""
        return frozenset() if self.generates else READ_OPTIONS

    def spawn(self, options: Mapping[str, Any]) -> list[NewBatch]:
        """Child batches (their type and options) created with a batch of this type and these
        options; raises InvalidInput for options the type refuses."""
        return []

    def generate(self, conn: Connection, ctx: ApplyContext, after: str | None) -> GeneratedPage:
        """A generating type's records, read a page per transaction while the batch is
        validated: the page that starts at cursor `after` (None: the first page)."""
        return GeneratedPage([])

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        """Rules that need stored data or the batch's other records, run per chunk while
        staging (after duplicates are marked, so this chunk's keys are already in the
        batch's key table). Answers the records, refused ones with data None and errors."""
        return list(records)

    @abstractmethod
    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        """Write the chunk's valid records in the open transaction; one Applied each."""

    def prepare(self, ctx: ApplyContext, records: Sequence[StagedRecord]) -> Any:
        """The part of applying these records that needs no database (e.g. the rows to write),
        done before the write transaction opens: on SQLite that transaction holds the one
        write lock. Handed to `apply_prepared`; None (nothing to prepare) by default."""
        return None

    def apply_prepared(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord], prepared: Any
    ) -> list[Applied]:
        """`apply`, given what `prepare` made of the same records."""
        return self.apply(conn, ctx, records)


def _column_plans(cls: type[BatchType]) -> tuple[FieldPlan, ...]:
    """The checked column plans of a type that declares `column_rules`; TypeError when it
    also changes what the column path leaves to the defaults."""
    changed = [
        m
        for m in ("check", "record_key", "external_id", "validate")
        if getattr(cls, m) is not getattr(BatchType, m)
    ]
    if changed or cls.generates or cls.child_totals is not None:
        what = ", ".join(changed) or "how records are made"
        raise TypeError(
            f"{cls.__qualname__} declares column_rules but changes {what}: "
            "the column path needs the default check, record_key, external_id and validate"
        )
    assert cls.column_rules is not None
    return rules_for(cls.model, cls.column_rules)


# A method a class may define only with its capability declared beside it (BatchType).
_DECLARED_WITH = {"check": "applies_while_validating", "validate": "validates_in_bulk"}


class _Bulk:
    """The cached adapters that validate and dump a list of a model's records in one call."""

    _cache: ClassVar[dict[type[BaseModel], _Bulk]] = {}

    def __init__(self, model: type[BaseModel]) -> None:
        # A record that is not a valid `model` stays as it came (the `Any` arm, tried only
        # after the model), so one bad record does not throw away the others' results.
        item = Annotated[model | Any, Field(union_mode="left_to_right")]  # type: ignore[valid-type]
        self.validator: TypeAdapter[list[Any]] = TypeAdapter(list[item])
        self.dumper: TypeAdapter[list[Any]] = TypeAdapter(list[model])  # type: ignore[valid-type]

    @classmethod
    def of(cls, model: type[BaseModel]) -> _Bulk:
        bulk = cls._cache.get(model)
        if bulk is None:
            bulk = cls._cache[model] = cls(model)
        return bulk


def field_errors(errors: Iterable[ErrorDetails]) -> tuple[FieldError, ...]:
    """Translate pydantic's errors into loadbay's stable codes, one per field."""
    seen: dict[str | None, FieldError] = {}
    for error in errors:
        field = ".".join(str(p) for p in error["loc"]) or None
        if field not in seen:
            seen[field] = FieldError(_code(error), _message(field, error), field)
    return tuple(seen.values())


def _code(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind.isupper():  # a PydanticCustomError raised by a type's own rule
        return kind
    return _CODES.get(kind, "INVALID_VALUE")


def _message(field: str | None, error: ErrorDetails) -> str:
    msg = _shortened(error["msg"].removeprefix("Value error, "), error.get("ctx", {}).get("value"))
    return f"{field}: {msg}" if field else msg


_SHOWN = 60  # characters of a refused value that its error message repeats


def _shortened(message: str, value: Any) -> str:
    """`message` with a long refused `value` in it cut to its first characters: the record's
    row has it whole, and a message stays short in every list (a value can be a megabyte)."""
    if not isinstance(value, str) or len(value) <= _SHOWN or value not in message:
        return message
    return message.replace(value, f"{value[:_SHOWN]}… ({len(value):,} characters)")


class TypeRegistry:
    """The batch types this server serves, by name."""

    def __init__(self, types: Iterable[BatchType] = ()) -> None:
        self._types: dict[str, BatchType] = {}
        for batch_type in types:
            self.register(batch_type)

    def register(self, batch_type: BatchType) -> None:
        self._types[batch_type.name] = batch_type

    def get(self, name: str) -> BatchType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(n for n, t in self._types.items() if not t.internal))
            raise UnknownType(f"unknown batch type {name!r}; known types: {known}") from None

    def __iter__(self) -> Any:
        return iter(self._types.values())
