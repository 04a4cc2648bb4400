"""XML parsing that refuses DTDs, entities and external references, and never touches
the network or the disk (billion laughs, XXE); reading an element's children by name."""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from loadbay.errors import InvalidInput

__all__ = ["charset_of", "children_by_name", "local_name", "parse_xml", "text_of"]

_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)


def charset_of(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type header, if it has one."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"'):
            return value.strip().strip('"')
    return None


def parse_xml(body: bytes, charset: str | None = None) -> Element:
    """The document's root element, or InvalidInput (code INVALID_XML) saying why not.

    `charset` is the Content-Type's: as RFC 7303 says, it overrides the document's own
    encoding declaration, and a byte order mark overrides both."""
    if not body.strip():
        raise InvalidInput("the request body is empty; an XML document is required", code="INVALID_XML")
    document: bytes | str = body if charset is None or body.startswith(_BOMS) else _decoded(body, charset)
    try:
        root: Element = fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidInput(
            f"XML with a DTD or entity declarations is refused ({type(exc).__name__})", code="INVALID_XML"
        ) from exc
    except ParseError as exc:
        raise InvalidInput(f"malformed XML: {exc}", code="INVALID_XML") from exc
    except (LookupError, ValueError) as exc:  # an encoding Python or expat cannot read
        raise InvalidInput(f"unreadable XML encoding: {exc}", code="INVALID_XML") from exc
    return root


def _decoded(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise InvalidInput(
            f"the Content-Type's charset {charset!r} is not an encoding loadbay knows", code="INVALID_XML"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the body is not {charset} as its Content-Type says: byte {exc.start} "
            f"({exc.object[exc.start]:#04x}) cannot be read ({exc.reason})",
            code="INVALID_XML",
        ) from None


def children_by_name(element: Element, names: Iterable[str] | None = None) -> dict[str, Element]:
    """`element`'s children by their tag without its namespace (only those in `names`, when
    given); InvalidInput (code INVALID_XML) if one of them appears twice, as a value given
    twice cannot be told from a mistake."""
    wanted = None if names is None else set(names)
    found: dict[str, Element] = {}
    for child in element:
        name = local_name(child.tag)
        if wanted is not None and name not in wanted:
            continue
        if name in found:
            raise InvalidInput(
                f"<{name}> appears more than once in <{local_name(element.tag)}>; send it once",
                code="INVALID_XML",
            )
        found[name] = child
    return found


def local_name(tag: str) -> str:
    """A tag without its namespace."""
    return tag.rsplit("}", 1)[-1]


def text_of(element: Element, tag: str) -> str | None:
    """The stripped text of the child `tag`, or None when absent or empty."""
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()
