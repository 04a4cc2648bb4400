"""The Alliant profile (seed 003) as its clients use it, against a real `loadbay serve`
on each backend: the seed replayed step by step with its own payloads, every status
code with its envelope, pages, clear, and the catalog rules reported per item.

The module's server cuts chunks of 2 records, so a batch of a few items spans
chunks and parents are found across them.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import create_engine, select, text

from loadbay.core.service import BatchService
from loadbay.db.tables import catalog_userx
from loadbay.profiles import alliant
from tests.support.alliant_seed import (
    SEED_CREATE,
    SEED_CREATE_TEXT,
    SEED_CREATED,
    SEED_ITEM,
    SEED_PAGE_TEXT,
    SEED_PAGED,
    SEED_READ,
    seed_item,
    seed_text,
)
from tests.support.servers import Server, start_server

ENVELOPE = {"result", "errors", "warnings", "hasErrors", "hasWarnings"}
FINAL = {"completed", "error", "cleared", "cancelled"}
SEED_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # the seed's createdDateTime, "2022-27-25": a date, no time
ROOT = Path(__file__).resolve().parents[2]
LIMIT = 256 * 1024  # the module server's LOADBAY_MAX_BODY_BYTES (a JSON body read whole)


def base(dimension: int | str = 1) -> str:
    return f"/compat/alliant/api/Import/User{dimension}s/Batch"


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"LOADBAY_CHUNK_SIZE": "2", "LOADBAY_MAX_BODY_BYTES": str(LIMIT)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


# `loadbay accounts create` costs seconds of imports per call: both accounts in one process.
_MAKE_ACCOUNTS = """
import json
from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.types import default_registry

settings = Settings()
rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
service = BatchService(rt)
print(json.dumps([service.create_account(name)[1] for name in ("alliant-owner", "alliant-stranger")]))
rt.close()
"""


@pytest.fixture(scope="module")
def keys(server: Server) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _MAKE_ACCOUNTS], env=server.env, check=True, capture_output=True
    )
    made: list[str] = json.loads(out.stdout)
    return made


@pytest.fixture(scope="module")
def client(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    """The module's account (tests keep apart by giving their items unique ids)."""
    with server.client(keys[0]) as c:
        yield c


@pytest.fixture(scope="module")
def stranger(server: Server, keys: list[str]) -> Iterator[httpx.Client]:
    with server.client(keys[1]) as c:
        yield c


@pytest.fixture
def p() -> str:
    """A prefix that keeps this test's item ids apart from the others'."""
    return uuid.uuid4().hex[:8] + "-"


# helpers ---------------------------------------------------------------------------


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE
    assert body["hasErrors"] is bool(body["errors"]) and body["hasWarnings"] is bool(body["warnings"])
    return body


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    body = envelope(response, status)
    assert body["errors"] == [] and body["hasErrors"] is False
    result: dict[str, Any] = body["result"]
    return result


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body = envelope(response, status)
    assert body["result"] is None and body["hasErrors"] is True
    assert code in [e["code"] for e in body["errors"]], body
    assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
    return body


def create(client: httpx.Client, dimension: int = 1, submit: bool = False, **body: Any) -> int:
    params = {"Submit": "true"} if submit else {}
    result = ok(client.post(base(dimension), json=SEED_CREATE | body, params=params), 201)
    batch_id: int = result["batchId"]
    return batch_id


def page(
    client: httpx.Client, batch_id: int, number: int, items: list[Any], dimension: int = 1
) -> httpx.Response:
    return client.patch(f"{base(dimension)}/{batch_id}", json={"pageNumber": number, "items": items})


def submit(client: httpx.Client, batch_id: int, dimension: int = 1) -> httpx.Response:
    return client.patch(f"{base(dimension)}/{batch_id}", params={"Submit": "true"})


def read(client: httpx.Client, batch_id: int, dimension: int = 1, **params: Any) -> dict[str, Any]:
    return envelope(client.get(f"{base(dimension)}/{batch_id}", params=params), 200)


