"""How a long-lived loadbay process (the server, a worker) manages its memory, set once at
its start: the C library's allocator and Python's cycle collector."""

from __future__ import annotations

import ctypes
import gc

__all__ = ["BIG_BUFFER", "COLLECT_EVERY", "fewer_collections", "return_big_buffers"]

BIG_BUFFER = 256 * 1024  # bytes: an allocation this big or bigger is mapped on its own
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
COLLECT_EVERY = (20_000, 50, 1_000)  # the cycle collector's thresholds (Python's: 700, 10, 10)


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


def fewer_collections() -> None:
    """Leave what startup made (modules, routes, models, schemas, SQLAlchemy's caches: most
    of the heap) out of the cycle collector's passes, and run them less often: loadbay's
    records and chunks make no cycles, and are freed as soon as they are done with.

    In the server, with 50 clients polling a batch's status during a 1M import, the full
    passes made the slowest answers slower (p99 ~190 -> 130 ms). In a worker, a 4,000-record
    chunk makes hundreds of thousands of objects, and 400k-record imports in one process
    spent 0.5 s (SQLite) and 1.3 s (PostgreSQL: 11 full passes of ~90 ms) in the collector,
    6% and 17% of the process's CPU; with these thresholds, under 0.01 s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECT_EVERY)
