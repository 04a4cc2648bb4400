"""Words in the messages loadbay writes (events, warnings)."""

from __future__ import annotations

__all__ = ["byte_size", "many"]

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def many(count: int, noun: str) -> str:
    """'1 record', '2 records', '0 records' (nouns whose plural adds an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def byte_size(count: int) -> str:
    """A number of bytes as people read it, then exactly: '5 MiB (5242880 bytes)',
    '1.5 KiB (1536 bytes)'; under 1 KiB only the bytes, '512 bytes'."""
    exact = many(count, "byte")
    value, unit = float(count), ""
    for name in _UNITS:
        if value < 1024:
            break
        value, unit = value / 1024, name
    if not unit:
        return exact
    shown = f"{value:.1f}".removesuffix(".0")
    return f"{shown} {unit} ({exact})"
