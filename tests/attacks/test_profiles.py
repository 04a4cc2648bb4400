"""The five API profiles under attack: ids, query strings, bodies and credentials that no
client of the seeds would send. Each case states its safe answer: the status the seed would
give, in the vendor's own error format (Fusebill's `Errors` body, Alliant's envelope,
Centrapay's `{code, message}`, eBill's `<batchProcess>` and Click2Mail's `<error>`). The
module also fails on any 5xx or traceback in the server's log (conftest), so a case that
holds by luck of its assertion still fails if the server stumbled on the way; the last
section throws random ids and bodies at every route for the same reason.

Cases that held before they were written down are kept, so that they keep holding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from loadbay.xmlsafe import parse_xml
from tests.support.accounts import make_keys
from tests.support.pdfs import pdf
from tests.support.servers import Server

FUSEBILL = "/compat/fusebill/v1/BulkApi"
ALLIANT = "/compat/alliant/api/Import/User{}s/Batch"
CENTRAPAY = "/compat/centrapay/api/batches"
EBILL = "/compat/ebill/rest/batchProcess"
CLICK2MAIL = "/compat/click2mail/batches"
JSON_TYPE = {"Content-Type": "application/json"}
XML_TYPE = {"Content-Type": "application/xml"}

# hostile values --------------------------------------------------------------------------

HUGE = "1" * 5000  # int() of it raises ValueError (Python's 4,300-digit limit)
PAST_BIGINT = str(2**63)
LAST_BIGINT = str(2**63 - 1)
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000  # json.loads: RecursionError
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<ROOT>&lol3;</ROOT>"""
XXE = b'<?xml version="1.0"?><!DOCTYPE ROOT [<!ENTITY x SYSTEM "file:///etc/passwd">]><ROOT>&x;</ROOT>'


def as_json(value: Any) -> bytes:
    """JSON text as a client sends it; lone surrogates go as `\\ud800` escapes."""
    return json.dumps(value).encode()


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def segment(value: str) -> str:
    """`value` as one path segment (a NUL as %00, `²` as %C2%B2)."""
    return quote(value, safe="")


def xml_bodies(root: str) -> list[Any]:
    """Malformed and hostile XML documents (`root` is the element the profile expects)."""
    return [
        pytest.param(b"", id="empty"),
        pytest.param(b"<", id="truncated-tag"),
        pytest.param(f"<{root}><a>".encode(), id="truncated-document"),
        pytest.param(BILLION_LAUGHS.replace(b"ROOT", root.encode()), id="entity-expansion"),
        pytest.param(XXE.replace(b"ROOT", root.encode()), id="external-entity"),
        pytest.param(f"<{root}><a>&#0;</a></{root}>".encode(), id="nul-reference"),
        pytest.param(f"<{root}><a>&#xD800;</a></{root}>".encode(), id="surrogate-reference"),
        pytest.param(f"<{root}><a>\x00</a></{root}>".encode(), id="nul-byte"),
        pytest.param(f"<{root}><a>\udc80</a></{root}>".encode("utf-8", "surrogateescape"), id="not-utf8"),
        pytest.param(
            f"<{root}><a>\ud800</a></{root}>".encode("utf-8", "surrogatepass"), id="encoded-surrogate"
        ),
        # a LookupError, a ValueError ("multi-byte encodings are not supported") and a LookupError
        pytest.param(f'<?xml version="1.0" encoding="bogus"?><{root}/>'.encode(), id="unknown-encoding"),
        pytest.param(f'<?xml version="1.0" encoding="utf-32"?><{root}/>'.encode(), id="multibyte-encoding"),
        pytest.param(f'<?xml version="1.0" encoding="rot13"?><{root}/>'.encode(), id="not-a-text-encoding"),
        pytest.param(b'{"batch": {}}', id="json"),
    ]


# fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(server: Server) -> list[str]:
    """[0] for the tables, [1] for the jobs the worker validates, [2] for random input, [3] for
    property names, [4:-2] one per race, [-2] for eBill's same uploads, [-1] for the batches of
    types a profile does not serve."""
    return make_keys(server, "profile-attacks", 6 + len(RACES))


