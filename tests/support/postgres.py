"""PostgreSQL server for the test suite.

``postgres_server_url()`` returns the URL of a PostgreSQL server the tests may use:

1. ``LOADBAY_TEST_POSTGRES_URL`` if set (an existing server; nothing is started), else
2. a throwaway cluster started from the newest ``/usr/lib/postgresql/*/bin`` (Debian
   layout), run as the ``postgres`` OS user when we are root (initdb refuses root),
   stopped and deleted at interpreter exit, else
3. ``None``: no server available, the caller should skip its PostgreSQL tests.

The result is cached per process, so a pytest session starts at most one cluster.
A server binary that is present but fails to start raises ``RuntimeError`` (with the
server log) rather than silently skipping tests.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tests.support.ports import free_port

ENV_URL = "LOADBAY_TEST_POSTGRES_URL"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_OS_USER = "postgres"
PG_SUPERUSER = "postgres"
START_ATTEMPTS = 3
COMMAND_TIMEOUT = 120.0

_server_url: str | None = None
_resolved = False
_startup_error: RuntimeError | None = None


@dataclass(frozen=True)
class _Cluster:
    bin_dir: Path
    base_dir: Path
    owner_pid: int

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"


def postgres_server_url() -> str | None:
    """URL of a PostgreSQL server for tests, or None when none is available."""
    global _server_url, _resolved, _startup_error
    if _startup_error is not None:
        raise _startup_error
    if _resolved:
        return _server_url
    env_url = os.environ.get(ENV_URL, "").strip()
    if env_url:
        _server_url = env_url
    else:
        bin_dir = find_postgres_bin_dir()
        if bin_dir is not None:
            try:
                _server_url = _start_cluster(bin_dir)
            except RuntimeError as exc:
                _startup_error = exc
                raise
    _resolved = True
    return _server_url


def find_postgres_bin_dir() -> Path | None:
    """Newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, pg_ctl and postgres."""
    candidates: list[tuple[tuple[int, ...], Path]] = []
    for entry in glob.glob(PG_BIN_GLOB):
        path = Path(entry)
        if not all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            continue
        version = path.parent.name
        key = tuple(int(part) for part in version.split(".") if part.isdigit())
        candidates.append((key, path))
    if not candidates:
        return None
    return max(candidates)[1]


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE ``name`` (optionally from ``template``); return the new db's URL."""
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
    with _admin_connection(server_url) as conn:
        conn.execute(query)
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE IF EXISTS ``name`` WITH (FORCE), terminating its connections."""
    query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with _admin_connection(server_url) as conn:
        conn.execute(query)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` with its database path replaced by ``name`` (scheme/query kept)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def _libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+psycopg://`` URLs too."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        return scheme.split("+", 1)[0] + sep + rest
    return url


def _admin_connection(server_url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_libpq_url(server_url), autocommit=True, connect_timeout=10)


# --- throwaway cluster -------------------------------------------------------------


def _start_cluster(bin_dir: Path) -> str:
    cluster = _Cluster(bin_dir=bin_dir, base_dir=_make_base_dir(), owner_pid=os.getpid())
    atexit.register(_stop_cluster, cluster)
    return _init_and_start(cluster)


def _init_and_start(cluster: _Cluster) -> str:
    bin_dir = cluster.bin_dir
    cluster.socket_dir.mkdir()
    _chown_tree_to_postgres(cluster.base_dir)
    _run_as_postgres(
        cluster,
        [
            str(bin_dir / "initdb"),
            "-D",
            str(cluster.data_dir),
            "-A",
            "trust",
            "-U",
            PG_SUPERUSER,
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        ],
        "initdb",
    )
    last_error: RuntimeError | None = None
    for _ in range(START_ATTEMPTS):  # a "free" port can be taken before we bind it
        port = free_port()
        try:
            _pg_ctl_start(cluster, port)
        except RuntimeError as exc:
            last_error = exc
            continue
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/postgres"
    assert last_error is not None
    raise last_error


def _pg_ctl_start(cluster: _Cluster, port: int) -> None:
    server_opts = " ".join(
        [
            f"-p {port}",
            f"-k {shlex.quote(str(cluster.socket_dir))}",
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ]
    )
    _run_as_postgres(
        cluster,
        [
            str(cluster.bin_dir / "pg_ctl"),
            "-D",
            str(cluster.data_dir),
            "-l",
            str(cluster.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            server_opts,
            "start",
        ],
        "pg_ctl start",
    )


class OwnCluster:
    """A throwaway PostgreSQL server of one test's own, which it may stop and start again (an
    outage, a crash) without touching the session's: `own_cluster()`."""

    def __init__(self, cluster: _Cluster, url: str) -> None:
        self._cluster = cluster
        self.url = url
        self.port = urlsplit(url).port

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m mode` (fast: clients are told and disconnected; immediate: a crash)."""
        argv = [str(self._cluster.bin_dir / "pg_ctl"), "-D", str(self._cluster.data_dir)]
        _run_as_postgres(self._cluster, [*argv, "-m", mode, "-w", "stop"], "pg_ctl stop")

    def start(self) -> None:
        """Start it again on the same port."""
        _pg_ctl_start(self._cluster, self.port or 0)


@contextlib.contextmanager
def own_cluster() -> Iterator[OwnCluster | None]:
    """A PostgreSQL server started for the caller alone (None: no server binaries here),
    stopped and deleted afterwards."""
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        yield None
        return
    cluster = _Cluster(bin_dir=bin_dir, base_dir=_make_base_dir(), owner_pid=os.getpid())
    try:
        yield OwnCluster(cluster, _init_and_start(cluster))
    finally:
        _stop_cluster(cluster)


def _stop_cluster(cluster: _Cluster) -> None:
    if os.getpid() != cluster.owner_pid:  # a forked child must not stop our server
        return
    if (cluster.data_dir / "postmaster.pid").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                _as_postgres_argv(
                    [
                        str(cluster.bin_dir / "pg_ctl"),
                        "-D",
                        str(cluster.data_dir),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ]
                ),
                cwd=cluster.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )
    shutil.rmtree(cluster.base_dir, ignore_errors=True)


def _make_base_dir() -> Path:
    # As root the server runs as `postgres`, which must be able to reach the directory:
    # use /tmp rather than a TMPDIR that might live under e.g. /root (mode 0700).
    parent = "/tmp" if _is_root() and os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix="loadbay-pg-", dir=parent))


def _is_root() -> bool:
    return os.geteuid() == 0


def _chown_tree_to_postgres(path: Path) -> None:
    if not _is_root():
        return
    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError as exc:
        raise RuntimeError(
            f"running as root but there is no {PG_OS_USER!r} OS user to run PostgreSQL "
            f"(initdb refuses root); set {ENV_URL} to use an existing server"
        ) from exc
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _as_postgres_argv(argv: list[str]) -> list[str]:
    if not _is_root():
        return argv
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", PG_OS_USER, "--", *argv]


def _run_as_postgres(cluster: _Cluster, argv: list[str], what: str) -> None:
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)
    try:
        result = subprocess.run(
            _as_postgres_argv(argv),
            cwd=cluster.base_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"test PostgreSQL: {what} failed to run: {exc}") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"test PostgreSQL: {what} exited {result.returncode}\n"
            f"command: {shlex.join(argv)}\n"
            f"output:\n{result.stdout}{result.stderr}\n"
            f"server log:\n{_read_log(cluster)}\n"
            f"(set {ENV_URL} to use an existing server instead)"
        )


def _read_log(cluster: _Cluster) -> str:
    try:
        return cluster.log_file.read_text(errors="replace")[-4000:]
    except OSError:
        return "(no log)"