def processed(client: httpx.Client, batch_id: int, dimension: int = 1, timeout: float = 60) -> dict[str, Any]:
    """Poll the read model until the batch is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = read(client, batch_id, dimension)
        if body["result"]["status"] in FINAL:
            return body
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not processed: {body}")


def errors_by_item(body: dict[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    found: dict[str, list[tuple[str, str | None]]] = {}
    for error in body["errors"]:
        found.setdefault(error["itemId"], []).append((error["code"], error.get("field")))
    return found


def stored(server: Server, dimension: int, item_id: str) -> dict[str, Any] | None:
    url = server.env["LOADBAY_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            c = catalog_userx.c
            query = select(catalog_userx).where(c.dimension == dimension, c.item_id == item_id)
            row = conn.execute(query).mappings().first()
    finally:
        engine.dispose()
    return None if row is None else dict(row)


PARENT = {"id": "idOfParent", "description": "The seed item's parent"}


# the seed, step by step ----------------------------------------------------------------


def test_the_seed_replayed_step_by_step(server: Server, client: httpx.Client) -> None:
    created = client.post(base(1), json=SEED_CREATE)
    body = envelope(created, 201)
    assert body == {
        "result": body["result"],
        "errors": [],
        "warnings": [],
        "hasErrors": False,
        "hasWarnings": False,
    }
    assert set(body["result"]) == {"batchId", "jobQueueGuid"}
    batch_id = body["result"]["batchId"]
    assert isinstance(batch_id, int) and uuid.UUID(body["result"]["jobQueueGuid"])

    # page 0: the parent the seed's item names, then the seed's full item
    assert ok(page(client, batch_id, 0, [PARENT, SEED_ITEM])) == {}
    before = read(client, batch_id)["result"]
    assert before["status"] == "open" and before["receivedItems"] == 2

    # Submit without a body
    assert ok(client.patch(f"{base(1)}/{batch_id}", params={"Submit": "true"})) == {}

    done = processed(client, batch_id)
    assert done["errors"] == [] and done["warnings"] == []
    model = done["result"]
    assert {k: model[k] for k in ("status", "outcome", "succeededItems", "failedItems")} == {
        "status": "completed",
        "outcome": "succeeded",
        "succeededItems": 2,
        "failedItems": 0,
    }
    assert model["importFileName"] == "APIUserXs"
    assert isinstance(model["importFileSID"], int)
    assert model["description"] == "UserX Import from Alliant API"
    assert model["fileDownloadNumber"] is None
    assert (model["pageSize"], model["totalItems"], model["batchId"]) == (2, 2, batch_id)
    assert (model["pageNumber"], model["receivedItems"]) == (0, 2)
    assert created_today(model["createdDateTime"])
    assert model["items"] == [PARENT, SEED_ITEM]  # every nested field echoed as sent

    row = stored(server, 1, "004 Product")
    assert row is not None and row["parent_item_id"] == "idOfParent"
    assert row["description"] == SEED_ITEM["description"]


def created_today(text: str) -> bool:
    """The seed's date form, and the date the batch was made (UTC; just now, maybe yesterday)."""
    now = datetime.now(UTC)
    return SEED_DATE.fullmatch(text) is not None and text in {
        f"{now:%Y-%m-%d}",
        f"{now - timedelta(minutes=5):%Y-%m-%d}",
    }


def test_the_seeds_own_sequence_with_its_bodies_verbatim(client: httpx.Client) -> None:
    """The seed's examples as they are, in its order: create (`totalItems: 2`), then its one
    page of one item with `?Submit=true`, then read. Its answers are the seed's, value for
    value where the seed's values are not another batch's."""
    parent = create(client, submit=True, items=[{"id": "idOfParent"}], totalItems=1)
    assert processed(client, parent)["errors"] == []  # the parent the seed's item names
    json_type = {"Content-Type": "application/json"}

    created = client.post(base(1), content=seed_text(SEED_CREATE_TEXT).encode(), headers=json_type)
    body = envelope(created, 201)
    batch_id, guid = body["result"]["batchId"], body["result"]["jobQueueGuid"]
    assert body == SEED_CREATED | {"result": {"batchId": batch_id, "jobQueueGuid": guid}}
    assert isinstance(batch_id, int) and str(uuid.UUID(guid)) == guid

    paged = client.patch(
        f"{base(1)}/{batch_id}",
        content=seed_text(SEED_PAGE_TEXT).encode(),
        headers=json_type,
        params={"Submit": "true"},
    )
    assert envelope(paged, 200) == SEED_PAGED  # {"result": {}, "errors": [], …}: 200, not 409

    done = processed(client, batch_id)
    seed = SEED_READ["result"]
    model = done["result"]
    assert list(model)[: len(seed)] == list(seed)  # the seed's fields, in its order
    assert {k: v for k, v in done.items() if k != "result"} == {
        k: v for k, v in SEED_READ.items() if k != "result"
    }
    assert model["items"] == seed["items"] == [SEED_ITEM]  # the item as the seed sent and reads it
    assert (model["description"], model["fileDownloadNumber"]) == (seed["description"], None)
    assert (model["pageSize"], model["totalItems"], model["pageNumber"]) == (2, 2, 0)
    assert (model["importFileName"], model["batchId"], model["receivedItems"]) == (
        SEED_CREATE["importFileName"],
        batch_id,
        1,
    )
    assert isinstance(model["importFileSID"], int)
    assert SEED_DATE.fullmatch(seed["createdDateTime"]) and created_today(model["createdDateTime"])
    assert (model["status"], model["succeededItems"], model["failedItems"]) == ("completed", 1, 0)