@pytest.fixture(scope="module")
def client(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """X-Api-Key, which every profile takes."""
    with server.client(keys[0]) as made:
        yield made


@pytest.fixture(scope="module")
def fusebill(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """As the seed's examples call: `Authorization: Basic {APIKey}`."""
    headers = {"Authorization": f"Basic {keys[0]}"} | JSON_TYPE
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as made:
        yield made


@pytest.fixture(scope="module")
def click2mail(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """As Click2Mail's clients call: HTTP Basic with the key as the password."""
    with httpx.Client(base_url=server.url, auth=("c2m", keys[0]), timeout=30) as made:
        yield made


# the vendors' error formats -------------------------------------------------------------


def fusebill_error(answer: httpx.Response, status: int, says: str = "") -> None:
    """Fusebill's error body, whose one error's Value holds `says`."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["ErrorId"], body["HttpStatusCode"]) == (0, status), body
    [error] = body["Errors"]
    assert error["Key"] == "Api Error" and says in error["Value"], body


def alliant_error(answer: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    """Alliant's envelope of a refused request: no result, the error's code (and field)."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["result"] is None and body["hasErrors"] is True, body
    assert code in [e["code"] for e in body["errors"]], body
    if field is not None:
        assert field in [e.get("field") for e in body["errors"]], body


def centrapay_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"code", "message"} and body["code"] == code and body["message"], body


def ebill_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    node = parse_xml(answer.content)
    assert node.tag == "batchProcess" and node.findtext("errorMessage"), answer.text
    assert node.findtext("errorCode") == code, answer.text


def click2mail_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    node = parse_xml(answer.content)
    assert node.tag == "error" and node.findtext("description"), answer.text
    assert (node.findtext("status"), node.findtext("code")) == (str(status), code), answer.text


# every profile: credentials and bodies that are not JSON ----------------------------------

# where each profile is called with a bad credential
CREDENTIAL_ROUTES = {
    "fusebill": ("GET", f"{FUSEBILL}/1"),
    "alliant": ("POST", ALLIANT.format(1)),
    "centrapay": ("POST", CENTRAPAY),
    "ebill": ("GET", f"{EBILL}?id=1"),
    "click2mail": ("POST", CLICK2MAIL),
}


def credential_refused(profile: str, answer: httpx.Response, named: bool) -> None:
    """401, or 403 where the profile tells an unknown key (`named`) from none (Alliant, Centrapay)."""
    status, code = (403, "FORBIDDEN") if named else (401, "UNAUTHORIZED")
    if profile == "fusebill":
        fusebill_error(answer, 401)
    elif profile == "alliant":
        alliant_error(answer, status, code)
    elif profile == "centrapay":
        centrapay_error(answer, status, code)
    elif profile == "ebill":
        ebill_error(answer, 401, "UNAUTHORIZED")
    else:
        click2mail_error(answer, 401, "UNAUTHORIZED")


# (the credential header as sent, whether it names a key at all)
BAD_CREDENTIALS = [
    pytest.param(b"Authorization", b"Basic \xc3\xa9", True, id="basic-not-ascii"),  # b64decode: ValueError
    pytest.param(b"Authorization", b"Basic \xff\xfe", True, id="basic-latin1"),
    pytest.param(b"Authorization", b"Basic !!!!", True, id="basic-not-base64"),
    pytest.param(b"Authorization", b"Basic AAAAA", True, id="basic-bad-padding"),
    pytest.param(b"Authorization", b"Basic Og==", True, id="basic-empty-user-and-password"),  # ":"
    pytest.param(b"Authorization", b"Basic //79", True, id="basic-not-utf8"),  # b"\xff\xfe\xfd"
    pytest.param(b"Authorization", b"Basic " + b"QQ" * 4000, True, id="basic-8k"),
    pytest.param(b"Authorization", b"Bearer \xe9\xff", True, id="bearer-latin1"),
    pytest.param(b"Authorization", b"Bearer " + b"k" * 8000, True, id="bearer-8k"),
    pytest.param(b"Authorization", b"Basic", False, id="basic-without-credential"),
    pytest.param(b"Authorization", b"Digest username=x", False, id="another-scheme"),
    pytest.param(b"X-Api-Key", b"\xff\xfe", True, id="api-key-latin1"),
    pytest.param(b"X-Api-Key", b"k" * 8000, True, id="api-key-8k"),
    pytest.param(b"X-Api-Key", b"", False, id="api-key-empty"),
]


@pytest.mark.parametrize(("header", "value", "named"), BAD_CREDENTIALS)
@pytest.mark.parametrize("profile", list(CREDENTIAL_ROUTES))
def test_bad_credentials_are_refused_in_the_vendors_format(
    server: Server, profile: str, header: bytes, value: bytes, named: bool
) -> None:
    method, path = CREDENTIAL_ROUTES[profile]
    headers = {header: value, b"Content-Type": b"application/json"}
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        answer = anonymous.request(method, path, headers=headers, content=b"{}")
    credential_refused(profile, answer, named)


NOT_JSON = [
    pytest.param(DEEP_ARRAY, id="array-100000-deep"),  # json.loads: RecursionError
    pytest.param(DEEP_OBJECT, id="object-100000-deep"),
    pytest.param(as_json({"importFileName": "x", "data": [1], "items": nested(64)}), id="65-deep"),
    pytest.param(b"{", id="truncated"),
    pytest.param(b'{"id": 1, "pageSize": NaN}', id="nan"),
    pytest.param(b'{"id": 1, "pageSize": -Infinity}', id="infinity"),
    pytest.param(b'{"id": ' + HUGE.encode() + b"}", id="5000-digits"),  # int(): ValueError
    pytest.param(b"\xff\xfe\xfd", id="not-utf8"),
    pytest.param(b"\x00", id="nul"),
]

# the routes that take JSON: (method, path, the check of a 400 for a body that is not JSON)
JSON_ROUTES: dict[str, tuple[str, str, Callable[[httpx.Response], None]]] = {
    "fusebill-create": (
        "POST",
        FUSEBILL,
        lambda answer: fusebill_error(answer, 400, "The request body is not"),
    ),
    "fusebill-process": (
        "POST",
        f"{FUSEBILL}/Process",
        lambda answer: fusebill_error(answer, 400, "The request body is not"),
    ),
    "alliant-create": ("POST", ALLIANT.format(1), lambda answer: alliant_error(answer, 400, "INVALID_JSON")),
    "alliant-page": (
        "PATCH",
        ALLIANT.format(1) + "/{}",
        lambda answer: alliant_error(answer, 400, "INVALID_JSON"),
    ),
    "centrapay-create": ("POST", CENTRAPAY, lambda answer: centrapay_error(answer, 400, "INVALID_REQUEST")),
}


@pytest.mark.parametrize("route", list(JSON_ROUTES))
@pytest.mark.parametrize("body", NOT_JSON)
def test_bodies_that_are_not_json_are_400(
    client: httpx.Client, alliant_batch: int, route: str, body: bytes
) -> None:
    """NaN and Infinity are not JSON either; only Centrapay's parser takes them (and then
    refuses the body as a batch)."""
    method, path, refused = JSON_ROUTES[route]
    refused(client.request(method, path.format(alliant_batch), content=body, headers=JSON_TYPE))


# a request every JSON route takes (each reads its own fields), but for the bytes at "@"
EVERY_ROUTES_REQUEST = {
    "accountUploadType": "BulkWriteOff",
    "data": [1],
    "id": 1,
    "importFileName": "x.json",
    "pageSize": 1,
    "totalItems": 1,
    "pageNumber": 0,
    "items": [{"id": "u1"}],
    "type": "farmlands-external-asset",
    "url": "https://example.com/a.csv",
    "accountId": "a",
    "reference": "@",
}
NOT_UTF8 = [
    pytest.param(b"\xff", id="ff"),  # Fusebill read it as U+FFFD and stored it so
    pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),  # json.loads reads it as U+D800
    pytest.param(b"\xc0\xaf", id="overlong-slash"),
    pytest.param(b"\xe2\x82", id="cut-short"),
]


@pytest.mark.parametrize("route", list(JSON_ROUTES))
@pytest.mark.parametrize("text", NOT_UTF8)
def test_json_that_is_not_utf8_is_400_and_stores_nothing(
    client: httpx.Client, alliant_batch: int, route: str, text: bytes
) -> None:
    """JSON is UTF-8: a request whose JSON holds bytes that are not is refused as not JSON, as
    the native API refuses it, whatever the rest of it says."""
    method, path, refused = JSON_ROUTES[route]

    def stored() -> list[Any]:
        """The account's newest batch id, and what the page route would have filled."""
        newest = [batch["id"] for batch in client.get("/v1/batches", params={"limit": 1}).json()["data"]]
        return [newest, client.get(f"/v1/batches/{alliant_batch}/inputs").json()]

    before = stored()
    body = as_json(EVERY_ROUTES_REQUEST).replace(b"@", text)
    refused(client.request(method, path.format(alliant_batch), content=body, headers=JSON_TYPE))
    assert stored() == before


@pytest.mark.parametrize("route", list(JSON_ROUTES))
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_json_in_utf16_or_utf32_is_400_and_stores_nothing(
    client: httpx.Client, alliant_batch: int, route: str, encoding: str
) -> None:
    """JSON exchanged between systems is UTF-8 (RFC 8259 §8.1), and every JSON body is read by
    one rule: a request every route would take, sent in UTF-16 or UTF-32 (with a byte order
    mark or without), is refused as the native API refuses it; no seed sends another encoding."""
    method, path, refused = JSON_ROUTES[route]
    newest = client.get("/v1/batches", params={"limit": 1}).json()["data"]
    pages = client.get(f"/v1/batches/{alliant_batch}/inputs").json()
    body = json.dumps(EVERY_ROUTES_REQUEST | {"reference": "x"}).encode(encoding)
    refused(client.request(method, path.format(alliant_batch), content=body, headers=JSON_TYPE))
    assert client.get("/v1/batches", params={"limit": 1}).json()["data"] == newest
    assert client.get(f"/v1/batches/{alliant_batch}/inputs").json() == pages


# (method, path, the check of the answer): methods no route takes, paths that are no route,
# and path segments that are not UTF-8 (%FF decodes to U+FFFD)
STRAY_REQUESTS: dict[str, tuple[str, str, Callable[[httpx.Response], None]]] = {
    "fusebill-delete": ("DELETE", f"{FUSEBILL}/1", lambda answer: fusebill_error(answer, 405)),
    "fusebill-options": ("OPTIONS", FUSEBILL, lambda answer: fusebill_error(answer, 405)),
    "fusebill-nowhere": ("GET", "/compat/fusebill/nowhere", lambda answer: fusebill_error(answer, 404)),
    "fusebill-id-not-utf8": (
        "GET",
        f"{FUSEBILL}/%FF",
        lambda answer: fusebill_error(answer, 400, "not a number"),
    ),
    "alliant-delete": (
        "DELETE",
        ALLIANT.format(1) + "/1",
        lambda answer: alliant_error(answer, 405, "METHOD_NOT_ALLOWED"),
    ),
    "alliant-nowhere": (
        "GET",
        "/compat/alliant/api/Import",
        lambda answer: alliant_error(answer, 404, "NOT_FOUND"),
    ),
    "alliant-id-not-utf8": (
        "GET",
        ALLIANT.format(1) + "/%FF",
        lambda answer: alliant_error(answer, 404, "NOT_FOUND"),
    ),
    "alliant-dimension-not-utf8": (
        "GET",
        ALLIANT.format("%FF") + "/1",
        lambda answer: alliant_error(answer, 404, "NOT_FOUND"),
    ),
    "centrapay-list": ("GET", CENTRAPAY, lambda answer: centrapay_error(answer, 405, "METHOD_NOT_ALLOWED")),
    "centrapay-delete": (
        "DELETE",
        f"{CENTRAPAY}/x",
        lambda answer: centrapay_error(answer, 405, "METHOD_NOT_ALLOWED"),
    ),
    "centrapay-id-not-utf8": (
        "GET",
        f"{CENTRAPAY}/%FF%ED%A0%80",
        lambda answer: centrapay_error(answer, 404, "NOT_FOUND"),
    ),
    "ebill-delete": ("DELETE", EBILL, lambda answer: ebill_error(answer, 405, "METHOD_NOT_ALLOWED")),
    "ebill-id-not-utf8": (
        "GET",
        f"{EBILL}?id=%FF",
        lambda answer: ebill_error(answer, 400, "INVALID_REQUEST"),
    ),
    "ebill-job-id-not-utf8": (
        "GET",
        f"{EBILL}?jobId=%FF%ED%A0%80",
        lambda answer: ebill_error(answer, 404, "NOT_FOUND"),
    ),
    "click2mail-list": (
        "GET",
        CLICK2MAIL,
        lambda answer: click2mail_error(answer, 405, "METHOD_NOT_ALLOWED"),
    ),
    "click2mail-patch": (
        "PATCH",
        f"{CLICK2MAIL}/1",
        lambda answer: click2mail_error(answer, 405, "METHOD_NOT_ALLOWED"),
    ),
    "click2mail-nowhere": (
        "GET",
        f"{CLICK2MAIL}/1/x/y",
        lambda answer: click2mail_error(answer, 404, "NOT_FOUND"),
    ),
    "click2mail-id-not-utf8": (
        "GET",
        f"{CLICK2MAIL}/%FF",
        lambda answer: click2mail_error(answer, 400, "INVALID_INPUT"),
    ),
}


@pytest.mark.parametrize("request_", list(STRAY_REQUESTS))
def test_stray_methods_and_paths(client: httpx.Client, request_: str) -> None:
    method, path, refused = STRAY_REQUESTS[request_]
    refused(client.request(method, path))


# Fusebill ----------------------------------------------------------------------------------

FUSEBILL_IDS = [
    pytest.param("²", 400, "is not a number", id="superscript-two"),  # isdigit() yet int() fails
    pytest.param("١٢", 400, "is not a number", id="arabic-indic-digits"),
    pytest.param("-1", 400, "is not a number", id="negative"),
    pytest.param("1e3", 400, "is not a number", id="exponent"),
    pytest.param("abc", 400, "is not a number", id="letters"),
    pytest.param("\x00", 400, "is not a number", id="nul"),
    pytest.param(HUGE, 404, "was not found", id="5000-digits"),  # int(): ValueError
    pytest.param(PAST_BIGINT, 404, "was not found", id="2**63"),
    pytest.param(LAST_BIGINT, 404, "was not found", id="2**63-1"),
    pytest.param("0", 404, "was not found", id="zero"),
]


@pytest.mark.parametrize("route", ["GET /{}", "GET /{}?view=Full", "POST /{}/Cancel"])
@pytest.mark.parametrize(("job_id", "status", "says"), FUSEBILL_IDS)
def test_fusebill_job_ids(fusebill: httpx.Client, route: str, job_id: str, status: int, says: str) -> None:
    method, path = route.split(" ")
    fusebill_error(fusebill.request(method, FUSEBILL + path.format(segment(job_id))), status, says)


PROCESS_IDS = [
    pytest.param(b"[1]", 400, "id is required", id="array"),
    pytest.param(b"", 400, "empty", id="empty"),
    pytest.param(b"  ", 400, "empty", id="blank"),
    pytest.param(b'{"id": true}', 400, "id is required", id="true"),  # PostgreSQL: bigint = boolean
    pytest.param(b'{"id": "1.5"}', 400, "id is required", id="string-fraction"),
    pytest.param(b'{"id": "abc"}', 400, "id is required", id="string-letters"),
    pytest.param(b'{"id": ""}', 400, "id is required", id="string-empty"),
    pytest.param(b'{"id": " 1"}', 400, "id is required", id="string-space"),
    pytest.param(b'{"id": "-1"}', 400, "id is required", id="string-negative"),
    pytest.param('{"id": "²"}'.encode(), 400, "id is required", id="string-superscript-two"),
    pytest.param(b'{"id": "' + HUGE.encode() + b'"}', 404, "was not found", id="string-5000-digits"),
    pytest.param(as_json({"id": PAST_BIGINT}), 404, "was not found", id="string-2**63"),
    pytest.param(b'{"id": 1.5}', 400, "id is required", id="fraction"),
    pytest.param(b'{"id": 1e999}', 400, "beyond ±1.8e308", id="infinite"),  # read as infinity
    pytest.param(b'{"id": null}', 400, "id is required", id="null"),
    pytest.param(as_json({"id": 2**63}), 404, "was not found", id="2**63"),
    pytest.param(as_json({"id": 2**200}), 404, "was not found", id="2**200"),
    pytest.param(b'{"id": -1}', 404, "was not found", id="negative"),
    # a number with a zero fraction is the whole number, as Json.NET reads it into a long
    pytest.param(b'{"id": -1.0}', 404, "was not found", id="negative-zero-fraction"),
    pytest.param(b'{"id": 1e300}', 404, "was not found", id="1e300"),
    pytest.param(b"{id:0}", 404, "was not found", id="bare-key"),  # the seed's curl sends {id:123456}
]


@pytest.mark.parametrize(("body", "status", "says"), PROCESS_IDS)
def test_fusebill_process_ids(fusebill: httpx.Client, body: bytes, status: int, says: str) -> None:
    fusebill_error(fusebill.post(f"{FUSEBILL}/Process", content=body), status, says)


def write_off(**fields: Any) -> bytes:
    return as_json({"accountUploadType": "BulkWriteOff", "data": [1]} | fields)


FUSEBILL_CREATES = [
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"null", "must be a JSON object", id="null"),
    pytest.param(b"[]", "must be a JSON object", id="array"),
    pytest.param(b'"BulkWriteOff"', "must be a JSON object", id="string"),
    pytest.param(write_off(accountUploadType=[]), "accountUploadType", id="type-array"),  # TypeError
    pytest.param(write_off(accountUploadType={}), "accountUploadType", id="type-object"),
    pytest.param(write_off(accountUploadType=None), "accountUploadType", id="type-null"),
    pytest.param(write_off(accountUploadType=1), "accountUploadType", id="type-number"),
    pytest.param(write_off(accountUploadType="\ud800"), "accountUploadType", id="type-surrogate"),
    pytest.param(write_off(data=None), "data must be a non-empty list", id="data-null"),
    pytest.param(write_off(data={}), "data must be a non-empty list", id="data-object"),
    pytest.param(write_off(data="1,2"), "data must be a non-empty list", id="data-string"),
    pytest.param(write_off(data=[]), "data must be a non-empty list", id="data-empty"),
    pytest.param(write_off(data=[1] * 1001), "at most 1000", id="data-1001"),
    # the job was stored, then its answer (and every later read) raised UnicodeEncodeError
    pytest.param(write_off(reference="\ud800"), "reference must not hold an unpaired", id="ref-surrogate"),
    pytest.param(write_off(reference="a\udfffb"), "reference must not hold an unpaired", id="ref-low-half"),
    pytest.param(write_off(reference="a\x00b"), "reference must not hold a NUL", id="ref-nul"),
    pytest.param(write_off(fileName="\ud800.csv"), "fileName must not hold an unpaired", id="name-surrogate"),
    pytest.param(write_off(fileName="a\x00.csv"), "fileName must not hold a NUL", id="name-nul"),
    # an array or object was taken as its Python repr
    pytest.param(write_off(reference=["\ud800"]), "reference must be text, not an array", id="ref-array"),
    pytest.param(
        write_off(reference={"a": "\x00"}), "reference must be text, not an object", id="ref-object"
    ),
    pytest.param(write_off(fileName=[]), "fileName must be text, not an array", id="name-empty-array"),
    # a boolean was taken as its text, false as no value at all (the default)
    pytest.param(write_off(fileName=False), "fileName must be text, not a boolean", id="name-false"),
    pytest.param(write_off(reference=True), "reference must be text, not a boolean", id="ref-true"),
]


