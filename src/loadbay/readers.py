"""Streaming readers for batch files: CSV, JSON Lines and JSON arrays.

A batch file can hold ten million rows, so every reader here streams: it reads
the binary file object a chunk at a time and yields one `RawRecord` per record,
in file order, holding only the current record in memory. A record is bounded
too (`max_record_bytes`, LOADBAY_MAX_RECORD_BYTES): a longer one is read past a
block at a time, never held whole.

Two kinds of failure are kept apart:

* a problem with **one record** (a CSV row with too many cells, a JSON Lines
  line that is not JSON, an array element that is not an object, a CSV row,
  JSON Lines line or JSON array item over the size limit) becomes that
  record's `problem`, and reading goes on;
* a problem with **the file as a whole** (not UTF-8, a broken CSV quote, a
  missing required column, JSON syntax errors in an array, a CSV header over
  the size limit) raises an `UnreadableData` subclass from `loadbay.errors`.

Readers do not convert or validate values: CSV values stay `str`, JSON values
stay as parsed (non-integer numbers as `Decimal`). Validation happens elsewhere.
Record and item numbers in messages count from 1, like line numbers.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from difflib import get_close_matches
from functools import cache
from itertools import accumulate, chain, islice
from types import TracebackType
from typing import Any, BinaryIO, Final, Generic, NoReturn, TypeVar, cast

import ijson

from loadbay.arrow import pa, pa_csv, pc
from loadbay.domain.cells import RESULT_COLUMNS, unprotect
from loadbay.domain.text import byte_size
from loadbay.errors import (
    BadEncoding,
    InvalidInput,
    MalformedFile,
    MissingColumn,
    UnknownColumn,
    UnsupportedMediaType,
)

__all__ = [
    "FORMATS",
    "MAX_RECORD_BYTES",
    "UTF8_CHARSETS",
    "Columns",
    "READ_OPTIONS",
    "SNIFF_BYTES",
    "RawRecord",
    "ReadOptions",
    "BlockReader",
    "RecordReader",
    "RowBlock",
    "format_for_content_type",
    "iter_json_items",
    "open_blocks",
    "open_reader",
    "parse_content_type",
    "read_through",
    "sniff_format",
    "unstorable",
]

FORMATS: Final[tuple[str, ...]] = ("csv", "tsv", "jsonl", "json")
MAX_RECORD_BYTES: Final = 1024**2  # the default size limit of a record (LOADBAY_MAX_RECORD_BYTES)

# --------------------------------------------------------------------------- content types

_MEDIA_TYPES: Final[dict[str, str]] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
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
    "tsv": "tsv",
    "tab": "tsv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
}
# ASCII is a subset of UTF-8, so declaring it is harmless.
UTF8_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_ACCEPTED: Final = (
    "send text/csv, text/tab-separated-values, application/x-ndjson (JSON Lines) or "
    "application/json, or application/octet-stream with a .csv, .tsv, .jsonl, .ndjson or .json "
    "file name (Excel workbooks are not read: save the sheet as CSV)"
)


def format_for_content_type(content_type: str | None, filename: str | None = None) -> str:
    """The reader format ("csv", "tsv", "jsonl" or "json") for an upload's Content-Type.

    Raises UnsupportedMediaType for a type loadbay does not read, or for a
    charset other than UTF-8.
    """
    media_type, charset = parse_content_type(content_type or "")
    fmt = _MEDIA_TYPES.get(media_type) or _format_from_filename(media_type, filename)
    if fmt is None:
        raise UnsupportedMediaType(f"unsupported Content-Type {content_type!r}; {_ACCEPTED}")
    if charset is not None and charset not in UTF8_CHARSETS:
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send the file as UTF-8")
    return fmt


def parse_content_type(value: str) -> tuple[str, str | None]:
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


SNIFF_BYTES: Final = 8192  # the most of a file's start `sniff_format` needs
# Control characters no CSV or JSON text holds (a zip, an Excel workbook or a PDF does).
_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def sniff_format(head: bytes) -> str | None:
    """The format of a file told by its first bytes (`head`, up to SNIFF_BYTES), for a file
    neither its Content-Type nor its name tells: after a byte order mark and whitespace, `{`
    starts JSON Lines, `[` a JSON array, and any other text is CSV (its delimiter told by its
    header, as always). None when `head` is no such text: not UTF-8, control characters, or
    markup (`<`: an HTML page, XML)."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(
            head
        )  # a character cut off at the end is no error
    except UnicodeDecodeError:
        return None
    first = text.removeprefix("\ufeff").lstrip(" \t\r\n")[:1]
    if _CONTROL.search(text) or first == "<":
        return None
    return {"{": "jsonl", "[": "json"}.get(first, "csv")


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from the file, before any validation.

    `values` maps field names to values (CSV: `str`; an empty cell is an absent
    key). `problem` is `(code, message)` when this one record could not be
    read; `values` then holds what could be read of it (a CSV row with too many
    cells: the cells under the header's columns), often nothing, and `text` the
    record's text when it could not be read as values at all (a JSON Lines line
    that is not a JSON object), for its result row to show.
    """

    values: dict[str, Any]
    problem: tuple[str, str] | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Columns:
    """The canonical column names of a batch type, in order, and the required ones.
    `blank_is_absent`: a JSON null or "" is read as an absent value, as an empty CSV cell
    is; False for a type that keeps JSON values as given (one whose free-form fields store
    an empty value, or tell it from an absent one)."""

    names: tuple[str, ...]
    required: tuple[str, ...] = ()
    blank_is_absent: bool = True

    def __post_init__(self) -> None:
        unknown = [name for name in self.required if name not in self.names]
        if unknown:
            raise ValueError(f"required columns not in names: {', '.join(unknown)}")


# The CSV delimiters loadbay tells apart by itself, in the order that breaks a tie; a batch
# option names one (`csv_delimiter`) where the header alone cannot tell.
DELIMITERS: Final[dict[str, str]] = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DELIMITER_NAMES: Final = {name: d for d, name in DELIMITERS.items()}


# The batch options that say how its files are read (ReadOptions).
READ_OPTIONS: Final = frozenset({"csv_delimiter", "unknown_columns"})


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How a batch asks its files to be read (its options `csv_delimiter` and
    `unknown_columns`).

    `delimiter`: a CSV file's, or None to tell it from the header (comma, semicolon, tab or
    pipe: the one that splits the header into the most columns). `refuse_unknown`: a CSV
    header naming a column the type does not have fails the file (UNKNOWN_COLUMN) instead
    of the column being ignored with a warning."""

    delimiter: str | None = None
    refuse_unknown: bool = False

    @classmethod
    def of(cls, options: dict[str, Any]) -> ReadOptions:
        """The read options in a batch's options; InvalidInput for a value not understood."""
        given = options.get("csv_delimiter")
        delimiter = _DELIMITER_NAMES.get(given, given) if isinstance(given, str) else given
        if delimiter is not None and delimiter not in DELIMITERS:
            names = ", ".join(f"{name!r}" for name in _DELIMITER_NAMES)
            message = f"options.csv_delimiter must be one of {names} (or its character), not {given!r}"
            raise InvalidInput(message)
        unknown = options.get("unknown_columns", "ignore")
        if unknown not in ("ignore", "refuse"):
            raise InvalidInput(f"options.unknown_columns must be 'ignore' or 'refuse', not {unknown!r}")
        return cls(delimiter, unknown == "refuse")


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Consecutive records of a CSV file read a block at a time (see `open_blocks`): each
    known column's values as an Arrow string array, null where a cell is empty. Every
    record of a block was read whole and without a problem."""

    count: int
    columns: dict[str, pa.Array]


_Item = TypeVar("_Item")


class _Reader(Generic[_Item]):
    """An iterator of records (or blocks of them), in file order; single pass.

    `warnings` lists file-level remarks found while opening the file, such as
    "unknown column 'foo' ignored". Close the reader (or use it as a context
    manager) to release the stream early; the stream itself is never closed.
    """

    __slots__ = ("_records", "warnings")

    def __init__(self, records: Iterator[_Item], warnings: list[str] | None = None) -> None:
        self._records = records
        self.warnings: list[str] = warnings if warnings is not None else []

    def __iter__(self) -> Iterator[_Item]:
        return self._records

    def __next__(self) -> _Item:
        return next(self._records)

    def close(self) -> None:
        close = getattr(self._records, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _Reader[_Item]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


RecordReader = _Reader[RawRecord]  # an iterator of RawRecord
BlockReader = _Reader[RawRecord | RowBlock]  # of RawRecord and RowBlock

# The warning of a file read to its end without a record (a CSV file: its header only).
_NO_RECORDS: Final = "the file holds no records"
_HEADER_ONLY: Final = "the file has a header row but no records"


def _noting(records: Iterator[RawRecord], warnings: list[str], said: str) -> RecordReader:
    """A reader of `records` whose `warnings` get `said` if it finds none (see `_noted`)."""
    return RecordReader(_noted(records, warnings, said), warnings)


def _noted(items: Iterator[_Item], warnings: list[str], said: str) -> Iterator[_Item]:
    """`items`; read to their end without one, `said` among `warnings`."""
    first = next(items, None)
    if first is None:
        warnings.append(said)
        return
    yield first
    yield from items


def open_reader(
    stream: BinaryIO,
    fmt: str,
    columns: Columns,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    options: ReadOptions = ReadOptions(),
) -> RecordReader:
    """A streaming reader of `stream` (a binary file object) in format `fmt`.

    File-level problems found at the start (CSV header errors, an empty file,
    a JSON file that is not an array) raise here; later ones raise while
    iterating. A record (a CSV row with its line ends, a JSON Lines line, a JSON
    array item) over `max_record_bytes` is never held whole. The stream is read
    but not closed.
    """
    if fmt in ("csv", "tsv"):
        reader: RecordReader = _open_csv(stream, columns, max_record_bytes, _for_format(fmt, options))
        return reader
    if fmt == "jsonl":
        return _noting(_jsonl_records(stream, _KeyMap.of(columns), max_record_bytes), [], _NO_RECORDS)
    if fmt == "json":
        records = _json_array_records(_array_source(stream), _KeyMap.of(columns), max_record_bytes)
        return _noting(records, [], _NO_RECORDS)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def open_blocks(
    stream: BinaryIO,
    fmt: str,
    columns: Columns,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    options: ReadOptions = ReadOptions(),
) -> BlockReader:
    """`open_reader`, but a CSV file's records come a block at a time (`RowBlock`s) where
    they can: a block of whole lines whose quotes are around whole cells only, with no NUL,
    lone CR or leading U+FEFF, valid UTF-8 and the header's number of cells on every line, is
    parsed by pyarrow (there csv.reader and pyarrow read the same cells); any other block is
    read by csv.reader as `open_reader` reads it, its rows read whole gathered into blocks
    and the others RawRecords with their problem. Other formats come as records only."""
    if fmt in ("csv", "tsv"):
        blocks: BlockReader = _open_csv(
            stream, columns, max_record_bytes, _for_format(fmt, options), blocks=True
        )
        return blocks
    return cast(
        BlockReader, open_reader(stream, fmt, columns, max_record_bytes=max_record_bytes, options=options)
    )


def read_through(
    stream: BinaryIO,
    fmt: str,
    columns: Columns,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    options: ReadOptions = ReadOptions(),
) -> int:
    """Read `stream` to its end as `open_reader` would, raising the same file-level errors,
    without making its records; the number of records. (A CSV file is read ~3 times faster
    this way: rows are parsed and checked, but no record is made of them.)"""
    if fmt not in ("csv", "tsv"):
        with open_reader(stream, fmt, columns, max_record_bytes=max_record_bytes) as records:
            return sum(1 for _ in records)
    source = _CsvSource(stream, max_record_bytes, _for_format(fmt, options))
    reader = source.reader()
    layout, _ = _csv_layout(_csv_header(source, reader), columns, source)
    return _csv_count(source, reader, layout.width)


def _for_format(fmt: str, options: ReadOptions) -> ReadOptions:
    """A TSV file's delimiter is a tab, whatever the options say."""
    return ReadOptions("\t", options.refuse_unknown) if fmt == "tsv" else options


