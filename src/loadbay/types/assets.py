"""Asset record types (TYPES.md, assets): external assets and terminal status reports.

Both are upserts keyed per account. An external asset is created, updated or left
unchanged. A terminal status report is the same, except that a report older than
the stored one is skipped (`STALE_STATUS`): the terminal has moved on since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Table

from loadbay.core.types import ApplyContext
from loadbay.db.tables import assets_external_assets, assets_terminal_statuses
from loadbay.domain.records import FieldError
from loadbay.types.iso import CURRENCIES
from loadbay.types.upsert import UpsertSpec, UpsertType

__all__ = [
    "ExternalAssetRecord",
    "ExternalAssetType",
    "TerminalStatusRecord",
    "TerminalStatusType",
]

BARCODE_LENGTH = 16
TERMINAL_STATUSES = ("online", "offline", "faulty", "decommissioned")

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


class _AssetType(UpsertType):
    """An assets type: its records upserted by (account, key); `converters` turn the
    validated JSON-ready values into the columns' Python values."""

    converters: ClassVar[Mapping[str, Callable[[str], Any]]] = {}

    def row(self, ctx: ApplyContext, data: Mapping[str, Any]) -> dict[str, Any]:
        row = {name: data.get(name) for name in self.model.model_fields}
        for name, convert in self.converters.items():
            if row[name] is not None:
                row[name] = convert(str(row[name]))
        row["account_id"] = ctx.account_id
        return row


def _spec(table: Table, model: type[BaseModel], key: str, newest: str | None = None) -> UpsertSpec:
    fields = tuple(name for name in model.model_fields if name != key)
    return UpsertSpec(table, ("account_id", key), fields, newest=newest)


class ExternalAssetType(_AssetType):
    """External assets (gift cards and the like), upserted by external_id."""

    name = "assets.external_asset"
    key = "external_id"
    model = ExternalAssetRecord
    target = _spec(assets_external_assets, ExternalAssetRecord, "external_id")
    converters = {"balance": Decimal, "expires_on": date.fromisoformat}
    description = "External assets (barcode, balance, expiry), created or updated by external_id."


class TerminalStatusType(_AssetType):
    """Terminal status reports, upserted by terminal_id; an older report than the stored one
    is skipped (STALE_STATUS), which is a success, not a failure."""

    name = "assets.terminal_status"
    key = "terminal_id"
    model = TerminalStatusRecord
    target = _spec(assets_terminal_statuses, TerminalStatusRecord, "terminal_id", newest="reported_at")
    converters = {"reported_at": datetime.fromisoformat}
    description = "Terminal status reports by terminal_id; a report older than the stored one is skipped."

    def skipped(self, row: Mapping[str, Any], stored: Mapping[str, Any]) -> FieldError:
        reported, kept = row["reported_at"], stored["reported_at"]
        message = f"reported_at {reported.isoformat()} is older than the stored report of {kept.isoformat()}"
        return FieldError("STALE_STATUS", message, "reported_at")