@pytest.mark.parametrize(("body", "says"), FUSEBILL_CREATES)
def test_fusebill_creates_that_are_refused(fusebill: httpx.Client, body: bytes, says: str) -> None:
    fusebill_error(fusebill.post(FUSEBILL, content=body), 400, says)


def test_fusebill_records_out_of_any_range_fail_validation_one_by_one(
    server: Server, keys: list[str]
) -> None:
    """Ids past a BIGINT, lone surrogates and NULs in a job's data: each its record's error
    (the worker overflowed on such an id before), the job still answered, then cancelled."""
    headers = {"Authorization": f"Basic {keys[1]}"} | JSON_TYPE
    jobs = [
        ("BulkWriteOff", [2**64, -(2**63) - 1, "\ud800", "a\x00", 2**63 - 1]),
        (
            "BulkPayment",
            [{"customerId": 2**64, "amount": 1}, {"customerId": 1, "amount": 1, "method": "\ud800"}],
        ),
    ]
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as fusebill:
        for upload_type, data in jobs:
            created = fusebill.post(
                FUSEBILL, content=as_json({"accountUploadType": upload_type, "data": data})
            )
            assert created.status_code == 200, created.text
            job = poll_fusebill(fusebill, created.json()["id"])
            assert job["status"] == "ValidatedWithErrors" and job["failedRecords"] == len(data), job
            assert all(r["status"] == "FailedValidation" and r["details"] for r in job["records"]), job
            assert fusebill.post(f"{FUSEBILL}/{job['id']}/Cancel").json()["status"] == "Failed"


