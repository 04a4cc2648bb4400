"""Asset record types (TYPES.md, assets): external assets and terminal status reports.

Both are upserts keyed per account. An external asset is created, updated or left
unchanged. A terminal status report is the same, except that a report older than
the stored one is skipped (`STALE_STATUS`): the terminal has moved on since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, Select, Table, bindparam, insert, select, update

from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.tables import assets_external_assets, assets_terminal_statuses
from loadbay.domain.records import Action, Applied, FieldError, StagedRecord
from loadbay.types.iso import CURRENCIES

__all__ = [
    "ExternalAssetRecord",
    "ExternalAssetType",
    "TerminalStatusRecord",
    "TerminalStatusType",
]

BARCODE_LENGTH = 16
TERMINAL_STATUSES = ("online", "offline", "faulty", "decommissioned")
_LOOKUP = 500  # keys per SELECT … IN (…)

_RECORD_CONFIG = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)


def _timestamp(value: Any) -> Any:
    """An ISO 8601 timestamp with a UTC offset (`Z` or `±hh:mm`); nothing else is a time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _bad_timestamp(value, "is not an ISO 8601 timestamp") from None
    else:
        raise _bad_timestamp(value, "is not an ISO 8601 timestamp")
    if parsed.tzinfo is None:
        raise _bad_timestamp(value, "has no UTC offset (add Z or +hh:mm)")
    return parsed


def _bad_timestamp(value: Any, why: str) -> PydanticCustomError:
    return PydanticCustomError("INVALID_TIMESTAMP", "{value} " + why, {"value": value})


Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp)]


