"""The column path and the record path give the same outcomes.

Hypothesis writes `billing.customer` files with every kind of bad value (lengths at and
past the limits, white space of every definition around values, values in the wrong case,
decimals in odd spellings, formula characters, quotes, commas and line breaks inside
values, duplicate keys, absent cells, extra cells, NULs, BOMs and other delimiters). Each
file goes through two servers' cores on SQLite, one whose customer type takes the column
path and one whose takes the record path, twice (the second time updating what the first
made), and every observable answer must be the same: the batch, its error rows, its
records, its result file and the rows written. And a two-phase batch's invalid records'
file, made from its staged chunks once it is validated, is on each path byte for byte the
one its result file has once it is applied.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text

from loadbay import readers
from loadbay.config import Settings
from loadbay.core.columns import MARK, ColumnChunk, records_to_columns, stage_columns
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.core.types import BatchType, TypeRegistry
from loadbay.core.worker import Worker
from loadbay.db.engine import migrate
from loadbay.db.tables import billing_customers
from loadbay.domain.models import Account, NewBatch
from loadbay.types.billing import CustomerRecord, CustomerType

COLUMNS = tuple(CustomerRecord.model_fields)


class RecordPathCustomers(CustomerType):
    """billing.customer on the record path only."""

    column_rules = None


def test_the_types_take_the_paths_they_say() -> None:
    assert CustomerType().column_plans is not None
    assert RecordPathCustomers().column_plans is None


class Side:
    """One core (SQLite in its own directory) with the customer type on one path."""

    def __init__(self, root: Path, customer_type: CustomerType, url: str | None = None) -> None:
        root.mkdir()
        url = url or f"sqlite:///{root / 'loadbay.db'}"
        migrate(url)
        settings = Settings(
            data_dir=root, database_url=url, secret_key="test", chunk_size=7, lease_seconds=60
        )
        self.rt = Runtime.build(settings, TypeRegistry([customer_type]), base_url="http://loadbay.test")
        self.service = BatchService(self.rt)

    def account(self, name: str) -> Account:
        return self.service.create_account(name)[0]

    def imported(self, account: Account, data: bytes, content_type: str, process: str = "auto") -> int:
        """A batch of the file, submitted and worked on until nothing is left to do; its id."""
        batch, _ = self.service.create(account, NewBatch(CustomerType.name, process=process))
        upload = self.service.start_upload(account, batch.id, "customers.csv", content_type)
        upload.write(data)
        upload.finish()
        self.service.submit(account, batch.id)
        self.work()
        return batch.id

    def work(self) -> None:
        worker = Worker(self.rt, "test", threading.Event(), threading.Event())
        while worker.run_once():
            pass

    def run(self, account: Account, data: bytes, content_type: str) -> dict[str, Any]:
        service = self.service
        done = service.get(account, self.imported(account, data, content_type))
        seen: dict[str, Any] = {
            "status": done.status,
            "error": (done.error_code, done.error_message),
            "counts": done.counts,
            "warnings": done.warnings,
        }
        if done.status == "error":
            return seen
        seen["errors"] = [
            (e.record_index, e.external_id, e.field, e.code, e.message)
            for e in service.errors(account, done.id, None, 10_000)
        ]
        seen["records"] = [
            (v.index, v.external_id, v.raw, v.status, v.action, v.entity_id, v.errors)
            for v in service.records(account, done.id, 0, 10_000)
        ]
        seen["results"] = "".join(service.results(account, done.id))
        with self.rt.db.read() as conn:
            rows = conn.execute(
                text(
                    f"SELECT id, revision, {', '.join(COLUMNS)} FROM billing_customers "
                    "WHERE account_id = :a ORDER BY id"
                ),
                {"a": account.id},
            )
            seen["stored"] = [tuple(row) for row in rows]
        return seen

    def invalid_early_and_final(self, account: Account, data: bytes, content_type: str) -> tuple[str, str]:
        """A two-phase batch of the file: its invalid records' file once validated, and after
        it is applied."""
        service = self.service
        batch_id = self.imported(account, data, content_type, process="manual")
        if service.get(account, batch_id).status != "validated":  # (unreadable: nothing to compare)
            return "", ""
        early = "".join(service.results(account, batch_id, ["invalid"]))
        service.process(account, batch_id)
        self.work()
        return early, "".join(service.results(account, batch_id, ["invalid"]))

    def forms(self) -> set[str]:
        """The forms the chunks staged so far took."""
        with self.rt.db.read() as conn:
            payloads = conn.execute(text("SELECT substr(payload, 1, 7) FROM chunk_payloads")).scalars()
            return {"columns" if p == MARK else "records" for p in payloads}


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    root = tmp_path_factory.mktemp("paths")
    columns, records = Side(root / "columns", CustomerType()), Side(root / "records", RecordPathCustomers())
    # tiny blocks, so that even these short files are read by both of the block reader's
    # paths (pyarrow, csv.reader) and cut into chunks across blocks
    with patch.object(readers, "_READ_BYTES", 64), patch.object(readers, "_BLOCK_BYTES", 200):
        yield columns, records
    columns.rt.close()
    records.rt.close()


# values ----------------------------------------------------------------------------

SPACES = [" ", "\t", "\xa0", "\u2003", "\u3000", "\x1c", "\x1f", "\u200b", "\x85", "\ufeff", "\u180e"]
TRICKY = ["=", "+", "-", "@", "'", '"', ",", ";", "\n", "\r\n", "é", "ß", "\U0001f600", "\x00"]


def padded(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A value, sometimes with white space of one definition or another around it."""
    space = st.sampled_from(SPACES)
    return st.one_of(
        core,
        st.tuples(space, core).map("".join),
        st.tuples(core, space).map("".join),
    )