def poll_fusebill(fusebill: httpx.Client, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = fusebill.get(f"{FUSEBILL}/{job_id}", params={"view": "Full"}).json()
        if job["status"] not in ("NotStarted", "Validating"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still validating: {job}")


# Alliant ------------------------------------------------------------------------------------

SEED_CREATE = {"importFileName": "APIUserXs", "description": "attack", "pageSize": 2, "totalItems": 2}
NOT_DIMENSIONS = ["0", "10", "-1", "x", "²", "١", HUGE, PAST_BIGINT]
NOT_BATCH_IDS = [HUGE, PAST_BIGINT, LAST_BIGINT, "0", "-1", "²", "١", "abc", "1.0", "\x00"]


@pytest.fixture(scope="module")
def alliant_batch(client: httpx.Client) -> int:
    """An open batch of dimension 1 for the cases that need one (it is never sent a page)."""
    created = client.post(ALLIANT.format(1), json=SEED_CREATE)
    assert created.status_code == 201, created.text
    batch_id: int = created.json()["result"]["batchId"]
    return batch_id


@pytest.mark.parametrize("route", ["GET /1", "POST "])
@pytest.mark.parametrize("dimension", NOT_DIMENSIONS)
def test_alliant_dimensions_outside_1_to_9_are_404(client: httpx.Client, route: str, dimension: str) -> None:
    """A 5,000-digit dimension overflowed the path converter before any handler: 500."""
    method, rest = route.split(" ")
    answer = client.request(method, ALLIANT.format(segment(dimension)) + rest, json=SEED_CREATE)
    alliant_error(answer, 404, "NOT_FOUND")


@pytest.mark.parametrize("route", ["GET /{}", "PATCH /{}?Submit=true", "POST /{}/clear"])
@pytest.mark.parametrize("batch_id", NOT_BATCH_IDS)
def test_alliant_batch_ids_that_name_no_batch_are_404(
    client: httpx.Client, route: str, batch_id: str
) -> None:
    method, rest = route.split(" ")
    alliant_error(
        client.request(method, ALLIANT.format(1) + rest.format(segment(batch_id))), 404, "NOT_FOUND"
    )


@pytest.mark.parametrize("page", ["-1", str(10**30), HUGE, "abc", "²", "1.5", "", " "])
def test_alliant_page_numbers_out_of_range_are_400(
    client: httpx.Client, alliant_batch: int, page: str
) -> None:
    answer = client.get(f"{ALLIANT.format(1)}/{alliant_batch}", params={"PageNumber": page})
    alliant_error(answer, 400, "INVALID_VALUE", "pageNumber")


@pytest.mark.parametrize("submit", ["yes", "1", HUGE, "\x00", "tru\u00e9"])
def test_alliant_submit_other_than_true_or_false_is_400(
    client: httpx.Client, alliant_batch: int, submit: str
) -> None:
    answer = client.patch(f"{ALLIANT.format(1)}/{alliant_batch}", params={"submit": submit})
    alliant_error(answer, 400, "INVALID_VALUE", "Submit")


# a create's body: (the seed's create with these fields changed, the error's code and field)
ALLIANT_CREATES = [
    pytest.param({"importFileName": "\ud800"}, "INVALID_VALUE", "importFileName", id="name-surrogate"),
    pytest.param({"importFileName": "a\x00"}, "INVALID_VALUE", "importFileName", id="name-nul"),
    pytest.param({"importFileName": 1}, "INVALID_VALUE", "importFileName", id="name-number"),
    pytest.param({"importFileName": "x" * 256}, "TOO_LONG", "importFileName", id="name-256"),
    pytest.param({"importFileName": None}, "INVALID_VALUE", "importFileName", id="name-null"),
    pytest.param({"description": "\udfff"}, "INVALID_VALUE", "description", id="description-surrogate"),
    pytest.param({"description": ["x"]}, "INVALID_VALUE", "description", id="description-array"),
    pytest.param({"pageSize": "2"}, "INVALID_VALUE", "pageSize", id="size-string"),
    pytest.param({"pageSize": True}, "INVALID_VALUE", "pageSize", id="size-true"),
    pytest.param({"pageSize": 2**64}, "INVALID_VALUE", "pageSize", id="size-2**64"),
    pytest.param({"pageSize": 1.5}, "INVALID_VALUE", "pageSize", id="size-fraction"),
    pytest.param({"pageSize": 0}, "INVALID_VALUE", "pageSize", id="size-zero"),
    pytest.param({"totalItems": -1}, "INVALID_VALUE", "totalItems", id="total-negative"),
    pytest.param({"pageNumber": "\ud800"}, "INVALID_VALUE", "pageNumber", id="page-surrogate"),
    pytest.param({"items": {}}, "INVALID_VALUE", "items", id="items-object"),
    pytest.param({"items": "\x00"}, "INVALID_VALUE", "items", id="items-string"),
]


@pytest.mark.parametrize(("fields", "code", "field"), ALLIANT_CREATES)
def test_alliant_create_fields(client: httpx.Client, fields: dict[str, Any], code: str, field: str) -> None:
    answer = client.post(ALLIANT.format(1), content=as_json(SEED_CREATE | fields), headers=JSON_TYPE)
    alliant_error(answer, 400, code, field)


# a page's body (PATCH): (the body, the error's code and field)
ALLIANT_PAGES = [
    pytest.param({"pageNumber": "\ud800", "items": []}, "INVALID_VALUE", "pageNumber", id="page-surrogate"),
    pytest.param({"pageNumber": 2**63, "items": []}, "INVALID_VALUE", "pageNumber", id="page-2**63"),
    pytest.param({"pageNumber": -1, "items": []}, "INVALID_VALUE", "pageNumber", id="page-negative"),
    pytest.param({"pageNumber": 0, "items": "x"}, "INVALID_VALUE", "items", id="items-string"),
    pytest.param({"pageNumber": 0}, "INVALID_VALUE", None, id="page-without-items"),
    pytest.param({}, "NOTHING_TO_DO", None, id="nothing"),
]


@pytest.mark.parametrize(("body", "code", "field"), ALLIANT_PAGES)
def test_alliant_page_fields(
    client: httpx.Client, alliant_batch: int, body: dict[str, Any], code: str, field: str | None
) -> None:
    answer = client.patch(f"{ALLIANT.format(1)}/{alliant_batch}", content=as_json(body), headers=JSON_TYPE)
    alliant_error(answer, 400, code, field)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"null", "REQUIRED", id="null"),  # read as no body: the create's fields are missing
        pytest.param(b"[]", "INVALID_VALUE", id="array"),
        pytest.param(b'"x"', "INVALID_VALUE", id="string"),
        pytest.param(b"1", "INVALID_VALUE", id="number"),
    ],
)
def test_alliant_bodies_that_are_not_objects_are_400(client: httpx.Client, body: bytes, code: str) -> None:
    alliant_error(client.post(ALLIANT.format(1), content=body, headers=JSON_TYPE), 400, code)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "", "application/x-www-form-urlencoded"]
)
def test_alliant_bodies_that_are_not_declared_json_are_415(client: httpx.Client, content_type: str) -> None:
    answer = client.post(
        ALLIANT.format(1), content=as_json(SEED_CREATE), headers={"Content-Type": content_type}
    )
    alliant_error(answer, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_alliant_items_of_any_shape_end_as_item_errors(client: httpx.Client) -> None:
    """Items are stored as sent and checked one by one: lone surrogates, NULs, numbers past
    any range and wrong types each end as that item's error, and the read model renders."""
    weird: list[Any] = [2**64, -(2**63) - 1, 1e308, "\ud800", "a\x00", [], {}, None, True, "9" * 4000]
    items: list[Any] = [
        {"id": f"W{i}", "description": v, "udLookup_L": {"udfLookupItems": [{"sortOrderNumber": v}]}}
        for i, v in enumerate(weird)
    ]
    items += [{"id": v} for v in weird] + weird
    body = SEED_CREATE | {"pageSize": len(items), "totalItems": len(items), "pageNumber": 0, "items": items}
    created = client.post(
        ALLIANT.format(1), params={"Submit": "true"}, content=as_json(body), headers=JSON_TYPE
    )
    assert created.status_code == 201, created.text
    path = f"{ALLIANT.format(1)}/{created.json()['result']['batchId']}"
    deadline = time.monotonic() + 60
    while (read := client.get(path).json())["result"]["status"] not in ("completed", "error"):
        assert time.monotonic() < deadline, read
        time.sleep(0.05)
    result = read["result"]
    assert (result["status"], result["outcome"], result["succeededItems"] + result["failedItems"]) == (
        "completed",
        "partial",
        len(items),
    ), result
    refused = {e["index"]: e["code"] for e in read["errors"]}
    assert {i: refused.get(i) for i in (3, 4, 13, 14)} == dict.fromkeys((3, 4, 13, 14), "INVALID_RECORD")
    assert set(range(2 * len(weird), len(items))) <= set(refused), refused  # not objects
    assert result["items"][2 * len(weird) + 3] == "\ud800"  # echoed as sent (in ASCII JSON)


# Centrapay ------------------------------------------------------------------------------------

CENTRAPAY_CREATE = {"type": "farmlands-external-asset", "url": "https://example.com/a.csv", "accountId": "a"}


@pytest.mark.parametrize(
    "batch_id",
    [
        pytest.param("\x00", id="nul"),  # PostgreSQL: text fields cannot contain NUL
        pytest.param("a\x00b", id="inner-nul"),
        pytest.param("x" * 10_000, id="10000-chars"),
        pytest.param(HUGE, id="5000-digits"),
        pytest.param("²", id="superscript-two"),
        pytest.param("-1", id="negative"),
        pytest.param("%", id="percent"),
        pytest.param("\ufffd", id="replacement-char"),
    ],
)
def test_centrapay_ids_that_name_no_batch_are_404(client: httpx.Client, batch_id: str) -> None:
    centrapay_error(client.get(f"{CENTRAPAY}/{segment(batch_id)}"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"", "application/json", id="empty"),
        pytest.param(b"null", "application/json", id="null"),
        pytest.param(b"[]", "application/json", id="array"),
        *(
            pytest.param(as_json(CENTRAPAY_CREATE | {name: value}), "application/json", id=case)
            for case, name, value in [
                ("type-number", "type", 1),
                ("type-null", "type", None),
                ("url-surrogate", "url", "\ud800"),
                ("url-nul", "url", "https://example.com/\x00"),
                ("url-array", "url", ["https://example.com/a.csv"]),
                ("url-empty", "url", ""),
                ("account-surrogate", "accountId", "\udfff"),
                ("account-nul", "accountId", "a\x00"),
                ("account-number", "accountId", 2**64),
                ("account-201-chars", "accountId", "a" * 201),
                ("test-string", "test", "perhaps"),
            ]
        ),
    ],
)
def test_centrapay_invalid_creates_are_400(client: httpx.Client, body: bytes, content_type: str) -> None:
    answer = client.post(CENTRAPAY, content=body, headers={"Content-Type": content_type})
    centrapay_error(answer, 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/json; charset=latin-1"]
)
def test_centrapay_creates_in_another_media_type_are_415(client: httpx.Client, content_type: str) -> None:
    answer = client.post(CENTRAPAY, content=as_json(CENTRAPAY_CREATE), headers={"Content-Type": content_type})
    centrapay_error(answer, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        pytest.param({"type": "x"}, 400, "UNKNOWN_TYPE", id="unknown-type"),
        pytest.param({"type": "\ud800"}, 400, "UNKNOWN_TYPE", id="type-surrogate"),
        pytest.param({"url": "file:///etc/passwd"}, 400, "INVALID_SOURCE_URL", id="file-url"),
        pytest.param({"url": "gopher://127.0.0.1:25/"}, 400, "INVALID_SOURCE_URL", id="gopher-url"),
        pytest.param({"url": "http://[::1"}, 400, "INVALID_SOURCE_URL", id="broken-ipv6"),
        pytest.param(
            {"url": "http://" + "a" * 5000 + "/x.csv"}, 400, "INVALID_SOURCE_URL", id="label-too-long"
        ),
        pytest.param({"url": "http://a:99999/x.csv"}, 400, "INVALID_SOURCE_URL", id="port-out-of-range"),
        pytest.param({"test": True}, 403, "LIVENESS_MISSMATCH", id="test-flag-of-a-live-key"),
    ],
)
def test_centrapay_refused_creates(
    client: httpx.Client, fields: dict[str, Any], status: int, code: str
) -> None:
    answer = client.post(CENTRAPAY, content=as_json(CENTRAPAY_CREATE | fields), headers=JSON_TYPE)
    centrapay_error(answer, status, code)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://\u00e9xample.invalid/x.csv", "FETCH_FAILED", id="idna-host"),
    ],
)
def test_centrapay_urls_no_fetch_can_reach_end_the_batch_in_error(
    client: httpx.Client, url: str, reason: str
) -> None:
    """Taken (only the fetch can tell), then the batch is `error` with the reason, at once."""
    created = client.post(CENTRAPAY, content=as_json(CENTRAPAY_CREATE | {"url": url}), headers=JSON_TYPE)
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 30
    while (batch := client.get(f"{CENTRAPAY}/{created.json()['id']}").json())["status"] != "error":
        assert time.monotonic() < deadline and batch["status"] in ("created", "copied"), batch
        time.sleep(0.05)
    assert batch["errorCount"] == "1" and batch["errors"][0]["message"].startswith(reason), batch


