"""Many API keys at once: `loadbay accounts create` costs a few seconds of imports per call,
so a module's accounts are made in one process, with the service call the CLI makes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.servers import Server

__all__ = ["make_keys"]

_MAKE = """
import json, sys
from loadbay.config import Settings
from loadbay.core.runtime import Runtime
from loadbay.core.service import BatchService
from loadbay.types import default_registry

settings = Settings()
rt = Runtime.build(settings, default_registry(), base_url=settings.base_url())
service = BatchService(rt)
keys = [service.create_account(f"{sys.argv[1]}-{i}")[1] for i in range(int(sys.argv[2]))]
rt.close()
print(json.dumps(keys))
"""


def make_keys(server: Server, prefix: str, count: int) -> list[str]:
    """API keys of `count` new live accounts on the server (named prefix-0, prefix-1, …)."""
    out = subprocess.run(
        [sys.executable, "-c", _MAKE, prefix, str(count)], env=server.env, check=True, capture_output=True
    )
    keys: list[str] = json.loads(out.stdout)
    return keys