def text_of(length: int) -> st.SearchStrategy[str]:
    letters = st.text(st.sampled_from("abcXYZ019 ._-" + "".join(TRICKY)), min_size=1, max_size=6)
    at_limit = st.integers(length - 1, length + 1).map(lambda n: "x" * n)
    return padded(st.one_of(letters, at_limit, st.just("")))


def mostly(good: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Good values four times in five: a record has several fields, and a file needs valid
    records (and odd values the rules pass) to compare what is written."""
    return st.integers(0, 4).flatmap(lambda n: odd if n == 0 else good)


WORDS = st.text(st.sampled_from("abcXYZ019 .,'\"éß-"), min_size=1, max_size=8).map(lambda t: f"x{t}x")
VALUES: dict[str, st.SearchStrategy[str]] = {
    "customer_number": mostly(
        st.integers(1, 40).map(lambda n: f"C{n}"),
        padded(st.sampled_from(["c1", "C-4", "=C5", "Ç6", "x" * 40, "x" * 41, "'C7"])),
    ),
    "name": mostly(WORDS, text_of(200)),
    "email": mostly(
        st.sampled_from(["a@b.co", "A.B+c@d-e.io", "x.y@z.example"]),
        padded(st.sampled_from(["a@b", "@b.co", "a b@c.de", "é@x.io", "a@@b.co", "a@b.co\n", ""])),
    ),
    "phone": mostly(st.sampled_from(["+1 555 0100", "-5", "555"]), text_of(40)),
    "address_line1": mostly(WORDS, text_of(200)),
    "address_line2": st.sampled_from(["Apt 1", "", " ", "'=1+1", "-12.50", "@home", "\tx"]),
    "city": mostly(WORDS, text_of(100)),
    "state": mostly(st.sampled_from(["CA", "NY"]), padded(st.sampled_from(["ca", "NY", "Ñ"]))),
    "postal_code": mostly(st.sampled_from(["94103", "SW1A 1AA"]), text_of(20)),
    "country": mostly(
        st.sampled_from(["US", "DE", "GB"]), padded(st.sampled_from(["us", "Us", "XX", "", "USA"]))
    ),
    "currency": mostly(st.sampled_from(["USD", "EUR"]), padded(st.sampled_from(["usd", "XXX", "", "US"]))),
    "balance": mostly(
        st.sampled_from(["0", "12.50", "-3.1", "999999999999.99"]),
        padded(
            st.sampled_from(
                [
                    "-0",
                    "-0.00",
                    "007",
                    "1e3",
                    "12.345",
                    "1234567890123",
                    "+5",
                    ".5",
                    "5.",
                    "１２",
                    "NaN",
                    "",
                    "-",
                ]
            )
        ),
    ),
    "status": mostly(
        st.sampled_from(["Active", "Draft", "Suspended", "Cancelled"]),
        padded(st.sampled_from(["active", "ACTIVE", "Bogus", ""])),
    ),
}


@st.composite
def files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A CSV or TSV file of customers as a person or a program may write one."""
    header = draw(st.permutations(COLUMNS))
    header = [c for c in header if c in ("customer_number", "name") or draw(st.booleans())]
    if draw(st.booleans()):
        header = [*header, "notes"]  # a column the type does not have
    rows = []
    for _ in range(draw(st.integers(1, 30))):
        row = [draw(VALUES[c]) if c in VALUES and draw(st.integers(0, 9)) else "" for c in header]
        if draw(st.integers(0, 30)) == 0:
            row = [*row, "extra"]  # more cells than the header
        rows.append(row)
    delimiter = draw(st.sampled_from([",", ",", ";", "\t"]))
    quote_all = draw(st.booleans())
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
        lineterminator=draw(st.sampled_from(["\r\n", "\n"])),
    )
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    content_type = "text/tab-separated-values" if delimiter == "\t" and draw(st.booleans()) else "text/csv"
    return data, content_type


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=files(), second=files())
def test_both_paths_give_the_same_outcomes(
    sides: tuple[Side, Side], first: tuple[bytes, str], second: tuple[bytes, str]
) -> None:
    columns, records = sides
    name = f"acct-{next(_numbers)}"
    on_columns, on_records = columns.account(name), records.account(name)
    for data, content_type in (first, second):
        assert columns.run(on_columns, data, content_type) == records.run(on_records, data, content_type)
    assert columns.forms() <= {"columns"} and records.forms() <= {"records"}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(file=files())
