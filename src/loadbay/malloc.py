"""The C library's allocator, set once for a long-lived loadbay process."""

from __future__ import annotations

import ctypes

__all__ = ["BIG_BUFFER", "return_big_buffers"]

BIG_BUFFER = 256 * 1024  # bytes: an allocation this big or bigger is mapped on its own
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_big_buffers() -> bool:
    """Make every allocation of `BIG_BUFFER` or more a mapping of its own, given back to the
    system when it is freed; False where the C library has no `mallopt` (not glibc).

    glibc does so from 128 KiB, but raises that threshold each time such a buffer is freed,
    after which big buffers come from the heap of the thread that made them (one of up to
    16 per process here) and stay there. The server, streaming a 450 MB result file (3M
    rows) a megabyte at a time from its request threads, grew from 113 to 192 MB so (219
    MB at 10M rows); with the threshold fixed, its peak was 124 MB."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, BIG_BUFFER))
