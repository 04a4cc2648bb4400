"""The Centrapay seed's (seeds/002) Create Batch body sent as the seed shows it, `url` and
all, to a `loadbay serve` on each backend that has no workers (so the seed's URL is never
fetched): the answer is the seed's Example Response Payload, with the model table's
`totalCount` besides the example's `count`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.centrapay_seed import SEED_CREATE_TEXT, SEED_CREATED_TEXT, SEED_MODEL_FIELDS
from tests.support.servers import Server, start_server

API = "/compat/centrapay/api/batches"
# what the seed's curl sends besides the body
CURL_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that takes batches and never starts them (no workers): nothing fetches the
    seed's https://azurebuckets.com/1234."""
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), workers=0)
    yield running
    running.stop()


def created(client: httpx.Client) -> dict[str, Any]:
    response = client.post(API, content=SEED_CREATE_TEXT.encode(), headers=CURL_HEADERS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    batch: dict[str, Any] = response.json()
    return batch


def test_the_seeds_create_body_is_answered_as_the_seed_shows(server: Server) -> None:
    """Every member of the seed's answer, in its order, with its values and JSON types; the
    model table's totalCount after count, as the same BigNumber string. The id is this
    server's; the accountId is the one sent (the seed's example answer shows another)."""
    seed = json.loads(SEED_CREATED_TEXT)
    with server.client(server.account("centrapay-seed-test", test=True)) as client:
        batch = created(client)
        assert [k for k in batch if k != "totalCount"] == list(seed)
        assert list(batch).index("totalCount") == list(batch).index("count") + 1
        sent = json.loads(SEED_CREATE_TEXT)
        assert batch == seed | {
            "id": batch["id"],
            "accountId": sent["accountId"],
            "totalCount": seed["count"],
        }
        assert isinstance(batch["id"], str) and len(batch["id"]) >= 20
        assert set(SEED_MODEL_FIELDS) <= set(batch)
        assert all(isinstance(batch[k], str) for k in ("count", "totalCount", "errorCount"))

        got = client.get(f"{API}/{batch['id']}")
        assert got.status_code == 200, got.text
        assert got.json() == batch  # not started: still `created`


def test_the_seeds_create_body_from_a_live_account_is_liveness_missmatch(server: Server) -> None:
    """The seed's error table: 403 LIVENESS_MISSMATCH when the account's test flag differs."""
    with server.client(server.account("centrapay-seed-live")) as client:
        response = client.post(API, content=SEED_CREATE_TEXT.encode(), headers=CURL_HEADERS)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "LIVENESS_MISSMATCH"
