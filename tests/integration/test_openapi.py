"""The OpenAPI documents and the docs pages, as a real `loadbay serve` (SQLite) serves them.

/openapi.json and each profile's are valid OpenAPI; the native document says how the API
really answers (the key schemes, problem+json errors and no 422, CSV results, files for
uploads, an example for every request body); and /docs and /redoc, the native API's and
each profile's, load everything from this server (tests/browser/test_api_docs.py loads them
in a browser with the network cut off).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.servers import Server, start_server

KEYLESS = {"/healthz", "/readyz", "/metrics", "/v1/blobs/{key}"}  # signed URLs: the signature is the key
UPLOADS = {("put", "/v1/batches/{batch_id}/data"), ("put", "/v1/blobs/{key}")}
FILE_TYPES = {"text/csv", "text/tab-separated-values", "application/x-ndjson", "application/json"}
PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}
PROFILE_NAMES = {"alliant", "centrapay", "click2mail", "ebill", "fusebill"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data: Path = tmp_path_factory.mktemp("openapi")
    running = start_server(f"sqlite:///{data / 'loadbay.db'}", data, workers=1)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def document(api: Server) -> dict[str, Any]:
    answer = httpx.get(api.url + "/openapi.json")
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture(scope="module")
def profiles(document: dict[str, Any]) -> list[str]:
    """Each profile's prefix, as the native document's description links its docs page."""
    return re.findall(r"\]\((/compat/[a-z0-9]+)/docs\)", document["info"]["description"])


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def test_the_documents_are_valid_openapi(api: Server, document: dict[str, Any], profiles: list[str]) -> None:
    validate(document)
    assert sorted(profiles) == [f"/compat/{name}" for name in sorted(PROFILE_NAMES)]
    for prefix in profiles:
        profile = httpx.get(f"{api.url}{prefix}/openapi.json").json()
        validate(profile)
        assert profile["paths"], prefix


def test_operations_that_take_a_key_name_both_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-Api-Key"
    for method, path, operation in _operations(document):
        if path in KEYLESS:
            assert "security" not in operation, (method, path)
        else:  # either one: the server takes `Authorization: Bearer KEY` or `X-Api-Key: KEY`
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_errors_are_problems_and_no_operation_promises_422(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"title", "status", "code", "detail"}
    for method, path, operation in _operations(document):
        assert "422" not in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if int(status) >= 400 and path.startswith("/v1/"):
                assert response["content"] == {"application/problem+json": PROBLEM}, (method, path, status)
        takes_input = operation.get("parameters") or operation.get("requestBody")
        if path.startswith("/v1/") and path not in KEYLESS and takes_input:
            assert "400" in operation["responses"], (method, path)


def test_results_are_csv(document: dict[str, Any]) -> None:
    for path in ("/v1/batches/{batch_id}/results", "/v1/blobs/{key}"):
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert list(ok["content"]) == ["text/csv"], path
        assert ok["content"]["text/csv"]["example"].startswith("customer_number,name,loadbay_status")


def test_uploads_take_a_file_in_each_format(document: dict[str, Any]) -> None:
    for method, path in UPLOADS:
        body = document["paths"][path][method]["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == FILE_TYPES, path
        for media_type, content in body["content"].items():
            assert content["schema"] == {"contentMediaType": media_type}  # a file: Swagger UI's chooser
            assert content["example"], (path, media_type)


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    bodies = [(m, p, o["requestBody"]) for m, p, o in _operations(document) if "requestBody" in o]
    # create, data, pages, upload-url, the signed upload, retry, a webhook's create and change
    assert len(bodies) == 8
    for method, path, body in bodies:
        for media_type, content in body["content"].items():
            assert content.get("examples") or content.get("example"), (method, path, media_type)


def test_the_description_links_each_profiles_docs_page(api: Server, profiles: list[str]) -> None:
    for prefix in profiles:
        page = httpx.get(f"{api.url}{prefix}/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text, prefix


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_docs_pages_load_everything_from_this_server(api: Server, profiles: list[str], page: str) -> None:
    """Each page, the native API's and each profile's: everything its HTML loads is here and
    answers, its stylesheet's url()s are data: URIs, and its Content-Security-Policy lets
    the browser load nothing from elsewhere (a script's own fetches included)."""
    for prefix in ["", *profiles]:
        url = f"{api.url}{prefix}/{page}"
        html = httpx.get(url)
        assert html.status_code == 200, url
        policy = html.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "http" not in policy, policy
        loaded = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html.text)
        loaded += re.findall(r"""url:\s*'([^']+)'""", html.text)  # the document, fetched by the script
        loaded += re.findall(r"""spec-url\s*=\s*["']([^"']+)""", html.text)
        assert len(loaded) >= 2, html.text
        for reference in loaded:
            assert reference.startswith(f"{prefix}/"), (url, reference)  # this server, under the app
            asset = httpx.get(urljoin(api.url, reference))
            assert asset.status_code == 200, reference
            if reference.endswith(".css"):
                assert {u[:5] for u in re.findall(r"url\(\s*[\"']?([^)\"']+)", asset.text)} <= {"data:"}


def test_the_submit_says_each_refusal_for_want_of_data(api: Server, document: dict[str, Any]) -> None:
    """Its 409 said `NO_DATA` meant "nothing uploaded yet": a batch whose pages hold no item
    (pages sent empty) is refused so too, and a file never sent to an upload URL the batch
    handed out is `NO_DATA`, or `FILE_NOT_UPLOADED` when the batch has other data."""
    said = document["paths"]["/v1/batches/{batch_id}/submit"]["post"]["responses"]["409"]["description"]
    with api.client(api.account("no-data")) as client:
        empty = client.post("/v1/batches", json={"type": "billing.customer", "items": []}).json()
        pages = client.post(f"/v1/batches/{empty['id']}/submit").json()
        awaited = client.post("/v1/batches", json={"type": "billing.customer", "upload_url": True}).json()
        nothing = client.post(f"/v1/batches/{awaited['id']}/submit").json()
        sent = client.put(
            f"/v1/batches/{awaited['id']}/data?name=b.csv",
            content=b"customer_number,name\nB1,Bee\n",
            headers={"Content-Type": "text/csv"},
        )
        assert sent.status_code == 200, sent.text
        other = client.post(f"/v1/batches/{awaited['id']}/submit").json()
    assert (pages["code"], nothing["code"], other["code"]) == ("NO_DATA", "NO_DATA", "FILE_NOT_UPLOADED")
    assert "pages hold no item" in pages["detail"]
    assert "`NO_DATA`: the batch has no data: no file, no `source_url`, and no item in its pages" in said
    assert "or nothing at an upload URL it handed out; `FILE_NOT_UPLOADED`:" in said
