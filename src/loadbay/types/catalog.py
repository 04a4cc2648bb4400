"""Catalog record types (TYPES.md, catalog): Alliant's UserX items, one type per dimension.

An item is the seed's nested camelCase JSON. Dimension X (1-9, the X in `UserXs`)
names two of its fields (`userXBOMHeaders[].userXBOMDetails[].udKeyXReference`),
so each dimension has its own model and its own batch type, `catalog.user1` …
`catalog.user9`: keys, duplicates and parents are per dimension.

In every object of the item, a key starting with `ud` that is not a known field is
a user-defined value, kept as given; at the item's top level `udLookup_*` keys are
UD lookup fields (validated: ranges and dates). Any other unknown key is refused
with `UNKNOWN_FIELD`, so a `user2BOMHeaders` sent to dimension 1 is not lost silently.

The type's columns are the item's top-level fields and `userDefined` (a `RestColumn`): in
a result file it holds the item's top-level keys that no column names (its `ud…` and
`udLookup_…` values) as one JSON object, and a record that gives it (a result file sent
again) has the object spread out into the item, so that fixing and sending again keeps
them. A nested column's value may likewise be JSON text, as a result file writes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails, PydanticCustomError
from sqlalchemy import Connection

from loadbay.core.results import RestColumn
from loadbay.core.types import ApplyContext, field_errors
from loadbay.db import repository as repo
from loadbay.db.tables import catalog_userx
from loadbay.domain.records import FieldError, StagedRecord
from loadbay.readers import Columns, unstorable
from loadbay.types.numbers import Integer
from loadbay.types.upsert import UpsertSpec, UpsertType, find

__all__ = ["DIMENSIONS", "USER_DEFINED", "UserXType", "catalog_types", "item_model", "type_name"]

DIMENSIONS = range(1, 10)
_UD = "ud*"  # the container a part's free `ud…` values are gathered into while validating
_LOOKUPS = "udLookup_*"  # the container of an item's UD lookup fields
_CONTAINERS = frozenset({_UD, _LOOKUPS})
_FREE_DEPTH = 32  # how deep a user-defined value may nest
# The column of an item's top-level values that no other column names (see the docstring).
USER_DEFINED = RestColumn("userDefined")


def type_name(dimension: int) -> str:
    return f"catalog.user{dimension}"


# values ----------------------------------------------------------------------


def json_number(value: Decimal) -> int | float | str:
    """A Decimal as a JSON number (a string only when no float can hold it)."""
    if value == value.to_integral_value() and abs(value) < 10**18:
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else str(value)


def _plain(value: Any) -> Any:
    """A free value as plain JSON (numbers read as Decimal become JSON numbers again)."""
    return json.loads(json.dumps(value, default=_decimal))


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return json_number(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _shallow(value: Any) -> Any:
    """A user-defined value nests at most _FREE_DEPTH levels (no recursion: it may be deep)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > _FREE_DEPTH:
            raise PydanticCustomError(
                "INVALID_VALUE", "nests more than {limit} levels deep", {"limit": _FREE_DEPTH}
            )
        if isinstance(item, dict):
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
    return value


def _range(value: str) -> str:
    """`"a:b"` with two numbers, a ≤ b (INVALID_RANGE); kept as given."""
    low, high = _bounds(value)
    if low > high:
        raise PydanticCustomError("INVALID_RANGE", "range {value}: {low} is above {high}", _ctx(value))
    return value


def _bounds(value: str) -> tuple[Decimal, Decimal]:
    parts = value.split(":")
    try:
        numbers = [Decimal(part.strip()) for part in parts]
    except InvalidOperation:
        numbers = []
    if len(numbers) != 2 or not all(n.is_finite() for n in numbers):
        raise PydanticCustomError("INVALID_RANGE", "range {value} is not 'a:b' with two numbers", _ctx(value))
    return numbers[0], numbers[1]


def _ctx(value: str) -> dict[str, str]:
    low, _, high = value.partition(":")
    return {"value": repr(value), "low": low.strip(), "high": high.strip()}


