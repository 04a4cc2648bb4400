"""A catalog item's result row and reading it back: the userDefined column (a RestColumn)
holds the item's ud… and udLookup_… values as JSON, so the file of refused records, fixed
and sent again in any format the loop reads, gives the item back whole."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbay.core.columns import records_to_columns
from loadbay.core.results import RestColumn, column_input_parts, header_row, input_parts, result_rows
from loadbay.core.settle import decode_chunk, encode_chunk
from loadbay.core.staging import Stager
from loadbay.domain.records import FieldError, OutcomeStatus, RecordOutcome, StagedRecord
from loadbay.readers import RawRecord, iter_json_items, open_reader
from loadbay.types.catalog import USER_DEFINED, catalog_types

user1 = catalog_types()[0]
COLUMNS = user1.columns()
UD = {
    "ud_color": "Zoë ☃",
    "ud_size": 43,
    "ud_big": 12345678901234567890123,
    "ud_flag": False,
    "ud_none": None,
    "ud_empty": "",
    "ud_formula": "=1+1",
    "ud_deep": {"a": [1, {"b": 'c, "quoted"\nline'}], "e": []},
    "udLookup_L": {"udfLookupItems": [{"amount1Range": "5:1", "sortOrderNumber": 2, "ud_x": "y"}]},
}
SENT = {"id": "CAT-9", "description": "x" * 600, "parentReference": {"id": "P"}, **UD}


def jsonl(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(i, default=str, ensure_ascii=False).encode() + b"\n" for i in items)


def read(data: bytes, fmt: str) -> list[RawRecord]:
    return list(open_reader(io.BytesIO(data), fmt, COLUMNS))


def refused_file(items: list[dict[str, Any]], *, payload: bool = True) -> str:
    """The file of refused records of a batch of `items` (sent as JSON Lines), as the core
    writes it: from the records kept in the chunk's payload (or, not `payload`, as read)."""
    line = b"".join(_exact(i).encode() + b"\n" for i in items)
    staged = Stager(user1, 100).stage_many(0, read(line, "jsonl"))
    if payload:
        staged = decode_chunk(encode_chunk(staged))
    assert all(r.data is None for r in staged), staged
    outcomes = [RecordOutcome(OutcomeStatus.INVALID, errors=r.errors) for r in staged]
    return header_row(COLUMNS.names) + result_rows(COLUMNS.names, staged, outcomes)


