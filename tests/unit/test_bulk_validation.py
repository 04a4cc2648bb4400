"""The bulk validation fast path (`BatchType.validate_many`, `Stager.chunks`) gives exactly
the outcomes of the per-record slow path (`BatchType.validate`, `Stager.stage`)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from loadbay.core.staging import Stager
from loadbay.core.types import BatchType
from loadbay.domain.records import FieldError, StagedRecord
from loadbay.readers import RawRecord, open_reader
from loadbay.types import default_registry
from loadbay.types.billing import CustomerType

registry = default_registry()

Outcome = tuple[dict[str, Any] | None, tuple[FieldError, ...]]


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def read(batch_type: BatchType, data: bytes) -> list[RawRecord]:
    with open_reader(io.BytesIO(data), "csv", batch_type.columns()) as reader:
        return list(reader)


def slow(batch_type: BatchType, raws: list[RawRecord]) -> list[StagedRecord]:
    """The per-record path, as Stager.chunks ran it before the fast path."""
    stager = Stager(batch_type, chunk_size=1)
    return [stager.stage(index, raw) for index, raw in enumerate(raws)]


def fast(batch_type: BatchType, raws: list[RawRecord], chunk_size: int) -> list[StagedRecord]:
    chunks = list(Stager(batch_type, chunk_size).chunks(iter(raws)))
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    staged = [c.as_records() for c in chunks]
    assert all(len(records) == chunk_size for records in staged[:-1])
    return [r for records in staged for r in records]


def assert_same(batch_type: BatchType, raws: list[RawRecord]) -> list[StagedRecord]:
    """Both paths agree on every record, whatever the chunk size; the slow path's records."""
    expected = slow(batch_type, raws)
    assert [r.index for r in expected] == list(range(len(raws)))
    for chunk_size in (1, 3, 10, len(raws), 10_000):
        got = fast(batch_type, raws, chunk_size)
        assert len(got) == len(expected)
        for old, new in zip(expected, got, strict=True):
            assert (new.index, new.external_id, new.raw) == (old.index, old.external_id, old.raw)
            assert new.data == old.data, old.index
            assert new.errors == old.errors, old.index
    readable = [raw.values for raw in raws if raw.problem is None]
    assert batch_type.validate_many(readable) == [batch_type.validate(v) for v in readable]
    return expected


def codes(records: list[StagedRecord]) -> Counter[str]:
    return Counter(e.code for r in records for e in r.errors)


# --------------------------------------------------------------------------- billing.customer

CUSTOMER_HEADER = [
    "customer_number",
    "name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "currency",
    "balance",
    "status",
]


def customer_row(n: int, **values: str) -> list[str]:
    row = {
        "customer_number": f"C{n:05d}",
        "name": f"Customer {n}",
        "email": f"c{n}@example.com",
        "phone": "" if n % 3 else f"+1-555-{n:07d}",
        "address_line1": f"{n} Main St",
        "address_line2": "",
        "city": "Springfield",
        "state": "IL",
        "postal_code": f"{n:05d}",
        "country": ("US", "gb", " fr ", "")[n % 4],
        "currency": ("USD", "eur", "", "JPY")[n % 4],
        "balance": ("0", "12.5", "-3.25", "", "999999999999.99")[n % 5],
        "status": ("Active", "cancelled", " DRAFT ", "", "Suspended")[n % 5],
    } | values
    return [row[c] for c in CUSTOMER_HEADER]


BAD_CUSTOMERS: list[dict[str, str]] = [
    {"email": "not-an-email"},
    {"email": "two@@example.com"},
    {"country": "XX"},
    {"country": "USA"},
    {"currency": "ABC"},
    {"currency": "dollars"},
    {"balance": "1.234"},
    {"balance": "ten"},
    {"balance": "1234567890123.45"},  # 15 digits
    {"balance": "NaN"},
    {"name": "N" * 201},
    {"phone": "9" * 41},
    {"postal_code": "1" * 21},
    {"name": ""},  # missing required
    {"name": "   "},  # only spaces: too short once stripped
    {"status": "Gone"},
    {"status": "Actve"},
    {"email": "x", "country": "QQ", "currency": "QQQ", "balance": "1.001", "status": "?"},
    {"name": "", "email": "@", "postal_code": "0" * 30},
]


def customer_file() -> tuple[bytes, int]:
    """Good and bad customers (unique keys), and a row that cannot be read; the bad count."""
    rows: list[list[str]] = []
    bad = 0
    for n in range(200):
        if n % 7 == 3:
            rows.append(customer_row(n, **BAD_CUSTOMERS[bad % len(BAD_CUSTOMERS)]))
            bad += 1
        else:
            rows.append(customer_row(n))
    rows.insert(50, [*customer_row(9000), "one cell too many"])  # MALFORMED_ROW
    rows.insert(80, customer_row(9001, customer_number=""))  # missing key: external_id None
    return csv_bytes(CUSTOMER_HEADER, rows), bad + 2


