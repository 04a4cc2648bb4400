"""XML parsing that refuses DTDs, entities and external references, and never touches
the network or the disk (billion laughs, XXE)."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from loadbay.errors import InvalidInput

__all__ = ["parse_xml", "text_of"]


def parse_xml(body: bytes) -> Element:
    """The document's root element, or InvalidInput (code INVALID_XML) saying why not."""
    if not body.strip():
        raise InvalidInput("the request body is empty; an XML document is required", code="INVALID_XML")
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidInput(
            f"XML with a DTD or entity declarations is refused ({type(exc).__name__})", code="INVALID_XML"
        ) from exc
    except ParseError as exc:
        raise InvalidInput(f"malformed XML: {exc}", code="INVALID_XML") from exc
    except (LookupError, ValueError) as exc:  # an encoding Python or expat cannot read
        raise InvalidInput(f"unreadable XML encoding: {exc}", code="INVALID_XML") from exc
    return root


def text_of(element: Element, tag: str) -> str | None:
    """The stripped text of the child `tag`, or None when absent or empty."""
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()