def _check_order(start: datetime | None, end: datetime | None, names: tuple[str, str]) -> None:
    """INVALID_DATE_RANGE when `end` is before `start` (a time without offset counts as UTC)."""
    if start is None or end is None or _utc(start) <= _utc(end):
        return
    raise PydanticCustomError(
        "INVALID_DATE_RANGE",
        "{end_name} {end} is before {start_name} {start}",
        {"start_name": names[0], "end_name": names[1], "start": start.isoformat(), "end": end.isoformat()},
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _flag(value: Any) -> Any:
    """A flag: JSON's true or false, or that text in any letter case (a CSV cell, a result file
    sent again; Json.NET reads it so too). pydantic's bool also takes "yes", "on", "1", 1 or
    "t", and would store true for them, which the client never sent."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        shown = json.dumps(value, default=str)
        raise PydanticCustomError(
            "INVALID_VALUE", "must be true or false, not {value}", {"value": shown[:40]}
        )
    return value


def _some_text(value: str) -> str:
    """An id of white space alone is no id (an id is kept as sent, its white space with it)."""
    if not value.strip():
        raise PydanticCustomError("INVALID_VALUE", "must not be white space alone")
    return value


Range = Annotated[str, AfterValidator(_range)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Number = Annotated[Decimal, Field(max_digits=28), PlainSerializer(json_number, when_used="json")]
FreeValue = Annotated[Any, AfterValidator(_shallow)]


# the item's parts --------------------------------------------------------------


class _Part(BaseModel):
    """One JSON object of an item: its known fields, plus free `ud…` values kept as given."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="forbid",
        coerce_numbers_to_str=True,
        json_schema_extra={"patternProperties": {"^ud": {}}},
    )
    free_prefixes: ClassVar[tuple[tuple[str, str], ...]] = (("ud", _UD),)

    ud: SkipJsonSchema[dict[str, FreeValue]] = Field(default_factory=dict, alias=_UD, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, value: Any) -> Any:
        """Move free keys into their containers, so that only unknown keys are refused."""
        if not isinstance(value, dict):
            return value
        known = _known(cls)
        out: dict[str, Any] = {}
        for key, item in value.items():
            container = None if key in known else cls._container(key)
            if container is None:
                out[key] = item
            else:
                out.setdefault(container, {})[key] = item
        return out

    @classmethod
    def _container(cls, key: Any) -> str | None:
        for prefix, container in cls.free_prefixes:
            if isinstance(key, str) and key.startswith(prefix):
                return container
        return None

    @model_serializer(mode="wrap")
    def _spread(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Put the free values back where they came from (user-defined ones as plain JSON)."""
        data: dict[str, Any] = handler(self)
        data.update(data.pop(_LOOKUPS, {}))
        data.update(_plain(self.ud))
        return data


@cache
def _known(cls: type[BaseModel]) -> frozenset[str]:
    """The keys a part knows (its fields' aliases), containers aside."""
    return frozenset(f.alias or n for n, f in cls.model_fields.items()) - _CONTAINERS


class Reference(_Part):
    id: str | None = None


class DescriptionReference(_Part):
    description: str | None = None


class ProcedureReference(_Part):
    registered_prodedure_name: str | None = None  # the seed's spelling


class NameReference(_Part):
    name: str | None = None


class LookupItem(_Part):
    """One of a UD lookup field's `udfLookupItems`."""

    amount1_range: Range | None = None
    amount2_range: Range | None = None
    contact1_reference: Reference | None = None
    contact2_reference: Reference | None = None
    contact3_reference: Reference | None = None
    contact4_reference: Reference | None = None
    end_actual_period_reference: Reference | None = None
    end_other_period_reference: Reference | None = None
    end_posted_period_reference: Reference | None = None
    from_date: datetime | None = None
    price1_range: Range | None = None
    price2_range: Range | None = None
    rate1_range: Range | None = None
    rate2_range: Range | None = None
    rate3_range: Range | None = None
    sort_order_number: Integer | None = None
    start_actual_period_reference: Reference | None = None
    start_other_period_reference: Reference | None = None
    start_posted_period_reference: Reference | None = None
    text1: str | None = None
    text2: str | None = None
    to_date: datetime | None = None
    ud_key_x_hierarchy_type_reference: Reference | None = None
    ud_key_x_list_reference: DescriptionReference | None = None
    ud_key_x_reference: Reference | None = None
    unit1_range: Range | None = None
    unit2_range: Range | None = None

    @field_validator("to_date")
    @classmethod
    def _dates_in_order(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        _check_order(info.data.get("from_date"), value, ("fromDate", "toDate"))
        return value


class UdLookup(_Part):
    """A `udLookup_*` field of the item."""

    udf_lookup_items: list[LookupItem] = Field(default_factory=list)


class BomDetail(_Part):
    """One of a BOM header's `userXBOMDetails` (the subclass per dimension adds `udKeyXReference`)."""

    allocation_percent: Number | None = None
    large_sort_order_number: Integer | None = None
    quantity: Number | None = None


class BomHeader(_Part):
    """One of the item's `userXBOMHeaders` (the subclass per dimension names `details`)."""

    allocation_method_reference: ProcedureReference | None = None
    allocation_udf_reference: NameReference | None = Field(default=None, alias="allocationUDFReference")
    effective_from_date: datetime | None = None
    effective_to_date: datetime | None = None
    details: list[BomDetail] = Field(default_factory=list)

    @field_validator("effective_to_date")
    @classmethod
    def _dates_in_order(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        _check_order(info.data.get("effective_from_date"), value, ("effectiveFromDate", "effectiveToDate"))
        return value

    @field_validator("details")
    @classmethod
    def _allocation_is_whole(cls, details: list[BomDetail]) -> list[BomDetail]:
        """When the details give allocationPercent, they share out exactly 100."""
        given = [d.allocation_percent for d in details if d.allocation_percent is not None]
        if given and sum(given) != 100:
            raise PydanticCustomError(
                "ALLOCATION_NOT_100", "allocationPercent sums to {total}, not 100", {"total": str(sum(given))}
            )
        return details


class Item(_Part):
    """A UserX item (the subclass per dimension names `bom_headers`)."""

    model_config = ConfigDict(
        json_schema_extra={"patternProperties": {"^udLookup_": {"type": "object"}, "^ud": {}}}
    )
    free_prefixes = (("udLookup_", _LOOKUPS), ("ud", _UD))

    admin_class_reference: Reference | None = None
    comment: str | None = None
    description: str | None = Field(default=None, max_length=500)
    id: Annotated[str, AfterValidator(_some_text)] = Field(min_length=1, max_length=50)
    ip_rights_bearing_flag: Flag | None = None
    parent_reference: Reference | None = None
    royalty_bearing_flag: Flag | None = None
    lookups: SkipJsonSchema[dict[str, UdLookup]] = Field(default_factory=dict, alias=_LOOKUPS)
    bom_headers: list[BomHeader] = Field(default_factory=list)


@cache
def item_model(dimension: int) -> type[Item]:
    """The item model of dimension X: `userXBOMHeaders[].userXBOMDetails[].udKeyXReference`."""
    detail = create_model(
        f"User{dimension}BOMDetail",
        __base__=BomDetail,
        ud_key_reference=(Reference | None, Field(default=None, alias=f"udKey{dimension}Reference")),
    )
    header = create_model(
        f"User{dimension}BOMHeader",
        __base__=BomHeader,
        details=(list[detail], Field(default_factory=list, alias=f"user{dimension}BOMDetails")),
    )
    return create_model(
        f"User{dimension}Item",
        __base__=Item,
        bom_headers=(list[header], Field(default_factory=list, alias=f"user{dimension}BOMHeaders")),
    )


def _located(errors: Iterable[ErrorDetails]) -> list[ErrorDetails]:
    """pydantic's errors with the containers left out of each location, and unknown keys
    as UNKNOWN_FIELD."""
    out = []
    for error in errors:
        copy = error.copy()
        copy["loc"] = tuple(part for part in error["loc"] if part not in _CONTAINERS)
        if error["type"] == "extra_forbidden":
            copy["type"] = "UNKNOWN_FIELD"
            copy["msg"] = "unknown field (user-defined fields start with ud)"
        out.append(copy)
    return out


# reading a result file back ------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# JSON text in a cell, read as the readers read JSON: a number with a fraction as a Decimal.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What reading a record back needs of a dimension's columns: the nested ones (an object
    or a list, which a CSV cell holds as JSON text) and every column, case-folded."""

    nested: frozenset[str]
    folded: frozenset[str]


def _item_of(raw: Mapping[str, Any], shape: _Shape) -> dict[str, Any] | FieldError:
    """The item a record gives: a nested column's JSON text decoded (text that is not JSON is
    left for the model to refuse), the userDefined column's object spread out (in turn, for
    an object that holds userDefined itself); INVALID_VALUE when a value cannot be so read."""
    item: dict[str, Any] = {}
    for key, value in raw.items():
        if key in shape.nested and isinstance(value, str):
            decoded = _decoded(value)
            if decoded is not None and (found := unstorable(decoded)) is not None:
                return _not_read(key, f"a value holds {found}, which text cannot hold")
            value = value if decoded is None else decoded
        if key != USER_DEFINED:
            item[key] = value
    pending = [raw.get(USER_DEFINED)]
    while pending:
        given = _user_defined(pending.pop())
        if isinstance(given, FieldError):
            return given
        for key, value in given.items():
            if key == USER_DEFINED:
                pending.append(value)
            elif key in item or key.casefold() in shape.folded:
                where = "is given twice" if key in item else "has a column of its own"
                return _not_read(USER_DEFINED, f"{key!r} {where}")
            else:
                item[key] = value
    return item


def _user_defined(given: Any) -> dict[str, Any] | FieldError:
    """The values a userDefined value holds: an object, or its JSON text (nothing, if empty)."""
    if given is None or given == "":
        return {}
    value = _decoded(given) if isinstance(given, str) else given
    if not isinstance(value, dict):
        return _not_read(USER_DEFINED, "not a JSON object of the item's user-defined values")
    if (found := unstorable(value)) is not None:
        return _not_read(USER_DEFINED, f"a value holds {found}, which text cannot hold")
    return value


def _decoded(text: str) -> Any:
    """JSON text's value; None when it is not JSON (or nests too deep to read)."""
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None


def _not_read(column: str, why: str) -> FieldError:
    return FieldError("INVALID_VALUE", f"{column}: {why}", str(column))


@cache
def _shape(model: type[Item]) -> _Shape:
    nested = set()
    for name, field in model.model_fields.items():
        alias = field.alias or name
        kind = _without_none(field.annotation)
        if alias not in _CONTAINERS and (get_origin(kind) is list or _is_model(kind)):
            nested.add(alias)
    names = _column_names(model)
    return _Shape(frozenset(nested), frozenset(n.casefold() for n in names))


def _without_none(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _column_names(model: type[Item]) -> tuple[str, ...]:
    """The item's top-level fields, then userDefined."""
    fields = model.model_fields.items()
    return (*(f.alias or n for n, f in fields if f.alias not in _CONTAINERS), USER_DEFINED)


# the batch type ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parents:
    """What the parents of one chunk's items can be: stored items, and keys the batch has
    seen (earlier chunks, and this chunk)."""

    stored: set[str]
    seen: set[str]

    def refuses(self, parent: str, pending: set[str]) -> bool:
        """True unless `parent` is stored, or was seen and is not one of this chunk's keys
        still waiting (a later item, or an earlier one refused)."""
        return parent not in self.stored and (parent not in self.seen or parent in pending)


# Every column of an item derives from its JSON (`data`): that alone says whether it changed.
ITEMS = UpsertSpec(
    catalog_userx,
    ("account_id", "dimension", "item_id"),
    ("parent_item_id", "description", "data"),
    compare=("data",),
)


class UserXType(UpsertType):
    """Alliant UserX items of one dimension, upserted by (account, dimension, id)."""

    key = "id"
    target = ITEMS
    applies_while_validating = False  # check reads stored items and the batch's keys (parents)
    validates_in_bulk = False  # validate places errors outside containers and dumps by alias
    dimension: ClassVar[int]
    model: ClassVar[type[Item]]

    def columns(self) -> Columns:
        names = _column_names(self.model)
        return Columns(names=names, required=("id",), blank_is_absent=False)  # (its ud… values kept as given)

    def json_schema(self) -> dict[str, Any]:
        """The item's schema, with userDefined: its ud… values, as an object or its JSON text."""
        schema = self.model.model_json_schema()
        schema["properties"][str(USER_DEFINED)] = {
            "anyOf": [{"type": "object"}, {"type": "string"}],
            "description": "user-defined values (ud… and udLookup_… keys), spread into the item",
        }
        return schema

    def validate(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, tuple[FieldError, ...]]:
        item = _item_of(raw, _shape(self.model))
        if isinstance(item, FieldError):
            return None, (item,)
        try:
            parsed = self.model.model_validate(item)
        except ValidationError as exc:
            return None, field_errors(_located(exc.errors()))
        return parsed.model_dump(mode="json", by_alias=True, exclude_unset=True), ()

    def check(
        self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]
    ) -> list[StagedRecord]:
        """UNKNOWN_PARENT: a parent must be stored, or an item earlier in this batch."""
        wanted = {p for r in records if (p := _parent_of(r)) is not None}
        if not wanted:
            return list(records)
        stored = _stored(conn, ctx.account_id, self.dimension, wanted)
        parents = _Parents(stored, repo.seen_keys(conn, ctx.batch_id, sorted(wanted - stored)))
        return self._refuse_orphans(records, parents)

    def _refuse_orphans(self, records: Sequence[StagedRecord], parents: _Parents) -> list[StagedRecord]:
        pending = {r.data["id"] for r in records if r.data is not None}
        out = []
        for record in records:
            parent = _parent_of(record)
            if parent is not None and parents.refuses(parent, pending):
                record = replace(record, data=None, errors=(self._unknown_parent(parent),))
            if record.data is not None:
                pending.discard(record.data["id"])
            out.append(record)
        return out

    def _unknown_parent(self, parent: str) -> FieldError:
        message = (
            f"parentReference.id: no User{self.dimension} item {parent!r} is stored "
            "or comes earlier in this batch"
        )
        return FieldError("UNKNOWN_PARENT", message, "parentReference.id")

    def row(self, ctx: ApplyContext, data: Mapping[str, Any]) -> dict[str, Any]:
        """The item as stored: its JSON, with its id, parent and description as columns too."""
        return {
            "account_id": ctx.account_id,
            "dimension": self.dimension,
            "item_id": data["id"],
            "parent_item_id": (data.get("parentReference") or {}).get("id"),
            "description": data.get("description"),
            "data": json.dumps(data, sort_keys=True, separators=(",", ":")),
        }


def catalog_types() -> list[UserXType]:
    """One batch type per dimension: catalog.user1 … catalog.user9."""
    return [_type_of(dimension)() for dimension in DIMENSIONS]


def _type_of(x: int) -> type[UserXType]:
    class _UserX(UserXType):
        name = type_name(x)
        dimension = x
        model = item_model(x)
        description = f"Alliant User{x} items (Import User{x}s), upserted by id within dimension {x}."

    _UserX.__name__ = _UserX.__qualname__ = f"User{x}Type"
    return _UserX


def _parent_of(record: StagedRecord) -> str | None:
    if record.data is None:
        return None
    parent = (record.data.get("parentReference") or {}).get("id")
    return None if parent is None else str(parent)


def _stored(conn: Connection, account_id: int, dimension: int, ids: set[str]) -> set[str]:
    """The stored items among `ids`."""
    found = find(conn, ITEMS, [(account_id, dimension, item_id) for item_id in sorted(ids)])
    return {item_id for _, _, item_id in found}
