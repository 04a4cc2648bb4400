"""Billing record types (TYPES.md, billing): customers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from loadbay.core.columns import Choice, Matches, Rule, Text
from loadbay.db.tables import billing_customers
from loadbay.types.iso import COUNTRIES, CURRENCIES
from loadbay.types.upsert import UpsertSpec, UpsertType

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


class CustomerType(UpsertType):
    """Customers, upserted by customer_number."""

    name = "billing.customer"
    key = "customer_number"
    model = CustomerRecord
    target = CUSTOMERS
    description = "Billing customers, created or updated by customer_number."
    # The column path: each rule passes only values its validator keeps as they are.
    column_rules: ClassVar[Mapping[str, Rule] | None] = {
        "email": Matches(r"^[!-?A-~]+@[!-?A-~]+\.[!-?A-~]+$", Text(1, 320)),  # ASCII, no space
        "country": Choice(frozenset(COUNTRIES)),
        "currency": Choice(frozenset(CURRENCIES)),
        "status": Choice(frozenset(_STATUSES)),
    }
