"""Workers: loops that claim work from the queue and run it.

A worker only coordinates: claiming is `loadbay.db.queue`, the work itself is
`loadbay.core.processing`. Workers run as threads inside `loadbay serve` or
inside `loadbay worker` processes; they share nothing but the database.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import replace
from datetime import timedelta

from loadbay import __version__
from loadbay.arrow import pa, pa_csv, pc
from loadbay.core import delivery, files, processing, settle, unread
from loadbay.core.runtime import Runtime
from loadbay.db import queue
from loadbay.db import repository as repo
from loadbay.db.engine import database_trouble

__all__ = ["Worker", "WorkerPool", "process_name"]

log = logging.getLogger(__name__)

_STAGING_SWEEP_EVERY = 60.0  # seconds


def process_name(pid: int | None = None, tag: str = "") -> str:
    """How a process that runs workers is known: its heartbeat's id, and the start of its
    workers' lease owners (`{process}:{worker}`). `host:pid:tag`, with a tag of its own (made
    at random, or the one `serve` gave the worker process it started, to release a dead one's
    claims by), so that no other process has it, even one of the same host name and pid in
    another PID namespace (containers sharing the host's name). This process's by default."""
    if pid is None:
        pid, tag = os.getpid(), tag or _TAG
    return f"{socket.gethostname()}:{pid}:{tag}"


_TAG = secrets.token_hex(4)  # this process's tag, unless it was given one


class Worker:
    """Claims and runs one piece of work at a time until stopped."""

    def __init__(
        self, rt: Runtime, name: str, stop: threading.Event, wake: threading.Event, process: str = ""
    ) -> None:
        self.rt = rt
        self.owner = f"{process or process_name()}:{name}"
        self._stop = stop
        self._wake = wake
        self._lease = timedelta(seconds=rt.settings.lease_seconds)
        self._next_takeover = 0.0  # (time.monotonic) when to look for a validation to take over
        self._next_delivery = 0.0  # (time.monotonic) when a webhook may go before batch work again
        self._sweeper = files.Sweeper(rt)
        self._next_staging_sweep = 0.0  # (time.monotonic) when to look for staging left behind

    def run(self) -> None:
        failures = 0  # in a row: the wait after each grows (see `_pause`)
        while not self._stop.is_set():
            pause = self.rt.settings.poll_interval
            try:
                busy = self.run_once()
                failures = 0
            except Exception as exc:  # never let one bad piece of work end the worker
                failures += 1
                pause = _pause(pause, failures)
                _log_failure(self.owner, exc, pause)
                busy = False
            if not busy:
                self._wake.wait(pause)
                self._wake.clear()

    def run_once(self) -> bool:
        """Do one piece of work; False when there was none. Result files of final batches and
        the retention's passes come after every batch's own work (see core.files)."""
        return (
            self._take_over()
            or self._deliver_first()
            or self._validate_for_idle_account()
            or self._apply_next()
            or self._validate_next()
            or self._read_unread()
            or self._settle_stalled()
            or delivery.deliver_next(self.rt)
            or files.store_next_results(self.rt, self.owner)
            or self._sweeper.run_if_due()
            or self._drop_left_staging()
        )

    def _drop_left_staging(self) -> bool:
        """Delete what the staging of batches past validation left (see
        `processing.drop_left_staging`): at most once a minute, when there is no other work."""
        if time.monotonic() < self._next_staging_sweep:
            return False
        self._next_staging_sweep = time.monotonic() + _STAGING_SWEEP_EVERY
        return processing.drop_left_staging(self.rt)

    def _take_over(self) -> bool:
        """Take over a validation whose worker's lease expired before applying any chunk: its
        batch, started already, makes no progress until then (chunks of older batches could
        keep every worker busy for long). At most once per poll interval."""
        if time.monotonic() < self._next_takeover:
            return False
        self._next_takeover = time.monotonic() + self.rt.settings.poll_interval
        with self.rt.db.write() as conn:
            claim = queue.claim_validation(conn, self.owner, repo.now(), self._lease, takeovers_only=True)
        if claim is None:
            return False
        processing.validate_batch(self.rt, claim)
        return True

    def _deliver_first(self) -> bool:
        """One webhook attempt ahead of batch work (so events go out while imports keep the
        workers busy), then none for as long as it took, or a poll interval: a slow or dead
        receiver takes at most half of a busy worker's time. An idle worker delivers after its
        batch work, without the wait."""
        if time.monotonic() < self._next_delivery:
            return False
        started = time.monotonic()
        try:
            sent = delivery.deliver_next(self.rt)
        except Exception:  # the batch work after it goes on
            log.exception("worker %s: webhook delivery failed", self.owner)
            sent = False
        took = time.monotonic() - started
        self._next_delivery = time.monotonic() + max(self.rt.settings.poll_interval, took)
        return sent

    def _validate_for_idle_account(self) -> bool:
        """Fair share: a batch of an account with nothing in progress is validated before the
        next chunk of another account's batch (a read first: most of the time there is none;
        one statement, outside a transaction on PostgreSQL, as it runs before every chunk)."""
        with self.rt.db.single_read() as conn:
            if not queue.waits_for_idle_account(conn, repo.now()):
                return False
        with self.rt.db.write() as conn:
            claim = queue.claim_validation(conn, self.owner, repo.now(), self._lease, idle_accounts_only=True)
        if claim is None:
            return False
        processing.validate_batch(self.rt, claim)
        return True

    def _apply_next(self) -> bool:
        with self.rt.db.write() as conn:
            claim = queue.claim_chunk(conn, self.owner, repo.now(), self._lease)
        if claim is None:
            return False
        processing.apply_chunk(self.rt, claim)
        return True

    def _validate_next(self) -> bool:
        with self.rt.db.write() as conn:
            claim = queue.claim_validation(conn, self.owner, repo.now(), self._lease)
        if claim is None:
            return False
        processing.validate_batch(self.rt, claim)
        return True

    def _read_unread(self) -> bool:
        """Give the records a cancel left unread their outcome (see core.unread)."""
        with self.rt.db.write() as conn:
            claim = queue.claim_unread(conn, self.owner, repo.now(), self._lease)
        if claim is None:
            return False
        unread.read_unread(self.rt, claim)
        return True

    def _settle_stalled(self) -> bool:
        """Complete batches whose last chunk's finisher died between commit and completion."""
        with self.rt.db.read() as conn:
            stalled = queue.stalled_batches(conn)
        for batch_id in stalled:
            with self.rt.db.write() as conn:
                settle.complete_if_done(conn, batch_id)
        return False


