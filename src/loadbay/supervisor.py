"""Worker processes for `loadbay serve --workers N`: started with the server, started again
when one dies, stopped with the server, and never left behind by it.

Each worker process is the equivalent of `loadbay worker --concurrency 1` on the server's
settings and data dir: one worker thread and a heartbeat (kind `serve`, so /healthz, /readyz,
`loadbay doctor` and `loadbay_workers_alive` count it). It runs `python -m loadbay.supervisor`
and never migrates anything the server has not migrated already: the server migrates the
database (`Runtime.build`, in `create_app`) before it starts any worker.

How a worker stays tied to its server:

- Its stdin is a pipe whose writing end the server alone holds. The server writes a byte to
  it to wake the worker at once (a batch was submitted to the server); however the server
  ends, SIGKILL included, the kernel closes that end, the worker reads end-of-file and stops
  (as on SIGTERM; after STOP_SECONDS it exits at once, whatever it was doing). No race: a
  worker whose server died before it started reads end-of-file as soon as it looks.
- It runs in a session of its own, so a Ctrl-C in the server's terminal reaches the server
  only. On SIGTERM or SIGINT the server (its app's lifespan, as uvicorn shuts down) sends each
  worker SIGTERM, waits up to STOP_SECONDS for them to finish their piece of work, then
  SIGKILLs those left. Work cut short is safe: another worker takes a claim over once its
  lease has ended, and the attempt token refuses the old attempt's late commit.
- A worker that exits while the server runs is logged at WARNING with its exit status and
  started again after a backoff: FIRST_BACKOFF, doubled each time it dies again within
  STEADY_SECONDS of its start, up to MAX_BACKOFF.
- The claims of a worker that died, or was SIGKILLed on stop, are released at once (the
  server's `release_claims`: its validations and chunks are taken over by the next claim,
  its heartbeat removed), not after their lease (LOADBAY_LEASE_SECONDS). Each worker
  process is named with a tag the server gives it (`core.worker.process_name`), so the
  release touches no other server's worker of the same host name and pid (in another PID
  namespace); and it happens before the dead process is reaped, while its pid cannot be
  another process's. Should the release fail, it is logged and the leases run out as before;
  one that takes over RELEASE_SECONDS (on SQLite it waits for the writers' turn) is left to
  finish on its own. (`loadbay worker` processes, which nothing supervises, still leave
  their claims to expire.)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadbay.config import Settings
from loadbay.core.metrics import MetricsPortError, serve_process_metrics
from loadbay.core.runtime import Runtime
from loadbay.core.worker import WorkerPool, process_name
from loadbay.memory import fewer_collections, return_big_buffers
from loadbay.types import default_registry

__all__ = ["STOP_SECONDS", "WorkerProcesses", "main"]

log = logging.getLogger("loadbay.supervisor")  # (also when run as __main__)

STOP_SECONDS = 10.0  # a stopped worker's time to finish its piece of work before SIGKILL
FIRST_BACKOFF = 0.5  # seconds before a dead worker is started again
MAX_BACKOFF = 30.0
STEADY_SECONDS = 60.0  # a worker that ran this long before it died is started again at once
_TICK = 0.1  # how often the supervisor looks at its workers

# Ends a dead worker process's leases, given its name (`core.worker.process_name`):
# (validations, chunks) released.
ReleaseClaims = Callable[[str], tuple[int, int]]
RELEASE_SECONDS = 5.0  # how long the supervisor waits for a release before it goes on


@dataclass
class _Slot:
    """One worker process's place: the process in it now, or when the next one starts."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    wake: int | None = None  # the writing end of the process's stdin
    started: float = 0.0  # (time.monotonic)
    due: float = 0.0  # (time.monotonic) when to start the next process, while none runs
    backoff: float = FIRST_BACKOFF
    tag: str = ""  # the process's tag (see core.worker.process_name)


