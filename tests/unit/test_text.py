"""The words of loadbay's messages: sizes in bytes as people read them."""

from __future__ import annotations

import pytest

from loadbay.domain.text import byte_size


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (512, "512 bytes"),
        (1000, "1000 bytes"),
        (1536, "1.5 KiB (1536 bytes)"),
        (5 * 1024**2, "5 MiB (5242880 bytes)"),
        (50_000_000, "47.7 MiB (50000000 bytes)"),
        (2 * 1024**3, "2 GiB (2147483648 bytes)"),
    ],
)
def test_a_size_is_said_in_binary_units_then_exactly(count: int, said: str) -> None:
    assert byte_size(count) == said