def _exact(value: Any) -> str:
    """`value` as JSON, a Decimal as the number it was read from (the items as sent)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_exact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_exact(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def fixed(text: str) -> str:
    """The refused file with its errors fixed (the description, and the range in a lookup)."""
    return text.replace("x" * 600, "v2").replace("5:1", "1:5")


def stored(item: dict[str, Any]) -> dict[str, Any] | None:
    """What validating `item`, sent as JSON, keeps."""
    (record,) = read(_exact(item).encode() + b"\n", "jsonl")
    data, errors = user1.validate(record.values)
    assert errors == (), errors
    return data


LOOKUP_FIXED = {"udfLookupItems": [{"amount1Range": "1:5", "sortOrderNumber": 2, "ud_x": "y"}]}
EXPECTED = {**SENT, "description": "v2", "udLookup_L": LOOKUP_FIXED}  # the refused item, fixed


# the result row ------------------------------------------------------------------------


def test_the_columns_end_with_user_defined() -> None:
    assert COLUMNS.names[-1] == "userDefined" and isinstance(COLUMNS.names[-1], RestColumn)
    assert "userDefined" not in COLUMNS.required


def test_the_refused_row_holds_the_ud_values_as_exact_json() -> None:
    (row,) = rows(refused_file([SENT]))
    assert row["description"] == "x" * 600 and row["loadbay_error_code"] == "TOO_LONG;INVALID_RANGE"
    assert row["parentReference"] == '{"id": "P"}'
    held = json.loads(row["userDefined"], parse_float=Decimal)
    assert held == UD
    assert '"ud_color":"Zoë ☃"' in row["userDefined"]  # text as given, not \\u escapes


FRACTIONS = {"ud_price": Decimal("12.50"), "ud_tiny": Decimal("1E-7"), "ud_list": [Decimal("-0.5")]}


def test_numbers_with_a_fraction_are_written_as_read() -> None:
    (row,) = rows(refused_file([{"id": "A", "description": "x" * 501, **FRACTIONS}], payload=False))
    assert row["userDefined"] == '{"ud_price":12.50,"ud_tiny":1E-7,"ud_list":[-0.5]}'


def test_numbers_with_a_fraction_stay_numbers_through_the_chunk_payload() -> None:
    (row,) = rows(refused_file([{"id": "A", "description": "x" * 501, **FRACTIONS}]))
    assert json.loads(row["userDefined"], parse_float=Decimal) == FRACTIONS


def test_an_item_without_ud_values_has_an_empty_cell() -> None:
    (row,) = rows(refused_file([{"id": "A", "description": "x" * 501}]))
    assert row["userDefined"] == "" and row["id"] == "A"


def test_an_item_that_gives_user_defined_itself_and_ud_keys_keeps_both() -> None:
    item = {"id": "A", "description": "x" * 501, "userDefined": {"ud_a": 1}, "ud_b": [2]}
    (row,) = rows(refused_file([item]))
    assert json.loads(row["userDefined"]) == {"userDefined": {"ud_a": 1}, "ud_b": [2]}
    data, errors = user1.validate({"id": "A", "userDefined": row["userDefined"]})
    assert errors == () and data == {"id": "A", "ud_a": 1, "ud_b": [2]}


def test_an_unknown_key_is_shown_so_it_can_be_fixed() -> None:
    (row,) = rows(refused_file([{"id": "A", "user2BOMHeaders": []}]))
    assert json.loads(row["userDefined"]) == {"user2BOMHeaders": []}
    data, errors = user1.validate({"id": "A", "userDefined": row["userDefined"]})
    assert data is None and [(e.code, e.field) for e in errors] == [("UNKNOWN_FIELD", "user2BOMHeaders")]


# reading it back, in each format ----------------------------------------------------------


def as_format(text: str, fmt: str) -> bytes:
    """The fixed file in `fmt`: CSV as it is, TSV as a spreadsheet saves it, JSON (Lines)
    objects of the row's cells, as a script makes them."""
    if fmt == "csv":
        return text.encode()
    table = [list(r) for r in csv.reader(io.StringIO(text, newline=""))]
    if fmt == "tsv":
        out = io.StringIO()
        csv.writer(out, delimiter="\t", lineterminator="\r\n").writerows(table)
        return out.getvalue().encode()
    columns = [name for name in table[0] if not name.startswith("loadbay_")]  # the type's columns
    objects = [{k: v for k, v in zip(table[0], row, strict=True) if v and k in columns} for row in table[1:]]
    if fmt == "jsonl":
        return jsonl(*objects)
    objects = [o | {"userDefined": json.loads(o["userDefined"])} for o in objects]  # an object, not text
    return json.dumps(objects, ensure_ascii=False).encode()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json"])
def test_the_fixed_file_gives_the_item_back_whole(fmt: str) -> None:
    (record,) = read(as_format(fixed(refused_file([SENT])), fmt), fmt)
    assert record.problem is None
    data, errors = user1.validate(record.values)
    assert errors == ()
    assert data == stored(EXPECTED)
    assert data is not None and data["ud_big"] == UD["ud_big"] and data["ud_flag"] is False
    assert data["ud_deep"] == UD["ud_deep"] and data["ud_none"] is None and data["ud_empty"] == ""