def _csv_count(source: _CsvSource, reader: Any, width: int) -> int:
    """The non-blank rows left in `reader`, checked as `_csv_records` checks them (the rows
    of plain blocks are counted without csv.reader: see `_CsvSource.count_blocks`)."""
    source.count_blocks()
    count, start = 0, source.start
    while True:
        try:
            for row in reader:
                end = reader.line_num + source.base  # (counted blocks move the base)
                if len(row) > 1 or (row and not row[0].isspace()):
                    count += 1
                    if start <= source.suspect_end:
                        _row_problem(source, row, start, end, width)
                elif start <= source.suspect_end and source.over_limit(start, end):
                    count += 1  # a blank row over the limit is a record too large
                start = source.start = end + 1
            return count + source.counted
        except csv.Error as exc:
            raise MalformedFile(_csv_syntax_message(exc, start, reader.line_num + source.base)) from exc
        except _Oversized:
            count, start, reader = count + 1, source.start, source.reader()


def iter_json_items(items: Iterable[Any], columns: Columns) -> Iterator[RawRecord]:
    """Records from JSON items already parsed (for example inline in a request body)."""
    keys = _KeyMap.of(columns)
    for number, item in enumerate(items, start=1):
        # A copy, so that the caller's objects never end up shared with a record.
        yield keys.item(dict(item) if isinstance(item, dict) else item, number)


def _problem(code: str, message: str) -> RawRecord:
    return RawRecord({}, (code, message))


