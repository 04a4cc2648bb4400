"""Whole-number fields of the record types."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticKnownError

__all__ = ["Integer", "RowId"]


def _not_a_boolean(value: Any) -> Any:
    """A boolean is not a number: JSON `true` is no 1 (pydantic's int would read it as 1)."""
    if isinstance(value, bool):
        raise PydanticKnownError("int_type")
    return value


Integer = Annotated[int, BeforeValidator(_not_a_boolean)]
RowId = Annotated[Integer, Field(ge=-(2**63), lt=2**63)]  # what a BIGINT id column can hold
