"""The reference batch types (TYPES.md) that loadbay ships."""

from __future__ import annotations

from loadbay.core.types import TypeRegistry
from loadbay.types.billing import CustomerType

__all__ = ["default_registry"]


def default_registry() -> TypeRegistry:
    return TypeRegistry([CustomerType()])
