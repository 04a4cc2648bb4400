"""The invalid records' file before the batch is final: once validation has ended (a
two-phase batch waiting at `validated`, or one `processing`), `GET …/results?outcome=invalid`
answers the rows the final result file will have for the invalid records, byte for byte;
every other filter stays a 409 RESULTS_NOT_READY that says which one is available.

Through a real `loadbay serve` on SQLite and on PostgreSQL, for a type whose chunks are
staged in column form (billing.customer from a CSV file), one staged in record form
(assets.external_asset), and a column type's records staged in record form (billing.customer
from JSON items holding values that are not text); and through the core for a batch caught
half applied."""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from loadbay.config import Settings
from loadbay.core import settle
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.worker import Worker
from loadbay.db.tables import chunk_payloads, chunks
from loadbay.domain.models import Account, Batch, NewBatch
from loadbay.errors import Conflict
from loadbay.types import default_registry
from tests.support.accounts import make_keys
from tests.support.servers import Server, start_server, wait_final

CHUNK_SIZE = 3  # several chunks per batch, some with no invalid record
NOT_YET = ["", "invalid,failed,unprocessed", "succeeded", "failed", "unprocessed", "invalid,failed"]


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


CUSTOMERS = csv_text(
    [
        ["customer_number", "name", "email", "city", "balance"],
        ["K1", "Ada", "ada@example.com", "Paris", "1"],
        ["K2", '=HYPERLINK("http://x")', "not-an-email", "-Minus, Town", "-5"],
        ["K3", "Bob", "bob@example.com", "Oslo", "2"],
        ["K4", "Cy", "cy@example.com", "Rome", "3"],  # a chunk with no invalid record
        ["K5", "Dee", "dee@example.com", "Lima", "4"],
        ["K6", "Eve", "eve@example.com", "Kyiv", "5"],
        ["K7", "", "x@", 'Line one\nline "two"', "1.234"],  # three errors
        ["K1", "Ada again", "ada@example.com", "Paris", "1"],  # DUPLICATE_KEY
        ["K9", "Fay", "fay@example.com", "Nice", "6"],
        ["K10", "+Plus Corp", "@nowhere", "Zürich", "7"],
        ["K11", "Gus", "gus@example.com", "Bern", "8"],
    ]
)
ASSETS = csv_text(
    [
        ["external_id", "barcode", "description", "balance", "currency", "expires_on"],
        ["A1", "1234567890123456", "gift card", "10.00", "NZD", "2027-01-31"],
        ["A2", "12345678901234AB", "=1+1, a formula", "5", "NZD", ""],
        ["A3", "1234567890123457", "ok", "1", "NZD", ""],
        ["A4", "1234567890123458", "ok", "2", "NZD", ""],
        ["A5", "1234567890123459", "ok", "3", "NZD", ""],
        ["A6", "1234567890123460", "ok", "4", "NZD", ""],
        ["A7", "123", 'two\r\nlines, "quoted"', "-3", "XXX", "not a date"],
        ["A8", "1234567890123461", "@home", "4", "NZD", "2027-02-30"],
        ["A9", "1234567890123462", "ok", "5", "NZD", ""],
    ]
)
ITEMS: list[dict[str, Any]] = [
    {"customer_number": "J1", "name": "Ann", "balance": 1.5},
    {"customer_number": "J2", "name": {"first": "=Al", "last": "Bo, Jr"}, "balance": 2},
    {"customer_number": "J3", "name": "Cat", "balance": 3},
    {"customer_number": "J4", "name": "Dan", "balance": 4},
    {"customer_number": "J5", "name": "Eli", "email": ["e@x.io", "-f"], "balance": "nope"},
    {"customer_number": "J6", "name": "Fox", "balance": 6},
]


@dataclass(frozen=True)
class Case:
    type: str
    body: dict[str, Any]  # the create request's data: a CSV file (`csv`) or JSON `items`
    form: str  # the form its chunks are staged in: columns, records
    key: str  # the type's key column
    invalid: list[str]  # the keys of its invalid records, in order

    def create(self, client: httpx.Client) -> int:
        spec = {"type": self.type, "process": "manual"}
        if "items" in self.body:
            made = client.post("/v1/batches", json=spec | {"items": self.body["items"], "submit": True})
            assert made.status_code == 201, made.text
            return int(made.json()["id"])
        batch_id = int(client.post("/v1/batches", json=spec).json()["id"])
        stored = client.put(
            f"/v1/batches/{batch_id}/data", content=self.body["csv"], headers={"Content-Type": "text/csv"}
        )
        assert stored.status_code == 200, stored.text
        assert client.post(f"/v1/batches/{batch_id}/submit").status_code == 200
        return batch_id