def test_the_invalid_records_file_at_validated_is_the_final_ones_on_both_paths(
    sides: tuple[Side, Side], file: tuple[bytes, str]
) -> None:
    """Made from the staged chunks before they are applied (in column form on one side, in
    record form on the other), it is byte for byte what settling them writes."""
    columns, records = sides
    name = f"acct-{next(_numbers)}"
    early, final = columns.invalid_early_and_final(columns.account(name), *file)
    assert early == final
    assert (early, final) == records.invalid_early_and_final(records.account(name), *file)
    assert columns.forms() <= {"columns"} and records.forms() <= {"records"}


class Counting(CustomerType):
    """Counts the records that reach pydantic."""

    column_rules = CustomerType.column_rules
    validated = 0

    def validate_many(self, raws: Any) -> Any:
        type(self).validated += len(raws)
        return super().validate_many(raws)


def test_plain_records_skip_the_model_and_others_reach_it() -> None:
    customer = Counting()
    assert customer.column_plans is not None
    plain = {"customer_number": "C1", "name": "Ada", "email": "ada@example.com", "balance": "-0.50"}
    odd = [
        {"customer_number": "C2", "name": "Ada", "country": "us"},  # kept upper case
        {"customer_number": "C3", "name": " Ada"},  # stripped
        {"customer_number": "C4", "name": "Ada", "balance": "007"},  # written back as 7
        {"customer_number": "C5", "name": "Ada", "status": "active"},
        {"customer_number": "C6", "name": "Ada\u3000"},  # Unicode white space
        {"customer_number": "C7"},  # name missing
    ]
    records = [plain, *odd]
    raw = records_to_columns([p.name for p in customer.column_plans], records)
    assert raw is not None
    chunk = stage_columns(customer.column_plans, "customer_number", customer, 0, raw, {})
    assert chunk is not None and Counting.validated == len(odd)
    data = {name: column.to_pylist() for name, column in chunk.data.items()}
    assert data["country"][1] == "US" and data["name"][2] == "Ada" and data["status"][4] == "Active"
    assert data["currency"][0] == "USD" and data["status"][0] == "Active"  # the defaults
    assert [e[0].code for e in chunk.errors if e] == ["REQUIRED"]
    assert ColumnChunk.decode(chunk.encode()) == chunk


