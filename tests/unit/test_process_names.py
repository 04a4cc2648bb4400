"""The names processes that run workers go by (heartbeats, lease owners): unique without
relying on the pid, which another PID namespace on a host of the same name may reuse."""

from __future__ import annotations

import socket
import subprocess
import sys

from loadbay.core.worker import process_name


def _name_in_a_new_process() -> str:
    code = "from loadbay.core.worker import process_name; print(process_name())"
    shown = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return shown.stdout.strip()


def test_each_process_has_a_tag_of_its_own() -> None:
    names = [_name_in_a_new_process() for _ in range(2)]
    host = socket.gethostname()
    parts = [name.split(":") for name in names]
    assert all(len(p) == 3 and p[0] == host and p[1].isdigit() and len(p[2]) == 8 for p in parts), names
    assert parts[0][2] != parts[1][2], "two processes, two tags: a pid met again is not the same process"


def test_a_tag_given_names_the_process_by_it() -> None:
    """(serve names each worker process it starts so, to release its claims when it dies)"""
    assert process_name(1234, "abcd0123") == f"{socket.gethostname()}:1234:abcd0123"
    assert process_name(tag="abcd0123").endswith(":abcd0123")