CASES = {
    "columns": Case(
        "billing.customer", {"csv": CUSTOMERS}, "columns", "customer_number", ["K2", "K7", "K1", "K10"]
    ),
    "records": Case("assets.external_asset", {"csv": ASSETS}, "records", "external_id", ["A2", "A7", "A8"]),
    "json-records": Case("billing.customer", {"items": ITEMS}, "records", "customer_number", ["J2", "J5"]),
}


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"LOADBAY_CHUNK_SIZE": str(CHUNK_SIZE)}
    running = start_server(module_database_url, tmp_path_factory.mktemp("data"), env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def keys(server: Server) -> Iterator[str]:
    return iter(make_keys(server, f"early-{uuid.uuid4().hex[:6]}", 8))


@pytest.fixture
def client(server: Server, keys: Iterator[str]) -> Iterator[httpx.Client]:
    with server.client(next(keys)) as made:
        yield made


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def forms(server: Server, batch_id: int) -> set[str]:
    found = server.query(
        "SELECT substr(p.payload, 1, 7) FROM chunk_payloads p JOIN chunks c ON c.id = p.chunk_id "
        "WHERE c.batch_id = :b",
        b=batch_id,
    )
    return {"columns" if start == "arrow1:" else "records" for (start,) in found}


def wait_stored(server: Server, batch_id: int, timeout: float = 60.0) -> None:
    """Until a worker has written the final batch's result files to the blob store."""
    deadline = time.monotonic() + timeout
    while not server.query("SELECT results_at FROM batches WHERE id = :b", b=batch_id)[0][0]:
        assert time.monotonic() < deadline, f"batch {batch_id}'s result files were not written"
        time.sleep(0.05)


def refused_too_early(answer: httpx.Response, status: str) -> None:
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["code"] == "RESULTS_NOT_READY"
    assert f"is {status}" in problem["detail"] and "outcome=invalid" in problem["detail"], problem


@pytest.mark.parametrize("name", list(CASES))
def test_a_validated_batch_gives_the_invalid_rows_of_its_final_file(
    server: Server, client: httpx.Client, name: str
) -> None:
    case = CASES[name]
    batch_id = case.create(client)
    validated = wait_final(client, batch_id)
    assert validated["status"] == "validated", validated
    assert validated["counts"]["invalid"] == len(case.invalid)
    assert forms(server, batch_id) == {case.form}

    early = client.get(f"/v1/batches/{batch_id}/results", params={"outcome": "invalid"})
    assert early.status_code == 200, early.text
    assert early.headers["content-type"].startswith("text/csv")
    assert early.headers["content-disposition"] == f'attachment; filename="batch-{batch_id}-invalid.csv"'
    served = rows(early.text)
    assert [r[case.key] for r in served] == case.invalid
    assert {r["loadbay_status"] for r in served} == {"invalid"}
    assert all(r["loadbay_error_code"] and r["loadbay_error_message"] for r in served)
    for outcome in NOT_YET:
        refused_too_early(
            client.get(f"/v1/batches/{batch_id}/results", params={"outcome": outcome}), "validated"
        )

    assert client.post(f"/v1/batches/{batch_id}/process").status_code == 200
    done = wait_final(client, batch_id)
    assert (done["status"], done["outcome"]) == ("completed", "partial"), done
    assert done["counts"]["failed"] == done["counts"]["unprocessed"] == 0
    wait_stored(server, batch_id)

    # every refused record is invalid: the stored refused file is exactly what was served
    refused = client.get(f"/v1/batches/{batch_id}/results", params={"outcome": "invalid,failed,unprocessed"})
    assert refused.content == early.content
    assert (
        client.get(f"/v1/batches/{batch_id}/results", params={"outcome": "invalid"}).content == early.content
    )
    every = rows(client.get(f"/v1/batches/{batch_id}/results").text)
    assert [r for r in every if r["loadbay_status"] == "invalid"] == served


def test_before_validation_ends_even_the_invalid_records_are_not_ready(client: httpx.Client) -> None:
    batch_id = int(client.post("/v1/batches", json={"type": "billing.customer"}).json()["id"])
    for outcome in ["invalid", *NOT_YET]:
        refused_too_early(client.get(f"/v1/batches/{batch_id}/results", params={"outcome": outcome}), "open")


# a batch half applied, through the core ----------------------------------------------------


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[BatchService]:
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, secret_key="test", chunk_size=CHUNK_SIZE
    )
    rt = Runtime.build(settings, default_registry(), base_url="http://loadbay.test")
    yield BatchService(rt)
    rt.close()


def run_once(service: BatchService) -> bool:
    return Worker(service.rt, "test", threading.Event(), threading.Event()).run_once()