def test_a_retry_of_the_fixed_records_gives_the_item_back_whole() -> None:
    """A retry sends the records' values as read again, as JSON items."""
    (record,) = read(fixed(refused_file([SENT])).encode(), "csv")
    (again,) = iter_json_items([record.values], COLUMNS)
    assert user1.validate(again.values) == (stored(EXPECTED), ())


def test_an_item_without_ud_values_reads_back_as_before() -> None:
    (record,) = read(
        fixed(refused_file([{"id": "A", "description": "x" * 600, "comment": "c"}])).encode(), "csv"
    )
    assert USER_DEFINED not in record.values
    assert user1.validate(record.values) == ({"id": "A", "description": "v2", "comment": "c"}, ())


def test_nested_columns_read_back_from_their_json_text() -> None:
    headers = [{"effectiveFromDate": "2021-01-01T00:00:00", "user1BOMDetails": [{"allocationPercent": 100}]}]
    item = {"id": "A", "description": "x" * 600, "parentReference": {"id": "P"}, "user1BOMHeaders": headers}
    (record,) = read(fixed(refused_file([item])).encode(), "csv")
    assert record.values["user1BOMHeaders"].startswith("[{")
    assert user1.validate(record.values) == (stored(item | {"description": "v2"}), ())


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("not json", "not a JSON object"),
        ("[1]", "not a JSON object"),
        (7, "not a JSON object"),
        ('{"ud_a": "\\u0000"}', "NUL"),
        ('{"ud_a": 1, "ud_a": 2}', None),  # JSON's last value wins, as the readers read it
        ('{"description": "d"}', "'description' has a column of its own"),
        ('{"ID": "B"}', "'ID' has a column of its own"),
        ('{"ud_b": 1}', "'ud_b' is given twice"),
        ("[" * 5000 + "]" * 5000, "not a JSON object"),
    ],
)
def test_a_user_defined_value_that_cannot_be_read_is_invalid(given: Any, message: str | None) -> None:
    data, errors = user1.validate({"id": "A", "ud_b": 0, "userDefined": given})
    if message is None:
        assert errors == () and data == {"id": "A", "ud_a": 2, "ud_b": 0}
        return
    assert data is None and len(errors) == 1
    assert (errors[0].code, errors[0].field) == ("INVALID_VALUE", "userDefined")
    assert message in errors[0].message and errors[0].message.startswith("userDefined: ")


@pytest.mark.parametrize("given", [None, ""])
def test_an_empty_user_defined_value_holds_nothing(given: Any) -> None:
    assert user1.validate({"id": "A", "userDefined": given}) == ({"id": "A"}, ())


def test_the_json_schema_names_user_defined() -> None:
    assert "userDefined" in user1.json_schema()["properties"]


# the column path: a RestColumn's cell is the same on both paths -------------------------

NAMES = ("key", "name", RestColumn("rest"))
cell_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
flat = st.dictionaries(st.sampled_from(NAMES), cell_text | st.sampled_from(["=1", '{"a": 1}', "-5", "'@"]))


@settings(deadline=None)
@given(st.lists(flat, min_size=1, max_size=6))
def test_a_rest_column_gives_the_same_rows_on_either_path(values: list[dict[str, str]]) -> None:
    values = [{k: v for k, v in record.items() if v} for record in values]
    arrays = records_to_columns(NAMES, values)
    assert arrays is not None
    records = [StagedRecord(i, None, v, None, (FieldError("X", "x"),)) for i, v in enumerate(values)]
    assert column_input_parts(NAMES, arrays, len(values)).to_pylist() == input_parts(NAMES, records)


def test_a_record_with_keys_outside_the_columns_is_never_in_column_form() -> None:
    assert records_to_columns(NAMES, [{"key": "k", "ud_a": "1"}]) is None
    record = StagedRecord(0, None, {"key": "k", "ud_a": "1"}, None, ())
    assert input_parts(NAMES, [record]) == ['k,,"{""ud_a"":""1""}"']