# eBill ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        pytest.param({"id": "²"}, 400, "INVALID_REQUEST", id="id-superscript-two"),
        pytest.param({"id": HUGE}, 400, "INVALID_REQUEST", id="id-5000-digits"),
        pytest.param({"id": PAST_BIGINT}, 400, "INVALID_REQUEST", id="id-2**63"),
        pytest.param({"id": "-1"}, 400, "INVALID_REQUEST", id="id-negative"),
        pytest.param({"id": "0"}, 400, "INVALID_REQUEST", id="id-zero"),
        pytest.param({"id": "1.5"}, 400, "INVALID_REQUEST", id="id-fraction"),
        pytest.param({"id": "1.0"}, 400, "INVALID_REQUEST", id="id-point-zero"),  # was batch 1
        pytest.param({"id": "1_0"}, 400, "INVALID_REQUEST", id="id-underscore"),  # was batch 10
        pytest.param({"id": " 1"}, 400, "INVALID_REQUEST", id="id-space"),
        pytest.param({"id": "+1"}, 400, "INVALID_REQUEST", id="id-plus"),
        pytest.param({"id": "\x00"}, 400, "INVALID_REQUEST", id="id-nul"),
        pytest.param({"id": LAST_BIGINT}, 404, "NOT_FOUND", id="id-2**63-1"),
        pytest.param({"jobId": "\x00"}, 400, "INVALID_REQUEST", id="job-id-nul"),  # PostgreSQL: NUL in text
        pytest.param({"jobId": "a\x00b"}, 400, "INVALID_REQUEST", id="job-id-inner-nul"),
        pytest.param({"jobId": "x" * 201}, 400, "INVALID_REQUEST", id="job-id-201-chars"),
        pytest.param({"jobId": "\ufffd"}, 404, "NOT_FOUND", id="job-id-replacement-char"),
        pytest.param({"id": LAST_BIGINT, "jobId": "\x00"}, 400, "INVALID_REQUEST", id="both"),
        pytest.param({}, 400, "MISSING_ID", id="neither"),
    ],
)
def test_ebill_lookups(client: httpx.Client, params: dict[str, str], status: int, code: str) -> None:
    ebill_error(client.get(EBILL, params=params), status, code)


@pytest.mark.parametrize("body", xml_bodies("batchProcess"))
@pytest.mark.parametrize("route", ["POST BatchInit", "POST S3FileUpload", "PUT BatchFinalize"])
def test_ebill_malformed_xml_is_400(client: httpx.Client, route: str, body: bytes) -> None:
    method, mode = route.split(" ")
    ebill_error(client.request(method, EBILL, params={"mode": mode}, content=body), 400, "INVALID_XML")


def ebill_xml(**fields: str) -> bytes:
    return (
        "<batchProcess>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</batchProcess>"
    ).encode()


def upload(**fields: str) -> bytes:
    return ebill_xml(
        **{"operation": "eBill-Import", "subOperation": "Customer", "inputFilename": "c.csv"} | fields
    )


DEEP_XML = b"<batchProcess>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</batchProcess>"


@pytest.mark.parametrize(
    ("mode", "body", "status", "code"),
    [
        pytest.param("S3FileUpload", b"<upload/>", 400, "INVALID_XML", id="wrong-root"),
        pytest.param(
            "S3FileUpload",
            b'<batchProcess a="' + b"x" * 500_000 + b'"/>',
            400,
            "INVALID_REQUEST",
            id="huge-attr",
        ),
        pytest.param("S3FileUpload", DEEP_XML, 400, "INVALID_REQUEST", id="100000-deep"),
        pytest.param(
            "S3FileUpload", upload(parentBatchProcess=HUGE), 400, "INVALID_REQUEST", id="parent-5000-digits"
        ),
        pytest.param(
            "S3FileUpload", upload(parentBatchProcess="²"), 400, "INVALID_REQUEST", id="parent-superscript"
        ),
        pytest.param("S3FileUpload", upload(jobId="x" * 201), 400, "INVALID_REQUEST", id="job-id-201-chars"),
        pytest.param(
            "S3FileUpload", upload(inputFilename="x" * 201 + ".csv"), 400, "INVALID_REQUEST", id="long-name"
        ),
        pytest.param(
            "S3FileUpload", upload(inputFilename="c.exe"), 400, "INVALID_FILENAME", id="name-extension"
        ),
        pytest.param(
            "S3FileUpload", upload(subOperation="\u202eremotsuC"), 400, "UNKNOWN_SUB_OPERATION", id="bidi"
        ),
        pytest.param(
            "BatchInit", ebill_xml(carryForwardInvoices=HUGE), 400, "INVALID_REQUEST", id="flag-5000-digits"
        ),
        pytest.param("BatchFinalize", ebill_xml(id=HUGE), 400, "INVALID_REQUEST", id="finalize-5000-digits"),
        pytest.param("BatchFinalize", ebill_xml(id="1_0"), 400, "INVALID_REQUEST", id="finalize-underscore"),
        pytest.param(
            "S3FileUpload", upload(parentBatchProcess="1.0"), 400, "INVALID_REQUEST", id="parent-point-zero"
        ),
        pytest.param("BatchFinalize", ebill_xml(id=LAST_BIGINT), 404, "NOT_FOUND", id="finalize-2**63-1"),
        pytest.param("\u00e9", upload(), 400, "UNKNOWN_MODE", id="mode-not-ascii"),
        pytest.param("x" * 5000, upload(), 400, "UNKNOWN_MODE", id="mode-5000-chars"),
    ],
)
def test_ebill_refused_requests(client: httpx.Client, mode: str, body: bytes, status: int, code: str) -> None:
    method = "PUT" if mode == "BatchFinalize" else "POST"
    ebill_error(client.request(method, EBILL, params={"mode": mode}, content=body), status, code)


# Click2Mail ----------------------------------------------------------------------------------