def test_total_items_announces_the_most_a_batch_holds(client: httpx.Client, p: str) -> None:
    """The seed reads `totalItems` two ways: "the total number of UserXs", yet its own example
    submits one item of two. Both are taken: a batch holding all its items is submitted, and
    so is one holding fewer (with a page, in a PATCH or on create); a page beyond the total is
    refused either way."""
    whole = create(client, pageSize=2, totalItems=2)
    ok(page(client, whole, 0, [{"id": p + "A"}, {"id": p + "B"}]))
    ok(submit(client, whole))
    fewer = create(client, pageSize=2, totalItems=5)
    ok(page(client, fewer, 0, [{"id": p + "C"}]))
    ok(submit(client, fewer))
    at_once = create(client, submit=True, pageSize=2, totalItems=2, items=[{"id": p + "D"}])
    beyond = create(client, pageSize=2, totalItems=3)
    refused(page(client, beyond, 1, [{"id": p + "E"}, {"id": p + "F"}]), 409, "PAGE_BEYOND_TOTAL")

    assert processed(client, whole)["result"]["succeededItems"] == 2
    for batch_id in (fewer, at_once):
        model = processed(client, batch_id)["result"]
        assert (model["status"], model["receivedItems"], model["succeededItems"]) == ("completed", 1, 1)
    assert read(client, fewer)["result"]["totalItems"] == 5


def test_a_batch_whose_pages_hold_no_item_is_not_submitted(client: httpx.Client, p: str) -> None:
    """ "A batch may be submitted with fewer items than totalItems, not with none (NO_DATA)":
    one whose pages were all empty was submitted and completed "succeeded" with 0 items."""
    batch_id = create(client, pageSize=2, totalItems=2)
    ok(page(client, batch_id, 0, []))
    ok(page(client, batch_id, 1, []))
    refused(submit(client, batch_id), 409, "NO_DATA")
    assert read(client, batch_id)["result"]["status"] == "open"
    before = client.get("/v1/batches", params={"type": "catalog.user7"}).json()["data"]
    response = client.post(base(7), json=SEED_CREATE | {"items": []}, params={"Submit": "true"})
    refused(response, 409, "NO_DATA")
    assert client.get("/v1/batches", params={"type": "catalog.user7"}).json()["data"] == before
    ok(page(client, batch_id, 0, [{"id": p + "A"}]))  # an item after all: submitted
    ok(submit(client, batch_id))
    assert processed(client, batch_id)["result"]["succeededItems"] == 1


def test_a_submit_with_no_items_says_what_an_alliant_client_can_do(client: httpx.Client) -> None:
    """The refusal named a batch that was never made ("batch 150 has no data yet": the create
    was undone, and the next batch made is 150) and told the client to upload a file, which no
    Alliant client can: it now says to send items with the create or PATCH pages."""
    answer = client.post(base(1), json=SEED_CREATE, params={"Submit": "true"})
    message = refused(answer, 409, "NO_DATA")["errors"][0]["message"]
    next_id = create(client)
    assert f"batch {next_id}" not in message and "file" not in message, message
    assert "send them with the create" in message and "PATCH its pages" in message
    assert "no batch was made" in message
    patched = refused(submit(client, next_id), 409, "NO_DATA")["errors"][0]["message"]
    assert patched == f"batch {next_id} has no items to submit; PATCH a page {{pageNumber, items}} first"


def test_paths_match_in_any_letter_case(client: httpx.Client, p: str) -> None:
    """As on Alliant's ASP.NET server: `/api/import/userXs/batch/…` in any case is the same
    endpoint; a trailing slash is ignored. The native API keeps its own spelling."""
    lower = "/compat/alliant/api/import/user1s/batch"
    upper = "/compat/alliant/API/IMPORT/USER1S/BATCH"
    batch_id = ok(client.post(lower, json=SEED_CREATE), 201)["batchId"]
    ok(client.patch(f"{upper}/{batch_id}", json={"pageNumber": 0, "items": [{"id": p + "A"}]}))
    assert read(client, batch_id)["result"]["receivedItems"] == 1
    assert envelope(client.get(f"{lower}/{batch_id}/"), 200)["result"]["batchId"] == batch_id
    assert ok(client.post(f"/compat/alliant/Api/Import/User1S/Batch/{batch_id}/CLEAR")) == {}
    assert read(client, batch_id)["result"]["status"] == "cleared"
    refused(client.get(f"/compat/alliant/api/import/user2s/batch/{batch_id}"), 404, "NOT_FOUND")
    assert client.get("/V1/BATCHES").status_code == 404  # the native API is not ASP.NET


def test_create_with_the_first_page_and_submit_in_one_request(client: httpx.Client, p: str) -> None:
    items = [{"id": p + "P"}, seed_item(id=p + "C", parentReference={"id": p + "P"})]
    batch_id = create(client, submit=True, pageNumber=0, items=items, description="one shot")
    done = processed(client, batch_id)
    assert done["errors"] == []
    assert done["result"]["status"] == "completed" and done["result"]["receivedItems"] == 2
    assert done["result"]["items"][0] == {"id": p + "P"}


