"""Each API profile's 401 names the way its vendor's document sends the key (Fusebill's Basic
{APIKey}, Centrapay's X-Api-Key, …), not the native API's Bearer/X-Api-Key, and a known key
sent in that style is let in."""

from __future__ import annotations

import httpx
import pytest

from tests.support.servers import Server

# (a request that needs a key, the style its 401 names, that style's header for a key)
ALLIANT_BATCH = "/compat/alliant/api/Import/User1s/Batch/1"
C2M_STYLE = "the password of HTTP Basic authentication (`curl -u USER:KEY`)"
EBILL_STYLE = "`X-Api-Key: KEY` or `Authorization: Basic KEY`"
PROFILES = {
    "fusebill": ("GET", "/compat/fusebill/v1/BulkApi/1", "`Authorization: Basic {APIKey}`", "Basic {}"),
    "centrapay": ("GET", "/compat/centrapay/api/batches/x", "`X-Api-Key: KEY`", None),
    "alliant": ("GET", ALLIANT_BATCH, "`Authorization: Bearer KEY`", "Bearer {}"),
    "ebill": ("GET", "/compat/ebill/rest/batchProcess?id=1", EBILL_STYLE, None),
    "click2mail": ("GET", "/compat/click2mail/batches/1", C2M_STYLE, None),
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_request_without_a_key_is_told_the_vendors_style(server: Server, key: str, profile: str) -> None:
    method, path, style, header = PROFILES[profile]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        missing = client.request(method, path)
        unknown = client.request(method, path, headers={"Authorization": "Bearer lb_live_nobody"})
        known = client.request(method, path, headers=_auth(profile, header, key))
    assert missing.status_code == 401, missing.text
    assert f"No API key. Send your loadbay API key as {style}" in missing.text
    assert unknown.status_code in (401, 403), unknown.text
    assert known.status_code not in (401, 403), known.text
    assert "Bearer KEY` or `X-Api-Key" not in missing.text + unknown.text


def _auth(profile: str, header: str | None, key: str) -> dict[str, str]:
    if header is not None:
        return {"Authorization": header.format(key)}
    if profile == "click2mail":
        return {"Authorization": httpx.BasicAuth("user", key)._auth_header}
    return {"X-Api-Key": key}


def test_a_batch_records_the_api_that_created_it(server: Server, key: str) -> None:
    """`origin`: "api" for the native API, the profile's name for a profile (children too)."""
    alliant = "/compat/alliant/api/Import/User1s/Batch"
    body = {"description": "cost centres", "importFileName": "cc.json", "pageSize": 10, "totalItems": 1}
    with server.client(key) as client:
        native = client.post("/v1/batches", json={"type": "billing.customer"}).json()
        via_alliant = client.post(alliant, json=body).json()["result"]["batchId"]
        via_click2mail = client.post("/compat/click2mail/batches", headers={"Authorization": f"Basic {key}"})
        assert via_click2mail.status_code == 201, via_click2mail.text
        listed = {b["id"]: b["origin"] for b in client.get("/v1/batches").json()["data"]}
    assert native["origin"] == "api"
    assert listed[via_alliant] == "alliant"
    assert sorted(listed.values()) == ["alliant", "api", "click2mail"]
