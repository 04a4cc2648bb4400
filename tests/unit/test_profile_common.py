from __future__ import annotations

import base64

import pytest
from starlette.requests import Request

from loadbay.errors import InvalidInput
from loadbay.http.auth import api_key
from loadbay.xmlsafe import parse_xml, text_of


def request(**headers: str) -> Request:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw})


@pytest.mark.parametrize(
    "headers",
    [
        {"X_Api_Key": "lb_live_k"},
        {"Authorization": "Bearer lb_live_k"},
        {"Authorization": "Basic lb_live_k"},  # Fusebill sends the key itself after Basic
        {"Authorization": "Basic " + base64.b64encode(b"user:lb_live_k").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"lb_live_k:").decode()},
    ],
)
def test_every_seed_auth_style_yields_the_key(headers: dict[str, str]) -> None:
    assert api_key(request(**headers)) == "lb_live_k"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Digest abc"}, {"Authorization": "Basic "}])
def test_no_usable_key(headers: dict[str, str]) -> None:
    assert api_key(request(**headers)) is None


def test_xml_is_parsed_and_text_read() -> None:
    root = parse_xml(b"<batchProcess><id> 3 </id><jobId></jobId></batchProcess>")
    assert text_of(root, "id") == "3" and text_of(root, "jobId") is None and text_of(root, "x") is None


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"""


@pytest.mark.parametrize("body", [BOMB, XXE, b"<a><b></a>", b"", b"  "])
def test_unsafe_or_broken_xml_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_xml(body)
    assert refused.value.code == "INVALID_XML"