ONE_JOB = b"<batch><job><startingPage>1</startingPage><endingPage>1</endingPage></job></batch>"
CLICK2MAIL_IDS = [
    pytest.param("²", 400, "INVALID_INPUT", id="superscript-two"),
    pytest.param("abc", 400, "INVALID_INPUT", id="letters"),
    pytest.param("1.5", 400, "INVALID_INPUT", id="fraction"),
    pytest.param("\x00", 400, "INVALID_INPUT", id="nul"),
    pytest.param("-1", 400, "INVALID_INPUT", id="negative"),
    pytest.param("+1", 400, "INVALID_INPUT", id="plus"),
    pytest.param("1_0", 400, "INVALID_INPUT", id="underscore"),
    pytest.param(HUGE, 404, "NOT_FOUND", id="5000-digits"),
    pytest.param(PAST_BIGINT, 404, "NOT_FOUND", id="2**63"),
    pytest.param(LAST_BIGINT, 404, "NOT_FOUND", id="2**63-1"),
    pytest.param("0", 404, "NOT_FOUND", id="zero"),
]


@pytest.mark.parametrize("route", ["GET /{}", "GET /{}/details", "GET /{}/tracking", "POST /{}", "PUT /{}"])
@pytest.mark.parametrize(("batch_id", "status", "code"), CLICK2MAIL_IDS)
def test_click2mail_batch_ids(
    click2mail: httpx.Client, route: str, batch_id: str, status: int, code: str
) -> None:
    method, path = route.split(" ")
    answer = click2mail.request(
        method, CLICK2MAIL + path.format(segment(batch_id)), content=ONE_JOB, headers=XML_TYPE
    )
    click2mail_error(answer, status, code)


@pytest.fixture(scope="module")
def mail_batch(click2mail: httpx.Client) -> int:
    """An open batch that has its PDF and waits for its batch XML."""
    return new_mail_batch(click2mail)


def new_mail_batch(click2mail: httpx.Client) -> int:
    created = click2mail.post(CLICK2MAIL)
    assert created.status_code == 201, created.text
    batch_id = int(parse_xml(created.content).findtext("id") or 0)
    put = click2mail.put(
        f"{CLICK2MAIL}/{batch_id}", content=pdf(2), headers={"Content-Type": "application/pdf"}
    )
    assert put.status_code == 200, put.text
    return batch_id


