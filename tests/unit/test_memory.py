"""`loadbay.memory`: once a big buffer has been freed, later big buffers are still mappings
of their own, given back when freed (glibc would keep them in a heap); the cycle collector
leaves what startup made alone and runs less often."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Prints how many anonymous mappings a 300 KiB buffer added, made after a 1 MiB one was freed.
_PROBE = """
import sys
from loadbay.memory import return_big_buffers
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


# Prints as JSON, after fewer_collections(): its thresholds, how many objects it froze, and how
# many passes of each generation the objects of 100,000 rows (made, then dropped) caused.
_PASSES = """
import gc, json
from loadbay.memory import fewer_collections
fewer_collections()
passes = [0, 0, 0]
def count(phase, info):
    if phase == "start":
        passes[info["generation"]] += 1
gc.callbacks.append(count)
rows = [[str(n), n, {"id": n}] for n in range(100_000)]
del rows
print(json.dumps({"thresholds": gc.get_threshold(), "frozen": gc.get_freeze_count(), "passes": passes}))
"""


def test_the_cycle_collector_leaves_startup_alone_and_runs_less_often() -> None:
    out = subprocess.run([sys.executable, "-c", _PASSES], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout)
    assert probe["thresholds"] == [20_000, 50, 1_000]
    assert probe["frozen"] > 1_000, "what startup made is out of the collector's passes"
    # (with Python's thresholds: 260, 23 and 2 passes)
    assert probe["passes"][2] == 0 and probe["passes"][0] <= 20, probe["passes"]