def test_a_plain_file_is_staged_in_column_form(sides: tuple[Side, Side]) -> None:
    columns, records = sides
    data = b"customer_number,name,email\r\nC1,Ada,ada@example.com\r\nC2,Bob,bob@example\r\n"
    seen = columns.run(columns.account("plain"), data, "text/csv")
    assert seen == records.run(records.account("plain"), data, "text/csv")
    assert seen["counts"].succeeded == 1 and seen["errors"][0][3] == "INVALID_EMAIL"
    assert "columns" in columns.forms()


_numbers = iter(range(1_000_000))


def _refuse_poison(records: Any) -> None:
    """What a database that refuses one record does to a bulk write holding it."""
    from sqlalchemy.exc import IntegrityError

    if any(r.data and r.data.get("name") == "POISON" for r in records):
        raise IntegrityError("INSERT", {}, Exception("CHECK constraint failed: no poison"))


class PoisonColumns(CustomerType):
    """Customers whose database refuses the one named POISON, on the column path."""

    column_rules = CustomerType.column_rules

    def apply_columns(self, conn: Any, ctx: Any, chunk: ColumnChunk, valid: Any, prepared: Any) -> Any:
        _refuse_poison(chunk.to_records())
        return super().apply_columns(conn, ctx, chunk, valid, prepared)

    def apply(self, conn: Any, ctx: Any, records: Any) -> Any:
        _refuse_poison(records)
        return super().apply(conn, ctx, records)


class PoisonRecords(RecordPathCustomers):
    """The same, on the record path."""

    def apply_prepared(self, conn: Any, ctx: Any, records: Any, prepared: Any) -> Any:
        _refuse_poison(records)
        return super().apply_prepared(conn, ctx, records, prepared)

    def apply(self, conn: Any, ctx: Any, records: Any) -> Any:
        _refuse_poison(records)
        return super().apply(conn, ctx, records)


def test_a_record_the_database_refuses_fails_alone_on_both_paths(tmp_path: Path) -> None:
    columns, records = (
        Side(tmp_path / "columns", PoisonColumns()),
        Side(tmp_path / "records", PoisonRecords()),
    )
    rows = "".join(f"C{i},{'POISON' if i == 3 else 'Name'}\r\n" for i in range(10))
    data = f"customer_number,name\r\nC1,again\r\n{rows}".encode()
    try:
        seen = columns.run(columns.account("a"), data, "text/csv")
        assert seen == records.run(records.account("a"), data, "text/csv")
        assert columns.forms() == {"columns"}
    finally:
        columns.rt.close()
        records.rt.close()
    assert (seen["counts"].succeeded, seen["counts"].failed, seen["counts"].invalid) == (9, 1, 1)
    failed = [r for r in seen["records"] if r[3] == "failed"]
    assert [(r[1], r[6][0].code) for r in failed] == [("C3", "APPLY_ERROR")]
    assert "failed,,,APPLY_ERROR" in seen["results"]


class PoisonColumnsAfterWriting(CustomerType):
    """Customers whose database refuses POISON only after the bulk write wrote the others."""

    column_rules = CustomerType.column_rules

    def apply_columns(self, conn: Any, ctx: Any, chunk: ColumnChunk, valid: Any, prepared: Any) -> Any:
        applied = super().apply_columns(conn, ctx, chunk, valid, prepared)
        _refuse_poison(chunk.to_records())
        return applied

    def apply(self, conn: Any, ctx: Any, records: Any) -> Any:
        _refuse_poison(records)
        return super().apply(conn, ctx, records)


class PoisonRecordsAfterWriting(RecordPathCustomers):
    """The same, on the record path."""

    def apply_prepared(self, conn: Any, ctx: Any, records: Any, prepared: Any) -> Any:
        applied = super().apply_prepared(conn, ctx, records, prepared)
        _refuse_poison(records)
        return applied

    def apply(self, conn: Any, ctx: Any, records: Any) -> Any:
        _refuse_poison(records)
        return super().apply(conn, ctx, records)