def test_customer_bad_file_outcomes_are_identical() -> None:
    customer = registry.get("billing.customer")
    data, bad = customer_file()
    raws = read(customer, data)
    assert len(raws) == 202
    records = assert_same(customer, raws)
    invalid = [r for r in records if r.data is None]
    assert len(invalid) == bad
    assert all(r.errors for r in invalid)
    assert not any(r.errors for r in records if r.data is not None)
    assert len(records) - len(invalid) > 150
    assert set(codes(records)) >= {
        "INVALID_EMAIL",
        "INVALID_COUNTRY",
        "INVALID_CURRENCY",
        "INVALID_DECIMAL",
        "TOO_LONG",
        "REQUIRED",
        "INVALID_VALUE",
        "MALFORMED_ROW",
    }
    assert records[50].errors[0].code == "MALFORMED_ROW"
    assert records[80].external_id is None
    assert records[0].external_id == "C00000"
    # normalisation is kept by the fast path (these rows are valid)
    assert records[1].data is not None
    assert records[1].data["country"] == "GB" and records[1].data["currency"] == "EUR"
    assert records[2].data is not None
    assert records[2].data["status"] == "Draft" and "phone" not in records[2].data


class Spied(CustomerType):
    """A customer type that records what it is asked to validate (the fast path stays on:
    `validate` is not overridden by the class), on the record path."""

    column_rules = None

    def __init__(self) -> None:
        self.many: list[list[Mapping[str, Any]]] = []
        self.one: list[Mapping[str, Any]] = []

    def validate_many(self, raws: Any) -> list[Outcome]:
        self.many.append(list(raws))
        return super().validate_many(raws)


def test_fast_path_validates_the_chunk_at_once_and_only_refused_records_again() -> None:
    spied = Spied()
    slow_validate = spied.validate

    def validate(raw: Mapping[str, Any]) -> Outcome:
        spied.one.append(raw)
        return slow_validate(raw)

    spied.validate = validate  # type: ignore[method-assign]
    raws = read(spied, customer_file()[0])
    records = fast(spied, raws, chunk_size=100)
    assert [len(m) for m in spied.many] == [99, 100, 2]  # the unreadable row is not validated
    assert all(raw.problem is None for raw in raws if raw.values in spied.many[0])
    refused = [r.raw for r in records if r.data is None and r.errors[0].code != "MALFORMED_ROW"]
    assert spied.one == refused


def test_a_type_that_does_not_validate_in_bulk_is_validated_per_record() -> None:
    class Custom(CustomerType):
        validates_in_bulk = False
        column_rules = None  # (the column path needs the default validate)

        def validate(self, raw: Mapping[str, Any]) -> Outcome:
            data, errors = super().validate(raw)
            if data is not None and data["name"].startswith("X"):
                return None, (FieldError("NO_X", "no X", "name"),)
            return data, errors

    custom = Custom()
    raws = [
        RawRecord({"customer_number": "A", "name": "Xavier"}),
        RawRecord({"customer_number": "B", "name": "Ann"}),
    ]
    raws.append(RawRecord({"customer_number": "C"}))
    records = assert_same(custom, raws)
    assert [r.errors[0].code if r.errors else None for r in records] == ["NO_X", None, "REQUIRED"]


def test_overriding_validate_needs_the_declaration() -> None:
    with pytest.raises(TypeError, match="Custom defines validate\\(\\) but not validates_in_bulk"):

        class Custom(CustomerType):
            def validate(self, raw: Mapping[str, Any]) -> Outcome:
                return super().validate(raw)


def test_no_records() -> None:
    customer = registry.get("billing.customer")
    assert customer.validate_many([]) == []
    assert list(Stager(customer, 10).chunks([])) == []


# --------------------------------------------------------------------------- other types


