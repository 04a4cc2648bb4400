"""Ports for the servers the tests start (loadbay, PostgreSQL), free of races between the
test processes of one machine: pytest-xdist's workers, and any other test run beside them.

A port the kernel hands out for `bind(("127.0.0.1", 0))` is free only until it is closed:
another process can be given it before the server binds it, and it comes from the range
outgoing connections take theirs from. Here a port comes from below that range (Linux's
starts at 32768), and a test process first takes the port's lock file (`flock`, held until
the process ends), so no other test process hands it out meanwhile; then it checks that
nothing else holds the port."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import random
import socket
import tempfile
from pathlib import Path


def _below_ephemeral(default: int = 32768) -> int:
    """Where the kernel's range for outgoing connections' ports starts."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


FIRST = 20000
LAST = max(min(32000, _below_ephemeral()), FIRST + 2000)
LOCKS = Path(tempfile.gettempdir()) / "loadbay-test-ports"

_start = random.randrange(FIRST, LAST)  # each process from its own place in the range
_next = itertools.chain(range(_start, LAST), itertools.cycle(range(FIRST, LAST)))
_held: dict[int, int] = {}  # port -> the open lock file this process holds for it


def free_port() -> int:
    """A port that no other test process hands out and nothing holds now."""
    for _ in range(LAST - FIRST):
        port = next(_next)
        if (port in _held or _lock(port)) and _bindable(port):
            return port
    raise RuntimeError(f"no free port in {FIRST}..{LAST - 1}")


def _lock(port: int) -> bool:
    """Take the port's lock file (shared by every user of the machine: any may create one)."""
    if not LOCKS.is_dir():
        LOCKS.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):  # (made by another user at the same moment)
            os.chmod(LOCKS, 0o1777)
    try:
        fd = os.open(LOCKS / str(port), os.O_CREAT | os.O_RDONLY, 0o444)
    except OSError:  # another user's lock file we may not read: theirs
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held[port] = fd
    return True


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