def validated_in_core(service: BatchService, case: Case) -> tuple[Account, Batch]:
    """A two-phase batch of the case's data, worked on through the core until validated."""
    account, _ = service.create_account("acme")
    if "items" in case.body:
        spec = NewBatch(case.type, process="manual")
        batch, _ = service.create(account, spec, items=case.body["items"], submit=True)
    else:
        batch, _ = service.create(account, NewBatch(case.type, process="manual"))
        upload = service.start_upload(account, batch.id, "data.csv", "text/csv")
        upload.write(case.body["csv"].encode())
        upload.finish()
        service.submit(account, batch.id)
    while run_once(service):
        pass
    assert service.get(account, batch.id).status == "validated"
    return account, batch


@pytest.mark.parametrize("name", list(CASES))
def test_a_processing_batch_gives_them_from_applied_and_waiting_chunks(
    service: BatchService, name: str
) -> None:
    case = CASES[name]
    account, batch = validated_in_core(service, case)
    at_validated = "".join(service.results(account, batch.id, ["invalid"]))

    service.process(account, batch.id)
    assert run_once(service)  # the first chunk applied, the others waiting
    assert service.get(account, batch.id).status == "processing"
    with service.rt.db.read() as conn:
        statuses = [s for (s,) in conn.execute(chunks.select().with_only_columns(chunks.c.status))]
    assert statuses.count("done") == 1 and "pending" in statuses
    half = "".join(service.results(account, batch.id, ["invalid"]))
    assert half == at_validated
    for outcome in NOT_YET:
        with pytest.raises(Conflict, match="available now: outcome=invalid"):
            service.results(account, batch.id, [o for o in outcome.split(",") if o])

    while run_once(service):
        pass
    assert service.get(account, batch.id).status == "completed"
    refused = "".join(service.results(account, batch.id, ["invalid", "failed", "unprocessed"]))
    assert refused == at_validated
    assert [r[case.key] for r in rows(at_validated)] == case.invalid


def test_a_waiting_chunk_that_cannot_be_read_has_no_rows_as_it_will_have_none(
    service: BatchService,
) -> None:
    account, _ = service.create_account("acme")
    items = CASES["json-records"].body["items"]  # J2 in the first chunk, J5 in the second
    batch, _ = service.create(
        account, NewBatch("billing.customer", process="manual"), items=items, submit=True
    )
    while run_once(service):
        pass
    with service.rt.db.write() as conn:
        second = conn.execute(chunks.select().where(chunks.c.batch_id == batch.id, chunks.c.seq == 1)).one()
        conn.execute(
            update(chunk_payloads).where(chunk_payloads.c.chunk_id == second.id).values(payload="[{")
        )
    served = "".join(service.results(account, batch.id, ["invalid"]))
    assert [r["customer_number"] for r in rows(served)] == ["J2"]

    service.process(account, batch.id)
    while run_once(service):  # the second chunk fails on every attempt, then is closed
        pass
    assert service.get(account, batch.id).status == "completed"
    assert "".join(service.results(account, batch.id, ["invalid"])) == served


@pytest.mark.parametrize("name", list(CASES))
def test_a_spent_chunk_closed_after_an_unexpected_error_keeps_every_records_row(
    service: BatchService, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose attempts are spent and whose settling then breaks (a bug, not an
    interruption) is closed as it stands: its valid records count as unprocessed and have
    their unprocessed rows in the result file, and its invalid records keep the rows served
    for them at validated."""
    case = CASES[name]
    account, batch = validated_in_core(service, case)
    at_validated = "".join(service.results(account, batch.id, ["invalid"]))
    assert [r[case.key] for r in rows(at_validated)] == case.invalid
    with service.rt.db.write() as conn:
        spent = update(chunks).where(chunks.c.batch_id == batch.id)
        conn.execute(spent.values(failed_attempts=service.rt.settings.max_attempts))

    def broken(*_args: Any, **_kwargs: Any) -> bool:
        raise RuntimeError("settle bug")

    monkeypatch.setattr(settle, "settle_chunk", broken)
    service.process(account, batch.id)
    while run_once(service):
        pass
    done = service.get(account, batch.id)
    assert (done.status, done.outcome) == ("completed", "failed"), done
    counts = done.counts
    assert counts.invalid == len(case.invalid), counts
    assert (counts.succeeded, counts.failed, counts.unprocessed) == (0, 0, counts.valid), counts
    assert counts.total == counts.invalid + counts.unprocessed
    # no record could be settled: the result file holds every one, the invalid ones as served
    everything = rows("".join(service.results(account, batch.id)))
    assert len(everything) == counts.total
    assert "".join(service.results(account, batch.id, ["invalid"])) == at_validated
    unprocessed = rows("".join(service.results(account, batch.id, ["unprocessed"])))
    assert len(unprocessed) == counts.valid
    assert {r["loadbay_status"] for r in unprocessed} == {"unprocessed"}
