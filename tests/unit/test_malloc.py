"""`loadbay.malloc.return_big_buffers`: once a big buffer has been freed, later big buffers
are still mappings of their own, given back when freed (glibc would keep them in a heap)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Prints how many anonymous mappings a 300 KiB buffer added, made after a 1 MiB one was freed.
_PROBE = """
import sys
from loadbay.malloc import return_big_buffers
if sys.argv[1] == "fixed":
    assert return_big_buffers()
def mappings():
    return sum(1 for line in open("/proc/self/maps") if len(line.split()) == 5)  # no file: anonymous
freed = bytearray(1 << 20)
del freed
before = mappings()
kept = bytearray(300 * 1024)
print(mappings() - before)
"""


def _new_mappings(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_big_buffer_is_a_mapping_of_its_own_after_another_was_freed() -> None:
    assert _new_mappings("default") == 0  # glibc: from the heap, where it stays once freed
    assert _new_mappings("fixed") == 1