class ExternalAssetRecord(BaseModel):
    """A row of an `assets.external_asset` file (Centrapay's farmlands-external-asset)."""

    model_config = _RECORD_CONFIG

    external_id: str = Field(min_length=1, max_length=100)
    barcode: str
    description: str | None = Field(default=None, max_length=500)
    balance: Money | None = None
    currency: str | None = None
    expires_on: date | None = None

    @field_validator("barcode")
    @classmethod
    def _barcode(cls, value: str) -> str:
        if not (value.isascii() and value.isdigit()):
            raise PydanticCustomError(
                "INVALID_BARCODE", "barcode has characters other than digits: {value}", {"value": value}
            )
        if len(value) != BARCODE_LENGTH:
            raise PydanticCustomError(
                "INVALID_BARCODE_LENGTH",
                "barcode has {length} digits; it needs {expected}",
                {"length": len(value), "expected": BARCODE_LENGTH},
            )
        return value

    @field_validator("balance")
    @classmethod
    def _balance(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise PydanticCustomError(
                "NEGATIVE_BALANCE", "balance cannot be negative: {value}", {"value": str(value)}
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in CURRENCIES:
            raise PydanticCustomError(
                "INVALID_CURRENCY", "not an ISO 4217 currency code: {value}", {"value": value}
            )
        return value.upper()


class TerminalStatusRecord(BaseModel):
    """A row of an `assets.terminal_status` file (Centrapay's verifone-terminal-status)."""

    model_config = _RECORD_CONFIG

    terminal_id: str = Field(min_length=1, max_length=100)
    status: str
    reported_at: Timestamp
    merchant_id: str | None = Field(default=None, max_length=100)
    location: str | None = Field(default=None, max_length=500)

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        """Any letter case; stored in lower case."""
        if value.lower() not in TERMINAL_STATUSES:
            allowed = ", ".join(TERMINAL_STATUSES)
            raise PydanticCustomError(
                "INVALID_STATUS", "status {value} is not one of " + allowed, {"value": value}
            )
        return value.lower()


# applying -------------------------------------------------------------------


Decision = tuple[Action, FieldError | None]


class _UpsertType(BatchType):
    """A type whose records are upserted into `table` by (account, key), in bulk per chunk:
    one SELECT per 500 keys, one executemany INSERT, one executemany UPDATE."""

    table: ClassVar[Table]
    converters: ClassVar[Mapping[str, Callable[[str], Any]]] = {}  # JSON-ready value -> Python value
    lock: ClassVar[bool] = False  # hold the stored rows until commit (PostgreSQL)

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        rows = {r.index: self.row(r) for r in records if r.data is not None}
        stored = self._stored(conn, ctx.account_id, [row[self.key] for row in rows.values()])
        decisions = {index: self.decide(row, stored.get(row[self.key])) for index, row in rows.items()}
        now = datetime.now(UTC)
        ids = {key: row["id"] for key, row in stored.items()}
        ids |= self._insert(conn, ctx.account_id, _having(rows, decisions, Action.CREATED), now)
        self._update(conn, ctx.account_id, _having(rows, decisions, Action.UPDATED), now)
        return [
            Applied(index, action, str(ids[rows[index][self.key]]), note=note)
            for index, (action, note) in decisions.items()
        ]

    def row(self, record: StagedRecord) -> dict[str, Any]:
        """The validated record's JSON-ready values as the table stores them."""
        assert record.data is not None
        row = {name: record.data.get(name) for name in self.model.model_fields}
        for name, convert in self.converters.items():
            if row[name] is not None:
                row[name] = convert(str(row[name]))
        return row

    def decide(self, row: dict[str, Any], stored: dict[str, Any] | None) -> Decision:
        if stored is None:
            return Action.CREATED, None
        if any(row[name] != stored[name] for name in self._fields()):
            return Action.UPDATED, None
        return Action.UNCHANGED, None

    @classmethod
    @cache
    def _fields(cls) -> tuple[str, ...]:
        """The columns an update writes: every field but the key."""
        return tuple(name for name in cls.model.model_fields if name != cls.key)

    def _stored(self, conn: Connection, account_id: int, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored rows among `keys`, by key."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _LOOKUP):
            for row in conn.execute(
                self._select(account_id, sorted(keys[start : start + _LOOKUP]))
            ).mappings():
                found[row[self.key]] = dict(row)
        return found

    def _select(self, account_id: int, keys: list[str]) -> Select[Any]:
        key = self.table.c[self.key]
        query = select(self.table).where(self.table.c.account_id == account_id, key.in_(keys))
        return query.order_by(key).with_for_update() if self.lock else query

    def _insert(
        self, conn: Connection, account_id: int, rows: list[dict[str, Any]], now: datetime
    ) -> dict[str, int]:
        """Insert new rows in one executemany; their ids by key.

        A plain executemany and a SELECT of the ids: with RETURNING, SQLAlchemy sends one
        huge statement per 1,000 rows, which psycopg parses several times slower."""
        if not rows:
            return {}
        extra = {"account_id": account_id, "revision": 1, "created_at": now, "updated_at": now}
        conn.execute(insert(self.table), [row | extra for row in rows])
        inserted = self._stored(conn, account_id, [row[self.key] for row in rows])
        return {key: row["id"] for key, row in inserted.items()}

    def _update(self, conn: Connection, account_id: int, rows: list[dict[str, Any]], now: datetime) -> None:
        """Update changed rows in one executemany; each one's revision goes up by one."""
        if not rows:
            return
        c = self.table.c
        statement = (
            update(self.table)
            .where(c.account_id == account_id, c[self.key] == bindparam("k_key"))
            .values({name: bindparam(f"v_{name}") for name in self._fields()})
            .values(revision=c.revision + 1, updated_at=now)
        )
        params = [
            {f"v_{name}": row[name] for name in self._fields()} | {"k_key": row[self.key]} for row in rows
        ]
        conn.execute(statement, params)


def _having(
    rows: dict[int, dict[str, Any]], decisions: dict[int, Decision], action: Action
) -> list[dict[str, Any]]:
    return [row for index, row in rows.items() if decisions[index][0] is action]


class ExternalAssetType(_UpsertType):
    """External assets (gift cards and the like), upserted by external_id."""

    name = "assets.external_asset"
    key = "external_id"
    model = ExternalAssetRecord
    table = assets_external_assets
    converters = {"balance": Decimal, "expires_on": date.fromisoformat}
    description = "External assets (barcode, balance, expiry), created or updated by external_id."


class TerminalStatusType(_UpsertType):
    """Terminal status reports, upserted by terminal_id; an older report than the stored one
    is skipped (STALE_STATUS), which is a success, not a failure."""

    name = "assets.terminal_status"
    key = "terminal_id"
    model = TerminalStatusRecord
    table = assets_terminal_statuses
    converters = {"reported_at": datetime.fromisoformat}
    lock = True  # the staleness check must see the row a concurrent batch may be writing
    description = "Terminal status reports by terminal_id; a report older than the stored one is skipped."

    def decide(self, row: dict[str, Any], stored: dict[str, Any] | None) -> Decision:
        if stored is not None and row["reported_at"] < stored["reported_at"]:
            return Action.SKIPPED, _stale(row["reported_at"], stored["reported_at"])
        return super().decide(row, stored)


def _stale(reported: datetime, stored: datetime) -> FieldError:
    message = f"reported_at {reported.isoformat()} is older than the stored report of {stored.isoformat()}"
    return FieldError("STALE_STATUS", message, "reported_at")
