"""Words in the messages loadbay writes (events, warnings)."""

from __future__ import annotations

__all__ = ["many"]


def many(count: int, noun: str) -> str:
    """'1 record', '2 records', '0 records' (nouns whose plural adds an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
