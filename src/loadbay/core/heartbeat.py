"""A heartbeat that keeps a lease alive while long work runs (a big fetch, a slow chunk)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Connection

from loadbay.core.runtime import Runtime
from loadbay.db.engine import database_trouble

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls `renew(conn)` in its own transaction every third of the lease until the block ends.

    `renew` answers False when the lease is gone; the heartbeat then stops (the work
    itself notices at its next write, which presents the attempt token).
    """

    def __init__(self, rt: Runtime, renew: Callable[[Connection], bool]) -> None:
        self._rt = rt
        self._renew = renew
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadbay-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._rt.settings.lease_seconds / 3
        while not self._stop.wait(interval):
            if not self._beat():
                return

    def _beat(self) -> bool:
        try:
            with self._rt.db.write() as conn:
                return self._renew(conn)
        except Exception as exc:  # a missed beat is not fatal: the lease is long enough for two more
            trouble = database_trouble(exc)  # (the database away: one line, not its traceback)
            log.warning("lease heartbeat failed: %s", trouble or exc, exc_info=trouble is None)
            return True