class WorkerProcesses:
    """`count` worker processes, supervised from a thread of the server's process."""

    def __init__(
        self,
        count: int,
        *,
        data_dir: Path | None = None,
        base_url: str | None = None,
        metrics_host: str | None = None,
    ) -> None:
        self.count = count
        self._data_dir = data_dir
        self._base_url = base_url
        self._metrics_host = metrics_host  # (the server's own address: `serve --host`)
        self._slots = [_Slot(i) for i in range(count)]
        self._lock = threading.Lock()  # a wake-up never writes to a descriptor being closed
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._release_claims: ReleaseClaims | None = None

    @property
    def pids(self) -> list[int]:
        """The running worker processes' ids."""
        with self._lock:
            return [s.process.pid for s in self._slots if s.process is not None and not _exited(s.process)]

    def start(self, release_claims: ReleaseClaims | None = None) -> None:
        """Start the worker processes; `release_claims(pid)` ends the leases of one that died."""
        self._release_claims = release_claims
        if not self._slots:
            return
        for slot in self._slots:
            self._spawn(slot)
        log.info("%d worker processes started: pids %s", self.count, ", ".join(map(str, self.pids)))
        self._thread = threading.Thread(target=self._supervise, name="loadbay-supervisor", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wake every worker process (work was queued): a byte down each one's stdin."""
        with self._lock:
            for slot in self._slots:
                # (OSError: its pipe is full, a wake-up waits already; or the worker died)
                if slot.wake is not None:
                    with contextlib.suppress(OSError):
                        os.write(slot.wake, b"\n")

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Stop the workers: SIGTERM, then SIGKILL for those still running after `timeout`.
        Each one's claims are released once it is dead, whatever ended it (one that finished
        its piece of work has none left)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        running = [s for s in self._slots if s.process is not None]
        for slot in running:
            _signal(slot, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for slot in running:
            assert slot.process is not None
            while not _exited(slot.process) and time.monotonic() < deadline:
                time.sleep(_TICK / 2)
            if not _exited(slot.process):
                log.warning(
                    "worker process %d runs on %.0f s after SIGTERM: SIGKILL", slot.process.pid, timeout
                )
                _signal(slot, signal.SIGKILL)
                _exited(slot.process, block=True)
            self._bury(slot)  # (another server may take its claims over now)
        for slot in self._slots:
            self._close_wake(slot)
            slot.process = None

    def _supervise(self) -> None:
        while not self._stopping.wait(_TICK):
            for slot in self._slots:
                try:
                    self._look_after(slot)
                except Exception:  # the supervisor itself must go on (e.g. no fork: try again)
                    log.exception("worker process %d could not be looked after", slot.index)
                    slot.due = time.monotonic() + MAX_BACKOFF

    def _look_after(self, slot: _Slot) -> None:
        now = time.monotonic()
        if slot.process is None:
            if now >= slot.due:
                self._spawn(slot)
            return
        if not _exited(slot.process):
            return
        status = self._bury(slot)
        lived = now - slot.started
        if lived >= STEADY_SECONDS:
            slot.backoff = FIRST_BACKOFF
        delay, slot.backoff = slot.backoff, min(2 * slot.backoff, MAX_BACKOFF)
        log.warning(
            "worker process %d (pid %d) %s after %.1f s; starting it again in %.1f s",
            slot.index,
            slot.process.pid,
            _exit_status(status),
            lived,
            delay,
        )
        self._close_wake(slot)
        slot.process, slot.due = None, now + delay

    def _spawn(self, slot: _Slot) -> None:
        read, write = os.pipe()  # (neither end is inherited by any other child)
        tag = secrets.token_hex(4)
        try:
            args = [sys.executable, "-m", "loadbay.supervisor", "--index", str(slot.index), "--tag", tag]
            if self._data_dir is not None:
                args += ["--data-dir", str(self._data_dir)]
            if self._base_url is not None:
                args += ["--base-url", self._base_url]
            process = subprocess.Popen(args, stdin=read, env=self._env(slot), start_new_session=True)
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        os.set_blocking(write, False)
        with self._lock:
            slot.process, slot.wake, slot.started, slot.tag = process, write, time.monotonic(), tag

    def _env(self, slot: _Slot) -> dict[str, str]:
        """The server's environment; a worker process's own metrics port, when asked for one,
        is LOADBAY_WORKER_METRICS_PORT plus its index (0, 1, …), on the server's own address
        unless LOADBAY_WORKER_METRICS_HOST names another."""
        env = dict(os.environ)
        port = env.get("LOADBAY_WORKER_METRICS_PORT", "").strip()
        if port.isdigit():
            env["LOADBAY_WORKER_METRICS_PORT"] = str(int(port) + slot.index)
        if self._metrics_host and not env.get("LOADBAY_WORKER_METRICS_HOST", "").strip():
            env["LOADBAY_WORKER_METRICS_HOST"] = self._metrics_host
        return env

    def _bury(self, slot: _Slot) -> int:
        """Release the claims of the slot's dead worker process, then reap it: its exit status.
        (Not the other way round: once reaped, its pid may be another process's.)"""
        assert slot.process is not None
        self._free_claims(slot.process.pid, slot.tag)
        return slot.process.wait()

    def _free_claims(self, pid: int, tag: str) -> None:
        """End the leases a dead worker process held, for other workers to take its work over
        now. Waited for up to RELEASE_SECONDS (on SQLite it waits for the writers' turn, which
        a hung process may hold), then left to finish, or fail, on its own: a failure is
        logged, and the leases then expire."""
        release = self._release_claims
        if release is None:
            return
        releasing = threading.Thread(target=_release, args=(release, pid, tag), name=f"loadbay-release-{pid}")
        releasing.daemon = True
        releasing.start()
        releasing.join(RELEASE_SECONDS)
        if releasing.is_alive():
            log.warning(
                "worker pid %d is dead; releasing its claims takes over %g s: going on",
                pid,
                RELEASE_SECONDS,
            )

    def _close_wake(self, slot: _Slot) -> None:
        with self._lock:
            if slot.wake is not None:
                os.close(slot.wake)
                slot.wake = None


def _release(release: ReleaseClaims, pid: int, tag: str) -> None:
    """Release a dead worker process's claims, logging what became of them."""
    try:
        validations, chunks = release(process_name(pid, tag))
    except Exception:  # (the leases run out, as they would have)
        log.warning("worker pid %d is dead; its claims expire with their leases", pid, exc_info=True)
        return
    level = logging.WARNING if validations or chunks else logging.DEBUG
    what = (pid, validations, chunks)
    log.log(level, "worker pid %d is dead; its claims are released: validations %d, chunks %d", *what)


def _signal(slot: _Slot, sig: signal.Signals) -> None:
    """Send a signal to the slot's process unless it has exited; `os.kill`, not Popen's
    `terminate`/`kill`, which reap a process that has exited (before its claims are released)."""
    if slot.process is not None and not _exited(slot.process):
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, sig)


