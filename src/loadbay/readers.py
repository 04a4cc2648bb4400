"""Streaming readers for batch files: CSV, JSON Lines and JSON arrays.

A batch file can hold ten million rows, so every reader here streams: it reads
the binary file object a chunk at a time and yields one `RawRecord` per record,
in file order, holding only the current record in memory.

Two kinds of failure are kept apart:

* a problem with **one record** (a CSV row with too many cells, a JSON Lines
  line that is not JSON, an array element that is not an object) becomes that
  record's `problem`, and reading goes on;
* a problem with **the file as a whole** (not UTF-8, a broken CSV quote, a
  missing required column, JSON syntax errors in an array) raises an
  `UnreadableData` subclass from `loadbay.errors`.

Readers do not convert or validate values: CSV values stay `str`, JSON values
stay as parsed (non-integer numbers as `Decimal`). Validation happens elsewhere.
Record and item numbers in messages count from 1, like line numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate, chain
from types import TracebackType
from typing import Any, BinaryIO, Final

import ijson

from loadbay.errors import BadEncoding, MalformedFile, MissingColumn, UnsupportedMediaType

__all__ = [
    "FORMATS",
    "Columns",
    "RawRecord",
    "RecordReader",
    "format_for_content_type",
    "iter_json_items",
    "open_reader",
    "read_through",
    "unstorable",
]

FORMATS: Final[tuple[str, ...]] = ("csv", "jsonl", "json")

# --------------------------------------------------------------------------- content types

_MEDIA_TYPES: Final[dict[str, str]] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json": "json",
}
# Media types that say nothing useful: the file name's extension decides. Windows (and so
# browsers there) labels every .csv file application/vnd.ms-excel when Excel is installed.
_GUESSED_TYPES: Final = frozenset({"", "application/octet-stream", "text/plain", "application/vnd.ms-excel"})
_EXTENSIONS: Final[dict[str, str]] = {
    "csv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
}
# ASCII is a subset of UTF-8, so declaring it is harmless.
_UTF8_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_ACCEPTED: Final = (
    "send text/csv, application/x-ndjson (JSON Lines) or application/json, "
    "or application/octet-stream with a .csv, .jsonl, .ndjson or .json file name "
    "(Excel workbooks are not read: save the sheet as CSV)"
)


def format_for_content_type(content_type: str | None, filename: str | None = None) -> str:
    """The reader format ("csv", "jsonl" or "json") for an upload's Content-Type.

    Raises UnsupportedMediaType for a type loadbay does not read, or for a
    charset other than UTF-8.
    """
    media_type, charset = _parse_content_type(content_type or "")
    fmt = _MEDIA_TYPES.get(media_type) or _format_from_filename(media_type, filename)
    if fmt is None:
        raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}; {_ACCEPTED}")
    if charset is not None and charset not in _UTF8_CHARSETS:
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send the file as UTF-8")
    return fmt


def _parse_content_type(value: str) -> tuple[str, str | None]:
    """The lower-cased media type and charset parameter (if any) of a Content-Type."""
    media_type, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip('"').lower()
    return media_type.strip().lower(), charset


def _format_from_filename(media_type: str, filename: str | None) -> str | None:
    if media_type not in _GUESSED_TYPES or not filename:
        return None
    _, dot, extension = filename.rpartition(".")
    return _EXTENSIONS.get(extension.lower()) if dot else None


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from the file, before any validation.

    `values` maps field names to values (CSV: `str`; an empty cell is an absent
    key). `problem` is `(code, message)` when this one record could not be
    read; `values` is then empty.
    """

    values: dict[str, Any]
    problem: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Columns:
    """The canonical column names of a batch type, in order, and the required ones."""

    names: tuple[str, ...]
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.required if name not in self.names]
        if unknown:
            raise ValueError(f"required columns not in names: {', '.join(unknown)}")