@pytest.mark.parametrize(
    ("body", "code"),
    [
        *(pytest.param(*case.values, "INVALID_XML", id=case.id) for case in xml_bodies("batch")),
        pytest.param(b"<x/>", "NOT_A_BATCH", id="wrong-root"),
        pytest.param(b"<batch/>", "NO_JOBS", id="no-jobs"),
        pytest.param(b'<batch a="' + b"x" * 500_000 + b'"/>', "NO_JOBS", id="huge-attribute"),
        pytest.param(
            b"<batch>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</batch>", "NO_JOBS", id="100000-deep"
        ),
    ],
)
def test_click2mail_malformed_batch_xml_is_400(
    click2mail: httpx.Client, mail_batch: int, body: bytes, code: str
) -> None:
    answer = click2mail.put(f"{CLICK2MAIL}/{mail_batch}", content=body, headers=XML_TYPE)
    click2mail_error(answer, 400, code)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "multipart/form-data; boundary=x", "", "\u00e9/\u00e9"]
)
def test_click2mail_other_content_types_are_415(
    click2mail: httpx.Client, mail_batch: int, content_type: str
) -> None:
    headers = {b"Content-Type": content_type.encode("utf-8")}
    answer = click2mail.put(f"{CLICK2MAIL}/{mail_batch}", content=b"<batch/>", headers=headers)
    click2mail_error(answer, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_click2mail_jobs_of_any_shape_end_as_job_errors(click2mail: httpx.Client) -> None:
    """Pages past any range, unicode digits, oversized and missing fields: each its job's
    error; status, details and tracking still answer."""
    batch_id = new_mail_batch(click2mail)
    pages = [("1", "9" * 30), ("-1", HUGE), ("²", "1"), ("1.5", "2"), ("", "")]
    jobs = "".join(
        f"<job><startingPage>{start}</startingPage><endingPage>{end}</endingPage>"
        f"<recipients><address><name>\u00e9\U0001f600</name><postalCode>{'9' * 5000}</postalCode>"
        "</address></recipients></job>"
        for start, end in pages
    )
    document = f"<batch>{jobs}<job/><job><recipients>text</recipients></job></batch>".encode()
    assert click2mail.put(f"{CLICK2MAIL}/{batch_id}", content=document, headers=XML_TYPE).status_code == 200
    assert click2mail.post(f"{CLICK2MAIL}/{batch_id}").status_code == 200
    deadline = time.monotonic() + 60
    while (status := parse_xml(click2mail.get(f"{CLICK2MAIL}/{batch_id}").content)).findtext(
        "hasErrors"
    ) != "true":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status.findtext("errorMessage", "").startswith("7 of 7 jobs have errors")
    details = parse_xml(click2mail.get(f"{CLICK2MAIL}/{batch_id}/details").content)
    assert details.findtext("count") == "0" and len(details.findall("errors/error")) >= 7
    tracking = click2mail.get(f"{CLICK2MAIL}/{batch_id}/tracking")
    assert tracking.status_code == 200 and parse_xml(tracking.content).findtext("status") == "1"


# every profile: a batch of a type it does not serve -------------------------------------------
# A profile finds only the batches of the types it serves (docs/profiles/README.md): every request
# that names a batch answers another type's batch (made through the native API) exactly as it
# answers an id that names no batch, and changes nothing. Click2Mail read, filled and submitted
# a native billing.customer batch.

# each profile's operations (as its OpenAPI document lists them) that name no batch
NAME_NO_BATCH = {
    "fusebill": {"POST /v1/BulkApi"},
    "alliant": {"POST /api/Import/User{dimension}s/Batch"},
    "centrapay": {"POST /api/batches"},
    "ebill": {"PUT /files/{key}", "GET /files/{key}"},  # signed URLs: the signature names the file
    "click2mail": {"POST /batches"},
}
# what names no batch, by the way a request names one: an id, a ref (Centrapay's ids), a jobId (eBill)
NO_BATCH = {"id": str(2**63 - 2), "ref": "no-such-batch-ref", "job_id": "no-such-job-id"}
LINE_ITEMS = (
    "<operation>eBill-Import</operation><subOperation>Invoice Line Item</subOperation>"
    "<inputFilename>lines.csv</inputFilename>"
)


@dataclass(frozen=True)
class Naming:
    """A request that names a batch: `operation` is its route as the profile's OpenAPI document
    lists it; "{}" in `path` and `body` is the batch's `by` (id, ref or job_id), sent to a
    batch of `type`, which the profile does not serve."""

    profile: str
    operation: str
    path: str
    body: str = ""
    content_type: str = ""
    by: str = "id"
    type: str = "billing.customer"


NAMING = {
    "fusebill-read": Naming("fusebill", "GET /v1/BulkApi/{job_id}", "/v1/BulkApi/{}"),
    "fusebill-read-full": Naming("fusebill", "GET /v1/BulkApi/{job_id}", "/v1/BulkApi/{}?view=Full"),
    "fusebill-cancel": Naming("fusebill", "POST /v1/BulkApi/{job_id}/Cancel", "/v1/BulkApi/{}/Cancel"),
    "fusebill-process": Naming(
        "fusebill", "POST /v1/BulkApi/Process", "/v1/BulkApi/Process", '{{"id": {}}}', "application/json"
    ),
    "alliant-page": Naming(
        "alliant",
        "PATCH /api/Import/User{dimension}s/Batch/{batch_id}",
        "/api/Import/User1s/Batch/{}",
        '{{"pageNumber": 0, "items": [{{"id": "i1"}}]}}',
        "application/json",
    ),
    "alliant-submit": Naming(
        "alliant",
        "PATCH /api/Import/User{dimension}s/Batch/{batch_id}",
        "/api/Import/User1s/Batch/{}?Submit=true",
    ),
    "alliant-read": Naming(
        "alliant", "GET /api/Import/User{dimension}s/Batch/{batch_id}", "/api/Import/User1s/Batch/{}"
    ),
    "alliant-clear": Naming(
        "alliant",
        "POST /api/Import/User{dimension}s/Batch/{batch_id}/clear",
        "/api/Import/User1s/Batch/{}/clear",
    ),
    "centrapay-read": Naming("centrapay", "GET /api/batches/{batch_id}", "/api/batches/{}", by="ref"),
    "ebill-read-by-id": Naming(
        "ebill", "GET /rest/batchProcess", "/rest/batchProcess?id={}", type="mail.job"
    ),
    "ebill-read-by-job-id": Naming(
        "ebill", "GET /rest/batchProcess", "/rest/batchProcess?jobId={}", by="job_id", type="mail.job"
    ),
    "ebill-finalize-by-id": Naming(
        "ebill",
        "PUT /rest/batchProcess",
        "/rest/batchProcess?mode=BatchFinalize",
        "<batchProcess><id>{}</id></batchProcess>",
        "application/xml",
        type="mail.job",
    ),
    "ebill-finalize-by-job-id": Naming(
        "ebill",
        "PUT /rest/batchProcess",
        "/rest/batchProcess?mode=BatchFinalize",
        "<batchProcess><jobId>{}</jobId></batchProcess>",
        "application/xml",
        by="job_id",
        type="mail.job",
    ),
    "ebill-line-items-of-parent": Naming(
        "ebill",
        "POST /rest/batchProcess",
        "/rest/batchProcess?mode=S3FileUpload",
        f"<batchProcess>{LINE_ITEMS}<parentBatchProcess>{{}}</parentBatchProcess></batchProcess>",
        "application/xml",
        type="mail.job",
    ),
    "ebill-line-items-of-parent-job-id": Naming(
        "ebill",
        "POST /rest/batchProcess",
        "/rest/batchProcess?mode=S3FileUpload",
        f"<batchProcess>{LINE_ITEMS}<parentBatchProcessJobId>{{}}</parentBatchProcessJobId></batchProcess>",
        "application/xml",
        by="job_id",
        type="mail.job",
    ),
    "click2mail-status": Naming("click2mail", "GET /batches/{batch_id}", "/batches/{}"),
    "click2mail-details": Naming("click2mail", "GET /batches/{batch_id}/details", "/batches/{}/details"),
    "click2mail-tracking": Naming("click2mail", "GET /batches/{batch_id}/tracking", "/batches/{}/tracking"),
    "click2mail-pdf": Naming(
        "click2mail", "PUT /batches/{batch_id}", "/batches/{}", "%PDF-1.4", "application/pdf"
    ),
    "click2mail-batch-xml": Naming(
        "click2mail", "PUT /batches/{batch_id}", "/batches/{}", ONE_JOB.decode(), "application/xml"
    ),
    "click2mail-other-content": Naming(
        "click2mail", "PUT /batches/{batch_id}", "/batches/{}", "x", "text/plain"
    ),
    "click2mail-submit": Naming("click2mail", "POST /batches/{batch_id}", "/batches/{}"),
}


@pytest.fixture(scope="module")
def others(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """An account of its own, whose batches are of types a profile does not serve."""
    with server.client(keys[-1]) as made:
        yield made


@pytest.fixture(scope="module")
def foreign(others: httpx.Client) -> dict[str, dict[str, Any]]:
    """Open native batches by type: billing.customer (no profile's but eBill's) and mail.job
    (Click2Mail's), with a job_id as eBill names batches by."""
    made = {}
    for batch_type in ("billing.customer", "mail.job"):
        created = others.post("/v1/batches", json={"type": batch_type, "job_id": f"other-{batch_type}"})
        assert created.status_code == 201, created.text
        made[batch_type] = created.json()
    return made


def native_view(client: httpx.Client, batch_id: int) -> list[Any]:
    """What the native API says of a batch: itself, its inputs, events, errors and children."""
    parts = ["", "/inputs", "/events", "/errors", "/children"]
    return [client.get(f"/v1/batches/{batch_id}{part}").json() for part in parts]


@pytest.mark.parametrize("profile", list(NAME_NO_BATCH))
def test_every_operation_that_names_a_batch_is_tried_with_another_types_batch(
    client: httpx.Client, profile: str
) -> None:
    """NAMING covers each operation a profile serves, so that a new one cannot be left out."""
    document = client.get(f"/compat/{profile}/openapi.json").json()
    served = {
        f"{method.upper()} {path}" for path, operations in document["paths"].items() for method in operations
    }
    tried = {naming.operation for naming in NAMING.values() if naming.profile == profile}
    assert served - NAME_NO_BATCH[profile] == tried


@pytest.mark.parametrize("request_", list(NAMING))
def test_another_types_batch_is_answered_as_no_batch_and_left_alone(
    others: httpx.Client, foreign: dict[str, dict[str, Any]], request_: str
) -> None:
    naming = NAMING[request_]
    batch = foreign[naming.type]
    theirs, nobodys = str(batch[naming.by]), NO_BATCH[naming.by]
    before = native_view(others, batch["id"])

    def send(name: str) -> httpx.Response:
        method, _route = naming.operation.split(" ")
        url = f"/compat/{naming.profile}" + naming.path.format(segment(name))
        headers = {"Content-Type": naming.content_type} if naming.content_type else {}
        return others.request(method, url, headers=headers, content=naming.body.format(escape(name)).encode())

    found, missing = send(theirs), send(nobodys)
    assert found.status_code == missing.status_code == 404, (found.text, missing.text)
    assert found.headers["content-type"] == missing.headers["content-type"]
    assert found.text == missing.text.replace(nobodys, theirs)
    assert native_view(others, batch["id"]) == before


# races: the same request many times at once, which only one may win ----------------------------

RACERS = 8


def fusebill_race(client: httpx.Client) -> tuple[str, str, bytes]:
    """Creates while no job of the account may be in progress but one."""
    return "POST", FUSEBILL, write_off()


def fusebill_process_race(client: httpx.Client) -> tuple[str, str, bytes]:
    job = client.post(FUSEBILL, content=write_off())
    assert job.status_code == 200, job.text
    assert poll_fusebill(client, job.json()["id"])["status"] == "ValidatedWithErrors"
    return "POST", f"{FUSEBILL}/Process", as_json({"id": job.json()["id"]})


def alliant_race(client: httpx.Client) -> tuple[str, str, bytes]:
    body = SEED_CREATE | {"pageNumber": 0, "items": [{"id": "r1"}, {"id": "r2"}]}
    created = client.post(ALLIANT.format(1), content=as_json(body))
    assert created.status_code == 201, created.text
    return "PATCH", f"{ALLIANT.format(1)}/{created.json()['result']['batchId']}?Submit=true", b""


def ebill_race(client: httpx.Client) -> tuple[str, str, bytes]:
    """A BatchInit runs once for its jobId. (The same S3FileUpload again answers the Draft it
    made: test_ebill_same_uploads_race_to_one_batch_process.)"""
    return "POST", f"{EBILL}?mode=BatchInit", ebill_xml(jobId="raced", carryForwardInvoices="true")


def click2mail_race(client: httpx.Client) -> tuple[str, str, bytes]:
    with httpx.Client(base_url=str(client.base_url), auth=("c2m", client.headers["X-Api-Key"])) as c2m:
        batch_id = new_mail_batch(c2m)
        assert c2m.put(f"{CLICK2MAIL}/{batch_id}", content=ONE_JOB, headers=XML_TYPE).status_code == 200
    return "POST", f"{CLICK2MAIL}/{batch_id}", b""


# (the set-up that makes the request, the winner's status, the check of every other answer)
RACES: dict[
    str, tuple[Callable[[httpx.Client], tuple[str, str, bytes]], int, Callable[[httpx.Response], None]]
] = {
    "fusebill-create": (fusebill_race, 200, lambda answer: fusebill_error(answer, 400, "still in progress")),
    "fusebill-process": (
        fusebill_process_race,
        200,
        lambda answer: fusebill_error(answer, 400, "not in status Validated"),
    ),
    "alliant-submit": (alliant_race, 200, lambda answer: alliant_error(answer, 409, "INVALID_STATE")),
    "ebill-same-job-id": (ebill_race, 200, lambda answer: ebill_error(answer, 409, "JOB_ID_CONFLICT")),
    "click2mail-submit": (
        click2mail_race,
        200,
        lambda answer: click2mail_error(answer, 400, "INVALID_STATE"),
    ),
}


@pytest.mark.parametrize("race", list(RACES))
def test_races_have_one_winner(server: Server, keys: list[str], race: str) -> None:
    make, won, lost = RACES[race]
    key = keys[4 + list(RACES).index(race)]
    with server.client(key, **JSON_TYPE) as client:
        method, path, body = make(client)

    def send(_: int) -> httpx.Response:
        with server.client(key, **JSON_TYPE) as racer:
            return racer.request(method, path, content=body)

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(send, range(RACERS)))
    winners = [answer for answer in answers if answer.status_code == won]
    assert len(winners) == 1, [answer.text for answer in answers]
    for answer in answers:
        if answer is not winners[0]:
            lost(answer)


def test_ebill_same_uploads_race_to_one_batch_process(server: Server, keys: list[str]) -> None:
    """The same S3FileUpload sent at once: every answer is the one Draft batch process."""
    key = keys[-2]

    def send(_: int) -> httpx.Response:
        with server.client(key) as racer:
            return racer.post(EBILL, params={"mode": "S3FileUpload"}, content=upload(jobId="raced-upload"))

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(send, range(RACERS)))
    assert {answer.status_code for answer in answers} == {200}, [answer.text for answer in answers]
    assert len({parse_xml(answer.content).findtext("id") for answer in answers}) == 1