def test_what_a_refused_bulk_write_wrote_is_undone_before_records_go_one_by_one(tmp_path: Path) -> None:
    """The records a refused bulk write had written are not there when they are applied one
    by one: each is created once (revision 1), none is 'unchanged'."""
    columns, records = (
        Side(tmp_path / "columns", PoisonColumnsAfterWriting()),
        Side(tmp_path / "records", PoisonRecordsAfterWriting()),
    )
    data = "customer_number,name\r\n" + "".join(
        f"C{i},{'POISON' if i == 3 else 'Name'}\r\n" for i in range(10)
    )
    try:
        seen = columns.run(columns.account("a"), data.encode(), "text/csv")
        assert seen == records.run(records.account("a"), data.encode(), "text/csv")
    finally:
        columns.rt.close()
        records.rt.close()
    assert (seen["counts"].succeeded, seen["counts"].failed) == (9, 1)
    assert {r[4] for r in seen["records"] if r[3] == "succeeded"} == {"created"}
    assert [(row[1], row[2]) for row in seen["stored"]] == [(1, f"C{i}") for i in range(10) if i != 3]


class RefusedByTheDatabase(CustomerType):
    """Customers whose database itself refuses the one named POISON (its key written again),
    after the bulk write wrote the others: on PostgreSQL that aborts the transaction."""

    column_rules = CustomerType.column_rules

    def apply_columns(self, conn: Any, ctx: Any, chunk: ColumnChunk, valid: Any, prepared: Any) -> Any:
        applied = super().apply_columns(conn, ctx, chunk, valid, prepared)
        _write_poison_again(conn, ctx.account_id, chunk.to_records())
        return applied

    def apply(self, conn: Any, ctx: Any, records: Any) -> Any:
        applied = super().apply(conn, ctx, records)
        _write_poison_again(conn, ctx.account_id, records)
        return applied


def _write_poison_again(conn: Any, account_id: int, records: Any) -> None:
    now = datetime.now(UTC)
    for record in records:
        if record.data and record.data.get("name") == "POISON":
            number, again = record.data["customer_number"], {"name": "again", "currency": "USD", "balance": 0}
            row = {"account_id": account_id, "customer_number": number, "status": "active", "revision": 1}
            conn.execute(
                insert(billing_customers).values(row | again | {"created_at": now, "updated_at": now})
            )


def test_a_bulk_write_the_database_refuses_is_undone_on_either_database(
    tmp_path: Path, database_url: str
) -> None:
    """A real refusal (a unique key), after the bulk write wrote the other records: the
    transaction is rolled back, and the records applied one by one: the refused one fails
    alone, the others are each created once."""
    side = Side(tmp_path / "side", RefusedByTheDatabase(), url=database_url)
    data = "customer_number,name\r\n" + "".join(
        f"C{i},{'POISON' if i == 3 else 'Name'}\r\n" for i in range(10)
    )
    try:
        seen = side.run(side.account("a"), data.encode(), "text/csv")
    finally:
        side.rt.close()
    assert (seen["counts"].succeeded, seen["counts"].failed) == (9, 1), seen["counts"]
    failed = [(r[1], r[6][0].code) for r in seen["records"] if r[3] == "failed"]
    assert failed == [("C3", "APPLY_ERROR")]
    assert {r[4] for r in seen["records"] if r[3] == "succeeded"} == {"created"}
    assert [(row[1], row[2]) for row in seen["stored"]] == [(1, f"C{i}") for i in range(10) if i != 3]


class ColumnsAppliedTheRecordWay(CustomerType):
    """billing.customer on the column path, its chunks applied by BatchType's default
    `apply_columns` (the record way) instead of UpsertType's."""

    column_rules = CustomerType.column_rules
    prepare_columns = BatchType.prepare_columns
    apply_columns = BatchType.apply_columns


def test_a_type_that_does_not_write_from_columns_applies_them_the_record_way(tmp_path: Path) -> None:
    columns = Side(tmp_path / "columns", ColumnsAppliedTheRecordWay())
    records = Side(tmp_path / "records", RecordPathCustomers())
    first = b"customer_number,name,email\r\nC1,Ada,ada@example.com\r\nC2,Bob,bob@example\r\nC1,Again,\r\n"
    second = b"customer_number,name,balance\r\nC1,Ada,1.50\r\nC3,Cy,x\r\nC4,Di,-2\r\n"
    try:
        for data in (first, second):
            seen = columns.run(columns.account(f"a{len(data)}"), data, "text/csv")
            assert seen == records.run(records.account(f"a{len(data)}"), data, "text/csv")
            assert "columns" in columns.forms()
        assert seen["counts"].succeeded == 2, seen["counts"]
    finally:
        columns.rt.close()
        records.rt.close()
