"""The five API profiles under attack: ids, query strings, bodies and credentials that no
client of the seeds would send. Each case states its safe answer: the status the seed would
give, in the vendor's own error format (Fusebill's `Errors` body, Alliant's envelope,
Centrapay's `{code, message}`, eBill's `<batchProcess>` and Click2Mail's `<error>`). The
module also fails on any 5xx or traceback in the server's log (conftest), so a case that
holds by luck of its assertion still fails if the server stumbled on the way.

Cases that held before they were written down are kept, so that they keep holding.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from loadbay.xmlsafe import parse_xml
from tests.support.accounts import make_keys
from tests.support.pdfs import pdf
from tests.support.servers import Server

FUSEBILL = "/compat/fusebill/v1/BulkApi"
ALLIANT = "/compat/alliant/api/Import/User{}s/Batch"
CENTRAPAY = "/compat/centrapay/api/batches"
EBILL = "/compat/ebill/rest/batchProcess"
CLICK2MAIL = "/compat/click2mail/batches"

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
        pytest.param(b"", "INVALID_XML", id="empty"),
        pytest.param(b"<", "INVALID_XML", id="truncated-tag"),
        pytest.param(f"<{root}><a>".encode(), "INVALID_XML", id="truncated-document"),
        pytest.param(BILLION_LAUGHS.replace(b"ROOT", root.encode()), "INVALID_XML", id="entity-expansion"),
        pytest.param(XXE.replace(b"ROOT", root.encode()), "INVALID_XML", id="external-entity"),
        pytest.param(f"<{root}><a>&#0;</a></{root}>".encode(), "INVALID_XML", id="nul-reference"),
        pytest.param(f"<{root}><a>&#xD800;</a></{root}>".encode(), "INVALID_XML", id="surrogate-reference"),
        pytest.param(f"<{root}><a>\x00</a></{root}>".encode(), "INVALID_XML", id="nul-byte"),
        pytest.param(
            f'<?xml version="1.0" encoding="bogus"?><{root}/>'.encode(), "INVALID_XML", id="unknown-encoding"
        ),  # LookupError
        pytest.param(
            f'<?xml version="1.0" encoding="utf-32"?><{root}/>'.encode(),
            "INVALID_XML",
            id="multibyte-encoding",
        ),  # ValueError: multi-byte encodings are not supported
        pytest.param(
            f'<?xml version="1.0" encoding="rot13"?><{root}/>'.encode(),
            "INVALID_XML",
            id="not-a-text-encoding",
        ),
        pytest.param(b'{"batch": {}}', "INVALID_XML", id="json"),
    ]


# fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(server: Server) -> list[str]:
    """[0] for the tables, [1] for the cases that make batches that the worker validates."""
    return make_keys(server, "profile-attacks", 2)


@pytest.fixture(scope="module")
def client(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    with server.client(keys[0]) as made:
        yield made


@pytest.fixture(scope="module")
def fusebill(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """As the seed's examples call: `Authorization: Basic {APIKey}`."""
    headers = {"Authorization": f"Basic {keys[0]}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as made:
        yield made


@pytest.fixture(scope="module")
def click2mail(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """As Click2Mail's clients call: HTTP Basic with the key as the password."""
    with httpx.Client(base_url=server.url, auth=("c2m", keys[0]), timeout=30) as made:
        yield made


# the vendors' error formats -------------------------------------------------------------


def fusebill_error(answer: httpx.Response, status: int, says: str = "") -> str:
    """Fusebill's error body; its one error's Value (which holds `says`)."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert (body["ErrorId"], body["HttpStatusCode"]) == (0, status), body
    [error] = body["Errors"]
    assert error["Key"] == "Api Error" and says in error["Value"], body
    return str(error["Value"])


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


# credentials, every profile ---------------------------------------------------------------

# where each profile is called with a bad credential
PROFILE_ROUTES = {
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


# (Authorization header as sent, whether it names a key at all)
BAD_CREDENTIALS = [
    pytest.param(b"Basic \xc3\xa9", True, id="basic-not-ascii"),  # b64decode: ValueError
    pytest.param(b"Basic \xff\xfe", True, id="basic-latin1"),
    pytest.param(b"Basic !!!!", True, id="basic-not-base64"),
    pytest.param(b"Basic AAAAA", True, id="basic-bad-padding"),
    pytest.param(b"Basic Og==", True, id="basic-empty-user-and-password"),  # ":"
    pytest.param(b"Basic //79", True, id="basic-not-utf8"),  # b"\xff\xfe\xfd"
    pytest.param(b"Basic " + b"QQ" * 4000, True, id="basic-8k"),
    pytest.param(b"Bearer \xe9\xff", True, id="bearer-latin1"),
    pytest.param(b"Basic", False, id="basic-without-credential"),
    pytest.param(b"Digest username=x", False, id="another-scheme"),
]


@pytest.mark.parametrize(("authorization", "named"), BAD_CREDENTIALS)
@pytest.mark.parametrize("profile", list(PROFILE_ROUTES))
def test_bad_credentials_are_refused_in_the_vendors_format(
    server: Server, profile: str, authorization: bytes, named: bool
) -> None:
    method, path = PROFILE_ROUTES[profile]
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        answer = anonymous.request(method, path, headers=headers, content=b"{}")
    credential_refused(profile, answer, named)


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


def write_off(**fields: Any) -> bytes:
    return as_json({"accountUploadType": "BulkWriteOff", "data": [1]} | fields)


FUSEBILL_BODIES = [
    pytest.param("", b"", 400, "empty", id="create-empty"),
    pytest.param("/Process", b"  ", 400, "empty", id="process-blank"),
    pytest.param("", DEEP_ARRAY, 400, "nests", id="create-array-100000-deep"),  # RecursionError
    pytest.param("/Process", DEEP_OBJECT, 400, "nests", id="process-object-100000-deep"),
    pytest.param("", as_json({"data": nested(65)}), 400, "nests", id="create-65-deep"),
    pytest.param("", b"{", 400, "not valid JSON", id="create-truncated"),
    pytest.param("/Process", b'{"id": NaN}', 400, "not valid JSON", id="process-nan"),
    pytest.param(
        "/Process", b'{"id": ' + HUGE.encode() + b"}", 400, "not valid JSON", id="process-5000-digits"
    ),
    pytest.param("/Process", b"\xff\xfe\x00", 400, "not valid JSON", id="process-not-utf8"),
    pytest.param("/Process", b"\x00", 400, "not valid JSON", id="process-nul"),
    pytest.param("", b"null", 400, "must be a JSON object", id="create-null"),
    pytest.param("", b"[]", 400, "must be a JSON object", id="create-array"),
    pytest.param("", b'"BulkWriteOff"', 400, "must be a JSON object", id="create-string"),
    pytest.param("/Process", b"[1]", 400, "id is required", id="process-array"),
    pytest.param(
        "/Process", b'{"id": true}', 400, "id is required", id="process-id-true"
    ),  # bigint = boolean
    pytest.param("/Process", b'{"id": "1"}', 400, "id is required", id="process-id-string"),
    pytest.param("/Process", b'{"id": 1.5}', 400, "id is required", id="process-id-float"),
    pytest.param("/Process", b'{"id": 1e999}', 400, "id is required", id="process-id-infinite"),
    pytest.param("/Process", b'{"id": null}', 400, "id is required", id="process-id-null"),
    pytest.param("/Process", as_json({"id": 2**63}), 404, "was not found", id="process-id-2**63"),
    pytest.param("/Process", as_json({"id": 2**200}), 404, "was not found", id="process-id-2**200"),
    pytest.param("/Process", b'{"id": -1}', 404, "was not found", id="process-id-negative"),
    pytest.param("/Process", b"{id:0}", 404, "was not found", id="process-bare-key"),  # the seed's curl
    pytest.param("", write_off(accountUploadType=[]), 400, "accountUploadType", id="type-array"),  # TypeError
    pytest.param("", write_off(accountUploadType={}), 400, "accountUploadType", id="type-object"),
    pytest.param("", write_off(accountUploadType=None), 400, "accountUploadType", id="type-null"),
    pytest.param("", write_off(accountUploadType=1), 400, "accountUploadType", id="type-number"),
    pytest.param("", write_off(accountUploadType="\ud800"), 400, "accountUploadType", id="type-surrogate"),
    pytest.param("", write_off(data=None), 400, "data must be a non-empty list", id="data-null"),
    pytest.param("", write_off(data={}), 400, "data must be a non-empty list", id="data-object"),
    pytest.param("", write_off(data="1,2"), 400, "data must be a non-empty list", id="data-string"),
    pytest.param("", write_off(data=[]), 400, "data must be a non-empty list", id="data-empty"),
    pytest.param("", write_off(data=[1] * 1001), 400, "at most 1000", id="data-1001"),
    # UnicodeEncodeError when the job was written or answered
    pytest.param(
        "", write_off(reference="\ud800"), 400, "reference must not hold an unpaired", id="ref-surrogate"
    ),
    pytest.param(
        "", write_off(reference="a\udfffb"), 400, "reference must not hold an unpaired", id="ref-low"
    ),
    pytest.param("", write_off(reference="a\x00b"), 400, "reference must not hold a NUL", id="ref-nul"),
    pytest.param(
        "", write_off(fileName="\ud800.csv"), 400, "fileName must not hold an unpaired", id="name-surr"
    ),
    pytest.param(
        "", write_off(fileName="a\x00.csv"), 400, "fileName must not hold a NUL", id="file-name-nul"
    ),
]


@pytest.mark.parametrize(("route", "body", "status", "says"), FUSEBILL_BODIES)
def test_fusebill_bodies(fusebill: httpx.Client, route: str, body: bytes, status: int, says: str) -> None:
    fusebill_error(fusebill.post(FUSEBILL + route, content=body), status, says)


def test_fusebill_records_out_of_any_range_fail_validation_one_by_one(
    server: Server, keys: list[str]
) -> None:
    """Ids past a BIGINT, lone surrogates and NULs in a job's data: each its record's error
    (the worker overflowed on such an id before), the job still answered, then cancelled."""
    headers = {"Authorization": f"Basic {keys[1]}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as fusebill:
        jobs = [
            ("BulkWriteOff", [2**64, -(2**63) - 1, "\ud800", "a\x00", 2**63 - 1]),
            (
                "BulkPayment",
                [{"customerId": 2**64, "amount": 1}, {"customerId": 1, "amount": 1, "method": "\ud800"}],
            ),
        ]
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
    path = ALLIANT.format(segment(dimension)) + rest
    alliant_error(
        client.request(method, path, json=SEED_CREATE if method == "POST" else None), 404, "NOT_FOUND"
    )


@pytest.mark.parametrize("route", ["GET /{}", "PATCH /{}?Submit=true", "POST /{}/clear"])
@pytest.mark.parametrize("batch_id", NOT_BATCH_IDS)
def test_alliant_batch_ids_that_name_no_batch_are_404(
    client: httpx.Client, route: str, batch_id: str
) -> None:
    method, rest = route.split(" ")
    path = ALLIANT.format(1) + rest.format(segment(batch_id))
    alliant_error(client.request(method, path), 404, "NOT_FOUND")


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


def seed_create(**fields: Any) -> bytes:
    return as_json(SEED_CREATE | fields)


ALLIANT_BODIES = [
    pytest.param(DEEP_ARRAY, "application/json", 400, "INVALID_JSON", None, id="array-100000-deep"),
    pytest.param(DEEP_OBJECT, "application/json", 400, "INVALID_JSON", None, id="object-100000-deep"),
    pytest.param(seed_create(items=nested(64)), "application/json", 400, "INVALID_JSON", None, id="65-deep"),
    pytest.param(b"{", "application/json", 400, "INVALID_JSON", None, id="truncated"),
    pytest.param(b'{"pageSize": NaN}', "application/json", 400, "INVALID_JSON", None, id="nan"),
    pytest.param(b'{"pageSize": Infinity}', "application/json", 400, "INVALID_JSON", None, id="infinity"),
    pytest.param(
        b'{"pageSize": ' + HUGE.encode() + b"}",
        "application/json",
        400,
        "INVALID_JSON",
        None,
        id="5000-digits",
    ),
    pytest.param(b"\xff\xfe\xfd", "application/json", 400, "INVALID_JSON", None, id="not-utf8"),
    pytest.param(b"\x00", "application/json", 400, "INVALID_JSON", None, id="nul"),
    pytest.param(b"null", "application/json", 400, "REQUIRED", "importFileName", id="null"),
    pytest.param(b"[]", "application/json", 400, "INVALID_VALUE", None, id="array"),
    pytest.param(b'"x"', "application/json", 400, "INVALID_VALUE", None, id="string"),
    pytest.param(
        seed_create(importFileName="\ud800"),
        "application/json",
        400,
        "INVALID_VALUE",
        "importFileName",
        id="name-surrogate",
    ),
    pytest.param(
        seed_create(importFileName="a\x00"),
        "application/json",
        400,
        "INVALID_VALUE",
        "importFileName",
        id="name-nul",
    ),
    pytest.param(
        seed_create(importFileName=1),
        "application/json",
        400,
        "INVALID_VALUE",
        "importFileName",
        id="name-number",
    ),
    pytest.param(
        seed_create(importFileName="x" * 256),
        "application/json",
        400,
        "TOO_LONG",
        "importFileName",
        id="name-256",
    ),
    pytest.param(
        seed_create(description="\udfff"),
        "application/json",
        400,
        "INVALID_VALUE",
        "description",
        id="description-surrogate",
    ),
    pytest.param(
        seed_create(pageSize="2"), "application/json", 400, "INVALID_VALUE", "pageSize", id="size-string"
    ),
    pytest.param(
        seed_create(pageSize=True), "application/json", 400, "INVALID_VALUE", "pageSize", id="size-true"
    ),
    pytest.param(
        seed_create(pageSize=2**64), "application/json", 400, "INVALID_VALUE", "pageSize", id="size-2**64"
    ),
    pytest.param(
        seed_create(pageSize=0), "application/json", 400, "INVALID_VALUE", "pageSize", id="size-zero"
    ),
    pytest.param(
        seed_create(totalItems=-1),
        "application/json",
        400,
        "INVALID_VALUE",
        "totalItems",
        id="total-negative",
    ),
    pytest.param(
        seed_create(pageNumber="\ud800"),
        "application/json",
        400,
        "INVALID_VALUE",
        "pageNumber",
        id="page-surrogate",
    ),
    pytest.param(seed_create(items={}), "application/json", 400, "INVALID_VALUE", "items", id="items-object"),
    pytest.param(seed_create(), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", None, id="text-plain"),
    pytest.param(seed_create(), "application/xml", 415, "UNSUPPORTED_MEDIA_TYPE", None, id="xml"),
    pytest.param(seed_create(), "", 415, "UNSUPPORTED_MEDIA_TYPE", None, id="no-content-type"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code", "field"), ALLIANT_BODIES)
def test_alliant_create_bodies(
    client: httpx.Client, body: bytes, content_type: str, status: int, code: str, field: str | None
) -> None:
    answer = client.post(ALLIANT.format(1), content=body, headers={"Content-Type": content_type})
    alliant_error(answer, status, code, field)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        pytest.param(DEEP_ARRAY, "INVALID_JSON", None, id="array-100000-deep"),
        pytest.param(b"{", "INVALID_JSON", None, id="truncated"),
        pytest.param(
            as_json({"pageNumber": "\ud800", "items": []}), "INVALID_VALUE", "pageNumber", id="page-surrogate"
        ),
        pytest.param(
            as_json({"pageNumber": 2**63, "items": []}), "INVALID_VALUE", "pageNumber", id="page-2**63"
        ),
        pytest.param(
            as_json({"pageNumber": -1, "items": []}), "INVALID_VALUE", "pageNumber", id="page-negative"
        ),
        pytest.param(as_json({"pageNumber": 0, "items": "x"}), "INVALID_VALUE", "items", id="items-string"),
        pytest.param(as_json({"pageNumber": 0}), "INVALID_VALUE", None, id="page-without-items"),
        pytest.param(b"{}", "NOTHING_TO_DO", None, id="nothing"),
    ],
)
def test_alliant_page_bodies(
    client: httpx.Client, alliant_batch: int, body: bytes, code: str, field: str | None
) -> None:
    answer = client.patch(
        f"{ALLIANT.format(1)}/{alliant_batch}", content=body, headers={"Content-Type": "application/json"}
    )
    alliant_error(answer, 400, code, field)


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
        ALLIANT.format(1),
        params={"Submit": "true"},
        content=as_json(body),
        headers={"Content-Type": "application/json"},
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


def centrapay_create(**fields: Any) -> bytes:
    return as_json(CENTRAPAY_CREATE | fields)


CENTRAPAY_BODIES = [
    pytest.param(DEEP_ARRAY, "application/json", 400, id="array-100000-deep"),
    pytest.param(DEEP_OBJECT, "application/json", 400, id="object-100000-deep"),
    pytest.param(b"{", "application/json", 400, id="truncated"),
    pytest.param(b"", "application/json", 400, id="empty"),
    pytest.param(b"\xff\xfe\xfd", "application/json", 400, id="not-utf8"),
    pytest.param(b"null", "application/json", 400, id="null"),
    pytest.param(b"[]", "application/json", 400, id="array"),
    pytest.param(centrapay_create(type=1), "application/json", 400, id="type-number"),
    pytest.param(centrapay_create(type=None), "application/json", 400, id="type-null"),
    pytest.param(centrapay_create(url="\ud800"), "application/json", 400, id="url-surrogate"),
    pytest.param(centrapay_create(url="https://example.com/\x00"), "application/json", 400, id="url-nul"),
    pytest.param(
        centrapay_create(url=["https://example.com/a.csv"]), "application/json", 400, id="url-array"
    ),
    pytest.param(centrapay_create(accountId="\udfff"), "application/json", 400, id="account-surrogate"),
    pytest.param(centrapay_create(accountId="a\x00"), "application/json", 400, id="account-nul"),
    pytest.param(centrapay_create(accountId=2**64), "application/json", 400, id="account-number"),
    pytest.param(centrapay_create(test="perhaps"), "application/json", 400, id="test-string"),
    pytest.param(centrapay_create(), "text/plain", 400, id="text-plain"),
]


@pytest.mark.parametrize(("body", "content_type", "status"), CENTRAPAY_BODIES)
def test_centrapay_create_bodies(client: httpx.Client, body: bytes, content_type: str, status: int) -> None:
    answer = client.post(CENTRAPAY, content=body, headers={"Content-Type": content_type})
    centrapay_error(answer, status, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(centrapay_create(type="x"), "UNKNOWN_TYPE", id="unknown-type"),
        pytest.param(centrapay_create(type="\ud800"), "UNKNOWN_TYPE", id="type-surrogate"),
        pytest.param(centrapay_create(url="file:///etc/passwd"), "INVALID_SOURCE_URL", id="file-url"),
        pytest.param(centrapay_create(url="gopher://127.0.0.1:25/"), "INVALID_SOURCE_URL", id="gopher-url"),
        pytest.param(centrapay_create(test=True), "LIVENESS_MISSMATCH", id="test-flag-of-a-live-key"),
    ],
)
def test_centrapay_refused_creates(client: httpx.Client, body: bytes, code: str) -> None:
    answer = client.post(CENTRAPAY, content=body, headers={"Content-Type": "application/json"})
    centrapay_error(answer, 403 if code == "LIVENESS_MISSMATCH" else 400, code)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("http://[::1", "FETCH_REFUSED", id="broken-ipv6"),
        pytest.param("http://" + "a" * 5000 + "/x.csv", "FETCH_FAILED", id="label-too-long-for-idna"),
        pytest.param("http://a:99999/x.csv", "FETCH_", id="port-out-of-range"),
        pytest.param("http://\u00e9xample.invalid/x.csv", "FETCH_FAILED", id="idna-host"),
    ],
)
def test_centrapay_urls_no_fetch_can_reach_end_the_batch_in_error(
    client: httpx.Client, url: str, reason: str
) -> None:
    """Taken (only the fetch can tell), then the batch is `error` with the reason, at once."""
    created = client.post(
        CENTRAPAY, content=centrapay_create(url=url), headers={"Content-Type": "application/json"}
    )
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


@pytest.mark.parametrize(("body", "code"), xml_bodies("batchProcess"))
@pytest.mark.parametrize("route", ["POST BatchInit", "POST S3FileUpload", "PUT BatchFinalize"])
def test_ebill_malformed_xml_is_400(client: httpx.Client, route: str, body: bytes, code: str) -> None:
    method, mode = route.split(" ")
    ebill_error(client.request(method, EBILL, params={"mode": mode}, content=body), 400, code)


def upload(**fields: str) -> bytes:
    values = {"operation": "eBill-Import", "subOperation": "Customer", "inputFilename": "c.csv"} | fields
    return (
        "<batchProcess>" + "".join(f"<{k}>{v}</{k}>" for k, v in values.items()) + "</batchProcess>"
    ).encode()


@pytest.mark.parametrize(
    ("mode", "body", "status", "code"),
    [
        pytest.param("S3FileUpload", b"<upload/>", 400, "INVALID_XML", id="wrong-root"),
        pytest.param(
            "S3FileUpload",
            b'<batchProcess a="' + b"x" * 500_000 + b'"/>',
            400,
            "INVALID_REQUEST",
            id="huge-attribute",
        ),
        pytest.param(
            "S3FileUpload",
            b"<batchProcess>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</batchProcess>",
            400,
            "INVALID_REQUEST",
            id="100000-deep",
        ),
        pytest.param(
            "S3FileUpload", upload(parentBatchProcess=HUGE), 400, "INVALID_REQUEST", id="parent-5000-digits"
        ),
        pytest.param(
            "S3FileUpload", upload(parentBatchProcess="²"), 400, "INVALID_REQUEST", id="parent-superscript"
        ),
        pytest.param("S3FileUpload", upload(jobId="x" * 201), 400, "INVALID_REQUEST", id="job-id-201-chars"),
        pytest.param(
            "S3FileUpload", upload(inputFilename="x" * 201 + ".csv"), 400, "INVALID_REQUEST", id="name-long"
        ),
        pytest.param(
            "S3FileUpload", upload(inputFilename="c.exe"), 400, "INVALID_FILENAME", id="name-extension"
        ),
        pytest.param(
            "S3FileUpload", upload(subOperation="\u202eremotsuC"), 400, "UNKNOWN_SUB_OPERATION", id="bidi"
        ),
        pytest.param(
            "BatchInit",
            b"<batchProcess><carryForwardInvoices>"
            + HUGE.encode()
            + b"</carryForwardInvoices></batchProcess>",
            400,
            "INVALID_REQUEST",
            id="flag-5000-digits",
        ),
        pytest.param(
            "BatchFinalize",
            b"<batchProcess><id>" + HUGE.encode() + b"</id></batchProcess>",
            400,
            "INVALID_REQUEST",
            id="finalize-5000-digits",
        ),
        pytest.param(
            "BatchFinalize",
            b"<batchProcess><id>" + LAST_BIGINT.encode() + b"</id></batchProcess>",
            404,
            "NOT_FOUND",
            id="finalize-2**63-1",
        ),
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
    pytest.param(HUGE, 400, "INVALID_INPUT", id="5000-digits"),
    pytest.param("abc", 400, "INVALID_INPUT", id="letters"),
    pytest.param("1.5", 400, "INVALID_INPUT", id="fraction"),
    pytest.param("\x00", 400, "INVALID_INPUT", id="nul"),
    pytest.param(PAST_BIGINT, 404, "NOT_FOUND", id="2**63"),
    pytest.param(LAST_BIGINT, 404, "NOT_FOUND", id="2**63-1"),
    pytest.param("0", 404, "NOT_FOUND", id="zero"),
    pytest.param("-1", 404, "NOT_FOUND", id="negative"),
]


@pytest.mark.parametrize(
    "route", ["GET /{}", "GET /{}/details", "GET /{}/tracking", "POST /{}", "PUT /{} application/xml"]
)
@pytest.mark.parametrize(("batch_id", "status", "code"), CLICK2MAIL_IDS)
def test_click2mail_batch_ids(
    click2mail: httpx.Client, route: str, batch_id: str, status: int, code: str
) -> None:
    method, path, *content_type = route.split(" ")
    headers = {"Content-Type": content_type[0]} if content_type else {}
    path = CLICK2MAIL + path.format(segment(batch_id))
    answer = click2mail.request(method, path, content=ONE_JOB, headers=headers)
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
        *xml_bodies("batch"),
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
    answer = click2mail.put(
        f"{CLICK2MAIL}/{mail_batch}", content=body, headers={"Content-Type": "application/xml"}
    )
    click2mail_error(answer, 400, code)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "multipart/form-data; boundary=x", "", "\u00e9/\u00e9"]
)
def test_click2mail_other_content_types_are_415(
    click2mail: httpx.Client, mail_batch: int, content_type: str
) -> None:
    headers = {"Content-Type": content_type.encode("utf-8")}
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
    put = click2mail.put(
        f"{CLICK2MAIL}/{batch_id}", content=document, headers={"Content-Type": "application/xml"}
    )
    assert put.status_code == 200, put.text
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
