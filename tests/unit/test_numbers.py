"""Whole-number fields refuse a boolean: JSON `true` is no 1 (pydantic's int reads it as 1),
while a number or a string of digits (a CSV cell) is read as ever."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from loadbay.types.catalog import LookupItem
from loadbay.types.invoices import InvoiceLineType

LINE = {"invoice_number": "I-1", "quantity": "1", "unit_price": "2.50"}


@pytest.mark.parametrize(("value", "read"), [(3, 3), ("3", 3), (True, None), (False, None)])
def test_an_invoice_lines_number(value: Any, read: int | None) -> None:
    data, errors = InvoiceLineType().validate(LINE | {"line_number": value})
    if read is None:
        assert [(e.field, e.code) for e in errors] == [("line_number", "INVALID_VALUE")]
    else:
        assert errors == () and data is not None and data["line_number"] == read


def test_a_catalog_items_sort_order() -> None:
    assert LookupItem.model_validate({"sortOrderNumber": 2}).sort_order_number == 2
    with pytest.raises(ValidationError, match="valid integer"):
        LookupItem.model_validate({"sortOrderNumber": True})
