"""The CSV reader a block at a time (`open_blocks`, the column path's) reads the same
records, problems and file errors as the record reader (`open_reader`), whatever the file,
and holds at most a block or two of it; reading a file through (`read_through`, which
counts the rows of plain blocks without csv.reader) counts its records and raises its errors.

Blocks are made tiny here (the reader's read sizes patched) so that every file, however
short, goes through both of its block paths: pyarrow for a block whose quotes are around
whole cells, csv.reader for any other.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadbay import readers
from loadbay.arrow import pa
from loadbay.errors import LoadbayError
from loadbay.readers import RawRecord, RowBlock, open_blocks, open_reader, read_through
from loadbay.types.billing import CustomerType
from tests.unit.test_column_path import files

COLUMNS = CustomerType().columns()


def flattened(items: Iterator[RawRecord | RowBlock]) -> list[RawRecord]:
    out = []
    for item in items:
        if isinstance(item, RawRecord):
            out.append(item)
            continue
        table = pa.Table.from_arrays(list(item.columns.values()), names=list(item.columns))
        out += [RawRecord({k: v for k, v in row.items() if v is not None}) for row in table.to_pylist()]
    return out


def outcome(read: Any, data: bytes, fmt: str, limit: int) -> tuple[str, Any, list[str]]:
    try:
        with read(io.BytesIO(data), fmt, COLUMNS, max_record_bytes=limit) as reader:
            got = flattened(reader) if read is open_blocks else list(reader)
            return "read", [(r.values, r.problem) for r in got], reader.warnings
    except LoadbayError as exc:
        return "refused", (exc.code, exc.message), []


@pytest.fixture(params=[(64, 96), (256, 4096), (4096, 1 << 18)], ids=["tiny", "small", "default"])
def block_sizes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    read, block = request.param
    monkeypatch.setattr(readers, "_READ_BYTES", read)
    monkeypatch.setattr(readers, "_BLOCK_BYTES", block)
    return read, block


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=files(), limit=st.sampled_from([120, 1 << 20]))
def test_blocks_read_what_records_read(
    block_sizes: tuple[int, int], file: tuple[bytes, str], limit: int
) -> None:
    data, content_type = file
    fmt = "tsv" if content_type == "text/tab-separated-values" else "csv"
    assert outcome(open_blocks, data, fmt, limit) == outcome(open_reader, data, fmt, limit)


def counted(data: bytes, fmt: str, limit: int) -> tuple[str, Any]:
    try:
        return "read", read_through(io.BytesIO(data), fmt, COLUMNS, max_record_bytes=limit)
    except LoadbayError as exc:
        return "refused", (exc.code, exc.message)


def records_read(data: bytes, fmt: str, limit: int) -> tuple[str, Any]:
    try:
        with open_reader(io.BytesIO(data), fmt, COLUMNS, max_record_bytes=limit) as reader:
            return "read", sum(1 for _ in reader)
    except LoadbayError as exc:
        return "refused", (exc.code, exc.message)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=files(), limit=st.sampled_from([120, 1 << 20]))
def test_reading_through_counts_what_records_read(
    block_sizes: tuple[int, int], file: tuple[bytes, str], limit: int
) -> None:
    data, content_type = file
    fmt = "tsv" if content_type == "text/tab-separated-values" else "csv"
    assert counted(data, fmt, limit) == records_read(data, fmt, limit)


@pytest.mark.parametrize(
    "data",
    [
        # text after a closing quote
        b'customer_number,name\nC1,"a ""quoted"" name"\nC2,"two\nlines"\nC3,"x"y\n',
        b'customer_number,name\nC1,a"b\n"C2",plain\n',  # a quote inside a cell, then a quoted cell
        # blank lines, long and short rows
        b"customer_number,name\r\nC1,x\r\n\r\n   \r\nC2,y,extra\r\nC3\r\n",
        b"customer_number,name\nC1,\xff\n",  # not UTF-8
        b"customer_number,name\nC1,a\x00b\nC2,c\n",  # a NUL
        b"customer_number,name\n\xef\xbb\xbfC1,a\n",  # U+FEFF opening a value
        b"customer_number,name\rC1,a\rC2,b\r",  # CR line ends
        # blank lines, white space and one-cell lines after the first blocks
        b"customer_number,name\n" + b"C1,x\n" * 60 + b'\n  \n\t\r\n""\n"  "\n" "\nC9\n' + b"C2,y\n" * 60,
    ],
)
def test_odd_files_read_the_same(block_sizes: tuple[int, int], data: bytes) -> None:
    assert outcome(open_blocks, data, "csv", 1 << 20) == outcome(open_reader, data, "csv", 1 << 20)
    assert counted(data, "csv", 1 << 20) == records_read(data, "csv", 1 << 20)


def test_a_tsv_line_of_commas_and_spaces_is_a_record() -> None:
    """In a TSV file a comma is text: `  ,  ` is one cell, not a blank row."""
    data = b"customer_number\tname\n" + b"C1\tx\n" * 60 + b"  ,  \n" + b"C2\ty\n" * 60
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(readers, "_READ_BYTES", 64)
        patched.setattr(readers, "_BLOCK_BYTES", 96)
        assert counted(data, "tsv", 1 << 20) == records_read(data, "tsv", 1 << 20) == ("read", 121)


def test_a_plain_file_is_read_a_block_at_a_time() -> None:
    rows = b"".join(b"C%d,Customer %d,c%d@example.com\r\n" % (i, i, i) for i in range(200_000))
    stream = io.BytesIO(b"customer_number,name,email\r\n" + rows)
    with open_blocks(stream, "csv", COLUMNS) as reader:
        items = iter(reader)
        first = next(items)  # the rest of the header's block, read by csv.reader
        second = next(items)  # then a plain block of _BLOCK_BYTES, parsed by pyarrow
        assert isinstance(first, RowBlock) and isinstance(second, RowBlock) and second.count > 5000
        assert stream.tell() <= 3 * readers._BLOCK_BYTES  # not the whole file (7 MB)
        counts = [first.count, second.count] + [i.count if isinstance(i, RowBlock) else 1 for i in items]
    assert sum(counts) == 200_000


NUMBERS = st.sampled_from(["-1", "-1.5", "-١٢", "-١.٢", "-３", "+1", "--1", "-1.", "-.5", "'-1", "-1\n"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(NUMBERS, st.text(st.sampled_from("'=+-@\t\r.0123456789١٢３xé ,\""), max_size=8)),
        min_size=1,
        max_size=40,
    )
)
def test_cells_protected_a_column_at_a_time_as_one_by_one(values: list[str]) -> None:
    from loadbay.core.results import protect_column
    from loadbay.domain.cells import protect

    assert protect_column(pa.array(values, pa.string())).to_pylist() == [protect(v) for v in values]