def _exited(process: subprocess.Popen[bytes], *, block: bool = False) -> bool:
    """Whether the process has exited (`block`: once it has), without reaping it: its pid
    stays its own, as a zombie, until `poll()` or `wait()`."""
    if process.returncode is not None:
        return True
    if not hasattr(os, "waitid"):  # (not on macOS: reaped here, its pid free at once)
        return (process.wait() if block else process.poll()) is not None
    flags = os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG)
    try:
        return os.waitid(os.P_PID, process.pid, flags) is not None
    except ChildProcessError:  # (reaped already, by the Popen in another thread)
        return process.poll() is not None


def _exit_status(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


# the worker process ---------------------------------------------------------------------


# A worker process runs at a lower priority than its server: when every CPU is busy
# importing, the server's answers (status polls, uploads) come first, and the workers lose
# only what the server uses.
NICENESS = 5


def main(argv: list[str] | None = None) -> None:
    """A worker process of `loadbay serve`: one worker thread until stopped (SIGTERM, SIGINT,
    or its server gone: end-of-file on stdin)."""
    parser = argparse.ArgumentParser(prog="python -m loadbay.supervisor")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--base-url")
    parser.add_argument("--tag", default="")
    options = parser.parse_args(argv)
    os.nice(NICENESS)
    return_big_buffers()
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [worker %(process)d]: %(message)s",
    )
    if options.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": options.data_dir})
    base_url = options.base_url or settings.base_url()
    if settings.worker_metrics_port:  # first: a port taken ends the process before it takes work
        port = settings.worker_metrics_port
        named = f"LOADBAY_WORKER_METRICS_PORT={port - options.index} plus worker process {options.index}"
        try:
            serve_process_metrics(port, settings.worker_metrics_host, named)
        except MetricsPortError as exc:
            log.error("worker process %d: %s", options.index, exc)
            raise SystemExit(1) from None
    rt = Runtime.for_workers(settings, default_registry(), base_url=base_url)
    pool = WorkerPool(rt, 1, kind="serve", tag=options.tag)
    fewer_collections()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pool.stop.set())
    threading.Thread(target=_follow_server, args=(pool,), name="loadbay-server-watch", daemon=True).start()
    pool.start()
    log.info("worker process %d started", options.index)
    where = (options.index, rt.db.engine.url, settings.chunk_size)  # (the URL's password hidden)
    log.debug("worker process %d: %s, chunks of %d records", *where)
    while not pool.stop.wait(1.0):
        pass
    pool.shutdown(STOP_SECONDS)
    rt.close()


def _follow_server(pool: WorkerPool) -> None:
    """Wake the pool for each byte on stdin; stop it at end-of-file (the server is gone), and
    end the process if it has not ended STOP_SECONDS later."""
    while True:
        try:
            woken = os.read(0, 512)
        except OSError:
            woken = b""
        if not woken:
            break
        pool.notify()
    if not pool.stop.is_set():
        log.warning("the server is gone: stopping")
        pool.stop.set()
        pool.wake.set()
    time.sleep(STOP_SECONDS)
    log.warning("still not stopped %.0f s after the server went: exiting", STOP_SECONDS)
    logging.shutdown()
    os._exit(1)


if __name__ == "__main__":
    main()
