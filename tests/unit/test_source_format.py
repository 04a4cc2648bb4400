"""How the format of a file fetched from a source_url is told: its Content-Type, else its
URL's extension, else (a Content-Type that says nothing) its first bytes; a charset other
than UTF-8 is refused whichever rule tells it."""

from __future__ import annotations

import pytest

from loadbay.core.processing import _HeadKept, _source_format
from loadbay.errors import UnsupportedMediaType
from loadbay.readers import SNIFF_BYTES, sniff_format

CSV = b"external_id,barcode\nx1,1234567890123456\n"


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (CSV, "csv"),
        (b"a\tb\n1\t2\n", "csv"),  # (the CSV reader tells a tab from the header)
        (b'{"a": 1}\n{"a": 2}\n', "jsonl"),
        (b'\xef\xbb\xbf \r\n\t[{"a": 1}]', "json"),
        (b"\xef\xbb\xbf{", "jsonl"),
        ("naïve,café\n".encode(), "csv"),
        ("é".encode()[:1], "csv"),  # a character cut off where the head ends
        (b"", "csv"),  # no records in any format: the CSV reader says so
        (b"PK\x03\x04\x14\x00\x06\x00", None),  # a zip (an .xlsx workbook)
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", None),  # an .xls workbook
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", None),
        (b"\x1f\x8b\x08\x00", None),  # gzip
        (b"a,b\n\xe9,1\n", None),  # Latin-1
        (b"  <!DOCTYPE html><html>", None),
        (b"<?xml version='1.0'?><rows/>", None),
    ],
)
def test_sniff_format(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head) == fmt


@pytest.mark.parametrize(
    ("content_type", "url", "fmt", "told"),
    [
        ("text/csv", "https://x/1234", "csv", "by its Content-Type 'text/csv'"),
        ("application/x-ndjson; charset=utf-8", "https://x/a.csv", "jsonl", "by its Content-Type"),
        ("application/octet-stream", "https://x/a.jsonl?sig=1", "jsonl", "by the extension of 'a.jsonl'"),
        ("text/html", "https://x/a.csv", "csv", "by the extension of 'a.csv' (Content-Type 'text/html')"),
        ("application/octet-stream", "https://x/1234", "json", "by its first bytes"),
        ("binary/octet-stream", "https://x/1234", "json", "(Content-Type 'binary/octet-stream', no known"),
        (
            None,
            "https://x/1234",
            "json",
            "by its first bytes (no Content-Type, no known extension in '1234')",
        ),
        ("text/plain", "https://x/export.dat", "json", "by its first bytes"),
    ],
)
def test_the_rule_that_tells_the_format_is_named(
    content_type: str | None, url: str, fmt: str, told: str
) -> None:
    got, said = _source_format(content_type, url, b'[{"external_id": "x1"}]')
    assert got == fmt
    assert said.startswith(f"read as {fmt} ") and told in said, said


@pytest.mark.parametrize(
    ("content_type", "url", "head", "says"),
    [
        (
            "application/octet-stream",
            "https://x/1234",
            b"PK\x03\x04",
            "Content-Type 'application/octet-stream'",
        ),
        (None, "https://x/1234", b"PK\x03\x04", "no Content-Type"),
        ("text/html", "https://x/1234", CSV, "unsupported Content-Type 'text/html'"),
        ("text/csv; charset=latin-1", "https://x/a.csv", CSV, "charset 'latin-1' is not read"),
        ("application/octet-stream; charset=windows-1252", "https://x/1234", CSV, "'windows-1252'"),
    ],
)
def test_a_format_that_cannot_be_told_names_the_content_type_received(
    content_type: str | None, url: str, head: bytes, says: str
) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        _source_format(content_type, url, head)
    assert says in refused.value.message
    if content_type:
        assert repr(content_type) in refused.value.message
    assert "None" not in refused.value.message


def test_the_head_kept_is_the_first_bytes_however_they_are_written() -> None:
    written: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> int:
            written.append(data)
            return len(data)

        def commit(self) -> int:
            return 0

        def abort(self) -> None:
            pass

    kept = _HeadKept(Writer())
    for part in (b"a" * 10, b"b" * SNIFF_BYTES, b"c"):
        kept.write(part)
    assert kept.head == b"a" * 10 + b"b" * (SNIFF_BYTES - 10)
    assert b"".join(written) == b"a" * 10 + b"b" * SNIFF_BYTES + b"c"