def test_a_refused_create_with_a_page_and_submit_leaves_no_batch(client: httpx.Client, p: str) -> None:
    before = client.get("/v1/batches", params={"type": "catalog.user4"}).json()["data"]
    body = {"pageNumber": 0, "items": [{"id": p + "A"}, {"id": p + "B"}, {"id": p + "C"}]}
    response = client.post(base(4), json=SEED_CREATE | body, params={"Submit": "true"})
    error = refused(response, 400, "PAGE_TOO_LARGE")["errors"][0]
    assert "page size is 2" in error["message"]
    assert client.get("/v1/batches", params={"type": "catalog.user4"}).json()["data"] == before


def test_pages_replace_and_are_read_back_one_at_a_time(client: httpx.Client, p: str) -> None:
    batch_id = create(client, pageSize=2, totalItems=4)
    ok(page(client, batch_id, 0, [{"id": p + "A"}]))
    ok(page(client, batch_id, 0, [{"id": p + "A2"}, {"id": p + "B"}]))  # replaces page 0
    assert read(client, batch_id)["result"]["receivedItems"] == 2
    ok(page(client, batch_id, 1, [{"id": p + "C"}, {"id": p + "D"}]))
    ok(page(client, batch_id, 1, [{"id": p + "C"}, {"id": p + "D"}]))  # the same page again
    model = read(client, batch_id, pageNumber=1)["result"]
    assert model["receivedItems"] == 4 and model["pageNumber"] == 1
    assert model["items"] == [{"id": p + "C"}, {"id": p + "D"}]
    assert read(client, batch_id, pageNumber=7)["result"]["items"] == []
    ok(submit(client, batch_id))
    done = processed(client, batch_id)
    assert done["result"]["succeededItems"] == 4 and done["errors"] == []


def test_names_bind_in_any_letter_case(client: httpx.Client, p: str) -> None:
    """ASP.NET binds JSON property and query names in any letter case: a client that sends
    PascalCase (a C# class serialised as it is) works the same."""
    body = {"ImportFileName": "PascalCase", "PAGESIZE": 1, "totalitems": 2, "Items": [{"id": p + "A"}]}
    batch_id = ok(client.post(base(1), json=body), 201)["batchId"]
    ok(client.patch(f"{base(1)}/{batch_id}", json={"PageNumber": 1, "ITEMS": [{"id": p + "B"}]}))
    model = read(client, batch_id, PAGENUMBER=1)["result"]
    assert (model["pageNumber"], model["receivedItems"], model["items"]) == (1, 2, [{"id": p + "B"}])
    assert read(client, batch_id)["result"]["items"] == [{"id": p + "A"}]
    refused(client.get(f"{base(1)}/{batch_id}", params={"PageNumber": "-1"}), 400, "INVALID_VALUE")
    ok(submit(client, batch_id))
    assert processed(client, batch_id)["result"]["succeededItems"] == 2


def test_page_and_submit_in_one_patch(client: httpx.Client, p: str) -> None:
    batch_id = create(client, pageSize=2, totalItems=2)
    body = {"pageNumber": 0, "items": [{"id": p + "A"}, {"id": p + "B"}]}
    ok(client.patch(f"{base(1)}/{batch_id}", json=body, params={"submit": "True"}))
    assert processed(client, batch_id)["result"]["succeededItems"] == 2


# the catalog rules, per item ----------------------------------------------------------------


def lookup(**fields: Any) -> dict[str, Any]:
    return {"udfLookupItems": [fields]}


def bom(percents: list[int], start: str = "2021-08-06T00:00:00", end: str = "9999-12-31T23:59:59") -> Any:
    details = [{"allocationPercent": n, "quantity": 1} for n in percents]
    return [{"effectiveFromDate": start, "effectiveToDate": end, "user1BOMDetails": details}]


