"""The column path: chunks validated, staged and applied a column at a time.

Most records of a file are plain: text, already in the form the type keeps, within every
limit. For a type that declares `BatchType.column_rules`, a chunk's values are turned into
Arrow columns once, and vectorised checks (`Rule`) find the records that are plainly
valid: their validated values are the values read (or a field's default where the file has
no value). Every other record goes through the type's own `validate_many`, which gives the
exact codes and messages of the record path. So the outcomes are the record path's by
construction; the rules only decide which records can skip pydantic.

A rule must never pass a value the type's model would refuse or change: it may flag more
than it needs to (those records take the record path), never less. `rules_for` derives the
rules of plain fields (text with lengths, decimals with digits and places, literal
choices) from the model and refuses a model it cannot read, unless the type declares a
rule for that field: a field with a validator of its own always needs a declared rule.

A staged chunk in column form (`ColumnChunk`) is an Arrow IPC stream (zstd) in the chunk's
payload, after `MARK`: a column per type column of the values read, a column of the
validated values only where they differ, and the refused records' errors.
"""

from __future__ import annotations

import base64
import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

from loadbay.arrow import pa, pc
from loadbay.domain.records import Applied, FieldError, StagedRecord, error_row

__all__ = [
    "MARK",
    "Choice",
    "ColumnApplied",
    "ColumnChunk",
    "Decimals",
    "Matches",
    "Rule",
    "Text",
    "is_column_payload",
    "records_to_columns",
    "rules_for",
    "stage_columns",
]

MARK = "arrow1:"  # a payload in column form starts so (a record-form payload starts with "[")


class Rule(ABC):
    """A vectorised check of one field: which values the model surely keeps as they are."""

    @abstractmethod
    def plain(self, values: pa.StringArray) -> pa.BooleanArray:
        """True for each value the model accepts unchanged (nulls: any answer, unused)."""


# A character no definition of white space includes (Python's str.isspace and the Unicode
# White_Space property pydantic strips by), nor a control character: a value that starts
# and ends with one is the same stripped.
_SOLID = (
    r"[^\x00-\x20\x7f-\xa0\x{1680}\x{180e}\x{2000}-\x{200f}\x{2028}-\x{202f}\x{205f}-\x{2060}"
    r"\x{3000}\x{feff}]"
)
_SOLID_ENDS = f"^{_SOLID}((?s:.*){_SOLID})?$"


@dataclass(frozen=True)
class Text(Rule):
    """Text the model strips, between `min_length` and `max_length` characters."""

    min_length: int = 0
    max_length: int | None = None

    def plain(self, values: pa.StringArray) -> pa.BooleanArray:
        ok = pc.match_substring_regex(values, _SOLID_ENDS)
        length = pc.utf8_length(values)
        ok = pc.and_(ok, pc.greater_equal(length, max(self.min_length, 1)))
        if self.max_length is not None:
            ok = pc.and_(ok, pc.less_equal(length, self.max_length))
        return ok


@dataclass(frozen=True)
class Decimals(Rule):
    """A decimal written the way the model writes it back: no sign but `-`, no leading zero,
    at most `places` decimals and `max_digits` digits in all."""

    max_digits: int | None
    places: int | None

    def plain(self, values: pa.StringArray) -> pa.BooleanArray:
        places = 12 if self.places is None else self.places
        whole = 28 if self.max_digits is None else self.max_digits - places
        if whole < 1:
            return pc.equal(values, "\x00never")
        fraction = rf"(\.[0-9]{{1,{places}}})?" if places else ""
        return pc.match_substring_regex(values, rf"^-?(0|[1-9][0-9]{{0,{whole - 1}}}){fraction}$")


@dataclass(frozen=True)
class Choice(Rule):
    """One of `values`, spelled exactly so."""

    values: frozenset[str]

    def plain(self, values: pa.StringArray) -> pa.BooleanArray:
        return pc.is_in(values, value_set=pa.array(sorted(self.values), pa.string()))


@dataclass(frozen=True)
class Matches(Rule):
    """Text matching an RE2 `pattern` (with ^ and $), also within `length`, that the model's
    own validator accepts as it is: the type that declares it vouches for that."""

    pattern: str
    length: Text = Text()

    def plain(self, values: pa.StringArray) -> pa.BooleanArray:
        return pc.and_(self.length.plain(values), pc.match_substring_regex(values, self.pattern))