# A worker whose work fails again and again (the database is down) waits longer each time:
# the poll interval (at least _FIRST_PAUSE), doubled after each failure in a row, up to
# _LONGEST_PAUSE; its first success ends the series.
_FIRST_PAUSE, _LONGEST_PAUSE = 0.5, 15.0


def _pause(poll_interval: float, failures: int) -> float:
    """How long a worker waits after its `failures`-th failure in a row."""
    doubled: float = max(poll_interval, _FIRST_PAUSE) * 2.0 ** min(failures - 1, 16)
    return min(_LONGEST_PAUSE, doubled)


def _log_failure(owner: str, exc: Exception, pause: float) -> None:
    """The database away (down, a lost connection, a lock waited for too long: the worker
    tries again after `pause`) in one line; anything else with its traceback."""
    trouble = database_trouble(exc)
    if trouble is not None:
        log.warning(
            "worker %s: the database does not answer (%s); trying again in %g s", owner, trouble, pause
        )
    else:
        log.exception("worker %s: unexpected error; trying again in %g s", owner, pause)


class WorkerPool:
    """N worker threads sharing one stop flag and one wake-up signal, and a heartbeat that
    tells every server these threads are alive (`kind`: the command that runs them)."""

    def __init__(self, rt: Runtime, size: int, kind: str = "serve", tag: str = "") -> None:
        """`tag`: see `process_name`."""
        self.rt = rt
        self._process = process_name(tag=tag)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._threads = [
            threading.Thread(target=self._worker(i).run, name=f"loadbay-worker-{i}", daemon=True)
            for i in range(size)
        ]
        now = repo.now()
        self._beat = queue.WorkerBeat(self._process, kind, size, __version__, started_at=now, seen_at=now)
        if size:
            self._threads.append(
                threading.Thread(target=self._heartbeat, name="loadbay-heartbeat", daemon=True)
            )

    @property
    def size(self) -> int:
        return self._beat.threads

    def _worker(self, i: int) -> Worker:
        return Worker(self.rt, f"w{i}", self.stop, self.wake, self._process)

    def start(self) -> None:
        if self._threads:  # (an API-only server keeps Python's defaults)
            _collect_less_often()
            _load_pyarrow()
            try:
                self._beat_once()  # live from the start: /readyz need not wait a heartbeat
            except Exception as exc:  # (the database gone again since it migrated: the beats go on)
                log.warning("worker heartbeat failed: %s", database_trouble(exc) or exc)
        for thread in self._threads:
            thread.start()

    def _heartbeat(self) -> None:
        interval = self.rt.settings.heartbeat_seconds
        while not self.stop.wait(interval):
            try:
                self._beat_once()
            except Exception as exc:  # the database may be away for a while; the workers say so too
                trouble = database_trouble(exc)
                log.warning("worker heartbeat failed: %s", trouble, exc_info=trouble is None)

    def _beat_once(self) -> None:
        with self.rt.db.write() as conn:
            queue.beat(conn, replace(self._beat, seen_at=repo.now()))

    def notify(self) -> None:
        self.wake.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._threads:
            self._forget()

    def _forget(self) -> None:
        """Remove this process's heartbeat (and any silent for a day)."""
        try:
            with self.rt.db.write() as conn:
                queue.forget_worker(conn, self._beat.id, repo.now() - timedelta(days=1))
        except Exception:  # stopping anyway: the row goes stale and stops counting as live
            log.warning("could not remove the worker heartbeat", exc_info=True)


# A worker makes and drops some thirty objects per record; at Python's default (a young
# collection every 700 new objects) the collector took about 15% of a worker's time
# (a 100,000-row customer file, validated and applied in one thread: 45 -> 39 µs per record).
_YOUNG_COLLECTION_EVERY = 50_000


def _load_pyarrow() -> None:
    """Import what the column path reads and stages with (loadbay.arrow) now, not while the
    first batch waits for it: a process that runs workers needs it anyway (~60 MB)."""
    for module in (pa, pc, pa_csv):
        module.__name__  # noqa: B018 (the look-up imports it)


def _collect_less_often() -> None:
    """Run the cycle collector less often in a process that runs workers."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG_COLLECTION_EVERY, middle, old)