# property names that text cannot hold -------------------------------------------------------
# A record's values with a NUL or an unpaired surrogate are its own error (above); its property
# names must be too: a name with U+D800 failed the worker's chunk encoding (UnicodeEncodeError)
# and one with a NUL PostgreSQL's error rows, every attempt, so the whole batch ended in error.

BAD_NAMES = ["\ud800", "a\x00"]


def test_alliant_items_whose_names_text_cannot_hold_are_item_errors(client: httpx.Client) -> None:
    items = [
        {"id": "n0", BAD_NAMES[0]: 1},
        {"id": "n1", BAD_NAMES[1]: 1},
        {"id": "n2", "d": {BAD_NAMES[1]: 1}},
    ]
    items.append({"id": "n3"})
    body = SEED_CREATE | {"pageSize": 4, "totalItems": 4, "pageNumber": 0, "items": items}
    created = client.post(
        ALLIANT.format(1), params={"Submit": "true"}, content=as_json(body), headers=JSON_TYPE
    )
    assert created.status_code == 201, created.text
    path = f"{ALLIANT.format(1)}/{created.json()['result']['batchId']}"
    deadline = time.monotonic() + 60
    while (read := client.get(path).json())["result"]["status"] not in ("completed", "error"):
        assert time.monotonic() < deadline, read
        time.sleep(0.05)
    assert (read["result"]["status"], read["result"]["succeededItems"]) == ("completed", 1), read
    assert {e["index"]: e["code"] for e in read["errors"]} == dict.fromkeys((0, 1, 2), "INVALID_RECORD")


def test_fusebill_payments_whose_names_text_cannot_hold_fail_validation(
    server: Server, keys: list[str]
) -> None:
    data = [{"customerId": 1, "amount": 1, name: 1} for name in BAD_NAMES]
    headers = {"Authorization": f"Basic {keys[3]}"} | JSON_TYPE
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as fusebill:
        created = fusebill.post(FUSEBILL, content=as_json({"accountUploadType": "BulkPayment", "data": data}))
        assert created.status_code == 200, created.text
        job = poll_fusebill(fusebill, created.json()["id"])
        assert (job["status"], job["failedRecords"]) == ("ValidatedWithErrors", 2), job
        assert all("cannot hold" in record["details"] for record in job["records"]), job
        assert fusebill.post(f"{FUSEBILL}/{job['id']}/Cancel").json()["status"] == "Failed"


def test_centrapay_records_whose_names_text_cannot_hold_are_errors(
    client: httpx.Client, httpserver: HTTPServer
) -> None:
    record: dict[str, object] = {"status": "online", "reported_at": "2026-03-01T10:00:00Z"}
    lines = [record | {"terminal_id": f"T{i}", name: 1} for i, name in enumerate(BAD_NAMES)]
    lines.append(record | {"terminal_id": "T9"})
    httpserver.expect_request("/names.jsonl").respond_with_data(
        "".join(json.dumps(line) + "\n" for line in lines), content_type="application/x-ndjson"
    )
    body = {"type": "verifone-terminal-status", "url": httpserver.url_for("/names.jsonl"), "accountId": "a"}
    created = client.post(CENTRAPAY, content=as_json(body), headers=JSON_TYPE)
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 60
    while (batch := client.get(f"{CENTRAPAY}/{created.json()['id']}").json())["status"] not in (
        "complete",
        "error",
    ):
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    assert (batch["status"], batch["count"], batch["errorCount"]) == ("complete", "3", "2"), batch
    assert [(e["index"], e["message"]) for e in batch["errors"]] == [
        ("0", "INVALID_RECORD"),
        ("1", "INVALID_RECORD"),
    ]


# random input, every profile ---------------------------------------------------------------
# Whatever the id or body, the answer is never a 5xx (nor a traceback in the log, conftest),
# and a refusal is in the vendor's format.

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)  # surrogates, NULs
IDS = ANY_TEXT | st.integers().map(str) | st.integers(min_value=2**63 - 2, max_value=10**40).map(str)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=10,
)
RANDOM = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def fields_of(**known: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON bodies: objects with some of the `known` fields (each also any JSON value), or any JSON."""
    objects = st.fixed_dictionaries({}, optional={name: value | JSON_VALUES for name, value in known.items()})
    return (objects | JSON_VALUES).map(as_json)


def vendor_refusal(profile: str, answer: httpx.Response) -> None:
    """No 5xx; a 4xx is in the profile's error format (any status and code)."""
    assert answer.status_code < 500, answer.text
    if answer.status_code < 400:
        return
    if profile == "fusebill":
        assert answer.json()["HttpStatusCode"] == answer.status_code
    elif profile == "alliant":
        assert answer.json()["result"] is None and answer.json()["errors"]
    elif profile == "centrapay":
        assert set(answer.json()) == {"code", "message"}
    elif profile == "ebill":
        assert parse_xml(answer.content).findtext("errorCode")
    else:
        assert parse_xml(answer.content).findtext("code")


@pytest.fixture(scope="module")
def stranger(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """An account of its own, whatever random input makes of it."""
    with server.client(keys[2]) as made:
        yield made


ID_ROUTES = {
    "fusebill": f"{FUSEBILL}/{{}}",
    "alliant": ALLIANT.format(1) + "/{}",
    "centrapay": f"{CENTRAPAY}/{{}}",
    "click2mail": f"{CLICK2MAIL}/{{}}/details",
}


@pytest.mark.parametrize("profile", [*ID_ROUTES, "alliant-dimension", "ebill-id", "ebill-job-id"])
def test_random_ids(stranger: httpx.Client, profile: str) -> None:
    @RANDOM
    @given(IDS)
    def answered(batch_id: str) -> None:
        if profile.startswith("ebill"):
            params = {"id" if profile == "ebill-id" else "jobId": batch_id}
            answer = stranger.get(EBILL, params=params)
        elif profile == "alliant-dimension":
            answer = stranger.get(ALLIANT.format(segment(batch_id)) + "/1")
        else:
            answer = stranger.get(ID_ROUTES[profile].format(segment(batch_id)))
        vendor_refusal(profile.split("-")[0], answer)

    answered()


RANDOM_BODIES = {
    "fusebill": (
        f"{FUSEBILL}/Process",
        fields_of(id=st.integers() | IDS),
    ),
    "alliant": (
        ALLIANT.format(1),
        fields_of(
            importFileName=ANY_TEXT,
            description=ANY_TEXT,
            pageSize=st.integers(),
            totalItems=st.integers(),
            pageNumber=st.integers(),
            items=st.lists(JSON_VALUES, max_size=3),
        ),
    ),
    "centrapay": (
        CENTRAPAY,
        fields_of(type=st.sampled_from(["farmlands-external-asset", "x"]), url=ANY_TEXT, accountId=ANY_TEXT),
    ),
}


@pytest.mark.parametrize("profile", list(RANDOM_BODIES))
def test_random_json_bodies(stranger: httpx.Client, profile: str) -> None:
    path, bodies = RANDOM_BODIES[profile]

    @RANDOM
    @given(bodies)
    def answered(body: bytes) -> None:
        vendor_refusal(profile, stranger.post(path, content=body, headers=JSON_TYPE))

    answered()


def xml_of(root: str, names: list[str]) -> st.SearchStrategy[bytes]:
    """Documents under `root` with some of these elements, each of any text (a lone surrogate
    goes as the bytes UTF-8 would give it, which are not UTF-8)."""

    def document(pairs: list[tuple[str, str]]) -> bytes:
        inner = "".join(f"<{name}>{escape(text)}</{name}>" for name, text in pairs)
        return f"<{root}>{inner}</{root}>".encode("utf-8", "surrogatepass")

    return st.lists(st.tuples(st.sampled_from(names), ANY_TEXT), max_size=6).map(document)


RANDOM_DOCUMENTS = {
    "ebill-upload": (
        "POST",
        f"{EBILL}?mode=S3FileUpload",
        xml_of("batchProcess", ["jobId", "operation", "subOperation", "inputFilename", "parentBatchProcess"]),
    ),
    "ebill-finalize": ("PUT", f"{EBILL}?mode=BatchFinalize", xml_of("batchProcess", ["id", "jobId"])),
    "click2mail-jobs": (
        "PUT",
        f"{CLICK2MAIL}/{{}}",
        xml_of("job", ["startingPage", "endingPage", "recipients", "printProductionOptions"]).map(
            lambda job: b"<batch>" + job + b"</batch>"
        ),
    ),
}


@pytest.mark.parametrize("route", list(RANDOM_DOCUMENTS))
def test_random_xml_documents(stranger: httpx.Client, route: str) -> None:
    method, path, documents = RANDOM_DOCUMENTS[route]
    if route.startswith("click2mail"):
        with httpx.Client(
            base_url=str(stranger.base_url), auth=("c2m", stranger.headers["X-Api-Key"])
        ) as c2m:
            path = path.format(new_mail_batch(c2m))

    @RANDOM
    @given(documents)
    def answered(document: bytes) -> None:
        vendor_refusal(
            route.split("-")[0], stranger.request(method, path, content=document, headers=XML_TYPE)
        )

    answered()