@dataclass(frozen=True)
class FieldPlan:
    """How one field of the model is checked in columns."""

    name: str
    rule: Rule
    required: bool
    default: str | None  # the validated value of an absent field (None: left out)


def rules_for(model: type[BaseModel], declared: Mapping[str, Rule]) -> tuple[FieldPlan, ...]:
    """Each field's plan: its declared rule, or one derived from its annotation; TypeError
    when a field has a validator of its own and no declared rule, or a shape no rule covers."""
    validated = {
        name for d in model.__pydantic_decorators__.field_validators.values() for name in d.info.fields
    }
    config = model.model_config
    if not config.get("str_strip_whitespace") or config.get("extra") not in (None, "ignore"):
        raise TypeError(f"{model.__name__}: the column path needs str_strip_whitespace and extra='ignore'")
    plans = []
    for name, field in model.model_fields.items():
        rule = declared.get(name)
        if rule is None:
            if name in validated or _has_validator(field):
                raise TypeError(f"{model.__name__}.{name} has a validator: declare its column rule")
            rule = _derived(model, name, field)
        plans.append(FieldPlan(name, rule, field.is_required(), _default(field)))
    return tuple(plans)


def _has_validator(field: FieldInfo) -> bool:
    return any("Validator" in type(m).__name__ for m in field.metadata)


def _derived(model: type[BaseModel], name: str, field: FieldInfo) -> Rule:
    annotation = _without_none(field.annotation)
    limits = _limits(field)
    known = {"min_length", "max_length", "max_digits", "decimal_places"}
    if set(limits) - known:
        raise TypeError(f"{model.__name__}.{name}: no column rule for {sorted(set(limits) - known)}")
    if annotation is str:
        return Text(limits.get("min_length") or 0, limits.get("max_length"))
    if annotation is Decimal and not {"min_length", "max_length"} & set(limits):
        return Decimals(limits.get("max_digits"), limits.get("decimal_places"))
    if typing.get_origin(annotation) is Literal and not limits:
        choices = typing.get_args(annotation)
        if all(isinstance(c, str) for c in choices):
            return Choice(frozenset(choices))
    raise TypeError(f"{model.__name__}.{name}: no column rule for {annotation!r}")