def test_invoice_bad_file_outcomes_are_identical() -> None:
    invoice = registry.get("billing.invoice")
    header = ["invoice_number", "customer_number", "invoice_date", "due_date", "currency", "amount"]
    bad = [
        ["", "C1", "2024-03-01", "", "", "1"],  # missing key
        ["I-due", "C1", "2024-03-10", "2024-03-01", "", "1"],  # INVALID_DUE_DATE
        ["I-date", "C1", "2024-02-30", "", "", "1"],  # INVALID_DATE
        ["I-nodate", "C1", "", "", "", "1"],  # REQUIRED
        ["I-cur", "C1", "2024-03-01", "", "XYZ", "1"],  # INVALID_CURRENCY
        ["I-neg", "C1", "2024-03-01", "", "", "-1"],  # ge=0
        ["I-dec", "C1", "2024-03-01", "", "", "1.005"],  # INVALID_DECIMAL
        ["I-all", "", "tomorrow", "yesterday", "??", "x"],
        ["I" * 41, "C1", "2024-03-01", "", "", "1"],  # TOO_LONG
    ]
    rows = [
        [f"I{n}", f"C{n}", "2024-03-01", "2024-03-31" if n % 2 else "", "usd", f"{n}.50"] for n in range(30)
    ]
    for n, row in enumerate(bad):
        rows.insert(3 * n + 1, row)
    rows.append(["I99", "C99", "2024-03-01", "", "", "1", "extra"])  # MALFORMED_ROW
    records = assert_same(invoice, read(invoice, csv_bytes(header, rows)))
    assert set(codes(records)) >= {
        "REQUIRED",
        "INVALID_DUE_DATE",
        "INVALID_DATE",
        "INVALID_CURRENCY",
        "INVALID_DECIMAL",
        "INVALID_VALUE",
        "TOO_LONG",
        "MALFORMED_ROW",
    }
    assert sum(1 for r in records if r.data is not None) == 30


def test_invoice_line_bad_file_outcomes_are_identical() -> None:
    lines = registry.get("billing.invoice_line")
    header = ["invoice_number", "line_number", "description", "quantity", "unit_price", "amount"]
    rows = [[f"I{n}", str(n % 4 + 1), "", "2", "1.25", "2.50" if n % 2 else ""] for n in range(20)]
    rows[3] = ["I3", "1", "", "2", "1.25", "2.49"]  # AMOUNT_MISMATCH
    rows[6] = ["I6", "0", "", "2", "1.25", ""]  # line_number >= 1
    rows[9] = ["I9", "1", "", "0", "1.25", ""]  # quantity > 0
    rows[12] = ["I12", "one", "d" * 501, "1.00001", "x", ""]
    records = assert_same(lines, read(lines, csv_bytes(header, rows)))
    assert set(codes(records)) >= {"AMOUNT_MISMATCH", "INVALID_VALUE", "INVALID_DECIMAL", "TOO_LONG"}
    assert sum(1 for r in records if r.data is not None) == 16


@pytest.mark.parametrize("name", ["billing.payment", "billing.write_off"])
def test_payment_and_write_off_bad_files_outcomes_are_identical(name: str) -> None:
    batch_type = registry.get(name)
    if name == "billing.payment":
        header = ["customer_id", "customer_number", "amount", "payment_date", "reference", "method"]
        rows = [["", f"C{n}", f"{n + 1}.00", "2024-01-02", f"R{n}", "card"] for n in range(20)]
        rows[2] = ["", "", "5", "2024-01-02", "R2", ""]  # neither customer: REQUIRED, no field
        rows[5] = ["x", "C5", "5", "2024-01-02", "R5", ""]  # customer_id not an int
        rows[8] = ["", "C8", "0", "2024-13-01", "R8", ""]  # amount > 0, bad date
        rows[11] = ["7", "", "5.555", "", "R11", "m" * 41]
    else:
        header = ["invoice_id", "invoice_number", "amount", "reason"]
        rows = [[str(n) if n % 2 else "", "" if n % 2 else f"I{n}", "", "bad debt"] for n in range(20)]
        rows[2] = ["", "", "5", ""]  # REQUIRED from the model's own rule
        rows[5] = ["five", "", "", ""]
        rows[8] = ["8", "", "-1", "r" * 501]
    records = assert_same(batch_type, read(batch_type, csv_bytes(header, rows)))
    assert "REQUIRED" in codes(records)
    assert len(codes(records)) >= 2
    assert records[2].errors[0].field is None
    assert sum(1 for r in records if r.data is not None) == 16 if name == "billing.payment" else 17


def generic_raws(batch_type: BatchType) -> list[RawRecord]:
    names = batch_type.columns().names
    return [
        RawRecord({}),
        RawRecord({n: "x" for n in names}),
        RawRecord({n: "1" for n in names}),
        RawRecord({n: " 2024-01-02 " for n in names}),
        RawRecord({}, ("INVALID_JSON", "line 5: bad")),
        RawRecord({n: str(i + 1) for i, n in enumerate(names)}),
    ]


@pytest.mark.parametrize("name", sorted(t.name for t in registry))
def test_every_type_gives_the_same_outcomes(name: str) -> None:
    batch_type = registry.get(name)
    records = assert_same(batch_type, generic_raws(batch_type))
    assert records[4].errors == (FieldError("INVALID_JSON", "line 5: bad"),)
