"""Billing record types (TYPES.md, billing): customers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, bindparam, insert, select, update

from loadbay.core.records import Action, Applied, StagedRecord
from loadbay.core.types import ApplyContext, BatchType
from loadbay.db.tables import billing_customers
from loadbay.types.iso import COUNTRIES, CURRENCIES

__all__ = ["CustomerRecord", "CustomerType"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STATUSES = ("Active", "Cancelled", "Suspended", "Draft")


def _status(value: Any) -> Any:
    """Accept a status in any letter case and store its canonical spelling."""
    if isinstance(value, str):
        for status in _STATUSES:
            if value.strip().lower() == status.lower():
                return status
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


class CustomerType(BatchType):
    """Customers, upserted by customer_number."""

    name = "billing.customer"
    key = "customer_number"
    model = CustomerRecord
    description = "Billing customers, created or updated by customer_number."

    def apply(self, conn: Connection, ctx: ApplyContext, records: Sequence[StagedRecord]) -> list[Applied]:
        rows = {r.index: _row(r) for r in records if r.data is not None}
        existing = _existing(conn, ctx.account_id, [row["customer_number"] for row in rows.values()])
        now = datetime.now(UTC)
        new = [row for row in rows.values() if row["customer_number"] not in existing]
        changed = [
            row
            for row in rows.values()
            if row["customer_number"] in existing and _differs(row, existing[row["customer_number"]])
        ]
        ids = {number: row["id"] for number, row in existing.items()}
        ids |= _insert(conn, ctx.account_id, new, now)
        _update(conn, ctx.account_id, changed, now)
        changed_keys = {row["customer_number"] for row in changed}
        return [
            _applied(index, row["customer_number"], existing, changed_keys, ids)
            for index, row in rows.items()
        ]


def _row(record: StagedRecord) -> dict[str, Any]:
    assert record.data is not None
    row = {name: record.data.get(name) for name in CustomerRecord.model_fields}
    row["balance"] = Decimal(str(row["balance"]))
    return row


def _existing(conn: Connection, account_id: int, numbers: list[str]) -> dict[str, dict[str, Any]]:
    """The stored customers among `numbers`, by customer_number (one query per 500)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(numbers), 500):
        query = select(billing_customers).where(
            billing_customers.c.account_id == account_id,
            billing_customers.c.customer_number.in_(numbers[start : start + 500]),
        )
        for row in conn.execute(query).mappings():
            found[row["customer_number"]] = dict(row)
    return found


def _differs(row: dict[str, Any], stored: dict[str, Any]) -> bool:
    return any(row[name] != stored[name] for name in _FIELDS)


def _insert(conn: Connection, account_id: int, rows: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Insert new customers in one executemany; their ids by customer_number."""
    if not rows:
        return {}
    extra = {"account_id": account_id, "revision": 1, "created_at": now, "updated_at": now}
    c = billing_customers.c
    statement = insert(billing_customers).returning(c.customer_number, c.id)
    result = conn.execute(statement, [row | extra for row in rows])
    return {number: entity_id for number, entity_id in result}


def _update(conn: Connection, account_id: int, rows: list[dict[str, Any]], now: datetime) -> None:
    if not rows:
        return
    c = billing_customers.c
    statement = (
        update(billing_customers)
        .where(c.account_id == account_id, c.customer_number == bindparam("key"))
        .values({name: bindparam(f"v_{name}") for name in _FIELDS})
        .values(revision=c.revision + 1, updated_at=now)
    )
    params = [{f"v_{k}": v for k, v in row.items()} | {"key": row["customer_number"]} for row in rows]
    conn.execute(statement, params)


def _applied(
    index: int,
    number: str,
    existing: dict[str, dict[str, Any]],
    changed: set[str],
    ids: dict[str, int],
) -> Applied:
    if number not in existing:
        action = Action.CREATED
    else:
        action = Action.UPDATED if number in changed else Action.UNCHANGED
    return Applied(index=index, action=action, entity_id=str(ids[number]))