def _limits(field: FieldInfo) -> dict[str, Any]:
    """The constraints in a field's metadata (annotated-types' and pydantic's), by name."""
    found: dict[str, Any] = {}
    for item in field.metadata:
        if dataclasses.is_dataclass(item):
            found |= {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
        else:
            found |= {k: v for k, v in vars(item).items() if not k.startswith("_") and v is not None}
    return found


def _without_none(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _default(field: FieldInfo) -> str | None:
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    if value is None:
        return None
    dumped = TypeAdapter(type(value)).dump_python(value, mode="json")
    if not isinstance(dumped, str):
        raise TypeError(f"the column path keeps text only; a default of {value!r} is not")
    return dumped


# the chunk --------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class ColumnChunk:
    """A run of consecutive records in column form.

    `raw[name]`: each record's value as read (null: absent), an Arrow string array.
    `data[name]`: each record's validated value (null: absent; anything for a refused
    record), the same array as `raw[name]` where every valid record kept the value read.
    `errors[i]`: record i's errors, empty when it is valid."""

    first: int
    names: tuple[str, ...]
    raw: dict[str, pa.Array]
    data: dict[str, pa.Array]
    errors: list[tuple[FieldError, ...]]
    key: str

    def __len__(self) -> int:
        return len(self.errors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColumnChunk):
            return NotImplemented
        mine, theirs = (
            (self.first, self.names, self.errors, self.key),
            (other.first, other.names, other.errors, other.key),
        )
        return mine == theirs and all(
            self.raw[n].equals(other.raw[n]) and self.data[n].equals(other.data[n]) for n in self.names
        )

    def valid(self) -> list[int]:
        """The positions of the valid records."""
        return [i for i, e in enumerate(self.errors) if not e]

    def external_ids(self) -> list[str | None]:
        ids: list[str | None] = self.raw[self.key].to_pylist()
        return ids

    def keys(self) -> list[str]:
        """The distinct keys of the valid records, in order."""
        column = self.data[self.key].to_pylist()
        return list(
            dict.fromkeys(k for k, e in zip(column, self.errors, strict=True) if not e and k is not None)
        )

    def repeats_keys(self) -> bool:
        """Whether two valid records have the same key (hot: no loop in Python)."""
        keyed = self.data[self.key].filter(pa.array([not e for e in self.errors], pa.bool_())).drop_null()
        return bool(pc.count_distinct(keyed).as_py() != len(keyed))

    def mark_duplicates(self, fresh: set[str]) -> bool:
        """Refuse (DUPLICATE_KEY) each valid record whose key the batch saw before (`fresh`
        lacks it) or an earlier record of this chunk has; whether any was."""
        errors, seen, marked = self.errors, set(), False
        for i, key in enumerate(self.data[self.key].to_pylist()):
            if errors[i] or key is None:
                continue
            if key not in fresh or key in seen:
                message = f"{self.key} {key!r} appears earlier in this batch"
                errors[i], marked = (FieldError("DUPLICATE_KEY", message, self.key),), True
            else:
                seen.add(key)
        return marked

    def error_rows(self) -> list[dict[str, Any]]:
        """The refused records' rows for the errors table."""
        if all(not e for e in self.errors):
            return []
        ids, first = self.external_ids(), self.first
        return [error_row(first + i, ids[i], e) for i, errors in enumerate(self.errors) for e in errors]

    def to_records(self) -> list[StagedRecord]:
        """The chunk's records as the record path keeps them (for the slower readers of chunks)."""
        names = self.names
        raw = [self.raw[n].to_pylist() for n in names]
        data = [
            self.data[n].to_pylist() if self.data[n] is not self.raw[n] else raw[k]
            for k, n in enumerate(names)
        ]
        ids = self.external_ids()
        out = []
        for i, errors in enumerate(self.errors):
            values = {n: v for n, column in zip(names, raw, strict=True) if (v := column[i]) is not None}
            kept = (
                None
                if errors
                else {n: v for n, column in zip(names, data, strict=True) if (v := column[i]) is not None}
            )
            out.append(StagedRecord(self.first + i, ids[i], values, kept, errors))
        return out

    # the payload ------------------------------------------------------------------

    def encode(self) -> str:
        arrays, fields = [], []
        for name in self.names:
            arrays.append(self.raw[name])
            fields.append(pa.field(f"r:{name}", pa.string()))
            if self.data[name] is not self.raw[name]:
                arrays.append(self.data[name])
                fields.append(pa.field(f"d:{name}", pa.string()))
        errors = [
            _ENCODER.encode([[e.code, e.message, e.field] for e in x]).decode() if x else None
            for x in self.errors
        ]
        arrays.append(pa.array(errors, pa.string()))
        fields.append(pa.field("errors", pa.string()))
        meta = {"first": str(self.first), "key": self.key, "names": _ENCODER.encode(self.names).decode()}
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        return MARK + base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")

    @classmethod
    def decode(cls, payload: str) -> ColumnChunk:
        """The chunk `encode` wrote; ValueError when `payload` is not one."""
        try:
            buffer = base64.b64decode(payload[len(MARK) :], validate=True)
            table = pa.ipc.open_stream(buffer).read_all()
        except (ValueError, pa.ArrowException) as exc:
            raise ValueError(f"not a chunk in column form: {exc}") from exc
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        names = tuple(_DECODER.decode(meta["names"]))
        raw = {n: table.column(f"r:{n}").combine_chunks() for n in names}
        present = set(table.column_names)
        data = {n: table.column(f"d:{n}").combine_chunks() if f"d:{n}" in present else raw[n] for n in names}
        errors = [
            tuple(FieldError(*e) for e in _DECODER.decode(x)) if x is not None else ()
            for x in table.column("errors").to_pylist()
        ]
        return cls(int(meta["first"]), names, raw, data, errors, meta["key"])


@dataclass(slots=True)
class ColumnApplied:
    """What applying a chunk in column form did with its valid records, in order: each
    one's action and entity id (text), and the few that failed or have a note, by their
    place among the valid ones."""

    actions: list[str | None]
    entity_ids: list[str | None]
    errors: dict[int, FieldError] = dataclasses.field(default_factory=dict)
    notes: dict[int, FieldError] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, applied: Sequence[Applied]) -> ColumnApplied:
        """From one Applied per valid record, in order."""
        return cls(
            [a.action.value if a.action else None for a in applied],
            [a.entity_id for a in applied],
            {n: a.error for n, a in enumerate(applied) if a.error is not None},
            {n: a.note for n, a in enumerate(applied) if a.note is not None},
        )


def is_column_payload(payload: str) -> bool:
    return payload.startswith(MARK)


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


# staging ----------------------------------------------------------------------------


class Validator(typing.Protocol):
    def validate_many(
        self, raws: Sequence[Mapping[str, Any]]
    ) -> list[tuple[dict[str, Any] | None, tuple[FieldError, ...]]]: ...


def stage_columns(
    plans: Sequence[FieldPlan],
    key: str,
    validator: Validator,
    first: int,
    raw: dict[str, pa.Array],
    problems: Mapping[int, tuple[str, str]],
) -> ColumnChunk | None:
    """Validate a chunk's records into column form: `raw[name]` the values read of every
    field (string arrays, null: absent), `problems` the records that could not be read (by
    position). None when a record validated the record way keeps a value that is not text
    (the record path takes the chunk then)."""
    names = tuple(p.name for p in plans)
    count = len(raw[names[0]])
    plain = _plain(plans, raw, count)
    data = _with_defaults(plans, raw)
    errors: list[tuple[FieldError, ...]] = [()] * count
    for i, problem in problems.items():
        errors[i] = (FieldError(*problem),)
    others = [i for i, ok in enumerate(plain) if not ok and i not in problems]
    if others:
        table = pa.Table.from_arrays([raw[n] for n in names], names=list(names)).take(others)
        values = [{n: v for n, v in row.items() if v is not None} for row in table.to_pylist()]
        changed: dict[str, dict[int, str | None]] = {}
        for i, (kept, refused) in zip(others, validator.validate_many(values), strict=True):
            if kept is None:
                errors[i] = refused
            elif not _changes(names, i, kept, changed):
                return None
        data = _changed(raw, data, changed)
    return ColumnChunk(first, names, raw, data, errors, key)


def records_to_columns(
    names: Sequence[str], values: Sequence[Mapping[str, Any]]
) -> dict[str, pa.Array] | None:
    """Records' values (RawRecord.values) as string arrays; None when one holds anything but
    text or a field the type does not have."""
    known = set(names)
    if not all(v.__class__ is str and name in known for record in values for name, v in record.items()):
        return None
    return {n: pa.array([v.get(n) for v in values], pa.string()) for n in names}


def _plain(plans: Sequence[FieldPlan], raw: dict[str, pa.Array], count: int) -> list[bool]:
    """Which records every rule passes (an absent value passes when the field is optional)."""
    ok = pa.array([True] * count, pa.bool_())
    for plan in plans:
        values = raw[plan.name]
        passed = pc.if_else(pc.is_null(values), not plan.required, plan.rule.plain(values))
        ok = pc.and_(ok, passed)
    plain: list[bool] = ok.to_pylist()
    return plain


def _with_defaults(plans: Sequence[FieldPlan], raw: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """The data columns of plain records: the values read, an absent field's default in its place."""
    data = dict(raw)
    for plan in plans:
        if plan.default is not None and raw[plan.name].null_count:
            data[plan.name] = pc.fill_null(raw[plan.name], plan.default)
    return data


def _changes(
    names: Sequence[str], i: int, kept: Mapping[str, Any], changed: dict[str, dict[int, str | None]]
) -> bool:
    """Note record i's validated values (every field, None: absent); False when one is not text."""
    for name in names:
        value = kept.get(name)
        if value is not None and value.__class__ is not str:
            return False
        changed.setdefault(name, {})[i] = value
    return True


def _changed(
    raw: dict[str, pa.Array], data: dict[str, pa.Array], changed: dict[str, dict[int, str | None]]
) -> dict[str, pa.Array]:
    """The data columns with the values of records validated the record way put in."""
    out = dict(data)
    for name, values in changed.items():
        column = data[name].to_pylist()
        if any(column[i] != v for i, v in values.items()):
            for i, value in values.items():
                column[i] = value
            out[name] = pa.array(column, pa.string())
    return out