def test_rules_are_reported_for_the_right_item(server: Server, client: httpx.Client, p: str) -> None:
    items = [
        {"id": p + "ROOT"},
        seed_item(id=p + "ORPHAN", parentReference={"id": p + "NOWHERE"}),
        seed_item(id=p + "RANGE", parentReference=None, udLookup_L=lookup(amount1Range="10:2")),
        seed_item(
            id=p + "DATES",
            parentReference=None,
            udLookup_L=lookup(fromDate="2020-02-01", toDate="2020-01-01"),
        ),
        seed_item(id=p + "BOMDATES", parentReference=None, user1BOMHeaders=bom([100], end="2020-12-31")),
        seed_item(id=p + "SPLIT", parentReference=None, user1BOMHeaders=bom([60, 30])),
        seed_item(id=p + "CHILD", parentReference={"id": p + "ROOT"}),  # a later chunk than ROOT
        seed_item(id=p + "GRANDCHILD", parentReference={"id": p + "CHILD"}),
        {"id": p + "ORPHANS-CHILD", "parentReference": {"id": p + "ORPHAN"}},  # its parent was refused
        {"id": p + "EARLY", "parentReference": {"id": p + "LATE"}},  # its parent comes later
        {"id": p + "LATE"},
    ]
    batch_id = create(client, pageSize=len(items), totalItems=len(items))
    ok(page(client, batch_id, 0, items))
    ok(submit(client, batch_id))
    done = processed(client, batch_id)
    assert errors_by_item(done) == {
        p + "ORPHAN": [("UNKNOWN_PARENT", "parentReference.id")],
        p + "RANGE": [("INVALID_RANGE", "udLookup_L.udfLookupItems.0.amount1Range")],
        p + "DATES": [("INVALID_DATE_RANGE", "udLookup_L.udfLookupItems.0.toDate")],
        p + "BOMDATES": [("INVALID_DATE_RANGE", "user1BOMHeaders.0.effectiveToDate")],
        p + "SPLIT": [("ALLOCATION_NOT_100", "user1BOMHeaders.0.user1BOMDetails")],
        p + "ORPHANS-CHILD": [("UNKNOWN_PARENT", "parentReference.id")],
        p + "EARLY": [("UNKNOWN_PARENT", "parentReference.id")],
    }
    indexes = {e["itemId"]: e["index"] for e in done["errors"]}
    assert indexes[p + "ORPHAN"] == 1 and indexes[p + "EARLY"] == 9
    model = done["result"]
    assert (model["outcome"], model["succeededItems"], model["failedItems"]) == ("partial", 4, 7)
    assert done["hasErrors"] is True
    assert stored(server, 1, p + "GRANDCHILD") is not None and stored(server, 1, p + "ORPHAN") is None


def test_a_parent_stored_by_an_earlier_batch_is_known(client: httpx.Client, p: str) -> None:
    first = create(client, 5, submit=True, pageNumber=0, items=[{"id": p + "P"}, {"id": p + "Q"}])
    processed(client, first, 5)
    second = create(
        client, 5, submit=True, items=[{"id": p + "C", "parentReference": {"id": p + "P"}}], totalItems=1
    )
    done = processed(client, second, 5)
    assert done["errors"] == [] and done["result"]["succeededItems"] == 1
    # a parent of another dimension is not one
    third = create(
        client, 6, submit=True, items=[{"id": p + "C", "parentReference": {"id": p + "P"}}], totalItems=1
    )
    assert errors_by_item(processed(client, third, 6)) == {
        p + "C": [("UNKNOWN_PARENT", "parentReference.id")]
    }


def test_the_same_id_twice_is_a_duplicate(client: httpx.Client, p: str) -> None:
    batch_id = create(client, submit=True, items=[{"id": p + "A"}, {"id": p + "A", "comment": "again"}])
    assert errors_by_item(processed(client, batch_id)) == {p + "A": [("DUPLICATE_KEY", "id")]}


def test_items_are_stored_as_sent_and_a_flag_is_true_or_false(
    server: Server, client: httpx.Client, p: str
) -> None:
    """ "ipRightsBearingFlag": "yes" was stored as true, and the id " v0 " as "v0" (so that it
    collided with "v0" as DUPLICATE_KEY). A flag is JSON's true or false (or that text, as a CSV
    cell holds it); an id, and every text of the item, is kept as sent."""
    items = [
        {"id": f" {p}v0 ", "description": "  spaced  ", "parentReference": {"id": p + "v0"}},
        {"id": p + "v0"},
        {"id": p + "yes", "ipRightsBearingFlag": "yes"},
        {"id": p + "one", "royaltyBearingFlag": 1},
        {"id": p + "text", "ipRightsBearingFlag": "False", "royaltyBearingFlag": True},
        {"id": "   "},
    ]
    batch_id = create(client, pageSize=len(items), totalItems=len(items))
    ok(page(client, batch_id, 0, items))
    ok(submit(client, batch_id))
    done = processed(client, batch_id)
    assert [(e["index"], e["code"], e["field"], e["message"]) for e in done["errors"]] == [
        (0, "UNKNOWN_PARENT", "parentReference.id", done["errors"][0]["message"]),
        (2, "INVALID_VALUE", "ipRightsBearingFlag", 'ipRightsBearingFlag: must be true or false, not "yes"'),
        (3, "INVALID_VALUE", "royaltyBearingFlag", "royaltyBearingFlag: must be true or false, not 1"),
        (5, "INVALID_VALUE", "id", "id: must not be white space alone"),
    ]
    assert stored(server, 1, p + "v0") is not None and stored(server, 1, p + "yes") is None
    text = stored(server, 1, p + "text")
    assert text is not None and json.loads(text["data"])["ipRightsBearingFlag"] is False
    # " v0 " is its own item, stored as sent (its parent "v0" comes later: refused for that alone)
    again = create(client, submit=True, items=[{"id": f" {p}v0 ", "description": "  spaced  "}], totalItems=1)
    assert processed(client, again)["errors"] == []
    spaced = stored(server, 1, f" {p}v0 ")
    assert spaced is not None and spaced["description"] == "  spaced  "


