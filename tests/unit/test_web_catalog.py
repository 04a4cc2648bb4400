"""The new-import page's words for each column's rule, from the type's JSON Schema."""

from __future__ import annotations

from loadbay.api.web import _ONE_OF, _entry, _rule, _sent_elsewhere, _with_places
from loadbay.core.types import API_REFERENCE, DocsPage
from loadbay.types import default_registry
from loadbay.types.mail import MailJobType


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


def test_rules_a_validator_or_a_field_adds() -> None:
    assert _rule({"type": "string", "maxLength": 320}, checked="an email address") == (
        "an email address, at most 320 characters"
    )
    number = _rule({"anyOf": [{"type": "number"}, {"type": "string"}], "default": "0"})
    assert _with_places(number, 2) == "a number, at most 2 decimal places; default 0"
    assert _with_places("a number, more than 0", 1) == "a number, more than 0, at most 1 decimal place"
    assert _with_places("text", 2) == "text"
    assert _rule({"type": "integer", "minimum": -(2**63)}) == "a whole number"  # the database's bound


def test_columns_say_what_is_checked_and_which_stand_in_for_each_other() -> None:
    entries = {t.name: _entry(t) for t in default_registry()}
    customer = {c.name: c for c in entries["billing.customer"].columns}
    assert customer["email"].rule == "an email address, at most 320 characters"
    assert customer["country"].rule.startswith("a two-letter country code")
    assert customer["balance"].rule == "a number, at most 2 decimal places; default 0"
    assert customer["phone"].rule == "text, at most 40 characters"  # no validator, no claim
    payment = entries["billing.payment"]
    assert payment.one_of == ("customer_id", "customer_number")
    assert {c.name: c.or_else for c in payment.columns if c.or_else} == {
        "customer_id": ("customer_number",),
        "customer_number": ("customer_id",),
    }


def test_a_record_without_any_of_the_one_of_columns_is_refused() -> None:
    """The page's one-of table says what the types' own rules say."""
    types = {t.name: t for t in default_registry()}
    for name, columns in _ONE_OF.items():
        _, errors = types[name].validate({"amount": "5"})
        assert [e.code for e in errors] == ["REQUIRED"]
        assert all(c in errors[0].message for c in columns)


class _Postcards(MailJobType):
    """A type the dashboard has never heard of, sent through an API of its own."""

    name = "toy.postcard"
    named_by_position = "card-{n}"
    docs = DocsPage("/compat/toy/docs", "Toy API reference", "Postcards are sent through the toy API.")


def test_how_a_type_is_sent_elsewhere_is_what_it_declares() -> None:
    """The dashboard's callout for a type the new-import page does not take is the type's own
    docs page, whatever its name; a type that declares none links to the API reference."""
    postcards, mail = _sent_elsewhere(_Postcards()), _sent_elsewhere(MailJobType())
    assert postcards == {
        "text": "Postcards are sent through the toy API.",
        "href": "/compat/toy/docs",
        "label": "Toy API reference",
    }
    assert mail["href"] == "/compat/click2mail/docs" and "Click2Mail API" in mail["text"]
    carry = _sent_elsewhere(next(t for t in default_registry() if t.generates))
    assert (carry["href"], carry["label"]) == (API_REFERENCE.path, API_REFERENCE.title)
    assert "made by loadbay itself" in carry["text"]
    assert _Postcards().shown_key(2, None) == "card-3"