class RecordReader:
    """An iterator of `RawRecord`, in file order; single pass.

    `warnings` lists file-level remarks found while opening the file, such as
    "unknown column 'foo' ignored". Close the reader (or use it as a context
    manager) to release the stream early; the stream itself is never closed.
    """

    __slots__ = ("_records", "warnings")

    def __init__(self, records: Iterator[RawRecord], warnings: list[str] | None = None) -> None:
        self._records = records
        self.warnings: list[str] = warnings if warnings is not None else []

    def __iter__(self) -> Iterator[RawRecord]:
        return self._records

    def __next__(self) -> RawRecord:
        return next(self._records)

    def close(self) -> None:
        close = getattr(self._records, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_reader(stream: BinaryIO, fmt: str, columns: Columns) -> RecordReader:
    """A streaming reader of `stream` (a binary file object) in format `fmt`.

    File-level problems found at the start (CSV header errors, an empty file,
    a JSON file that is not an array) raise here; later ones raise while
    iterating. The stream is read but not closed.
    """
    if fmt == "csv":
        return _open_csv(stream, columns)
    if fmt == "jsonl":
        return RecordReader(_jsonl_records(stream, _KeyMap.of(columns)))
    if fmt == "json":
        return RecordReader(_json_array_records(_array_source(stream), _KeyMap.of(columns)))
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def read_through(stream: BinaryIO, fmt: str, columns: Columns) -> int:
    """Read `stream` to its end as `open_reader` would, raising the same file-level errors,
    without making its records; the number of records. (A CSV file is read ~3 times faster
    this way: rows are parsed and checked, but no record is made of them.)"""
    if fmt != "csv":
        with open_reader(stream, fmt, columns) as records:
            return sum(1 for _ in records)
    text = _BorrowedText(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        lines = _CsvLines(text)
        reader = csv.reader(chain.from_iterable(lines.blocks()), strict=True)
        header, start = _csv_header(reader)
        _csv_layout(header, columns)
        return _csv_count(reader, lines, start)
    finally:
        text.close()


def _csv_count(reader: Any, lines: _CsvLines, start: int) -> int:
    """The non-blank rows left in `reader`, checked as `_csv_records` checks them."""
    count = 0
    try:
        for row in reader:
            if len(row) > 1 or (row and not row[0].isspace()):
                count += 1
                if start <= lines.suspect_end:
                    _check_decoded("".join(row), start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MalformedFile(_csv_syntax_message(exc, start, reader.line_num)) from exc
    return count


def iter_json_items(items: Iterable[Any], columns: Columns) -> Iterator[RawRecord]:
    """Records from JSON items already parsed (for example inline in a request body)."""
    keys = _KeyMap.of(columns)
    for number, item in enumerate(items, start=1):
        # A copy, so that the caller's objects never end up shared with a record.
        yield keys.item(dict(item) if isinstance(item, dict) else item, number)


def _problem(code: str, message: str) -> RawRecord:
    return RawRecord({}, (code, message))


# Text that no database column (PostgreSQL refuses U+0000) or UTF-8 file (an unpaired
# surrogate, which JSON's \uD800 escapes can make) can hold: such a record is refused.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: Any) -> str | None:
    """What in a JSON value (keys aside) text cannot hold, or None. No recursion: values nest deep."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if item.isascii():  # the usual case, and quick
                if "\x00" in item:
                    return "a NUL character"
            elif (found := _UNSTORABLE.search(item)) is not None:
                char = found.group()
                return "a NUL character" if char == "\x00" else f"an unpaired surrogate (U+{ord(char):04X})"
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


# --------------------------------------------------------------------------- CSV

# With errors="surrogateescape" every undecodable byte 0xNN becomes U+DCNN, which
# valid UTF-8 can never produce; finding one gives an exact line number.
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
# csv.reader is fed the text's lines a block of about this many characters at a time (less
# than the text wrapper's own read-ahead), and each block is checked once for text that
# needs a closer look: the rows of the blocks without any skip the checks of each row.
_BLOCK_CHARS: Final = 4096
_NUL_IN_ROW: Final = "row holds a NUL character (byte 0x00), which text cannot hold"


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """Where each known column sits in a row, from the header."""

    pairs: tuple[tuple[int, str], ...]  # (cell index, canonical name)
    width: int
    # The canonical names of the first cells when the known columns come first (the usual
    # case): a row's values are then the non-empty ones of zip(leading, row).
    leading: tuple[str, ...] | None


class _CsvLines:
    """The lines of the text for csv.reader, read a block at a time.

    A NUL character or an undecodable byte is rare: `suspect_end` is the last line of the
    last block read that holds one (0: none so far). A row starting after that line holds
    neither, as csv.reader reads no line beyond the row it returns.
    """

    __slots__ = ("_text", "count", "suspect_end")

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.count = 0  # lines read so far
        self.suspect_end = 0

    def blocks(self) -> Iterator[list[str]]:
        readlines = self._text.readlines
        while lines := readlines(_BLOCK_CHARS):
            self.count += len(lines)
            if _suspect("".join(lines)):
                self.suspect_end = self.count
            yield lines


def _suspect(text: str) -> bool:
    """Whether `text` may hold a NUL character or an undecodable byte (a lone surrogate)."""
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")  # strict: fails on any surrogate, such as U+DCNN
    except UnicodeEncodeError:
        return True
    return False


class _BorrowedText(io.TextIOWrapper):
    """A text wrapper that never closes the caller's binary stream.

    Closing it (explicitly, or when it is garbage-collected) only detaches it.
    """

    def close(self) -> None:
        with suppress(ValueError):  # already detached
            self.detach()


def _open_csv(stream: BinaryIO, columns: Columns) -> RecordReader:
    text = _BorrowedText(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _CsvLines(text)
    reader = csv.reader(chain.from_iterable(lines.blocks()), strict=True)
    try:
        header, start = _csv_header(reader)
        layout, warnings = _csv_layout(header, columns)
    except BaseException:
        text.close()
        raise
    return RecordReader(_csv_records(text, reader, lines, layout, start), warnings)


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and row[0].isspace())


def _csv_header(reader: Any) -> tuple[list[str], int]:
    """The first non-blank row, and the line after it; file-level errors raised as loadbay errors."""
    start = 1  # the line the next row starts on
    try:
        for row in reader:
            if not _blank(row):
                _check_decoded("".join(row), start)
                return row, reader.line_num + 1
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MalformedFile(_csv_syntax_message(exc, start, reader.line_num)) from exc
    raise MalformedFile("the file is empty; a CSV needs a header row")


def _csv_records(
    text: io.TextIOWrapper, reader: Any, lines: _CsvLines, layout: _CsvLayout, start: int
) -> Iterator[RawRecord]:
    """One record per non-blank row after the header (which ends on line `start` - 1).

    Hot: one loop, no call per row but csv.reader's and RawRecord's in the usual case.
    """
    width, pairs, leading = layout.width, layout.pairs, layout.leading
    try:
        for row in reader:
            size = len(row)
            if size < 2 and (not size or row[0].isspace()):  # a blank line
                start = reader.line_num + 1
                continue
            nul = False
            if start <= lines.suspect_end:
                joined = "".join(row)
                _check_decoded(joined, start)
                nul = "\x00" in joined
            start = reader.line_num + 1
            if size > width:
                yield _problem("MALFORMED_ROW", f"row has {size} cells; the header has {width}")
            elif nul:
                yield _problem("MALFORMED_ROW", _NUL_IN_ROW)
            elif leading is None:
                yield RawRecord({name: row[i] for i, name in pairs if i < size and row[i]})
            # zip stops at the end of a short row, leaving the later keys absent. (A strict=False
            # keyword would make building the dict a quarter slower.)
            elif all(row):  # no empty cell
                yield RawRecord(dict(zip(leading, row)))  # noqa: B905
            else:
                yield RawRecord({name: value for name, value in zip(leading, row) if value})  # noqa: B905
    except csv.Error as exc:
        raise MalformedFile(_csv_syntax_message(exc, start, reader.line_num)) from exc
    finally:
        text.close()


def _csv_syntax_message(exc: csv.Error, start: int, end: int) -> str:
    if end > start:
        return f"line {start}: {exc} (a quote opened on line {start} is still open at line {end})"
    return f"line {start}: {exc}"


def _check_decoded(joined: str, start: int) -> None:
    """Raise BadEncoding if a record's text (starting on line `start`) has undecodable bytes."""
    bad = None if joined.isascii() else _UNDECODABLE.search(joined)
    if bad is not None:
        line = start + joined.count("\n", 0, bad.start())
        byte = ord(bad.group()) - 0xDC00
        raise BadEncoding(
            f"line {line}: the file is not valid UTF-8 (byte 0x{byte:02x}); "
            "save it as UTF-8 (with or without BOM)"
        )


def _csv_layout(header: list[str], columns: Columns) -> tuple[_CsvLayout, list[str]]:
    labels = [cell.strip() for cell in header]
    _check_duplicates(labels)
    canonical = {name.casefold(): name for name in columns.names}
    pairs = tuple(
        (i, canonical[label.casefold()]) for i, label in enumerate(labels) if label.casefold() in canonical
    )
    _check_required({name for _, name in pairs}, columns)
    warnings = [
        _ignored_column(i, label) for i, label in enumerate(labels) if label.casefold() not in canonical
    ]
    leads = all(i == n for n, (i, _) in enumerate(pairs))
    leading = tuple(name for _, name in pairs) if leads else None
    return _CsvLayout(pairs, len(labels), leading), warnings


def _check_duplicates(labels: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, label in enumerate(labels, start=1):
        key = label.casefold()
        if key and key in seen:
            raise MalformedFile(f"duplicate column {label!r} in the header (columns {seen[key]} and {i})")
        seen[key] = i


def _check_required(found: set[str], columns: Columns) -> None:
    missing = [name for name in columns.required if name not in found]
    if len(missing) == 1:
        raise MissingColumn(f"missing required column: {missing[0]}")
    if missing:
        raise MissingColumn(f"missing required columns: {', '.join(missing)}")


def _ignored_column(index: int, label: str) -> str:
    if not label:
        return f"column {index + 1} has no name; ignored"
    return f"unknown column {label!r} ignored"


# --------------------------------------------------------------------------- JSON (shared)


@dataclass(frozen=True, slots=True)
class _KeyMap:
    """Maps JSON keys to canonical column names ignoring case; other keys pass unchanged."""

    exact: frozenset[str]
    folded: dict[str, str]  # casefolded canonical name -> canonical name

    @classmethod
    def of(cls, columns: Columns) -> _KeyMap:
        return cls(frozenset(columns.names), {name.casefold(): name for name in columns.names})

    def name(self, key: str) -> str:
        return key if key in self.exact else self.folded.get(key.casefold(), key)

    def record(self, obj: dict[str, Any], unit: str, number: int) -> RawRecord:
        """`obj` as a record; `unit` and `number` ("line", 7) place it in messages."""
        if (found := unstorable(obj)) is not None:
            return _problem(
                "INVALID_RECORD", f"{unit} {number}: a value holds {found}, which text cannot hold"
            )
        odd = obj.keys() - self.exact  # usually empty: the fast path keeps `obj` as it is
        renames = {k: self.folded[k.casefold()] for k in odd if self._foldable(k)}
        if not renames:
            return RawRecord(obj)
        values = {renames.get(k, k): v for k, v in obj.items()}
        if len(values) < len(obj):
            return _problem("INVALID_RECORD", f"{unit} {number}: {self._clash(obj)}")
        return RawRecord(values)

    def item(self, item: Any, number: int) -> RawRecord:
        if not isinstance(item, dict):
            return _problem("INVALID_RECORD", f"item {number} is not an object")
        return self.record(item, "item", number)

    def _foldable(self, key: Any) -> bool:
        return isinstance(key, str) and key.casefold() in self.folded

    def _clash(self, obj: dict[str, Any]) -> str:
        seen: dict[str, str] = {}
        for key in obj:
            name = self.name(key)
            if name in seen:
                return f"keys {seen[name]!r} and {key!r} both name the column {name!r}"
            seen[name] = key
        return "two keys name the same column"  # pragma: no cover - unreachable


# --------------------------------------------------------------------------- JSON Lines


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def _jsonl_records(stream: BinaryIO, keys: _KeyMap) -> Iterator[RawRecord]:
    for number, raw in enumerate(stream, start=1):
        text = _decode_line(raw, number)
        if text and not text.isspace():
            yield _jsonl_record(text, number, keys)


def _decode_line(raw: bytes, number: int) -> str:
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise BadEncoding(
            f"line {number}: the file is not valid UTF-8 (byte 0x{byte:02x}); "
            "save it as UTF-8 (with or without BOM)"
        ) from exc


def _jsonl_record(text: str, number: int, keys: _KeyMap) -> RawRecord:
    try:
        value = _parse_json(text)
    except (ValueError, RecursionError) as exc:
        return _problem("INVALID_JSON", f"line {number}: {_json_error(exc, text)}")
    if not isinstance(value, dict):
        return _problem("INVALID_JSON", f"line {number}: expected an object, got {_kind(value)}")
    return keys.record(value, "line", number)


def _parse_json(text: str) -> Any:
    """One JSON value filling `text` but for surrounding whitespace."""
    body = text.strip()
    value, end = _DECODER.raw_decode(body)
    if end != len(body):
        raise json.JSONDecodeError("Extra data", body, len(body) - len(body[end:].lstrip()))
    return value


def _json_error(exc: Exception, text: str) -> str:
    if isinstance(exc, json.JSONDecodeError):
        indent = len(text) - len(text.lstrip())  # _parse_json stripped it
        return f"{exc.msg} (column {exc.colno + indent})"
    if isinstance(exc, RecursionError):
        return "the value is nested too deeply"
    return str(exc)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


# --------------------------------------------------------------------------- JSON array

_BOM: Final = b"\xef\xbb\xbf"
_PEEK_SIZE: Final = 8192
_TOP_LEVEL_KINDS: Final[dict[bytes, str]] = {
    b"{": "an object",
    b'"': "a string",
    b"t": "true",
    b"f": "false",
    b"n": "null",
    **{bytes([c]): "a number" for c in b"-0123456789"},
}


class _Prefixed:
    """A binary reader that returns `head` before the rest of `stream` (undoes a peek)."""

    __slots__ = ("_head", "_stream")

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        cut = len(self._head) if size < 0 else size
        chunk, self._head = self._head[:cut], self._head[cut:]
        return chunk


def _array_source(stream: BinaryIO) -> _Prefixed:
    """Check that the JSON text starts with '[' and return a reader positioned at it."""
    head = _first_content(stream)
    if not head:
        raise MalformedFile("the file is empty; a JSON file needs a top-level array of objects")
    if head[:1] != b"[":
        found = _TOP_LEVEL_KINDS.get(head[:1], "text that is not JSON")
        raise MalformedFile(f"the top level of a JSON file must be an array of objects, not {found}")
    return _Prefixed(head, stream)


def _first_content(stream: BinaryIO) -> bytes:
    """The first chunk of `stream` from its first non-whitespace byte; b"" when there is none."""
    chunk = stream.read(_PEEK_SIZE).removeprefix(_BOM)
    while chunk:
        head = chunk.lstrip(b" \t\r\n")
        if head:
            return head
        chunk = stream.read(_PEEK_SIZE)
    return b""


# ijson keeps a prefix string per open level ("item.item.item..."), so memory grows with the
# square of the nesting depth: 100,000 levels (a 200 KB file) take 24 GB. Depth is capped.
_MAX_DEPTH: Final = 512
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class _DepthLimited:
    """A binary reader that raises MalformedFile once the JSON text nests deeper than `_MAX_DEPTH`.

    Per chunk, in C-speed bytes operations: escaped backslashes and quotes are dropped, the
    text between quotes (strings) is dropped, and the brackets left are counted. The state
    between chunks is the depth, whether a string is open and whether a backslash is pending.
    """

    __slots__ = ("_depth", "_escaped", "_in_string", "_source")

    def __init__(self, source: _Prefixed) -> None:
        self._source = source
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        if self._escaped:  # the previous chunk ended in a backslash: this first byte is escaped
            data, self._escaped = data[1:], False
        if b"\\" in data:
            data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
            if data.endswith(b"\\"):
                data, self._escaped = data[:-1], True
        parts = data.split(b'"')
        outside = b"".join(parts[1::2] if self._in_string else parts[::2])
        self._in_string ^= len(parts) % 2 == 0
        brackets = outside.translate(None, _NOT_BRACKETS)
        opened = brackets.count(b"[") + brackets.count(b"{")
        if self._depth + opened > _MAX_DEPTH:
            steps = accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=self._depth)
            if max(steps) > _MAX_DEPTH:
                raise MalformedFile(f"invalid JSON: nested more than {_MAX_DEPTH} levels deep")
        self._depth += 2 * opened - len(brackets)


def _json_array_records(source: _Prefixed, keys: _KeyMap) -> Iterator[RawRecord]:
    items = ijson.items(_DepthLimited(source), "item", use_float=False)
    try:
        for number, item in enumerate(items, start=1):
            yield keys.item(item, number)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise _json_file_error(exc) from exc


def _json_file_error(exc: Exception) -> MalformedFile | BadEncoding:
    message = str(exc)
    # yajl reports bad UTF-8 as a lexical error; ijson's pure-Python backends decode it
    if isinstance(exc, UnicodeDecodeError) or "invalid bytes in UTF8" in message:
        return BadEncoding("the file is not valid UTF-8; save it as UTF-8 (with or without BOM)")
    return MalformedFile(f"invalid JSON: {_condense(message)}")


def _condense(message: str) -> str:
    """One line from ijson's message: the error, then the text around it (yajl gives both)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) >= 3 and "(right here)" in lines[2]:
        return f"{lines[0]} near: {lines[1]}"
    return " ".join(lines) or "syntax error"