def test_a_flag_takes_what_the_record_types_page_says(server: Server, client: httpx.Client, p: str) -> None:
    """docs/record-types.md said a catalog item's flags are JSON booleans; the text "true" or
    "false", in any letter case, is taken too (catalog.Flag). Each value its flags row names is
    sent: those before "anything else" are taken, those after refused."""
    rows = (ROOT / "docs" / "record-types.md").read_text(encoding="utf-8").splitlines()
    row = next(line for line in rows if line.startswith("| flags"))
    said_taken, _, said_refused = row.split("|")[2].partition("anything else")
    taken = [json.loads(value) for value in re.findall(r"`([^`]+)`", said_taken)]
    refused = [json.loads(value) for value in re.findall(r"`([^`]+)`", said_refused)]
    assert {True, False} <= set(taken) and any(isinstance(value, str) for value in taken), row
    assert refused, row
    items = [{"id": f"{p}{i}", "royaltyBearingFlag": value} for i, value in enumerate(taken + refused)]
    batch_id = create(client, submit=True, items=items, pageSize=len(items), totalItems=len(items))
    done = processed(client, batch_id)
    assert [(e["index"], e["code"], e["field"]) for e in done["errors"]] == [
        (i, "INVALID_VALUE", "royaltyBearingFlag") for i in range(len(taken), len(items))
    ]
    for i, value in enumerate(taken):
        item = stored(server, 1, f"{p}{i}")
        assert item is not None and json.loads(item["data"])["royaltyBearingFlag"] is (
            value if isinstance(value, bool) else value.lower() == "true"
        ), value


# status codes, each with its envelope -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"importFileName": "REQUIRED", "pageSize": "REQUIRED", "totalItems": "REQUIRED"}),
        ({"importFileName": "f", "pageSize": 2}, {"totalItems": "REQUIRED"}),
        ({"importFileName": "", "pageSize": 2, "totalItems": 2}, {"importFileName": "INVALID_VALUE"}),
        ({"importFileName": "f", "pageSize": "2", "totalItems": 2}, {"pageSize": "INVALID_VALUE"}),
        ({"importFileName": "f", "pageSize": 0, "totalItems": 2}, {"pageSize": "INVALID_VALUE"}),
        ({"importFileName": "f", "pageSize": 2, "totalItems": 2, "items": {}}, {"items": "INVALID_VALUE"}),
        ({"importFileName": "a\u0000b", "pageSize": 2, "totalItems": 2}, {"importFileName": "INVALID_VALUE"}),
        ([], {"body": "INVALID_VALUE"}),
    ],
)
def test_bad_create_body_is_400_naming_the_fields(
    client: httpx.Client, body: Any, expected: dict[str, str]
) -> None:
    errors = envelope(client.post(base(1), json=body), 400)["errors"]
    assert {e["field"]: e["code"] for e in errors} == expected


def test_create_without_a_body_is_400(client: httpx.Client) -> None:
    refused(client.post(base(1)), 400, "REQUIRED")


@pytest.mark.parametrize(
    "content", [b"{", b'{"importFileName": NaN}', b"[" * 100_000, b"[" * 65 + b"]" * 65, b"\xff"]
)
def test_invalid_json_is_400(client: httpx.Client, content: bytes) -> None:
    response = client.post(base(1), content=content, headers={"Content-Type": "application/json"})
    refused(response, 400, "INVALID_JSON")


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_a_number_too_large_for_a_float_is_400_and_stores_nothing(
    client: httpx.Client, p: str, number: str
) -> None:
    """JSON's `1e999` was read as infinity: the page was stored (200), and every later read of
    it answered 500. It is refused as NaN and Infinity are, saying where."""
    json_type = {"Content-Type": "application/json"}
    batch_id = create(client)
    content = f'{{"pageNumber": 0, "items": [{{"id": "{p}A", "ud_big": {number}}}]}}'
    body = refused(
        client.patch(f"{base(1)}/{batch_id}", content=content, headers=json_type), 400, "INVALID_JSON"
    )
    column = content.index(number) + 1
    assert body["errors"][0]["message"] == (
        f"the body is not read at line 1, column {column}: {number} is beyond ±1.8e308, "
        "the largest number this server reads"
    )
    assert read(client, batch_id)["result"]["receivedItems"] == 0
    created = SEED_CREATE | {"items": [{"id": p + "B", "ud_big": 0}]}
    content = json.dumps(created).replace('"ud_big": 0', f'"ud_big": {number}')
    response = client.post(base(1), content=content, headers=json_type, params={"Submit": "true"})
    refused(response, 400, "INVALID_JSON")


