"""xmlsafe: the Content-Type's charset read as RFC 7303 says (over the document's own
declaration, under a byte order mark); children read by name, each at most once."""

from __future__ import annotations

import codecs
import re

import pytest

from loadbay.errors import InvalidInput
from loadbay.xmlsafe import charset_of, children_by_name, parse_xml

LATIN1 = '<?xml version="1.0" encoding="UTF-8"?><jobId>Zoë</jobId>'.encode("latin-1")


@pytest.mark.parametrize(
    ("header", "charset"),
    [
        ("application/xml; charset=ISO-8859-1", "ISO-8859-1"),
        ('text/xml;charset="utf-16"', "utf-16"),
        ("application/xml; version=1; Charset = windows-1252 ", "windows-1252"),
        ("application/xml", None),
        ("application/xml; charset=", None),
        (None, None),
    ],
)
def test_the_charset_parameter_is_read_from_a_content_type(header: str | None, charset: str | None) -> None:
    assert charset_of(header) == charset


def test_the_content_types_charset_overrides_the_declaration() -> None:
    """Before, a Latin-1 body said to be Latin-1 by its header was refused as malformed XML."""
    assert parse_xml(LATIN1, "ISO-8859-1").text == "Zoë"
    with pytest.raises(InvalidInput, match="malformed XML"):
        parse_xml(LATIN1)  # (its declaration says UTF-8)


def test_a_byte_order_mark_overrides_the_charset() -> None:
    body = codecs.BOM_UTF16_LE + "<a>Zoë</a>".encode("utf-16-le")
    assert parse_xml(body, "ISO-8859-1").text == "Zoë"
    assert parse_xml(codecs.BOM_UTF8 + "<a>Zoë</a>".encode(), "ISO-8859-1").text == "Zoë"


@pytest.mark.parametrize(
    ("body", "charset", "says"),
    [
        (LATIN1, "utf-8", "the body is not utf-8 as its Content-Type says: byte 47 (0xeb) cannot be read"),
        (b"<a/>", "klingon", "the Content-Type's charset 'klingon' is not an encoding loadbay knows"),
    ],
)
def test_a_body_its_charset_cannot_read_is_invalid_xml(body: bytes, charset: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(says)) as caught:
        parse_xml(body, charset)
    assert caught.value.code == "INVALID_XML"


def test_children_are_read_by_their_local_name() -> None:
    root = parse_xml(b'<batch xmlns="urn:x"><job>1</job><other/><name>n</name></batch>')
    assert {name: child.text for name, child in children_by_name(root, ["job", "name"]).items()} == {
        "job": "1",
        "name": "n",
    }
    assert set(children_by_name(root)) == {"job", "other", "name"}


def test_a_child_given_twice_is_refused_not_overwritten() -> None:
    root = parse_xml(b"<batchProcess><jobId>a</jobId><jobId>b</jobId><x/><x/></batchProcess>")
    with pytest.raises(InvalidInput, match=r"<jobId> appears more than once in <batchProcess>; send it once"):
        children_by_name(root, ["jobId"])
    assert set(children_by_name(root, ["nothing"])) == set()
    with pytest.raises(InvalidInput, match="<x> appears more than once"):
        children_by_name(root, ["x"])
