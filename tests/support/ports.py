"""Ports for the servers the tests start, one block of them for each pytest-xdist worker.

A port the kernel hands out for `bind(("127.0.0.1", 0))` comes from the range it also gives to
outgoing connections, and two test processes started side by side (`make test` runs the suite
in several) could each be given the same one between closing it and the server binding it.
Here each test process takes its ports in turn from a block of its own, below Linux's
ephemeral range (32768 and up), skipping any that something already holds."""

from __future__ import annotations

import itertools
import os
import socket

FIRST = 20000
BLOCK = 1500  # ports a block: 8 workers fit below 32768

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
_start = FIRST + (int(_worker) % 8 if _worker.isdigit() else 0) * BLOCK
_next = itertools.cycle(range(_start, _start + BLOCK))


def free_port() -> int:
    """The next port of this process's block that nothing holds now."""
    for _ in range(BLOCK):
        port = next(_next)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_start}..{_start + BLOCK - 1}")