def test_a_page_stored_with_an_infinity_is_read(server: Server, client: httpx.Client, p: str) -> None:
    """A page stored before such numbers were refused holds `Infinity` (json.dumps of the float
    1e999 was read as): the batch is read all the same, the number written as 1e999, where the
    read answered 500 INTERNAL_ERROR for good."""
    batch_id = create(client)
    ok(page(client, batch_id, 0, [{"id": p + "A", "ud_big": 1, "ud_small": -1, "ud_text": "Infinity"}]))
    url = server.env["LOADBAY_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    stored_page = f'[{{"id": "{p}A", "ud_big": Infinity, "ud_small": -Infinity, "ud_text": "Infinity"}}]'
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE batch_inputs SET items = :items WHERE batch_id = :id"),
                {"items": stored_page, "id": batch_id},
            )
    finally:
        engine.dispose()
    response = client.get(f"{base(1)}/{batch_id}", params={"pageNumber": 0})
    model = envelope(response, 200)["result"]
    assert '"ud_big":1e999,"ud_small":-1e999,"ud_text":"Infinity"' in response.text
    assert model["items"] == [
        {"id": p + "A", "ud_big": float("inf"), "ud_small": float("-inf"), "ud_text": "Infinity"}
    ]


def test_a_page_over_page_size_is_400_and_stores_nothing(client: httpx.Client, p: str) -> None:
    batch_id = create(client, pageSize=2, totalItems=4)
    body = refused(page(client, batch_id, 0, [{"id": p + str(i)} for i in range(3)]), 400, "PAGE_TOO_LARGE")
    assert "page size is 2" in body["errors"][0]["message"]
    assert read(client, batch_id)["result"]["receivedItems"] == 0
    items = [{"id": p + str(i)} for i in range(3)]
    refused(client.post(base(1), json=SEED_CREATE | {"items": items}), 400, "PAGE_TOO_LARGE")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pageNumber": 0}, "body"),
        ({"items": []}, "body"),
        ({"pageNumber": -1, "items": []}, "pageNumber"),
        ({"pageNumber": 0, "items": "x"}, "items"),
    ],
)
def test_bad_page_body_is_400(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    batch_id = create(client)
    errors = envelope(client.patch(f"{base(1)}/{batch_id}", json=body), 400)["errors"]
    assert [e["field"] for e in errors] == [field]


def test_patch_with_nothing_to_do_and_a_bad_submit_flag_are_400(client: httpx.Client) -> None:
    batch_id = create(client)
    refused(client.patch(f"{base(1)}/{batch_id}"), 400, "NOTHING_TO_DO")
    body = refused(client.patch(f"{base(1)}/{batch_id}", params={"Submit": "yes"}), 400, "INVALID_VALUE")
    assert body["errors"][0]["field"] == "Submit"
    refused(client.get(f"{base(1)}/{batch_id}", params={"pageNumber": "x"}), 400, "INVALID_VALUE")


def test_unknown_batches_and_paths_are_404(client: httpx.Client, stranger: httpx.Client) -> None:
    batch_id = create(client)
    for path in (
        f"{base(1)}/999999999",
        f"{base(1)}/99999999999999999999999",
        f"{base(2)}/{batch_id}",  # another dimension's
        f"{base(10)}/{batch_id}",
        f"{base('X')}/{batch_id}",
        f"{base(1)}/abc",
        "/compat/alliant/api/Import/Nothing",
    ):
        refused(client.get(path), 404, "NOT_FOUND")
    refused(stranger.get(f"{base(1)}/{batch_id}"), 404, "NOT_FOUND")  # another account's
    refused(stranger.patch(f"{base(1)}/{batch_id}", params={"Submit": "true"}), 404, "NOT_FOUND")
    refused(stranger.post(f"{base(1)}/{batch_id}/clear"), 404, "NOT_FOUND")
    refused(client.post(base(0), json=SEED_CREATE), 404, "NOT_FOUND")
    native = client.post("/v1/batches", json={"type": "billing.customer"}).json()["id"]
    refused(client.get(f"{base(1)}/{native}"), 404, "NOT_FOUND")  # not a UserX batch


def test_wrong_methods_are_405_naming_every_method_of_the_path(client: httpx.Client) -> None:
    batch_id = create(client)
    for method, path, allow in (
        ("DELETE", f"{base(1)}/{batch_id}", "GET, PATCH"),
        ("PUT", f"{base(1)}/{batch_id}", "GET, PATCH"),
        ("POST", f"{base(1)}/{batch_id}", "GET, PATCH"),
        ("HEAD", f"{base(1)}/{batch_id}", "GET, PATCH"),
        ("GET", base(1), "POST"),
        ("PATCH", base(1), "POST"),
        ("GET", f"{base(1)}/{batch_id}/clear", "POST"),
        ("delete", f"/compat/alliant/api/import/user1s/batch/{batch_id}", "GET, PATCH"),
    ):
        response = client.request(method, path)
        if method != "HEAD":
            refused(response, 405, "METHOD_NOT_ALLOWED")
        assert (response.status_code, response.headers["allow"]) == (405, allow), (method, path)


def test_state_conflicts_are_409(client: httpx.Client, p: str) -> None:
    batch_id = create(client, pageSize=2, totalItems=3)
    body = refused(page(client, batch_id, 2, [{"id": p + "A"}]), 409, "PAGE_BEYOND_TOTAL")
    assert "beyond the batch's 3 items" in body["errors"][0]["message"]
    refused(page(client, batch_id, 1, [{"id": p + "C"}, {"id": p + "D"}]), 409, "PAGE_BEYOND_TOTAL")
    ok(page(client, batch_id, 0, [{"id": p + "A"}, {"id": p + "B"}]))
    ok(page(client, batch_id, 1, [{"id": p + "C"}]))
    ok(submit(client, batch_id))
    refused(page(client, batch_id, 1, [{"id": p + "C"}]), 409, "BATCH_NOT_OPEN")  # after submit
    refused(submit(client, batch_id), 409, "INVALID_STATE")


def test_clear_then_a_page_is_409(client: httpx.Client, p: str) -> None:
    batch_id = create(client)
    ok(page(client, batch_id, 0, [{"id": p + "A"}]))
    assert ok(client.post(f"{base(1)}/{batch_id}/clear")) == {}
    model = read(client, batch_id)["result"]
    assert (model["status"], model["receivedItems"], model["items"]) == ("cleared", 0, [])
    body = refused(page(client, batch_id, 0, [{"id": p + "A"}]), 409, "BATCH_NOT_OPEN")
    assert "cleared" in body["errors"][0]["message"]
    refused(submit(client, batch_id), 409, "INVALID_STATE")
    refused(client.post(f"{base(1)}/{batch_id}/clear"), 409, "INVALID_STATE")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"]
)
def test_a_body_that_is_not_json_is_415(client: httpx.Client, content_type: str) -> None:
    response = client.post(
        base(1), content=b'{"importFileName": "f"}', headers={"Content-Type": content_type}
    )
    refused(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    batch_id = create(client)
    headers = {"Content-Type": content_type}
    refused(
        client.patch(f"{base(1)}/{batch_id}", content=b"{}", headers=headers), 415, "UNSUPPORTED_MEDIA_TYPE"
    )


def test_json_with_a_charset_is_json(client: httpx.Client) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = client.post(
        base(1), content=b'{"importFileName": "f", "pageSize": 1, "totalItems": 1}', headers=headers
    )
    ok(response, 201)


def test_a_missing_key_is_401_and_an_unknown_key_403(server: Server) -> None:
    with server.client() as anonymous:
        response = anonymous.post(base(1), json=SEED_CREATE)
        refused(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"]
    with server.client("lb_live_unknown") as unknown:
        refused(unknown.post(base(1), json=SEED_CREATE), 403, "FORBIDDEN")
    with server.client(Authorization="Bearer lb_live_unknown") as bearer:
        refused(bearer.get(f"{base(1)}/1"), 403, "FORBIDDEN")


def test_other_key_styles_work(server: Server, client: httpx.Client) -> None:
    key = client.headers["x-api-key"]
    with server.client(Authorization=f"Bearer {key}") as bearer:
        ok(bearer.post(base(1), json=SEED_CREATE), 201)


def test_items_that_json_cannot_hold_in_utf8_are_echoed_and_refused(client: httpx.Client, p: str) -> None:
    batch_id = create(client, pageSize=2, totalItems=2)
    items = f'[{{"id": "{p}S", "comment": "\\ud800"}}, {{"id": "{p}T"}}]'
    content = ('{"pageNumber": 0, "items": ' + items + "}").encode()
    ok(client.patch(f"{base(1)}/{batch_id}", content=content, headers={"Content-Type": "application/json"}))
    assert read(client, batch_id)["result"]["items"][0]["comment"] == "\ud800"
    ok(submit(client, batch_id))
    done = processed(client, batch_id)
    assert [(e["index"], e["code"]) for e in done["errors"]] == [(0, "INVALID_RECORD")]
    assert done["result"]["succeededItems"] == 1


def test_a_body_over_the_size_limit_is_413(client: httpx.Client, p: str) -> None:
    batch_id = create(client, pageSize=5000, totalItems=5000)
    items = [{"id": f"{p}{i}", "comment": "x" * 100} for i in range(3000)]
    refused(page(client, batch_id, 0, items), 413, "PAYLOAD_TOO_LARGE")
    assert read(client, batch_id)["result"]["receivedItems"] == 0


class _Failing:
    """A service whose every call fails unexpectedly."""

    def authenticate(self, key: str | None) -> None:
        raise RuntimeError("boom")


def test_an_unexpected_failure_is_a_500_envelope() -> None:
    app = alliant.build(cast(BatchService, _Failing()))
    response = asyncio.run(_get(app, "/api/Import/User1s/Batch/1"))
    body = refused(response, 500, "INTERNAL_ERROR")
    assert "boom" not in response.text and body["errors"][0]["message"]


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://profile") as test_client:
        return await test_client.get(path, headers={"X-Api-Key": "k"})