def _too_large(where: str, limit: int) -> tuple[str, str]:
    """The problem of a record over the size limit; `where` places it ("line 7")."""
    return ("RECORD_TOO_LARGE", f"{where}: the record is {_over(limit)}; it was not read")


def _over(limit: int) -> str:
    return f"over {byte_size(limit)}, the most LOADBAY_MAX_RECORD_BYTES allows"


# Text that no database column (PostgreSQL refuses U+0000) or UTF-8 file (an unpaired
# surrogate, which JSON's \uD800 escapes can make) can hold: such a record is refused.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: Any) -> str | None:
    """What in a JSON value (its property names too) text cannot hold, or None. No recursion:
    values nest deep."""
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
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


# --------------------------------------------------------------------------- CSV

_BOM: Final = b"\xef\xbb\xbf"

# With errors="surrogateescape" every undecodable byte 0xNN becomes U+DCNN, which
# valid UTF-8 can never produce; finding one gives an exact line number.
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
# The file is read this many bytes at a time (fewer if the record limit is lower) and handed
# to csv.reader a block of whole lines at a time; each block is checked once for text that
# needs a closer look: the rows of the blocks without any skip the checks of each row.
_READ_BYTES: Final = 4096
_BLOCK_BYTES: Final = 1 << 18  # the read size when plain blocks are parsed by pyarrow (open_blocks)
_NUL_IN_ROW: Final = "row holds a NUL character (byte 0x00), which text cannot hold"
# csv.reader's own limit on a field (128 Ki characters) would fail a whole file over one
# field: records are bounded by their bytes instead (see `_CsvSource`).
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True, slots=True)
class _CsvLayout:
    """Where each known column sits in a row, from the header."""

    pairs: tuple[tuple[int, str], ...]  # (cell index, canonical name)
    width: int
    # The canonical names of the first cells when the known columns come first (the usual
    # case): a row's values are then the non-empty ones of zip(leading, row).
    leading: tuple[str, ...] | None
    # The header names loadbay's result columns: the file is a result file (or the refused
    # records of one) sent again, and its cells' formula protection is undone.
    result_file: bool = False


