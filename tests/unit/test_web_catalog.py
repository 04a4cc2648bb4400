"""The new-import page's words for each column's rule, from the type's JSON Schema."""

from __future__ import annotations

from loadbay.api.web import _entry, _rule
from loadbay.types import default_registry


def test_rules_in_words() -> None:
    assert _rule({"type": "string", "maxLength": 40, "minLength": 1}) == "text, at most 40 characters"
    assert _rule({"anyOf": [{"format": "date", "type": "string"}, {"type": "null"}], "default": None}) == (
        "a date, YYYY-MM-DD"
    )
    assert _rule({"anyOf": [{"exclusiveMinimum": 0.0, "type": "number"}, {"type": "string"}]}) == (
        "a number, more than 0"
    )
    assert _rule({"minimum": 1, "type": "integer"}) == "a whole number, at least 1"
    assert _rule({"enum": ["Active", "Draft"], "default": "Active", "type": "string"}) == (
        "one of Active, Draft; default Active"
    )
    assert (
        _rule({"anyOf": [{"$ref": "#/$defs/Reference"}, {"type": "null"}]})
        == "nested values (JSON files only)"
    )
    assert _rule({"anyOf": [{"type": "boolean"}, {"type": "null"}]}) == "true or false"
    assert _rule({}) == "text"


def test_every_registered_type_can_be_explained() -> None:
    entries = {t.name: _entry(t) for t in default_registry()}
    customer = entries["billing.customer"]
    assert customer.takes_file and customer.required == ["customer_number", "name"]
    assert entries["billing.invoice"].children == "line items (billing.invoice_line), sent as child batches"
    assert not entries["billing.carry_forward"].takes_file  # makes its own records
    assert not entries["mail.job"].takes_file  # needs its PDF first
