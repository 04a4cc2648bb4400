"""Billing record types (TYPES.md, billing): customers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection

from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.tables import billing_customers
from loadbay.domain.records import Applied, StagedRecord
from loadbay.types.iso import COUNTRIES, CURRENCIES
from loadbay.types.upsert import Merge, Stored, UpsertSpec

__all__ = ["CustomerRecord", "CustomerType"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STATUSES = ("Active", "Cancelled", "Suspended", "Draft")


_CANONICAL = {status.lower(): status for status in _STATUSES}


def _status(value: Any) -> Any:
    """Accept a status in any letter case and store its canonical spelling."""
    if isinstance(value, str):
        return _CANONICAL.get(value.strip().lower(), value)
    return value


Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]


class CustomerRecord(BaseModel):
    """A row of a `billing.customer` file."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", coerce_numbers_to_str=True)

    customer_number: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = None
    currency: str = "USD"
    balance: Money = Decimal("0")
    status: Annotated[Literal["Active", "Cancelled", "Suspended", "Draft"], BeforeValidator(_status)] = (
        "Active"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise PydanticCustomError("INVALID_EMAIL", "not an email address: {value}", {"value": value})
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in COUNTRIES:
            raise PydanticCustomError(
                "INVALID_COUNTRY", "not an ISO 3166 alpha-2 country code: {value}", {"value": value}
            )
        return None if value is None else value.upper()

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value.upper() not in CURRENCIES:
            raise PydanticCustomError(
                "INVALID_CURRENCY", "not an ISO 4217 currency code: {value}", {"value": value}
            )
        return value.upper()


_FIELDS = tuple(f for f in CustomerRecord.model_fields if f != "customer_number")
CUSTOMERS = UpsertSpec(billing_customers, ("account_id", "customer_number"), _FIELDS)


class CustomerType(BatchType):
    """Customers, upserted by customer_number."""

    name = "billing.customer"
    key = "customer_number"
    model = CustomerRecord
    description = "Billing customers, created or updated by customer_number."

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        return self.apply_prepared(conn, ctx, records, self.prepare(ctx, records))

    def prepare(self, ctx: ApplyContext, records: Sequence[StagedRecord]) -> tuple[list[int], Merge]:
        """(the records' indexes, their customers ready to merge)."""
        rows = {r.index: _row(r, ctx.account_id) for r in records if r.data is not None}
        return list(rows), Merge(CUSTOMERS, list(rows.values()))

    def apply_prepared(
        self,
        conn: Connection,
        ctx: ApplyContext,
        records: Sequence[StagedRecord],
        prepared: tuple[list[int], Merge],
    ) -> list[Applied]:
        indexes, customers = prepared
        stored = customers.run(conn, datetime.now(UTC))
        return [_applied(i, stored[key]) for i, key in zip(indexes, customers.keys, strict=True)]


_COLUMNS = tuple(CustomerRecord.model_fields)


def _row(record: StagedRecord, account_id: int) -> dict[str, Any]:
    """The record's values as a row (the balance stays the validated decimal text)."""
    data = record.data
    assert data is not None
    row = {name: data.get(name) for name in _COLUMNS}
    row["account_id"] = account_id
    return row


def _applied(index: int, stored: Stored) -> Applied:
    return Applied(index=index, action=stored.action, entity_id=str(stored.id))