class _Oversized(Exception):
    """A record over the size limit, starting on line `line`, was read past; the csv.reader
    that was reading it is done (`_CsvSource.reader` makes the next)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _CsvSource:
    """The lines of a CSV file for csv.reader, a block at a time, none of them in a record
    over `limit` bytes.

    The readers of the rows keep `start`, the line the record being read starts on, up to
    date, and number a csv.reader's rows from `base`. When csv.reader asks for lines while
    the record it reads is over the limit already, or its next line alone is, the rest of
    that record is read past a block at a time and `_Oversized` raised. A record over the
    limit whose lines came in one block is found when its row is read (`over_limit`).

    A NUL character, an undecodable byte or a row that may be over the limit is rare:
    `suspect_end` is the last line of the last block read that may hold one (0: none so
    far). A row starting after that line holds none, as csv.reader reads no line beyond
    the row it returns.
    """

    __slots__ = (
        "_held",
        "_last",
        "_last_bytes",
        "_layout",
        "_pending",
        "_read_size",
        "_stream",
        "base",
        "count",
        "counted",
        "counting",
        "delimiter",
        "limit",
        "options",
        "parsed",
        "start",
        "suspect_end",
    )

    def __init__(self, stream: BinaryIO, limit: int, options: ReadOptions = ReadOptions()) -> None:
        self._stream = stream
        self._read_size = min(_READ_BYTES, limit)  # so a line inside one read is within the limit
        self._pending = stream.read(len(_BOM)).removeprefix(_BOM)  # read, not yet handed on
        self._last: list[str] = []  # the last block's lines
        self._last_bytes = 0
        self._held = 0  # bytes of the record being read in the blocks before the last
        self.limit = limit
        self.options = options
        self.count = 0  # lines read so far (or read past)
        self.start = 1
        self.base = 0
        self.suspect_end = 0
        self.delimiter = options.delimiter or self._detect()
        self._layout: _CsvLayout | None = None
        self.parsed: deque[RowBlock] = deque()  # plain blocks read past, for the rows' reader to hand on
        self.counting = False  # see `count_blocks`
        self.counted = 0

    @property
    def blocks(self) -> bool:
        return self._layout is not None

    def parse_blocks(self, layout: _CsvLayout) -> None:
        """From the next block on, parse each plain block a reader asks for between two rows
        with pyarrow, keep it in `parsed` and hand the reader the block after it: see
        `open_blocks`. Blocks are read in larger pieces then (a pyarrow call costs ~50 µs)."""
        self._layout = layout
        self._read_size = min(_BLOCK_BYTES, self.limit)

    def count_blocks(self) -> None:
        """From the next block on, count the records of each plain block a reader asks for
        between two rows into `counted`, and hand the reader the block after it: see
        `read_through`."""
        self.counting = True
        self._read_size = min(_BLOCK_BYTES, self.limit)

    def reader(self) -> Any:
        """A csv.reader of the lines from here on."""
        self.base = self.count
        return csv.reader(chain.from_iterable(self._blocks()), delimiter=self.delimiter, strict=True)

    def _detect(self) -> str:
        """The delimiter of the file, told from its first non-blank line (read ahead into
        `_pending`, up to _DETECT_BYTES): the one that splits it into the most cells."""
        most = min(self.limit, _DETECT_BYTES)
        while (line := _first_line(self._pending)) is None and len(self._pending) < most:
            more = self._stream.read(self._read_size)
            if not more:
                break
            self._pending += more
        return _delimiter_of(line if line is not None else self._pending[:most])

    def over_limit(self, start: int, end: int) -> bool:
        """Whether the row csv.reader has just read, on lines `start` to `end`, is over the limit."""
        first = self.count - len(self._last) + 1  # the last block's first line
        held = self._held if start < first else 0
        return held + _text_bytes(self._last[max(start - first, 0) : end - first + 1]) > self.limit

    def _blocks(self) -> Iterator[list[str]]:
        while True:
            self._check_held()
            data = self._next_lines()
            if not data:
                return
            if self.start > self.count and self._read_past_reader(data):
                # A blank line, not in the file (nor counted): the rows' reader gets a blank row
                # back, skips it as it skips any, and hands the block on before reading more.
                self.base -= 1
                yield ["\n"]
                continue
            text = data.decode("utf-8", "surrogateescape")
            lines = _csv_lines(data, text)
            self.count += len(lines)
            if self._held + len(data) > self.limit or _suspect(text):
                self.suspect_end = self.count
            self._last, self._last_bytes = lines, len(data)
            yield lines

    def _read_past_reader(self, data: bytes) -> bool:
        """Whether `data`, whole lines read between two rows, was parsed or counted here."""
        if self._layout is not None:
            return self._parsed(data)
        return self.counting and self._counted(data)

    def _counted(self, data: bytes) -> bool:
        """Count the records of `data` into `counted` if it is a block in which each line is a
        row (no NUL, valid UTF-8, within the limit, no lone CR, and quotes, if any, around
        whole cells only); whether it was. Hot: a line is looked at one by one only when it
        has no delimiter (it may be a blank row)."""
        if len(data) > self.limit or b"\x00" in data or not _is_utf8(data):
            return False
        if b"\r" in data and _LONE_CR.search(data):
            return False
        lines = _block_lines(data)
        if b'"' in data and not _well_quoted(lines, self.delimiter):
            return False
        alone = pc.invert(pc.match_substring(lines, self.delimiter))
        records = len(lines)
        if pc.any(alone).as_py():
            alone_lines = lines.filter(alone).to_pylist()
            records -= sum(1 for line in alone_lines if not _one_cell_row(line, self.delimiter))
        self.counted += records
        self._skip_lines(len(lines))
        return True

    def _skip_lines(self, lines: int) -> None:
        """Lines a csv.reader will not read were read past."""
        self.count += lines
        self.base += lines
        self.start = self.count + 1
        self._last, self._last_bytes = [], 0

    def _parsed(self, data: bytes) -> bool:
        """Parse `data`, whole lines read between two rows, into `parsed` if it is a plain
        block; whether it was."""
        assert self._layout is not None
        if len(data) > self.limit or b"\x00" in data or data.count(b"\r") != data.count(b"\r\n"):
            return False
        if data.startswith(_BOM):  # a value's U+FEFF, which pyarrow would take for a byte order mark
            return False
        quoted = b'"' in data
        if quoted and not _well_quoted(_block_lines(data), self.delimiter):
            return False
        block = _plain_block(data, self.delimiter, self._layout, quoted=quoted)
        if block is None:
            return False
        self._skip_lines(_line_ends(data) + (data[-1:] not in (b"\r", b"\n")))
        if block.count:
            self.parsed.append(block)
        return True

    def _check_held(self) -> None:
        """Read past the record being read if its lines so far are over the limit."""
        if self.start > self.count:  # between records
            self._held = 0
            return
        first = self.count - len(self._last) + 1
        if self.start >= first:
            self._held = _text_bytes(self._last[self.start - first :])
        else:
            self._held += self._last_bytes
        if self._held > self.limit:  # a record goes on past a line end only inside quotes
            self._read_past(bytearray(self._pending), "quoted")

    def _next_lines(self) -> bytes:
        """The next whole lines (the file's last may lack a line end), b"" at the end; past a
        line over the limit, `_read_past` raises."""
        buf, seen = bytearray(self._pending), 0  # no line ends before `seen`
        while not (cut := _cut(buf, seen)) and len(buf) <= self.limit:
            more = self._stream.read(self._read_size)
            if not more:
                self._pending = b""
                return bytes(buf)
            seen = max(len(buf) - 1, 0)
            buf += more
        if not cut or (len(buf) > self.limit and _first_line_bytes(buf) > self.limit):
            self._read_past(buf, "field" if self.start > self.count else "quoted")
        self._pending = bytes(buf[cut:])
        return bytes(buf[:cut])

    def _read_past(self, buf: bytearray, state: str) -> NoReturn:
        """Read the rest of the record being read, `buf` then the stream, from `state` (see
        `_scan_record`) a block at a time; raise _Oversized, or MalformedFile if the file
        ends inside its quotes or a quote closes before other text."""
        ends, last = 0, b""  # line ends read past, and the last byte read past
        scanner = _Scanner.of(self.delimiter)
        while True:
            i, state = _scan_record(buf, state, scanner)
            more = b"" if state in _RECORD_DONE else self._stream.read(self._read_size)
            if not more and state not in _RECORD_DONE:  # the file ends the record
                state = "open" if state == "quoted" and i == len(buf) else "end"
                i = len(buf)
            part = buf[:i]
            ends += _line_ends(part) - (last == b"\r" and part[:1] == b"\n")
            last = bytes(part[-1:]) or last
            if not more:
                break
            buf = buf[i:] + more
        start, end = self.start, self.count + ends + (last not in b"\r\n")
        if state != "end":
            error = "unexpected end of data" if state == "open" else f"{self.delimiter!r} expected after '\"'"
            raise MalformedFile(_csv_syntax_message(csv.Error(error), start, end))
        self.count, self.start, self._pending = end, end + 1, bytes(buf[i:])
        raise _Oversized(start)


_LINE_END: Final = re.compile(rb"\r\n?|\n")
_LONE_CR: Final = re.compile(rb"\r(?!\n)")
_DETECT_BYTES: Final = 65536  # read ahead at most to find the first line, to tell the delimiter


def _block_lines(data: bytes) -> pa.Array:
    """The lines of a block without lone CRs (a CR LF's CR kept), as a binary array."""
    lines = pc.list_flatten(pc.split_pattern(pa.array([data], pa.binary()), b"\n"))
    return lines.slice(0, len(lines) - 1) if data.endswith(b"\n") else lines


def _well_quoted(lines: pa.Array, delimiter: str) -> bool:
    """Whether every line (of `_block_lines`) is cells each either without a quote or wholly
    quoted (a quote inside doubled): there, csv.reader and pyarrow read the same cells."""
    well_formed: bool = pc.all(pc.match_substring_regex(lines, _quoted_line(delimiter))).as_py()
    return well_formed


@cache
def _quoted_line(delimiter: str) -> str:
    """An RE2 pattern of a line of cells that are plain or wholly quoted (CR LF's CR kept)."""
    d = "\\t" if delimiter == "\t" else re.escape(delimiter)
    cell = f'(?:"(?:[^"]|"")*"|[^"{d}\\r\\n]*)'
    return f"^{cell}(?:{d}{cell})*\\r?$"


def _plain_block(data: bytes, delimiter: str, layout: _CsvLayout, *, quoted: bool) -> RowBlock | None:
    """The records of a block of whole lines without NULs or lone CRs, and if `quoted` with
    quotes only around whole cells, or None when it is not valid UTF-8 or a line has another
    number of cells than the header. (Blank lines are skipped, as the records' reader skips
    them; a line of white space has one cell, and the header more.)"""
    names = [f"c{i}" for i in range(layout.width)]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(
                column_names=names, block_size=max(len(data), 1 << 16) + 1, use_threads=False
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char='"' if quoted else False,
                double_quote=True,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[""],  # an empty cell (quoted or not) is an absent value, as in a RawRecord
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                check_utf8=True,
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    columns = {name: table.column(i).combine_chunks() for i, name in layout.pairs}
    return RowBlock(table.num_rows, columns)


def _one_cell_row(line: bytes, delimiter: str) -> bool:
    """Whether a line without a delimiter (its line end may be left) is a record: csv.reader
    reads an empty line, or a cell of white space, as a blank row."""
    row = next(csv.reader([line.decode().rstrip("\r\n")], delimiter=delimiter), [])
    return bool(row) and not row[0].isspace()


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_line(data: bytes) -> bytes | None:
    """The first line of `data` with something in it but spaces, if a line end follows it."""
    start = 0
    while (end := _LINE_END.search(data, start)) is not None:
        if data[start : end.start()].strip():
            return data[start : end.start()]
        start = end.end()
    return None


def _delimiter_of(line: bytes) -> str:
    """The delimiter (of DELIMITERS) that splits a header line into the most cells; a comma
    when none splits it."""
    text = line.decode("utf-8", "replace")

    def cells(delimiter: str) -> int:
        try:
            return len(next(csv.reader([text], delimiter=delimiter), []))
        except csv.Error:  # a quote left open (a header over several lines): count roughly
            return text.count(delimiter) + 1

    return max(DELIMITERS, key=cells)  # the first of the most: a comma on a tie


def _first_line_bytes(buf: bytearray) -> int:
    """The size of the first line in `buf`, which holds a line end."""
    found = _LINE_END.search(buf)
    assert found is not None  # the caller saw a line end
    return found.end()


def _end_of(pattern: re.Pattern[bytes], buf: bytes | bytearray, i: int) -> int:
    """Where `pattern`, which matches the empty text too, stops matching from `i`."""
    match = pattern.match(buf, i)
    assert match is not None
    return match.end()


def _cut(buf: bytearray, start: int) -> int:
    """Where the last whole line in `buf` ends (0: none). A final CR may be the start of a CR LF."""
    end = len(buf) - buf.endswith(b"\r")
    return max(buf.rfind(b"\n", start, end), buf.rfind(b"\r", start, end)) + 1


# The bytes of the characters other than CR and LF that str.splitlines breaks lines at (\v, \f,
# \x1c-\x1e, U+0085, U+2028, U+2029: csv.reader reads them as text); a block without any is quick.
_NOT_ODD_BREAKS: Final = bytes(b for b in range(256) if b not in b"\v\f\x1c\x1d\x1e\x85\xa8\xa9")


def _csv_lines(data: bytes, text: str) -> list[str]:
    """The lines of a block of whole lines (`text` is `data` decoded) as csv.reader is to read
    them: ended by CR LF, CR or LF only."""
    lines = text.splitlines(keepends=True)
    if data.translate(None, _NOT_ODD_BREAKS) and len(lines) != _line_ends(data) + (data[-1] not in b"\r\n"):
        lines = [line.decode("utf-8", "surrogateescape") for line in data.splitlines(keepends=True)]
    return lines


def _line_ends(data: bytes | bytearray) -> int:
    """The line ends in `data`: CR LF, CR or LF, as csv.reader is handed lines."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _text_bytes(lines: list[str]) -> int:
    """The size in the file of lines read with errors="surrogateescape"."""
    text = "".join(lines)
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


# Reading past a record: its state is "field" at a field's start, "plain" in an unquoted
# field, "quoted" in a quoted field, "eol" at its line end; then "end" past it, or "bad"
# after a quoted field closed before text other than a delimiter or line end. The patterns
# skip whole runs at C speed, as csv.reader (strict, the excel dialect) would read them.
_QUOTED_REST: Final = re.compile(rb'[^"]*+(?:""[^"]*+)*+')  # stops at a lone quote: the field's end
_RECORD_DONE: Final = frozenset({"end", "bad"})


@dataclass(frozen=True, slots=True)
class _Scanner:
    """Reads past a record of a CSV file with this delimiter (see `_scan_record`)."""

    delimiter: int
    fields: re.Pattern[bytes]  # whole fields, each with the delimiter after it
    plain_rest: re.Pattern[bytes]  # the rest of an unquoted field

    @staticmethod
    @cache
    def of(delimiter: str) -> _Scanner:
        d = re.escape(delimiter).encode()
        fields = re.compile(
            rb'(?:(?:"[^"]*+(?:""[^"]*+)*+"|[^"' + d + rb"\r\n][^" + d + rb"\r\n]*+)?" + d + rb")*+"
        )
        return _Scanner(ord(delimiter), fields, re.compile(rb"[^" + d + rb"\r\n]*+"))

    def at_field(self, buf: bytearray, i: int) -> tuple[int, str]:
        i = _end_of(self.fields, buf, i)
        if i == len(buf):
            return i, "field"
        return (i + 1, "quoted") if buf[i] == ord('"') else (i, "plain")

    def in_plain(self, buf: bytearray, i: int) -> tuple[int, str]:
        i = _end_of(self.plain_rest, buf, i)
        if i == len(buf):
            return i, "plain"
        return (i + 1, "field") if buf[i] == self.delimiter else (i, "eol")

    def in_quoted(self, buf: bytearray, i: int) -> tuple[int, str]:
        i = _end_of(_QUOTED_REST, buf, i)
        if i + 1 >= len(buf):  # the end, or a quote that may be the first of ""
            return i, "quoted"
        after = buf[i + 1]
        if after == self.delimiter:
            return i + 2, "field"
        return (i + 1, "eol") if after in b"\r\n" else (i + 1, "bad")

    def step(self, state: str, buf: bytearray, i: int) -> tuple[int, str]:
        if state == "field":
            return self.at_field(buf, i)
        if state == "plain":
            return self.in_plain(buf, i)
        if state == "quoted":
            return self.in_quoted(buf, i)
        return _at_line_end(buf, i)


def _at_line_end(buf: bytearray, i: int) -> tuple[int, str]:
    if buf[i] == ord("\r") and i + 1 == len(buf):  # \r or \r\n: the next byte tells
        return i, "eol"
    return i + 1 + (buf[i : i + 2] == b"\r\n"), "end"


def _scan_record(buf: bytearray, state: str, scanner: _Scanner) -> tuple[int, str]:
    """How far `buf` takes a record read from `state`, and the state there; it stops early
    where the byte after `buf` is needed."""
    i = 0
    while state not in _RECORD_DONE:
        j, after = scanner.step(state, buf, i)
        if (j, after) == (i, state):
            break
        i, state = j, after
    return i, state


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


def _open_csv(
    stream: BinaryIO, columns: Columns, limit: int, options: ReadOptions, *, blocks: bool = False
) -> Any:
    """A RecordReader of the file (with `blocks`, a BlockReader)."""
    source = _CsvSource(stream, limit, options)
    reader = source.reader()
    layout, warnings = _csv_layout(_csv_header(source, reader), columns, source)
    if blocks and not layout.result_file and layout.width > 1:
        source.parse_blocks(layout)
    if source.blocks:
        return BlockReader(_noted(_csv_blocks(source, reader, layout), warnings, _HEADER_ONLY), warnings)
    records = _csv_records(source, reader, layout)
    return _noting(_unprotected(records) if layout.result_file else records, warnings, _HEADER_ONLY)


def _unprotected(records: Iterator[RawRecord]) -> Iterator[RawRecord]:
    """The records of a result file sent again, with loadbay's formula protection undone
    (see loadbay.domain.cells)."""
    for record in records:
        values = record.values
        if any(value[:1] == "'" for value in values.values()):
            record = RawRecord({name: unprotect(value) for name, value in values.items()}, record.problem)
        yield record


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and row[0].isspace())


def _csv_header(source: _CsvSource, reader: Any) -> list[str]:
    """The first non-blank row; file-level errors (a header over the limit too) raised as loadbay errors."""
    row: list[str]
    try:
        for row in reader:
            start, end = source.start, reader.line_num
            source.start = end + 1
            if start <= source.suspect_end and source.over_limit(start, end):
                raise _Oversized(start)
            if not _blank(row):
                _check_decoded("".join(row), start)
                return row
    except csv.Error as exc:
        raise MalformedFile(_csv_syntax_message(exc, source.start, reader.line_num)) from exc
    except _Oversized as big:
        raise MalformedFile(f"line {big.line}: the header is {_over(source.limit)}") from None
    raise MalformedFile("the file is empty; a CSV needs a header row")


def _csv_records(source: _CsvSource, reader: Any, layout: _CsvLayout) -> Iterator[RawRecord]:
    """One record per non-blank row after the header. A record over the size limit is read
    past, a problem of its own, and a new csv.reader reads on.

    Hot: one loop, no call per row but csv.reader's and RawRecord's in the usual case.
    """
    width, pairs, leading = layout.width, layout.pairs, layout.leading
    start = source.start
    while True:
        base = source.base
        try:
            for row in reader:
                size = len(row)
                end = reader.line_num + base
                if start <= source.suspect_end or size > width:
                    problem = _row_problem(source, row, start, end, width)
                    if problem is not None:
                        start = source.start = end + 1
                        yield _unread(row, problem, layout)
                        continue
                start = source.start = end + 1
                if size < 2 and (not size or row[0].isspace()):  # a blank line
                    continue
                if leading is None:
                    yield RawRecord({name: row[i] for i, name in pairs if i < size and row[i]})
                # zip stops at the end of a short row, leaving the later keys absent. (A strict=False
                # keyword would make building the dict a quarter slower.)
                elif all(row):  # no empty cell
                    yield RawRecord(dict(zip(leading, row)))  # noqa: B905
                else:
                    yield RawRecord({name: value for name, value in zip(leading, row) if value})  # noqa: B905
            return
        except csv.Error as exc:
            raise MalformedFile(_csv_syntax_message(exc, start, reader.line_num + base)) from exc
        except _Oversized as big:
            oversized = big.line
        yield RawRecord({}, _too_large(f"line {oversized}", source.limit))
        start, reader = source.start, source.reader()


def _csv_blocks(source: _CsvSource, reader: Any, layout: _CsvLayout) -> Iterator[RawRecord | RowBlock]:
    """`_csv_records` a block at a time: runs of rows read whole as `RowBlock`s (a plain
    block parsed by pyarrow as it is, the rows csv.reader reads _ROWS_PER_BLOCK at a time),
    each record that could not be read as a RawRecord with its problem, in file order."""
    width, start, parsed = layout.width, source.start, source.parsed
    rows: list[list[str]] = []
    while True:
        try:
            for row in reader:
                if parsed:  # plain blocks read past before this row (see _CsvSource.parse_blocks)
                    yield from _flushed(rows, layout, parsed)
                size = len(row)
                end = reader.line_num + source.base
                if start <= source.suspect_end or size > width:
                    problem = _row_problem(source, row, start, end, width)
                    if problem is not None:
                        start = source.start = end + 1
                        yield from _flushed(rows, layout, parsed)
                        yield _unread(row, problem, layout)
                        continue
                start = source.start = end + 1
                if size < 2 and (not size or row[0].isspace()):  # a blank line
                    continue
                rows.append(row)
                if len(rows) >= _ROWS_PER_BLOCK:
                    yield from _flushed(rows, layout, parsed)
            yield from _flushed(rows, layout, parsed)
            return
        except csv.Error as exc:
            raise MalformedFile(_csv_syntax_message(exc, start, reader.line_num + source.base)) from exc
        except _Oversized as big:
            oversized = big.line
        yield from _flushed(rows, layout, parsed)
        yield RawRecord({}, _too_large(f"line {oversized}", source.limit))
        start, reader = source.start, source.reader()


_ROWS_PER_BLOCK: Final = 2048


def _flushed(rows: list[list[str]], layout: _CsvLayout, parsed: deque[RowBlock]) -> Iterator[RowBlock]:
    """The rows kept so far as a block (then none are kept), then the plain blocks parsed after them."""
    if rows:
        yield _row_block(rows, layout)
        rows.clear()
    while parsed:
        yield parsed.popleft()


def _row_block(rows: list[list[str]], layout: _CsvLayout) -> RowBlock:
    """Rows of at most the header's cells (a short row's last cells are empty) as a block."""
    width = layout.width
    if any(len(row) != width for row in rows):
        rows = [row + [""] * (width - len(row)) for row in rows]
    cells = list(zip(*rows, strict=True))
    columns = {name: _nulled(pa.array(cells[i], pa.string())) for i, name in layout.pairs}
    return RowBlock(len(rows), columns)


def _nulled(cells: pa.Array) -> pa.Array:
    """Empty cells as nulls (an absent value, as in a RawRecord)."""
    return pc.if_else(pc.equal(cells, ""), pa.scalar(None, pa.string()), cells)


def _row_problem(
    source: _CsvSource, row: list[str], start: int, end: int, width: int
) -> tuple[str, str] | None:
    """The problem, if any, of a row that needs a closer look: in a block that may hold a row
    over the limit, a NUL or an undecodable byte (BadEncoding raised), or with too many cells.
    (No line over the limit reaches csv.reader: only a row over several lines can be.)"""
    if end != start and source.over_limit(start, end):
        return _too_large(f"line {start}", source.limit)
    nul = False
    if start <= source.suspect_end:
        joined = "".join(row)
        _check_decoded(joined, start)
        nul = "\x00" in joined
    if len(row) > width:
        return ("MALFORMED_ROW", f"row has {len(row)} cells; the header has {width}")
    return ("MALFORMED_ROW", _NUL_IN_ROW) if nul else None


def _unread(row: list[str], problem: tuple[str, str], layout: _CsvLayout) -> RawRecord:
    """A row read as no record, with its problem. One with more cells than the header keeps
    its cells under the header's columns, as far as the header goes: its key cell gives its
    external id, and its result row shows them. One over the size limit, or holding a NUL
    character, keeps none."""
    if len(row) <= layout.width or problem[0] != "MALFORMED_ROW" or any("\x00" in cell for cell in row):
        return RawRecord({}, problem)
    return RawRecord({name: row[i] for i, name in layout.pairs if row[i]}, problem)


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


def _csv_layout(header: list[str], columns: Columns, source: _CsvSource) -> tuple[_CsvLayout, list[str]]:
    labels = [cell.strip() for cell in header]
    _check_duplicates(labels)
    canonical = {name.casefold(): name for name in columns.names}
    pairs = tuple(
        (i, canonical[label.casefold()]) for i, label in enumerate(labels) if label.casefold() in canonical
    )
    unknown = [(i, label) for i, label in enumerate(labels) if label.casefold() not in canonical]
    ours = [(i, label) for i, label in unknown if label.casefold() in _RESULT_COLUMNS]
    unknown = [column for column in unknown if column not in ours]  # loadbay's own: no warning
    _check_required({name for _, name in pairs}, columns, labels, source.delimiter)
    if source.options.refuse_unknown and unknown:
        named = ", ".join(_ignored_name(i, label, columns) for i, label in unknown[:_NAMED_COLUMNS])
        more = f" and {len(unknown) - _NAMED_COLUMNS} more" if len(unknown) > _NAMED_COLUMNS else ""
        raise UnknownColumn(f"the header names columns this type does not have: {named}{more}")
    warnings = _ignored_columns(iter(unknown), columns)
    leads = all(i == n for n, (i, _) in enumerate(pairs))
    leading = tuple(name for _, name in pairs) if leads else None
    return _CsvLayout(pairs, len(labels), leading, bool(ours)), warnings


def _check_duplicates(labels: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, label in enumerate(labels, start=1):
        key = label.casefold()
        if key and key in seen:
            raise MalformedFile(
                f"duplicate column {_shown(label)} in the header (columns {seen[key]} and {i})"
            )
        seen[key] = i


def _check_required(found: set[str], columns: Columns, labels: list[str], delimiter: str) -> None:
    """MissingColumn naming each required column the header lacks, the closest column it has
    instead, and the header as it was read (with which delimiter)."""
    missing = [name for name in columns.required if name not in found]
    if not missing:
        return
    named = ", ".join(name + _did_you_mean(name, labels) for name in missing)
    plural = "s" if len(missing) > 1 else ""
    shown = ", ".join(_shown(label) for label in labels[:_NAMED_COLUMNS])
    more = f", … ({len(labels)} in all)" if len(labels) > _NAMED_COLUMNS else ""
    read = f"the header, read as {DELIMITERS.get(delimiter, repr(delimiter))}-separated, has: {shown}{more}"
    raise MissingColumn(f"missing required column{plural}: {named}; {read}")


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the candidate closest to `name`, if one is close."""
    folded = {c.casefold(): c for c in candidates if c}
    close = get_close_matches(name.casefold(), folded, n=1, cutoff=0.75)
    return f" (did you mean {_shown(folded[close[0]])}?)" if close else ""


# The columns loadbay adds to a result file, which a file sent again may still have.
_RESULT_COLUMNS: Final = frozenset(RESULT_COLUMNS)

# A column ignored gets a warning of its own, up to this many; more get one warning in all,
# so the batch stays small whatever the header.
_NAMED_COLUMNS: Final = 20
_SHOWN_CHARS: Final = 40  # of a column's name in a message


def _ignored_columns(ignored: Iterator[tuple[int, str]], columns: Columns) -> list[str]:
    """The warnings for the columns ignored, (index, label) in order."""
    first = list(islice(ignored, _NAMED_COLUMNS + 1))
    if len(first) <= _NAMED_COLUMNS:
        return [_ignored_column(i, label, columns) for i, label in first]
    count = len(first) + sum(1 for _ in ignored)
    named = ", ".join(_shown(label) if label else f"column {i + 1} (no name)" for i, label in first[:-1])
    summary = f"{count} columns are not fields of this type and were ignored"
    return [f"{summary}: {named}, … (the first {_NAMED_COLUMNS})"]


def _ignored_column(index: int, label: str, columns: Columns) -> str:
    if not label:
        return f"column {index + 1} has no name; ignored"
    return f"unknown column {_shown(label)} ignored{_did_you_mean(label, columns.names)}"


def _ignored_name(index: int, label: str, columns: Columns) -> str:
    return _shown(label) + _did_you_mean(label, columns.names) if label else f"column {index + 1} (no name)"


def _shown(label: str) -> str:
    """A column's name for a message: quoted, and cut short if long."""
    return repr(label if len(label) <= _SHOWN_CHARS else label[:_SHOWN_CHARS] + "…")


# --------------------------------------------------------------------------- JSON (shared)


@dataclass(frozen=True, slots=True)
class _KeyMap:
    """Maps JSON keys to canonical column names ignoring case; other keys pass unchanged."""

    exact: frozenset[str]
    folded: dict[str, str]  # casefolded canonical name -> canonical name
    blank_is_absent: bool = True

    @classmethod
    def of(cls, columns: Columns) -> _KeyMap:
        folded = {name.casefold(): name for name in columns.names}
        return cls(frozenset(columns.names), folded, columns.blank_is_absent)

    def name(self, key: str) -> str:
        return key if key in self.exact else self.folded.get(key.casefold(), key)

    def record(self, obj: dict[str, Any], unit: str, number: int) -> RawRecord:
        """`obj` as a record; `unit` and `number` ("line", 7) place it in messages. A null or
        empty-string value is absent (unless the type keeps them: `Columns.blank_is_absent`),
        as an empty CSV cell is: a required field so given is REQUIRED in either format, an
        optional one takes its default."""
        if (found := unstorable(obj)) is not None:
            return _problem(
                "INVALID_RECORD", f"{unit} {number}: a value holds {found}, which text cannot hold"
            )
        if self.blank_is_absent and ("" in obj.values() or None in obj.values()):
            obj = {k: v for k, v in obj.items() if v is not None and v != ""}
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


_READ_PAST_BYTES: Final = 65536


def _jsonl_records(stream: BinaryIO, keys: _KeyMap, limit: int) -> Iterator[RawRecord]:
    number = 0
    while raw := stream.readline(limit + 1):
        number += 1
        if len(raw) > limit:
            _read_past_line(stream, raw)
            yield RawRecord({}, _too_large(f"line {number}", limit))
            continue
        text = _decode_line(raw, number)
        if text and not text.isspace():
            yield _jsonl_record(text, number, keys)


def _read_past_line(stream: BinaryIO, head: bytes) -> None:
    """Read to the end of the line that `head` starts, a block at a time."""
    while head and not head.endswith(b"\n"):
        head = stream.readline(_READ_PAST_BYTES)


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
        return _unread_line(text, f"line {number}: {_json_error(exc, text)}")
    if not isinstance(value, dict):
        return _unread_line(text, f"line {number}: expected an object, got {_kind(value)}")
    return keys.record(value, "line", number)


def _unread_line(text: str, message: str) -> RawRecord:
    """A JSON Lines line that is no JSON object: INVALID_JSON, with its text as it can be
    shown (without the white space around it; a character no text column holds as U+FFFD)."""
    shown = _UNSTORABLE.sub("\ufffd", text.strip())
    return RawRecord({}, ("INVALID_JSON", message), shown)


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

    def unread(self, data: bytes) -> None:
        """Give back `data`, the last bytes read: the next read starts with them."""
        self._head = data + self._head


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


class _ItemTooLarge(Exception):
    """The item being read has run over the size limit."""


_BETWEEN_ITEMS: Final = b" \t\r\n,"  # what may come between the items of an array
# Reading past an item: the text of a string up to its closing quote (or a backslash that ends
# the block), and the marks that matter outside strings.
_STRING_TEXT: Final = re.compile(rb'(?:[^"\\]++|\\.)*+', re.DOTALL)
_JSON_MARK: Final = re.compile(rb'[][{}",]')


class _JsonGuard:
    """A binary reader of a JSON array for ijson that raises MalformedFile once the text nests
    deeper than `_MAX_DEPTH`, and `_ItemTooLarge` once an item has run over `limit` bytes;
    `read_past_item` then reads past that item for a new parser.

    Depth, per chunk, in C-speed bytes operations (`_brackets`): the text between quotes
    (strings) is dropped, and the brackets left are counted. The state between chunks is the
    depth, whether a string is open and whether a backslash is pending.

    Size: ijson parses each chunk whole and yields the items it completes before it reads the
    next, and the reader of the items counts them in `items`. When no item ended in the last
    chunk, the item being read took all of it but for the spaces and comma it may start with:
    `_item` counts such chunks' bytes since the last item ended, so it is at most the item's
    size. Chunks are at most `limit` bytes: ijson holds no more than an item's first 3 x `limit`
    bytes (the rest of the chunk it starts in, `limit`, and one chunk).
    """

    __slots__ = (
        "_depth",
        "_escaped",
        "_in_string",
        "_item",
        "_last",
        "_limit",
        "_seen",
        "_source",
        "_stand_in",
        "items",
    )

    def __init__(self, source: _Prefixed, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._stand_in = False  # whether the next read starts an array again (see `read_past_item`)
        self.items = 0
        self._seen = 0  # `items` at the last read
        self._item = 0
        self._last = 0  # the bytes the last chunk may have added to an item

    def read(self, size: int = -1) -> bytes:
        if self._stand_in and size:  # (ijson reads 0 bytes first, to learn their type)
            self._stand_in = False
            return b"[0"
        self._item = 0 if self.items != self._seen else self._item + self._last
        self._seen = self.items
        if self._item > self._limit and self._depth:
            raise _ItemTooLarge()
        data = self._source.read(size if 0 <= size <= self._limit else self._limit)
        self._last = self._item_bytes(data)
        if data:
            brackets, self._in_string, self._escaped = _brackets(data, self._in_string, self._escaped)
            self._nest(brackets)
        return data

    def _item_bytes(self, data: bytes) -> int:
        """The bytes of a chunk that may belong to an item: at the array's level, not the spaces
        and comma it starts with (nor, in the first chunk, the array's '[')."""
        if self._in_string or self._depth > 1:
            return len(data)
        if not self._depth:
            data = data[1:]
        return len(data.lstrip(_BETWEEN_ITEMS))

    def read_past_item(self, number: int) -> None:
        """Read past the rest of the item being read (item `number`), a block at a time, to the
        ',' or ']' after it. The next read then starts an array again with a stand-in for that
        item ("[0"), and reads on from that ',' or ']'. The text read past is checked for its
        nesting only; MalformedFile if the file ends in it."""
        while block := self._source.read(_READ_PAST_BYTES):
            end = self._item_end(block)
            if end is not None:
                self._source.unread(block[end:])
                self._stand_in, self._item, self._last = True, 0, 0
                return
        raise MalformedFile(
            f"invalid JSON: the file ends inside item {number}, which is {_over(self._limit)}"
        )

    def _item_end(self, block: bytes) -> int | None:
        """Where in `block` the item read past ends (its ',' or ']'); None when it goes on.
        A block that stays deeper than the array's items is passed at C speed."""
        if self._depth > 1:
            brackets, in_string, escaped = _brackets(block, self._in_string, self._escaped)
            if min(accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=self._depth)) > 1:
                self._nest(brackets)
                self._in_string, self._escaped = in_string, escaped
                return None
        return self._find_end(block)

    def _find_end(self, block: bytes) -> int | None:
        """`_item_end`, a string or mark (quote, bracket, comma) at a time."""
        i = 0
        if self._escaped:
            i, self._escaped = 1, False
        while True:
            if self._in_string:
                i = _end_of(_STRING_TEXT, block, i)
                if i == len(block):
                    return None
                if block[i] == ord("\\"):  # the last byte: the next block's first is escaped
                    self._escaped = True
                    return None
                i, self._in_string = i + 1, False
            mark = _JSON_MARK.search(block, i)
            if mark is None:
                return None
            i, found = mark.end(), mark.group()
            if found == b'"':
                self._in_string = True
            elif self._depth == 1 and found in (b",", b"]"):
                return i - 1
            elif found != b",":
                self._nest(found)

    def _nest(self, brackets: bytes) -> None:
        """Move the depth by `brackets` (opening and closing ones, in order)."""
        opened = brackets.count(b"[") + brackets.count(b"{")
        if self._depth + opened > _MAX_DEPTH:
            steps = accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=self._depth)
            if max(steps) > _MAX_DEPTH:
                raise MalformedFile(f"invalid JSON: nested more than {_MAX_DEPTH} levels deep")
        self._depth += 2 * opened - len(brackets)


def _brackets(data: bytes, in_string: bool, escaped: bool) -> tuple[bytes, bool, bool]:
    """The brackets of a chunk of JSON text outside its strings, and whether a string is open
    and a backslash pending after it, from whether they were before it."""
    if escaped:  # the previous chunk ended in a backslash: this first byte is escaped
        data, escaped = data[1:], False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        if data.endswith(b"\\"):
            data, escaped = data[:-1], True
    parts = data.split(b'"')
    outside = b"".join(parts[1::2] if in_string else parts[::2])
    return outside.translate(None, _NOT_BRACKETS), in_string ^ (len(parts) % 2 == 0), escaped


def _json_array_records(source: _Prefixed, keys: _KeyMap, limit: int) -> Iterator[RawRecord]:
    """One record per item. An item over the limit is read past, a problem of its own, and a
    new parser reads on, past the stand-in `_JsonGuard.read_past_item` gives it for that item."""
    guard = _JsonGuard(source, limit)
    items: Iterator[Any] = ijson.items(guard, "item", use_float=False)
    number = 0
    while True:
        try:
            for item in items:
                number += 1
                guard.items = number
                yield keys.item(item, number)
            return
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise _json_file_error(exc) from exc
        except _ItemTooLarge:
            number += 1
            guard.read_past_item(number)
        yield _problem(*_too_large(f"item {number}", limit))
        items = islice(ijson.items(guard, "item", use_float=False), 1, None)


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
