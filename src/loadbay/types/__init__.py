"""The reference batch types (TYPES.md) that loadbay ships."""

from __future__ import annotations

from loadbay.core.types import TypeRegistry
from loadbay.types.assets import ExternalAssetType, TerminalStatusType
from loadbay.types.billing import CustomerType
from loadbay.types.carry_forward import CARRY_FORWARD
from loadbay.types.catalog import catalog_types
from loadbay.types.invoices import InvoiceLineType, InvoiceType
from loadbay.types.mail import MailJobType
from loadbay.types.memos import CreditMemoType, DebitMemoType
from loadbay.types.payments import PaymentType, WriteOffType

__all__ = ["default_registry"]

BILLING = (
    CustomerType(),
    InvoiceType(),
    InvoiceLineType(),
    CreditMemoType(),
    DebitMemoType(),
    PaymentType(),
    WriteOffType(),
    *CARRY_FORWARD,
)


def default_registry() -> TypeRegistry:
    return TypeRegistry(
        [*BILLING, ExternalAssetType(), TerminalStatusType(), *catalog_types(), MailJobType()]
    )
